import { describe, expect, it } from 'vitest';

import {
  CONTENT_TYPES,
  PAGE_SIZE,
  SORTS,
  UPLOAD_ACCEPT,
  countLabel,
  initialListState,
  listQuery,
  pageCount,
  pageLabel,
  type SortKey
} from './query';

function params(query: string): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(query));
}

describe('listQuery', () => {
  it('asks for the first page of 48, newest first, with no filters', () => {
    expect(params(listQuery(initialListState()))).toEqual({
      page: '1',
      pageSize: String(PAGE_SIZE),
      orderBy: 'createdAtUtc',
      orderDirection: 'desc'
    });
    expect(PAGE_SIZE).toBe(48);
  });

  it.each<[SortKey, string, string]>([
    ['newest', 'createdAtUtc', 'desc'],
    ['oldest', 'createdAtUtc', 'asc'],
    ['largest', 'size', 'desc'],
    ['smallest', 'size', 'asc']
  ])('maps the sort %s to orderBy=%s, orderDirection=%s', (sort, orderBy, orderDirection) => {
    const query = params(listQuery({ ...initialListState(), sort }));
    expect(query.orderBy).toBe(orderBy);
    expect(query.orderDirection).toBe(orderDirection);
  });

  it('offers the types uploads accept (the server default), and the file picker asks for them', () => {
    expect(CONTENT_TYPES.map(([type]) => type)).toEqual(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
    expect(UPLOAD_ACCEPT.split(',')).toEqual([
      'image/png', '.png', 'image/jpeg', '.jpg', '.jpeg', 'image/gif', '.gif', 'image/webp', '.webp'
    ]);
  });

  it('offers exactly the four sorts', () => {
    expect(Object.keys(SORTS)).toEqual(['newest', 'oldest', 'largest', 'smallest']);
  });

  it('searches with q= by default, trimmed and encoded', () => {
    const query = listQuery({ ...initialListState(), search: '  red & blue 50% ' });
    expect(params(query).q).toBe('red & blue 50%');
    expect(params(query).text).toBeUndefined();
    expect(query).toContain('q=red+%26+blue+50%25');
  });

  it('searches by meaning with text= and leaves the ranking to the server', () => {
    const query = params(listQuery({ ...initialListState(), search: 'a dog on a beach', byMeaning: true }));
    expect(query.text).toBe('a dog on a beach');
    expect(query.q).toBeUndefined();
    expect(query.orderBy).toBeUndefined();
    expect(query.orderDirection).toBeUndefined();
  });

  it('sends neither q nor text for an empty search, even by meaning', () => {
    const query = params(listQuery({ ...initialListState(), search: '   ', byMeaning: true }));
    expect(query.q).toBeUndefined();
    expect(query.text).toBeUndefined();
    expect(query.orderBy).toBe('createdAtUtc');
  });

  it('adds the content type and status filters only when chosen', () => {
    const query = params(listQuery({ ...initialListState(), contentType: 'image/png', status: 'failed', page: 3 }));
    expect(query).toMatchObject({ contentType: 'image/png', status: 'failed', page: '3' });
    expect(params(listQuery(initialListState())).contentType).toBeUndefined();
    expect(params(listQuery(initialListState())).status).toBeUndefined();
  });
});

describe('paging labels', () => {
  it('counts pages, at least one', () => {
    expect(pageCount(0, 48)).toBe(1);
    expect(pageCount(48, 48)).toBe(1);
    expect(pageCount(49, 48)).toBe(2);
    expect(pageCount(10000, 48)).toBe(209);
  });

  it('reads "Page 1 of 3 · 120 assets"', () => {
    expect(pageLabel(1, 48, 120)).toBe('Page 1 of 3 · 120 assets');
    expect(pageLabel(1, 48, 1)).toBe('Page 1 of 1 · 1 asset');
    expect(pageLabel(1, 48, 0)).toBe('Page 1 of 1 · 0 assets');
  });

  it('pluralises', () => {
    expect(countLabel(1, 'asset')).toBe('1 asset');
    expect(countLabel(2, 'asset')).toBe('2 assets');
  });
});
