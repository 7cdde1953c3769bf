import { describe, expect, it } from 'vitest';

import { fieldsFromSchema, initialValue, parametersFromForm, type FormValues } from './schemaForm';

// The server's schemas (GET api/v1/assets/skills), trimmed.
const watermark = {
  type: 'object',
  properties: {
    text: { type: 'string', default: 'jupyter-assets', minLength: 1 },
    opacity: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
    fontSize: { type: 'integer', minimum: 1, default: 36 },
    position: { type: 'string', enum: ['bottomRight', 'bottomLeft', 'center'], default: 'bottomRight' }
  },
  required: []
};
const formatConvert = {
  type: 'object',
  properties: {
    targetFormat: { type: 'string', description: 'The format to convert to.', enum: ['webp', 'jpeg', 'png'] },
    keepOriginal: { type: 'boolean', default: false }
  },
  required: ['targetFormat']
};
const tags = {
  type: 'object',
  properties: {
    vocabulary: { type: 'array', items: { type: 'string' } },
    topK: { type: 'integer', default: 5 },
    threshold: { type: 'number', default: 0.05 }
  }
};

function defaults(schema: unknown): FormValues {
  return Object.fromEntries(fieldsFromSchema(schema).map(field => [field.name, initialValue(field)]));
}

describe('fieldsFromSchema', () => {
  it('maps each JSON Schema type to an input kind, in order', () => {
    const fields = fieldsFromSchema(watermark);
    expect(fields.map(f => [f.name, f.kind, f.integer])).toEqual([
      ['text', 'text', false],
      ['opacity', 'number', false],
      ['fontSize', 'number', true],
      ['position', 'select', false]
    ]);
    expect(fields[1]).toMatchObject({ minimum: 0, maximum: 1 });
    expect(fields[3].options.map(o => o.label)).toEqual(['bottomRight', 'bottomLeft', 'center']);
  });

  it('marks required fields and keeps descriptions', () => {
    const [target, keep] = fieldsFromSchema(formatConvert);
    expect(target).toMatchObject({ kind: 'select', required: true, description: 'The format to convert to.' });
    expect(keep).toMatchObject({ kind: 'checkbox', required: false });
  });

  it('makes arrays of strings a comma-separated list and skips what a form cannot edit', () => {
    expect(fieldsFromSchema(tags)[0]).toMatchObject({ name: 'vocabulary', kind: 'list', numericItems: false });
    const odd = { type: 'object', properties: { nested: { type: 'object' }, any: {}, n: { type: 'number' } } };
    expect(fieldsFromSchema(odd).map(f => f.name)).toEqual(['n']);
  });

  it('gives no fields for an empty or missing schema', () => {
    expect(fieldsFromSchema({ type: 'object', properties: {} })).toEqual([]);
    expect(fieldsFromSchema(null)).toEqual([]);
    expect(fieldsFromSchema('nope')).toEqual([]);
  });
});

describe('initialValue', () => {
  it('prefills defaults as the inputs show them', () => {
    expect(defaults(watermark)).toEqual({
      text: 'jupyter-assets',
      opacity: '0.5',
      fontSize: '36',
      position: 'bottomRight'
    });
    expect(defaults(formatConvert)).toEqual({ targetFormat: '', keepOriginal: false });
    const list = {
      type: 'object',
      properties: { v: { type: 'array', items: { type: 'string' }, default: ['a', 'b'] } }
    };
    expect(defaults(list)).toEqual({ v: 'a, b' });
  });
});

describe('parametersFromForm', () => {
  it('sends nothing when every value is still its default', () => {
    expect(parametersFromForm(fieldsFromSchema(watermark), defaults(watermark))).toEqual({});
  });

  it('sends the values the user changed, coerced to the schema type', () => {
    const fields = fieldsFromSchema(watermark);
    const values = { ...defaults(watermark), opacity: '0.25', fontSize: '48', position: 'center', text: 'hi' };
    expect(parametersFromForm(fields, values)).toEqual({ opacity: 0.25, fontSize: 48, position: 'center', text: 'hi' });
  });

  it('always sends required values, and leaves out a required one left empty for the server to name', () => {
    const fields = fieldsFromSchema(formatConvert);
    expect(parametersFromForm(fields, { targetFormat: 'webp', keepOriginal: false })).toEqual({ targetFormat: 'webp' });
    expect(parametersFromForm(fields, { targetFormat: 'png', keepOriginal: true })).toEqual({
      targetFormat: 'png',
      keepOriginal: true
    });
    expect(parametersFromForm(fields, { targetFormat: '', keepOriginal: false })).toEqual({});
  });

  it('maps enum labels back to non-string enum values', () => {
    const schema = { type: 'object', properties: { size: { type: 'integer', enum: [128, 256] } } };
    expect(parametersFromForm(fieldsFromSchema(schema), { size: '256' })).toEqual({ size: 256 });
  });

  it('passes text that is not a number through, so the server names the parameter', () => {
    expect(parametersFromForm(fieldsFromSchema(watermark), { fontSize: 'big' })).toEqual({ fontSize: 'big' });
  });

  it('leaves out emptied optional numbers (the server default applies)', () => {
    expect(parametersFromForm(fieldsFromSchema(watermark), { ...defaults(watermark), opacity: '  ' })).toEqual({});
  });

  it('splits lists on commas and new lines', () => {
    const fields = fieldsFromSchema(tags);
    expect(parametersFromForm(fields, { ...defaults(tags), vocabulary: 'cat, dog\nbird,, ' })).toEqual({
      vocabulary: ['cat', 'dog', 'bird']
    });
    const numbers = { type: 'object', properties: { ks: { type: 'array', items: { type: 'integer' } } } };
    expect(parametersFromForm(fieldsFromSchema(numbers), { ks: '1, 2' })).toEqual({ ks: [1, 2] });
  });

  it('sends a checkbox without default only when checked', () => {
    const schema = { type: 'object', properties: { flag: { type: 'boolean' } } };
    const fields = fieldsFromSchema(schema);
    expect(parametersFromForm(fields, { flag: false })).toEqual({});
    expect(parametersFromForm(fields, { flag: true })).toEqual({ flag: true });
  });
});
