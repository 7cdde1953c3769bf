// Pure helpers: sizes, URLs, Markdown/Python snippets and enrichment results. No JupyterLab imports, so the unit
// tests run them directly.

import type { Asset, AssetDragPayload, StructuredResult } from './types';

export const ASSET_MIME = 'application/x-jupyter-asset+json';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1023 B`, `1.0 KiB`, `1.5 MiB` (binary units, like the Python widgets). */
export function humanBytes(size: number): string {
  if (!Number.isFinite(size) || size < 1024) {
    return `${Math.max(0, Math.floor(size || 0))} B`;
  }
  let value = size;
  let unit = 0;
  // Promote while the rounded value would read 1024.0 of the current unit.
  while (unit < UNITS.length - 1 && Number(value.toFixed(1)) >= 1024) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Text safe inside `![...]`: brackets and backslashes escaped, line breaks folded. */
export function escapeMarkdownText(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/[\\[\]]/g, match => `\\${match}`)
    .trim();
}

/** A URL safe inside `(...)`: characters that would end or break the link destination are percent-encoded. */
export function escapeMarkdownUrl(url: string): string {
  return url.replace(/[\s()<>]/g, ch => '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

export function markdownSnippet(name: string, altText: string | null, url: string): string {
  const alt = escapeMarkdownText(altText?.trim() ? altText : name);
  return `![${alt}](${escapeMarkdownUrl(url)})`;
}

/** What a PATCH sends for a text field: blank clears it (null), anything else is kept as typed. */
export function blankToNull(text: string): string | null {
  return text.trim() === '' ? null : text;
}

/** Python for a notebook that holds an `AssetsClient` named `client`. */
export function codeSnippet(id: string): string {
  return `client.get(${JSON.stringify(id)})`;
}

/** `source` with `line` added on a line of its own at the end. */
export function appendLine(source: string, line: string): string {
  if (source === '') {
    return line;
  }
  return source.endsWith('\n') ? source + line : `${source}\n${line}`;
}

/** The URL others can use: the public URL when public, else the (authenticated) content URL. */
export function shareUrl(asset: Pick<Asset, 'isPublic' | 'publicUrl'>, contentUrl: string): string {
  return asset.isPublic && asset.publicUrl ? asset.publicUrl : contentUrl;
}

/**
 * What an <img> shows. Public: the thumbnail derivative (when known) or the public URL. Private: the content URL,
 * versioned by `updatedAtUtc` so a skill that rewrites the bytes is not hidden by the browser's cache.
 */
export function imageUrl(
  asset: Pick<Asset, 'isPublic' | 'publicUrl' | 'updatedAtUtc' | 'derivatives'>,
  contentUrl: string,
  preferThumbnail: boolean
): string {
  if (asset.isPublic && asset.publicUrl) {
    const thumbnail = preferThumbnail
      ? asset.derivatives?.find(d => d.kind.startsWith('thumbnail') && d.publicUrl)
      : undefined;
    return thumbnail?.publicUrl ?? asset.publicUrl;
  }
  return `${contentUrl}?v=${encodeURIComponent(asset.updatedAtUtc)}`;
}

export function dragPayload(asset: Asset, contentUrl: string): AssetDragPayload {
  return {
    id: asset.id,
    name: asset.originalFileName,
    altText: asset.altText,
    url: shareUrl(asset, contentUrl)
  };
}

/** The payload of a drop, or null when it is not one of ours. */
export function parseDragPayload(text: string): AssetDragPayload | null {
  try {
    const value = JSON.parse(text);
    if (value && typeof value.id === 'string' && typeof value.url === 'string') {
      return {
        id: value.id,
        name: typeof value.name === 'string' ? value.name : value.id,
        altText: typeof value.altText === 'string' ? value.altText : null,
        url: value.url
      };
    }
  } catch {
    // not JSON: not ours
  }
  return null;
}

const CONTENT_TYPE_BY_EXTENSION: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  jpe: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  bmp: 'image/bmp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  svg: 'image/svg+xml'
};

/** A content type from the file name's extension; the server checks it against the bytes anyway. */
export function guessContentType(name: string): string {
  const match = /\.([^./\\]+)$/.exec(name);
  return (match && CONTENT_TYPE_BY_EXTENSION[match[1].toLowerCase()]) || 'application/octet-stream';
}

export function base64ToBytes(base64: string): Uint8Array {
  const binary = atob(base64.replace(/\s+/g, ''));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

export interface Tag {
  label: string;
  score: number | null;
}

function resultPayload(results: StructuredResult[] | undefined, kind: string): unknown {
  const result = results?.find(r => r.kind === kind);
  if (!result) {
    return undefined;
  }
  try {
    return JSON.parse(result.payloadJson);
  } catch {
    return undefined;
  }
}

/** Tags of the `tags` result: its payload is a list of {label, score} or an object holding one under `tags`. */
export function tagsOf(results: StructuredResult[] | undefined): Tag[] {
  let payload = resultPayload(results, 'tags');
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    payload = (payload as { tags?: unknown }).tags;
  }
  if (!Array.isArray(payload)) {
    return [];
  }
  return payload
    .filter(tag => tag && typeof tag.label === 'string')
    .map(tag => ({ label: tag.label, score: typeof tag.score === 'number' ? tag.score : null }));
}

/** The `caption` result's text: its payload is a string or an object holding one under `caption`. */
export function captionOf(results: StructuredResult[] | undefined): string | null {
  let payload = resultPayload(results, 'caption');
  if (payload && typeof payload === 'object') {
    payload = (payload as { caption?: unknown }).caption;
  }
  return typeof payload === 'string' && payload !== '' ? payload : null;
}

export function dimensions(width: number | null, height: number | null): string {
  return width && height ? `${width} × ${height}` : '—';
}

/** A timestamp in the reader's locale; the raw value when it does not parse. */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) {
    return '—';
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Re-read assets that are still being enriched this often (ms). */
export const POLL_MS = 2000;

export function inProgress(asset: Pick<Asset, 'status'>): boolean {
  return asset.status === 'pending' || asset.status === 'processing';
}

/** Characters of a name's stem kept after the ellipsis, with the extension (`holiday-phot…-0012.jpg`). */
export const NAME_TAIL_CHARACTERS = 5;

/**
 * A file name split for a middle ellipsis: the head (shortened with "…" by CSS when it does not fit) and the tail,
 * always shown: the extension and the last few characters before it, where names of one series differ. Splits
 * between code points, never inside one.
 */
export function splitName(name: string, tailCharacters = NAME_TAIL_CHARACTERS): [head: string, tail: string] {
  const chars = Array.from(name);
  const extension = /\.[^.\s]{1,8}$/u.exec(name);
  const extensionLength = extension && extension.index > 0 ? Array.from(extension[0]).length : 0;
  const tailLength = Math.min(chars.length, extensionLength + tailCharacters);
  return [chars.slice(0, chars.length - tailLength).join(''), chars.slice(chars.length - tailLength).join('')];
}

/** How one upload ended: stored, refused by the server (a 4xx with its code), or failed on the way (network, 5xx). */
export type UploadOutcome = 'waiting' | 'done' | 'refused' | 'failed';

export function uploadOutcome(status: number): 'refused' | 'failed' {
  return status >= 400 && status < 500 ? 'refused' : 'failed';
}

/** The uploads' one-line summary: "Uploading 2 files · 1 uploaded" while they run, "3 uploaded, 1 refused" after. */
export function uploadSummary(outcomes: Iterable<UploadOutcome>): string {
  const count: Record<UploadOutcome, number> = { waiting: 0, done: 0, refused: 0, failed: 0 };
  for (const outcome of outcomes) {
    count[outcome] += 1;
  }
  const finished = [
    count.done && `${count.done} uploaded`,
    count.refused && `${count.refused} refused`,
    count.failed && `${count.failed} failed`
  ].filter(Boolean);
  if (count.waiting === 0) {
    return finished.join(', ');
  }
  const running = `Uploading ${count.waiting} file${count.waiting === 1 ? '' : 's'}`;
  return finished.length ? `${running} · ${finished.join(', ')}` : running;
}

/** The "by meaning" checkbox's tooltip when the server has no usable CLIP model; `reason` is the server's message. */
export function noModelTooltip(reason: string): string {
  const how =
    'Search by meaning needs a CLIP model: set c.AssetsApp.clip_pretrained (a pretrained tag or the path of a ' +
    'checkpoint) and restart Jupyter.';
  return reason.trim() ? `${how}\n\nThe server says: ${reason.trim()}` : how;
}
