// Response envelopes and errors of the assets API. Pure (no JupyterLab), shared by fetch and XHR paths.

import type { Asset, BatchUploadResult } from './types';

/** An error the server answered (`{"error": {code, message, traceId, status}}`) or one met on the way there. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly traceId: string | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The line shown to the user: the server's code first, so it can be looked up. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) {
    return `${error.code}: ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** The `data` of a success envelope; an ApiError for any other answer. */
export function parseResponse<T>(status: number, statusText: string, text: string): T {
  let body: unknown = undefined;
  let parsed = true;
  if (text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      parsed = false;
    }
  }
  if (status >= 200 && status < 300) {
    if (!parsed) {
      throw new ApiError('response_invalid', 'The server answered something that is not JSON.', status);
    }
    return (body && typeof body === 'object' && 'data' in body ? (body as { data: T }).data : body) as T;
  }
  const error = (body as { error?: Record<string, unknown> } | undefined)?.error;
  if (error && typeof error.code === 'string') {
    throw new ApiError(
      error.code,
      typeof error.message === 'string' ? error.message : statusText,
      typeof error.status === 'number' ? error.status : status,
      typeof error.traceId === 'string' ? error.traceId : null
    );
  }
  // Not the service's envelope (a proxy, a login redirect page): keep the HTTP status as the code.
  throw new ApiError(`http_${status}`, statusText || `The server answered HTTP ${status}.`, status);
}

/** The last value of a cookie (what Tornado reads when the name appears twice), like ServerConnection. */
export function cookieValue(cookies: string, name: string): string | undefined {
  let value: string | undefined;
  for (const part of cookies.split(';')) {
    const trimmed = part.trim();
    if (trimmed.startsWith(`${name}=`)) {
      value = trimmed.slice(name.length + 1);
    }
  }
  return value;
}

/** A batch upload's items as each file's asset or the ApiError that refused it, in the order the files were sent. */
export function batchOutcomes(result: BatchUploadResult): (Asset | ApiError)[] {
  return [...result.items]
    .sort((a, b) => a.index - b.index)
    .map(item =>
      item.data
        ? item.data
        : new ApiError(
            item.error?.code ?? `http_${item.status}`,
            item.error?.message ?? `The server answered HTTP ${item.status} for this file.`,
            item.status,
            item.error?.traceId ?? null
          )
    );
}
