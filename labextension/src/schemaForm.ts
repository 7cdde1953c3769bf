// A skill's parameter form from its JSON Schema, and the parameters to send from the form's values. Pure.

export type FieldKind = 'text' | 'select' | 'number' | 'checkbox' | 'list';

export interface FieldOption {
  label: string;
  value: unknown;
}

export interface Field {
  name: string;
  kind: FieldKind;
  label: string;
  description: string;
  required: boolean;
  /** For `number` fields: the schema said `integer`. */
  integer: boolean;
  /** For `list` fields: the items are numbers. */
  numericItems: boolean;
  /** For `select` fields. */
  options: FieldOption[];
  /** The schema's default; undefined when it has none. */
  default: unknown;
  minimum?: number;
  maximum?: number;
}

/** Inputs hold strings (text, select, number, comma-separated list) or a boolean (checkbox). */
export type FormValue = string | boolean;
export type FormValues = Record<string, FormValue>;

type Schema = Record<string, unknown>;

function isObject(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function kindOf(property: Schema): FieldKind | null {
  if (Array.isArray(property.enum)) {
    return 'select';
  }
  switch (property.type) {
    case 'string':
      return 'text';
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'checkbox';
    case 'array':
      // Lists of plain values (e.g. a tag vocabulary) are typed comma-separated.
      return isObject(property.items) && ['string', 'number', 'integer'].includes(property.items.type as string)
        ? 'list'
        : null;
    default:
      return null;
  }
}

/** The form's fields, in the schema's order. Properties of a type a form cannot edit are left out. */
export function fieldsFromSchema(schema: unknown): Field[] {
  if (!isObject(schema) || !isObject(schema.properties)) {
    return [];
  }
  const required = Array.isArray(schema.required) ? (schema.required as unknown[]) : [];
  const fields: Field[] = [];
  for (const [name, property] of Object.entries(schema.properties)) {
    if (!isObject(property)) {
      continue;
    }
    const kind = kindOf(property);
    if (kind === null) {
      continue;
    }
    fields.push({
      name,
      kind,
      label: typeof property.title === 'string' ? property.title : name,
      description: typeof property.description === 'string' ? property.description : '',
      required: required.includes(name),
      integer: property.type === 'integer',
      numericItems: kind === 'list' && (property.items as Schema).type !== 'string',
      options: kind === 'select' ? (property.enum as unknown[]).map(value => ({ label: String(value), value })) : [],
      default: property.default,
      minimum: typeof property.minimum === 'number' ? property.minimum : undefined,
      maximum: typeof property.maximum === 'number' ? property.maximum : undefined
    });
  }
  return fields;
}

/** What the input shows before the user touches it: the default, or empty. */
export function initialValue(field: Field): FormValue {
  if (field.kind === 'checkbox') {
    return field.default === true;
  }
  if (field.default === undefined || field.default === null) {
    return '';
  }
  if (field.kind === 'list' && Array.isArray(field.default)) {
    return field.default.join(', ');
  }
  return String(field.default);
}

/** The typed value of an input, or undefined when it is empty. Text that is not a number is passed on as it is,
 * so the server's `skill_parameters_invalid` names the parameter. */
function coerce(field: Field, raw: FormValue): unknown {
  if (field.kind === 'checkbox') {
    return raw === true;
  }
  const text = String(raw);
  switch (field.kind) {
    case 'select':
      return text === '' ? undefined : (field.options.find(o => o.label === text)?.value ?? text);
    case 'number': {
      if (text.trim() === '') {
        return undefined;
      }
      const number = Number(text);
      return Number.isFinite(number) ? number : text;
    }
    case 'list': {
      const items = text
        .split(/[,\n]/)
        .map(item => item.trim())
        .filter(item => item !== '');
      if (items.length === 0) {
        return undefined;
      }
      return field.numericItems ? items.map(item => (Number.isFinite(Number(item)) ? Number(item) : item)) : items;
    }
    default:
      return text === '' ? undefined : text;
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The `parameters` to send: required fields (when filled in) and those the user changed from the default. An
 * untouched default is left to the server, which applies the same one.
 */
export function parametersFromForm(fields: Field[], values: FormValues): Record<string, unknown> {
  const parameters: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = values[field.name] ?? initialValue(field);
    const value = coerce(field, raw);
    if (value === undefined) {
      continue;
    }
    const changed =
      field.default === undefined ? field.kind !== 'checkbox' || value === true : !sameValue(value, field.default);
    if (field.required || changed) {
      parameters[field.name] = value;
    }
  }
  return parameters;
}
