// The list request built from the panel's controls. Pure, so it is unit-tested without JupyterLab.

export const PAGE_SIZE = 48;

/**
 * The types the server accepts by default (`c.AssetsApp.allowed_content_types`), with their short labels: the type
 * filter offers these, and the upload button's file picker asks for them.
 */
export const CONTENT_TYPES: readonly (readonly [type: string, label: string, extensions: string])[] = [
  ['image/png', 'PNG', '.png'],
  ['image/jpeg', 'JPEG', '.jpg,.jpeg'],
  ['image/gif', 'GIF', '.gif'],
  ['image/webp', 'WebP', '.webp']
];

/** The file picker's `accept`: types and extensions (a browser that does not know a type still offers the file). */
export const UPLOAD_ACCEPT = CONTENT_TYPES.flatMap(([type, , extensions]) => [type, extensions]).join(',');

export const STATUSES = ['pending', 'processing', 'ready', 'failed'];

/** Labels kept short: the three selects share one row of a narrow side panel. */
export const SORTS = {
  newest: { label: 'Newest', orderBy: 'createdAtUtc', orderDirection: 'desc' },
  oldest: { label: 'Oldest', orderBy: 'createdAtUtc', orderDirection: 'asc' },
  largest: { label: 'Largest', orderBy: 'size', orderDirection: 'desc' },
  smallest: { label: 'Smallest', orderBy: 'size', orderDirection: 'asc' }
} as const;

export type SortKey = keyof typeof SORTS;

export interface ListState {
  page: number;
  pageSize: number;
  /** The committed search text (what was there when Enter was pressed). */
  search: string;
  byMeaning: boolean;
  /** '' means any. */
  contentType: string;
  /** '' means any. */
  status: string;
  sort: SortKey;
}

export function initialListState(): ListState {
  return {
    page: 1,
    pageSize: PAGE_SIZE,
    search: '',
    byMeaning: false,
    contentType: '',
    status: '',
    sort: 'newest'
  };
}

/** The query string (without `?`) of `GET api/v1/assets` for this state. */
export function listQuery(state: ListState): string {
  const params = new URLSearchParams();
  params.set('page', String(state.page));
  params.set('pageSize', String(state.pageSize));
  const search = state.search.trim();
  const meaning = search !== '' && state.byMeaning;
  if (search !== '') {
    params.set(meaning ? 'text' : 'q', search);
  }
  if (state.contentType) {
    params.set('contentType', state.contentType);
  }
  if (state.status) {
    params.set('status', state.status);
  }
  // A search by meaning is ranked by similarity; the server ignores the sort there.
  if (!meaning) {
    const sort = SORTS[state.sort];
    params.set('orderBy', sort.orderBy);
    params.set('orderDirection', sort.orderDirection);
  }
  return params.toString();
}

export function pageCount(total: number, pageSize: number): number {
  return Math.max(1, Math.ceil(total / pageSize));
}

export function pageLabel(page: number, pageSize: number, total: number): string {
  return `Page ${page} of ${pageCount(total, pageSize)} · ${countLabel(total, 'asset')}`;
}

export function countLabel(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
