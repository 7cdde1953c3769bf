import { describe, expect, it } from 'vitest';

import {
  appendLine,
  base64ToBytes,
  blankToNull,
  captionOf,
  codeSnippet,
  dimensions,
  dragPayload,
  escapeMarkdownText,
  escapeMarkdownUrl,
  guessContentType,
  humanBytes,
  imageUrl,
  markdownSnippet,
  noModelTooltip,
  parseDragPayload,
  shareUrl,
  splitName,
  tagsOf,
  uploadOutcome,
  uploadSummary,
  type UploadOutcome
} from './format';
import type { Asset } from './types';

const CONTENT = 'http://localhost:8888/user/a/api/v1/assets/0192-id/content';

function asset(overrides: Partial<Asset> = {}): Asset {
  return {
    id: '0192-id',
    status: 'ready',
    originalFileName: 'cat.png',
    contentType: 'image/png',
    size: 638,
    width: 300,
    height: 200,
    publicUrl: null,
    isPublic: false,
    description: null,
    altText: null,
    owner: 'me',
    createdAtUtc: '2026-04-17T08:15:30.123456+00:00',
    updatedAtUtc: '2026-04-17T08:15:31.000000+00:00',
    ...overrides
  };
}

describe('humanBytes', () => {
  it.each([
    [0, '0 B'],
    [1, '1 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [1024 * 1024 - 1, '1.0 MiB'], // would round to 1024.0 KiB
    [1024 * 1024, '1.0 MiB'],
    [10 * 1024 * 1024, '10.0 MiB'],
    [1024 ** 3, '1.0 GiB'],
    [1024 ** 4, '1.0 TiB'],
    [1024 ** 5, '1024.0 TiB']
  ])('%d bytes is %s', (size, text) => {
    expect(humanBytes(size)).toBe(text);
  });
});

describe('Markdown snippets', () => {
  it('uses the alt text, else the file name', () => {
    expect(markdownSnippet('cat.png', 'A cat', 'http://x/c.png')).toBe('![A cat](http://x/c.png)');
    expect(markdownSnippet('cat.png', null, 'http://x/c.png')).toBe('![cat.png](http://x/c.png)');
    expect(markdownSnippet('cat.png', '   ', 'http://x/c.png')).toBe('![cat.png](http://x/c.png)');
  });

  it('escapes brackets and backslashes in the alt text and folds line breaks', () => {
    expect(escapeMarkdownText('a [b] c\\d')).toBe('a \\[b\\] c\\\\d');
    expect(markdownSnippet('x.png', 'see ](evil) [x]\nnext', 'http://h/a.png')).toBe(
      '![see \\](evil) \\[x\\] next](http://h/a.png)'
    );
  });

  it('percent-encodes what would end the link destination', () => {
    expect(escapeMarkdownUrl('http://h/a (1).png')).toBe('http://h/a%20%281%29.png');
    expect(escapeMarkdownUrl('http://h/<a>.png')).toBe('http://h/%3Ca%3E.png');
    expect(escapeMarkdownUrl('http://h/a%20b.png')).toBe('http://h/a%20b.png');
    expect(markdownSnippet('a.png', null, 'http://h/x).png')).toBe('![a.png](http://h/x%29.png)');
  });

  it('writes Python that reads the asset', () => {
    expect(codeSnippet('0192-id')).toBe('client.get("0192-id")');
    expect(codeSnippet('a"b\\c')).toBe('client.get("a\\"b\\\\c")');
  });

  it('appends on a line of its own', () => {
    expect(appendLine('', 'x')).toBe('x');
    expect(appendLine('# Title', 'x')).toBe('# Title\nx');
    expect(appendLine('# Title\n', 'x')).toBe('# Title\nx');
  });
});

describe('URL choice', () => {
  const publicAsset = asset({
    isPublic: true,
    publicUrl: 'http://h/content/2026/a.png',
    derivatives: [
      {
        kind: 'thumbnail_256',
        contentType: 'image/webp',
        size: 194,
        width: 256,
        height: 171,
        publicUrl: 'http://h/content/2026/t.webp'
      }
    ]
  });

  it('shares the public URL when public, else the authenticated content URL', () => {
    expect(shareUrl(publicAsset, CONTENT)).toBe('http://h/content/2026/a.png');
    expect(shareUrl(asset(), CONTENT)).toBe(CONTENT);
    // A stale publicUrl on a private asset is never shared.
    expect(shareUrl(asset({ publicUrl: 'http://h/old.png' }), CONTENT)).toBe(CONTENT);
  });

  it('shows the thumbnail of a public asset in the grid, the original in the preview', () => {
    expect(imageUrl(publicAsset, CONTENT, true)).toBe('http://h/content/2026/t.webp');
    expect(imageUrl(publicAsset, CONTENT, false)).toBe('http://h/content/2026/a.png');
    // List items carry no derivatives: the public URL then.
    expect(imageUrl({ ...publicAsset, derivatives: undefined }, CONTENT, true)).toBe('http://h/content/2026/a.png');
  });

  it('shows a private asset through the content URL, versioned by its update time', () => {
    expect(imageUrl(asset(), CONTENT, true)).toBe(
      `${CONTENT}?v=${encodeURIComponent('2026-04-17T08:15:31.000000+00:00')}`
    );
  });

  it('builds the drag payload and reads it back', () => {
    const payload = dragPayload(asset({ altText: 'A cat' }), CONTENT);
    expect(payload).toEqual({ id: '0192-id', name: 'cat.png', altText: 'A cat', url: CONTENT });
    expect(parseDragPayload(JSON.stringify(payload))).toEqual(payload);
    expect(parseDragPayload('not json')).toBeNull();
    expect(parseDragPayload('{"id": 1}')).toBeNull();
    expect(parseDragPayload('{"id": "i", "url": "u"}')).toEqual({ id: 'i', name: 'i', altText: null, url: 'u' });
  });
});

describe('enrichment results', () => {
  it('reads tags from a list or from {tags: [...]}', () => {
    const list = JSON.stringify([{ label: 'cat', score: 0.9 }, { label: 'sofa' }, { nope: 1 }]);
    expect(tagsOf([{ kind: 'tags', payloadJson: list, modelId: null }])).toEqual([
      { label: 'cat', score: 0.9 },
      { label: 'sofa', score: null }
    ]);
    const wrapped = JSON.stringify({ tags: [{ label: 'dog', score: 0.5 }], model: 'ViT-B-32/x' });
    expect(tagsOf([{ kind: 'tags', payloadJson: wrapped, modelId: 'm' }])).toEqual([{ label: 'dog', score: 0.5 }]);
    expect(tagsOf([{ kind: 'tags', payloadJson: '{broken', modelId: null }])).toEqual([]);
    expect(tagsOf(undefined)).toEqual([]);
  });

  it('reads the caption from a string or from {caption}', () => {
    const results = (payloadJson: string) => [{ kind: 'caption', payloadJson, modelId: null }];
    expect(captionOf(results('"a cat"'))).toBe('a cat');
    expect(captionOf(results('{"caption": "a dog", "model": "coca"}'))).toBe('a dog');
    expect(captionOf(results('{"caption": ""}'))).toBeNull();
    expect(captionOf([])).toBeNull();
  });
});

describe('small helpers', () => {
  it('guesses content types from the extension', () => {
    expect(guessContentType('a.PNG')).toBe('image/png');
    expect(guessContentType('dir/b.jpg')).toBe('image/jpeg');
    expect(guessContentType('c.jpeg')).toBe('image/jpeg');
    expect(guessContentType('d.tif')).toBe('image/tiff');
    expect(guessContentType('e.webp')).toBe('image/webp');
    expect(guessContentType('notes.txt')).toBe('application/octet-stream');
    expect(guessContentType('README')).toBe('application/octet-stream');
  });

  it('decodes base64 (the contents API format) to bytes', () => {
    expect(Array.from(base64ToBytes('iVBORw0K\nGgo='))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });

  it('clears blank text fields', () => {
    expect(blankToNull('')).toBeNull();
    expect(blankToNull('  \n')).toBeNull();
    expect(blankToNull(' kept as typed ')).toBe(' kept as typed ');
  });

  it('prints dimensions', () => {
    expect(dimensions(300, 200)).toBe('300 × 200');
    expect(dimensions(null, 200)).toBe('—');
  });
});

describe('splitName (middle ellipsis)', () => {
  it('keeps the extension and the last five characters of the stem for the tail', () => {
    expect(splitName('holiday-photo-2023-0012.jpg')).toEqual(['holiday-photo-2023', '-0012.jpg']);
    expect(splitName('scan.tiff')).toEqual(['', 'scan.tiff']);
  });

  it('tells names of one series apart by their tails', () => {
    const [headA, tailA] = splitName('holiday-photo-2023-summer-0011.jpg');
    const [headB, tailB] = splitName('holiday-photo-2023-summer-0012.jpg');
    expect(headA).toBe(headB);
    expect(tailA).not.toBe(tailB);
  });

  it('joins back to the name, whatever its form', () => {
    for (const name of ['a.png', 'no-extension-at-all', '.hidden', 'two.dots.tar.gz', 'my photo 0001.webp', '']) {
      expect(splitName(name).join('')).toBe(name);
    }
  });

  it('takes the last characters when there is no extension (or only a leading dot)', () => {
    expect(splitName('README-final')).toEqual(['README-', 'final']);
    expect(splitName('.bashrc')).toEqual(['.b', 'ashrc']);
    expect(splitName('name.with space')).toEqual(['name.with ', 'space']); // not an extension: it holds a space
  });

  it('never splits inside a code point', () => {
    const [head, tail] = splitName('📷📷📷📷📷📷📷.png');
    expect(head).toBe('📷📷');
    expect(tail).toBe('📷📷📷📷📷.png');
  });

  it('takes the tail length asked for', () => {
    expect(splitName('abcdefgh.gif', 2)).toEqual(['abcdef', 'gh.gif']);
    expect(splitName('abc.gif', 10)).toEqual(['', 'abc.gif']);
  });
});

describe('uploadSummary', () => {
  const outcomes = (spec: Partial<Record<UploadOutcome, number>>): UploadOutcome[] =>
    (Object.entries(spec) as [UploadOutcome, number][]).flatMap(([outcome, n]) => Array(n).fill(outcome));

  it('is one line of counts once every upload has finished', () => {
    expect(uploadSummary(outcomes({ done: 3, refused: 1 }))).toBe('3 uploaded, 1 refused');
    expect(uploadSummary(outcomes({ done: 1 }))).toBe('1 uploaded');
    expect(uploadSummary(outcomes({ refused: 2, failed: 1 }))).toBe('2 refused, 1 failed');
  });

  it('says how many are still going while some run', () => {
    expect(uploadSummary(outcomes({ waiting: 1 }))).toBe('Uploading 1 file');
    expect(uploadSummary(outcomes({ waiting: 2, done: 1, refused: 1 }))).toBe(
      'Uploading 2 files · 1 uploaded, 1 refused'
    );
  });

  it('is empty without uploads', () => {
    expect(uploadSummary([])).toBe('');
  });

  it('counts a 4xx answer as refused, anything else as failed', () => {
    expect(uploadOutcome(400)).toBe('refused');
    expect(uploadOutcome(413)).toBe('refused');
    expect(uploadOutcome(0)).toBe('failed'); // the connection was lost
    expect(uploadOutcome(500)).toBe('failed');
  });
});

describe('noModelTooltip', () => {
  it('names the setting first, then what the server said', () => {
    const text = noModelTooltip("No weights are configured for 'ViT-B-32': set c.AssetsApp.clip_pretrained ...");
    expect(text.startsWith('Search by meaning needs a CLIP model: set c.AssetsApp.clip_pretrained')).toBe(true);
    expect(text).toContain("The server says: No weights are configured for 'ViT-B-32'");
    expect(noModelTooltip('  ')).not.toContain('The server says');
  });
});
