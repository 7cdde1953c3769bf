// Typed client of `{base_url}api/v1/assets`. Requests go through ServerConnection, so they carry Jupyter's own
// session (token, XSRF cookie, JupyterHub prefix); uploads (batches of files in one request) use XMLHttpRequest
// for progress, with the same headers.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, batchOutcomes, cookieValue, parseResponse } from './http';
import { listQuery, type ListState } from './query';
import type { Asset, AssetPage, BatchUploadResult, Skill, SkillRun, UsageStats } from './types';

export class AssetsApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** `{base_url}api/v1/assets/<parts...>`, each part URL-encoded. */
  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, 'api/v1/assets', ...parts.map(encodeURIComponent));
  }

  /** The absolute, authenticated URL of an asset's bytes (an <img> gets through with Jupyter's login cookie). */
  contentUrl(id: string): string {
    return this.url(id, 'content');
  }

  list(state: ListState): Promise<AssetPage> {
    return this.request(`${this.url()}?${listQuery(state)}`);
  }

  /**
   * Whether search by meaning works: a one-item search by text, which the server answers 409 `model_unavailable`
   * (with the setting to change in its message) when no CLIP model is configured or its weights cannot be loaded.
   * `{available: null}`: the answer said neither (an error of another kind), so the panel cannot tell.
   */
  async searchByMeaning(): Promise<{ available: boolean | null; reason: string }> {
    try {
      await this.request(`${this.url()}?${new URLSearchParams({ text: 'x', page: '1', pageSize: '1' })}`);
      return { available: true, reason: '' };
    } catch (error) {
      if (error instanceof ApiError && error.code === 'model_unavailable') {
        return { available: false, reason: error.message };
      }
      return { available: null, reason: error instanceof Error ? error.message : String(error) };
    }
  }

  get(id: string): Promise<Asset> {
    return this.request(this.url(id));
  }

  patch(id: string, changes: Partial<Pick<Asset, 'description' | 'altText' | 'isPublic'>>): Promise<Asset> {
    return this.request(this.url(id), { method: 'PATCH', body: JSON.stringify(changes) });
  }

  delete(id: string): Promise<unknown> {
    return this.request(this.url(id), { method: 'DELETE' });
  }

  skills(): Promise<Skill[]> {
    return this.request(this.url('skills'));
  }

  runSkill(id: string, skill: string, parameters: Record<string, unknown>): Promise<SkillRun> {
    return this.request(this.url(id, 'skills', skill, 'run'), {
      method: 'POST',
      body: JSON.stringify({ parameters })
    });
  }

  usageStats(): Promise<UsageStats> {
    return this.request(this.url('usage-stats'));
  }

  /**
   * POST files in one multipart/form-data request to `batch` (`file` parts, `runEnrichment=true`): each file's
   * asset, or the ApiError that refused it, in order. `onProgress` gets 0..1 of the whole request.
   */
  uploadBatch(
    files: { blob: Blob; name: string }[],
    onProgress: (fraction: number) => void
  ): Promise<(Asset | ApiError)[]> {
    const form = new FormData();
    form.append('runEnrichment', 'true');
    for (const file of files) {
      form.append('file', file.blob, file.name);
    }
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', this.url('batch'));
      // withCredentials stays false: same-origin cookies go anyway, as with ServerConnection's `same-origin`.
      for (const [header, value] of Object.entries(this.authHeaders())) {
        xhr.setRequestHeader(header, value);
      }
      xhr.upload.onprogress = event => {
        if (event.lengthComputable && event.total > 0) {
          onProgress(event.loaded / event.total);
        }
      };
      xhr.onload = () => {
        try {
          resolve(batchOutcomes(parseResponse<BatchUploadResult>(xhr.status, xhr.statusText, xhr.responseText)));
        } catch (error) {
          reject(error);
        }
      };
      // The server may close the connection early on a body far over the size limit.
      xhr.onerror = () =>
        reject(new ApiError('network_error', 'The upload failed: the connection to the server was lost.', 0));
      xhr.onabort = () => reject(new ApiError('upload_aborted', 'The upload was cancelled.', 0));
      xhr.send(form);
    });
  }

  /** The headers ServerConnection adds to its own requests. */
  private authHeaders(): Record<string, string> {
    const headers: Record<string, string> = {};
    if (this.settings.token) {
      headers['Authorization'] = `token ${this.settings.token}`;
    }
    let cookies = '';
    try {
      cookies = document.cookie;
    } catch {
      // a sandboxed document has no cookies to read
    }
    const xsrf = cookieValue(cookies, '_xsrf');
    if (xsrf !== undefined) {
      headers['X-XSRFToken'] = xsrf;
    }
    return headers;
  }

  private async request<T>(url: string, init: RequestInit = {}): Promise<T> {
    if (init.body !== undefined) {
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new ApiError('network_error', `The server could not be reached: ${(error as Error).message}`, 0);
    }
    return parseResponse<T>(response.status, response.statusText, await response.text());
  }
}
