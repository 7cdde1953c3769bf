import { describe, expect, it } from 'vitest';

import { ApiError, batchOutcomes, cookieValue, errorText, parseResponse } from './http';
import type { Asset } from './types';

function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected an ApiError');
}

describe('parseResponse', () => {
  it('unwraps the data envelope', () => {
    expect(parseResponse(200, 'OK', '{"data": {"total": 3}}')).toEqual({ total: 3 });
    expect(parseResponse(202, 'Accepted', '{"data": {"id": "x"}}')).toEqual({ id: 'x' });
  });

  it("turns the server's error envelope into an ApiError with its code", () => {
    const body = {
      error: { code: 'model_unavailable', message: 'No weights', traceId: 't-1', status: 409 }
    };
    const error = thrown(() => parseResponse(409, 'Conflict', JSON.stringify(body)));
    expect(error.code).toBe('model_unavailable');
    expect(error.message).toBe('No weights');
    expect(error.status).toBe(409);
    expect(error.traceId).toBe('t-1');
    expect(errorText(error)).toBe('model_unavailable: No weights');
  });

  it('keeps the HTTP status when the answer is not the service envelope', () => {
    const error = thrown(() => parseResponse(502, 'Bad Gateway', '<html>proxy</html>'));
    expect(error.code).toBe('http_502');
    expect(error.message).toBe('Bad Gateway');
    expect(thrown(() => parseResponse(500, '', '')).message).toBe('The server answered HTTP 500.');
  });

  it('refuses a success that is not JSON', () => {
    expect(thrown(() => parseResponse(200, 'OK', '<html>login</html>')).code).toBe('response_invalid');
  });
});

describe('errorText', () => {
  it('falls back to the message of other errors', () => {
    expect(errorText(new Error('boom'))).toBe('boom');
    expect(errorText('plain')).toBe('plain');
  });
});

describe('cookieValue', () => {
  it('finds a cookie, the last one when repeated (as Tornado reads them)', () => {
    expect(cookieValue('a=1; _xsrf=2|abc|def; b=3', '_xsrf')).toBe('2|abc|def');
    expect(cookieValue('_xsrf=first; _xsrf=second', '_xsrf')).toBe('second');
    expect(cookieValue('x_xsrf=no', '_xsrf')).toBeUndefined();
    expect(cookieValue('', '_xsrf')).toBeUndefined();
  });
});

describe('batchOutcomes', () => {
  it('gives each file its asset or its error, in the order sent', () => {
    const asset = { id: 'a' } as Asset;
    const outcomes = batchOutcomes({
      items: [
        {
          index: 1,
          fileName: 'b.txt',
          status: 400,
          error: { code: 'asset_content_type_mismatch', message: 'Not a PNG', traceId: 't', status: 400 }
        },
        { index: 0, fileName: 'a.png', status: 202, data: asset }
      ]
    });
    expect(outcomes[0]).toBe(asset);
    const error = outcomes[1] as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect([error.code, error.message, error.status, error.traceId]).toEqual([
      'asset_content_type_mismatch',
      'Not a PNG',
      400,
      't'
    ]);
  });
});
