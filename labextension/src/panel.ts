// The Assets side panel: usage, search and filters, a paged thumbnail grid, uploads, and the detail view.

import {
  caretLeftIcon,
  caretRightIcon,
  closeIcon,
  fileUploadIcon,
  refreshIcon,
  searchIcon
} from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import type { AssetsApi } from './api';
import { AssetDetail } from './detail';
import { dragCarries, h, iconButton, select, styledSelect } from './dom';
import {
  ASSET_MIME,
  POLL_MS,
  dragPayload,
  guessContentType,
  humanBytes,
  imageUrl,
  inProgress,
  markdownSnippet,
  noModelTooltip,
  splitName,
  uploadOutcome,
  uploadSummary,
  type UploadOutcome
} from './format';
import { ApiError, errorText } from './http';
import { assetsIcon } from './icon';
import {
  CONTENT_TYPES,
  SORTS,
  STATUSES,
  UPLOAD_ACCEPT,
  countLabel,
  initialListState,
  pageCount,
  pageLabel,
  type SortKey
} from './query';
import type { Asset, Skill } from './types';

/** Upload requests running at once; the rest wait their turn. */
const PARALLEL_UPLOADS = 3;
/** Files per upload request (the server takes up to 100): small enough that a progress bar moves. */
const BATCH_FILES = 20;

/** One file to upload: its name and a way to get its bytes (read lazily, e.g. from the Jupyter contents API). */
export interface UploadSource {
  name: string;
  blob: () => Promise<Blob>;
}

/** A file dropped from the desktop; the browser leaves `type` empty when it does not know the extension. */
export function fileSource(file: File): UploadSource {
  return {
    name: file.name,
    blob: async () => (file.type ? file : new Blob([file], { type: guessContentType(file.name) }))
  };
}

export class AssetsPanel extends Widget {
  private readonly api: AssetsApi;
  private readonly state = initialListState();
  private readonly items = new Map<string, Asset>();
  /** Bumped by every list load, so an answer that arrives after a newer request is dropped. */
  private loadSeq = 0;
  private pollTimer: number | undefined;
  private detail: AssetDetail | null = null;
  private skillList: Promise<Skill[]> | null = null;
  private readonly uploadQueue: { source: UploadSource; row: UploadRow }[] = [];
  private activeUploads = 0;
  /** The question whether the server can search by meaning: asked once, again on Refresh. */
  private meaningProbe: Promise<void> | null = null;

  private readonly usageEl = h('div', { class: 'jp-AssetsPanel-usage', 'data-testid': 'assets-usage' });
  private readonly messageEl = h('div', {
    class: 'jp-AssetsPanel-message',
    'data-testid': 'assets-message',
    role: 'status',
    'aria-live': 'polite'
  });
  private readonly searchInput = h('input', {
    type: 'search',
    class: 'jp-mod-styled jp-AssetsPanel-search',
    placeholder: SEARCH_PLACEHOLDER.byName,
    title: SEARCH_TITLE.byName,
    'aria-label': 'Search assets',
    'data-testid': 'assets-search'
  });
  private readonly byMeaningInput = h('input', {
    type: 'checkbox',
    class: 'jp-mod-styled',
    'data-testid': 'assets-by-meaning',
    disabled: true // until the server says whether it has a model
  });
  private readonly byMeaningLabel = h(
    'label',
    { class: 'jp-AssetsPanel-check', 'data-testid': 'assets-by-meaning-label', title: MEANING_TITLE.checking },
    this.byMeaningInput,
    'by meaning'
  );
  private readonly byMeaningNote = h(
    'span',
    { class: 'jp-AssetsPanel-note', 'data-testid': 'assets-by-meaning-note', hidden: true },
    'needs a CLIP model'
  );
  private readonly contentTypeSelect = select('assets-content-type', 'Content type', [
    ['', 'Type'],
    ...CONTENT_TYPES.map(([type, label]): [string, string] => [type, label])
  ]);
  private readonly statusSelect = select('assets-status', 'Status', [
    ['', 'Status'],
    ...STATUSES.map((s): [string, string] => [s, s])
  ]);
  private readonly sortSelect = select(
    'assets-sort',
    'Sort order',
    Object.entries(SORTS).map(([key, sort]): [string, string] => [key, sort.label])
  );
  /** The Upload button's file picker; not shown, the button opens it. */
  private readonly fileInput = h('input', {
    type: 'file',
    multiple: true,
    accept: UPLOAD_ACCEPT,
    hidden: true,
    tabindex: -1,
    'aria-hidden': 'true',
    'data-testid': 'assets-upload-input'
  });
  private readonly gridEl = h('div', { class: 'jp-AssetsGrid', 'data-testid': 'assets-grid' });
  private readonly prevButton = iconButton(caretLeftIcon, 'Previous page', 'assets-prev');
  private readonly nextButton = iconButton(caretRightIcon, 'Next page', 'assets-next');
  private readonly pageLabelEl = h('span', {
    class: 'jp-AssetsPanel-pageLabel',
    'data-testid': 'assets-page-label',
    'aria-live': 'polite'
  });
  private readonly uploadList = h('ul', {
    class: 'jp-AssetsUploads-list',
    id: `jp-AssetsUploads-list-${++panelCount}`,
    'data-testid': 'assets-uploads'
  });
  private readonly uploadsEl = h('section', {
    class: 'jp-AssetsUploads',
    'aria-label': 'Uploads',
    'data-testid': 'assets-uploads-section'
  });
  private readonly uploadsToggle = iconButton(caretRightIcon, 'Show the uploads', 'assets-uploads-toggle');
  private readonly uploadsSummary = h('span', {
    class: 'jp-AssetsUploads-summary',
    'data-testid': 'assets-uploads-summary',
    role: 'status'
  });
  private readonly browseEl = h('div', { class: 'jp-AssetsPanel-browse' });
  private readonly detailHost = h('div', { class: 'jp-AssetsPanel-detailHost' });

  constructor(api: AssetsApi) {
    super();
    this.api = api;
    this.id = 'jupyter-assets-panel';
    this.addClass('jp-AssetsPanel');
    this.node.setAttribute('data-testid', 'assets-panel');
    this.title.icon = assetsIcon;
    this.title.caption = 'Asset library';

    const refreshButton = iconButton(refreshIcon, 'Refresh', 'assets-refresh');
    const searchButton = iconButton(searchIcon, 'Search', 'assets-search-button');
    const uploadButton = iconButton(fileUploadIcon, 'Upload images…', 'assets-upload');
    const clearUploads = iconButton(closeIcon, 'Dismiss finished uploads', 'assets-uploads-clear');
    // The whole summary line is the toggle (a bigger target than the caret alone).
    this.uploadsToggle.classList.add('jp-AssetsUploads-toggle');
    this.uploadsToggle.setAttribute('aria-controls', this.uploadList.id);
    this.uploadsToggle.append(this.uploadsSummary);
    this.uploadsEl.append(
      h('div', { class: 'jp-AssetsUploads-header' }, this.uploadsToggle, clearUploads),
      this.uploadList
    );
    this.uploadsEl.hidden = true;

    this.browseEl.append(
      h(
        'div',
        { class: 'jp-AssetsPanel-toolbar' },
        h('div', { class: 'jp-AssetsPanel-row' }, this.searchInput, searchButton, uploadButton, refreshButton),
        h('div', { class: 'jp-AssetsPanel-row' }, this.byMeaningLabel, this.byMeaningNote),
        h(
          'div',
          { class: 'jp-AssetsPanel-filters', 'data-testid': 'assets-filters' },
          styledSelect(this.contentTypeSelect),
          styledSelect(this.statusSelect),
          styledSelect(this.sortSelect)
        )
      ),
      this.gridEl,
      h('div', { class: 'jp-AssetsPanel-pager' }, this.prevButton, this.pageLabelEl, this.nextButton),
      h('div', { class: 'jp-AssetsPanel-hint' }, 'Drop image files here, or use the upload button.'),
      this.fileInput
    );
    this.node.append(
      h('header', { class: 'jp-AssetsPanel-header' }, h('h2', {}, 'Assets'), this.usageEl),
      this.messageEl,
      this.uploadsEl,
      this.browseEl,
      this.detailHost
    );
    this.pageLabelEl.textContent = pageLabel(1, this.state.pageSize, 0);

    this.searchInput.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.applyControls();
      }
    });
    searchButton.addEventListener('click', () => this.applyControls());
    for (const control of [this.byMeaningInput, this.contentTypeSelect, this.statusSelect, this.sortSelect]) {
      control.addEventListener('change', () => this.applyControls());
    }
    this.byMeaningInput.addEventListener('change', () => this.showSearchMode());
    refreshButton.addEventListener('click', () => {
      this.meaningProbe = null; // a model may have been configured since (and the server restarted)
      void this.refresh(true);
    });
    uploadButton.addEventListener('click', () => this.fileInput.click());
    this.fileInput.addEventListener('change', () => {
      const files = Array.from(this.fileInput.files ?? []);
      this.fileInput.value = ''; // picking the same files again is a change too
      this.upload(files.map(fileSource));
    });
    this.uploadsToggle.addEventListener('click', () => this.setUploadsCollapsed(!this.uploadsCollapsed));
    this.prevButton.addEventListener('click', () => this.goToPage(this.state.page - 1));
    this.nextButton.addEventListener('click', () => this.goToPage(this.state.page + 1));
    clearUploads.addEventListener('click', () => this.clearFinishedUploads());

    this.gridEl.addEventListener('click', event => {
      const card = cardOf(event.target);
      if (card) {
        this.openDetail(card.dataset.assetId!);
      }
    });
    this.gridEl.addEventListener('keydown', event => {
      const card = cardOf(event.target);
      if (card && event.target === card && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault(); // Space would scroll the panel
        this.openDetail(card.dataset.assetId!);
      }
    });
    this.gridEl.addEventListener('dragstart', event => this.onCardDragStart(event));

    // Files from the desktop; a card dragged inside the panel carries no Files and is ignored here.
    this.node.addEventListener('dragenter', event => this.onFileDragOver(event));
    this.node.addEventListener('dragover', event => this.onFileDragOver(event));
    this.node.addEventListener('dragleave', event => {
      if (!this.node.contains(event.relatedTarget as Node | null)) {
        this.removeClass('jp-mod-dropTarget');
      }
    });
    this.node.addEventListener('drop', event => {
      if (!hasFiles(event)) {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
      this.removeClass('jp-mod-dropTarget');
      this.upload(Array.from(event.dataTransfer!.files).map(fileSource));
    });
  }

  dispose(): void {
    this.stopPolling();
    this.detail?.dispose();
    super.dispose();
  }

  /** Reload the current page and the usage summary. `userAsked` clears the message line first. */
  async refresh(userAsked = false): Promise<void> {
    await Promise.all([this.reload(userAsked), this.loadUsage(), this.checkMeaning()]);
  }

  /** Queue files for upload; each gets a progress row. The grid and usage refresh when the queue is empty. */
  upload(sources: UploadSource[]): void {
    for (const source of sources) {
      const row = new UploadRow(source.name);
      this.uploadList.append(row.node);
      this.uploadQueue.push({ source, row });
    }
    if (sources.length > 0) {
      this.setUploadsCollapsed(false); // the progress shows while they run
    }
    this.showUploads();
    this.pumpUploads();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      void this.refresh(true);
    }
  }

  /** Revealing the panel reloads it: the library may have changed meanwhile (e.g. from a notebook). */
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this.detail) {
      void this.refresh(true);
    }
  }

  private setMessage(text: string, kind: 'info' | 'error' = 'info'): void {
    this.messageEl.textContent = text;
    this.messageEl.dataset.kind = kind;
  }

  private showError(error: unknown): void {
    this.setMessage(errorText(error), 'error');
  }

  /** Ask the server, once, whether search by meaning works, and enable the checkbox or say why it is off. */
  private checkMeaning(): Promise<void> {
    if (!this.meaningProbe) {
      this.meaningProbe = this.api.searchByMeaning().then(({ available, reason }) => {
        if (available === false) {
          this.meaningUnavailable(reason);
        } else {
          // Available, or the answer did not say (another error, shown by the list's own request): let the user try.
          this.byMeaningInput.disabled = false;
          this.byMeaningLabel.title = MEANING_TITLE.available;
          this.byMeaningInput.title = MEANING_TITLE.available;
          this.byMeaningLabel.removeAttribute('aria-disabled');
          this.byMeaningNote.hidden = true;
        }
      });
    }
    return this.meaningProbe;
  }

  private meaningUnavailable(reason: string): void {
    const tooltip = noModelTooltip(reason);
    this.byMeaningInput.checked = false;
    this.byMeaningInput.disabled = true;
    this.byMeaningInput.title = tooltip;
    this.byMeaningLabel.title = tooltip;
    this.byMeaningLabel.setAttribute('aria-disabled', 'true');
    this.byMeaningNote.title = tooltip;
    this.byMeaningNote.hidden = false;
    if (this.state.byMeaning) {
      this.state.byMeaning = false;
      this.showSearchMode();
    }
  }

  private showSearchMode(): void {
    const mode = this.byMeaningInput.checked ? 'byMeaning' : 'byName';
    this.searchInput.placeholder = SEARCH_PLACEHOLDER[mode];
    this.searchInput.title = SEARCH_TITLE[mode];
  }

  private applyControls(): void {
    this.state.search = this.searchInput.value.trim();
    this.state.byMeaning = this.byMeaningInput.checked;
    this.state.contentType = this.contentTypeSelect.value;
    this.state.status = this.statusSelect.value;
    this.state.sort = this.sortSelect.value as SortKey;
    this.state.page = 1;
    void this.reload(true);
  }

  private goToPage(page: number): void {
    this.state.page = page;
    void this.reload(true);
  }

  private async reload(userAsked = false): Promise<void> {
    const seq = ++this.loadSeq;
    this.stopPolling();
    if (userAsked) {
      this.setMessage('');
    }
    this.gridEl.setAttribute('aria-busy', 'true');
    try {
      const page = await this.api.list(this.state);
      if (seq !== this.loadSeq) {
        return;
      }
      const last = pageCount(page.total, this.state.pageSize);
      if (this.state.page > last) {
        // The page emptied (deletes elsewhere): show the last one instead.
        this.state.page = last;
        return this.reload(userAsked);
      }
      this.renderGrid(page.items, page.total);
      if (userAsked && page.total === 0) {
        const filtered = this.state.search || this.state.contentType || this.state.status;
        this.setMessage(
          filtered ? 'No assets match.' : 'No assets yet: drop images here, or use the upload button.'
        );
      }
      this.schedulePoll();
    } catch (error) {
      if (seq === this.loadSeq) {
        this.renderGrid([], 0);
        this.showError(error);
        if (error instanceof ApiError && error.code === 'model_unavailable') {
          this.meaningUnavailable(error.message);
        }
      }
    } finally {
      if (seq === this.loadSeq) {
        this.gridEl.removeAttribute('aria-busy');
      }
    }
  }

  private async loadUsage(): Promise<void> {
    try {
      const usage = await this.api.usageStats();
      this.usageEl.textContent = `${countLabel(usage.totalAssets, 'asset')} · ${humanBytes(usage.totalBytes)}`;
    } catch (error) {
      this.usageEl.textContent = '';
      this.showError(error);
    }
  }

  private renderGrid(items: Asset[], total: number): void {
    this.items.clear();
    for (const asset of items) {
      this.items.set(asset.id, asset);
    }
    this.gridEl.replaceChildren(...items.map(asset => this.card(asset)));
    const last = pageCount(total, this.state.pageSize);
    this.pageLabelEl.textContent = pageLabel(this.state.page, this.state.pageSize, total);
    this.prevButton.disabled = this.state.page <= 1;
    this.nextButton.disabled = this.state.page >= last;
  }

  private card(asset: Asset): HTMLElement {
    const name = asset.originalFileName;
    const image = h('img', {
      class: 'jp-AssetsCard-image',
      src: imageUrl(asset, this.api.contentUrl(asset.id), true),
      alt: asset.altText || name,
      loading: 'lazy',
      decoding: 'async',
      width: 128,
      height: 128,
      draggable: 'false' // the card is what gets dragged
    });
    image.addEventListener('error', () => image.classList.add('jp-mod-broken'), { once: true });
    return h(
      'div',
      {
        class: 'jp-AssetsCard',
        'data-testid': 'asset-card',
        'data-asset-id': asset.id,
        'data-status': asset.status,
        draggable: 'true',
        tabindex: 0,
        role: 'button',
        'aria-label': asset.status === 'ready' ? name : `${name} (${asset.status})`,
        title: name
      },
      image,
      nameElement(name, 'jp-AssetsCard-name'),
      asset.status !== 'ready' &&
        h('span', { class: 'jp-AssetsCard-badge', 'data-status': asset.status }, asset.status)
    );
  }

  /** Swap one card for a fresh rendering (status changed, a skill rewrote it), keeping focus on it. */
  private updateCard(asset: Asset): void {
    if (!this.items.has(asset.id)) {
      return;
    }
    this.items.set(asset.id, asset);
    const old = this.cardElement(asset.id);
    if (old) {
      const hadFocus = old === document.activeElement;
      const fresh = this.card(asset);
      old.replaceWith(fresh);
      if (hadFocus) {
        fresh.focus();
      }
    }
  }

  private schedulePoll(): void {
    if (this.pollTimer === undefined && [...this.items.values()].some(inProgress)) {
      this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
    }
  }

  private stopPolling(): void {
    window.clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** Re-read the page in one request and redraw the cards whose status or content changed. */
  private async poll(): Promise<void> {
    this.pollTimer = undefined;
    const seq = this.loadSeq;
    try {
      const page = await this.api.list(this.state);
      if (seq !== this.loadSeq || this.isDisposed) {
        return;
      }
      const fresh = new Map(page.items.map(asset => [asset.id, asset]));
      for (const asset of [...this.items.values()].filter(inProgress)) {
        // Pushed off this page by newer uploads: ask for it alone; gone (deleted): stop watching it.
        const latest = fresh.get(asset.id) ?? (await this.api.get(asset.id).catch(() => null));
        if (seq !== this.loadSeq) {
          return;
        }
        if (!latest) {
          this.items.delete(asset.id);
          this.cardElement(asset.id)?.remove();
        } else if (latest.status !== asset.status || latest.updatedAtUtc !== asset.updatedAtUtc) {
          this.updateCard(latest);
        }
      }
    } catch (error) {
      this.showError(error);
      return; // no endless retries against a failing server; Refresh starts over
    }
    this.schedulePoll();
  }

  private openDetail(id: string): void {
    this.detail?.dispose();
    this.detail = new AssetDetail(this.api, id, this.items.get(id) ?? null, {
      back: () => this.closeDetail(),
      deleted: asset => {
        // Drop the card before the grid shows again: its lazy image would still ask for the deleted file.
        this.cardElement(asset.id)?.remove();
        this.items.delete(asset.id);
        this.closeDetail();
        this.setMessage(`Deleted ${asset.originalFileName}.`);
        void this.refresh();
      },
      changed: asset => {
        const sizeChanged = this.items.get(asset.id)?.size !== asset.size;
        this.updateCard(asset);
        if (sizeChanged) {
          void this.loadUsage(); // a skill rewrote the file (watermark, format-convert, exif-strip)
        }
      },
      message: text => this.setMessage(text),
      error: error => this.showError(error),
      skills: () => this.skills()
    });
    this.browseEl.hidden = true;
    this.detailHost.replaceChildren(this.detail.node);
    this.detail.focus();
  }

  private closeDetail(): void {
    if (!this.detail) {
      return;
    }
    const id = this.detail.assetId;
    this.detail.dispose();
    this.detail = null;
    this.detailHost.replaceChildren();
    this.browseEl.hidden = false;
    this.cardElement(id)?.focus();
  }

  private cardElement(id: string): HTMLElement | null {
    return this.gridEl.querySelector<HTMLElement>(`[data-asset-id="${CSS.escape(id)}"]`);
  }

  /** The skill list, asked for once (again after a failure). */
  private skills(): Promise<Skill[]> {
    if (!this.skillList) {
      this.skillList = this.api.skills().catch(error => {
        this.skillList = null;
        throw error;
      });
    }
    return this.skillList;
  }

  private onCardDragStart(event: DragEvent): void {
    const card = cardOf(event.target);
    const asset = card && this.items.get(card.dataset.assetId!);
    if (!asset || !event.dataTransfer) {
      return;
    }
    const payload = dragPayload(asset, this.api.contentUrl(asset.id));
    event.dataTransfer.effectAllowed = 'copy';
    event.dataTransfer.setData(ASSET_MIME, JSON.stringify(payload));
    event.dataTransfer.setData('text/plain', markdownSnippet(payload.name, payload.altText, payload.url));
  }

  private onFileDragOver(event: DragEvent): void {
    if (!hasFiles(event)) {
      return;
    }
    event.preventDefault(); // allows the drop
    event.stopPropagation();
    event.dataTransfer!.dropEffect = 'copy';
    this.addClass('jp-mod-dropTarget');
  }

  private pumpUploads(): void {
    while (this.activeUploads < PARALLEL_UPLOADS && this.uploadQueue.length > 0) {
      // Spread over the requests that may run, up to BATCH_FILES each.
      const size = Math.min(BATCH_FILES, Math.ceil(this.uploadQueue.length / PARALLEL_UPLOADS));
      const jobs = this.uploadQueue.splice(0, size);
      this.activeUploads += 1;
      void this.runBatch(jobs).finally(() => {
        this.activeUploads -= 1;
        this.showUploads();
        if (this.activeUploads === 0 && this.uploadQueue.length === 0) {
          this.setUploadsCollapsed(true); // all finished: one summary line, the grid gets its room back
          void this.refresh();
        } else {
          this.pumpUploads();
        }
      });
    }
  }

  /** Upload some queued files in one request; each row shows its own outcome (one bad file refuses only itself). */
  private async runBatch(jobs: { source: UploadSource; row: UploadRow }[]): Promise<void> {
    const sent: { blob: Blob; name: string; row: UploadRow }[] = [];
    for (const { source, row } of jobs) {
      try {
        sent.push({ blob: await source.blob(), name: source.name, row });
      } catch (error) {
        row.fail(error); // a file the browser or the contents API could not read
      }
    }
    if (sent.length === 0) {
      return;
    }
    try {
      const outcomes = await this.api.uploadBatch(sent, fraction => sent.forEach(file => file.row.progress(fraction)));
      outcomes.forEach((outcome, index) =>
        outcome instanceof ApiError ? sent[index].row.fail(outcome) : sent[index].row.done(outcome)
      );
    } catch (error) {
      sent.forEach(file => file.row.fail(error));
    }
  }

  private clearFinishedUploads(): void {
    for (const row of Array.from(this.uploadList.querySelectorAll('[data-state="done"], [data-state="error"]'))) {
      row.remove();
    }
    this.showUploads();
  }

  private get uploadsCollapsed(): boolean {
    return this.uploadsToggle.getAttribute('aria-expanded') === 'false';
  }

  private setUploadsCollapsed(collapsed: boolean): void {
    this.uploadsToggle.setAttribute('aria-expanded', String(!collapsed));
    const label = collapsed ? 'Show the uploads' : 'Hide the uploads';
    this.uploadsToggle.setAttribute('aria-label', label);
    this.uploadsToggle.title = label;
    this.uploadList.hidden = collapsed;
  }

  /** The summary line from the rows' outcomes; the section shows while it has rows. */
  private showUploads(): void {
    const rows = Array.from(this.uploadList.children) as HTMLElement[];
    const outcomes = rows.map(row => (row.dataset.outcome ?? 'waiting') as UploadOutcome);
    this.uploadsSummary.textContent = uploadSummary(outcomes);
    this.uploadsEl.dataset.state = outcomes.includes('waiting') ? 'running' : 'finished';
    this.uploadsEl.dataset.failures = String(outcomes.filter(o => o === 'refused' || o === 'failed').length);
    this.uploadsEl.hidden = rows.length === 0;
  }
}

let panelCount = 0;

const SEARCH_PLACEHOLDER = { byName: 'Search assets', byMeaning: 'Describe it' };
const SEARCH_TITLE = {
  byName: 'Search file names, descriptions and alt text (Enter searches)',
  byMeaning: 'Describe what the image shows; the closest matches come first (Enter searches)'
};
const MEANING_TITLE = {
  checking: 'Checking whether the server has a CLIP model…',
  available: 'Rank by similarity of the images to the text (CLIP)'
};

/**
 * A file name with a middle ellipsis: the head shortens (with "…") when the name does not fit, the tail (the end
 * of the stem and the extension) always shows, so "holiday-phot…-0011.jpg" and "holiday-phot…-0012.jpg" differ.
 * The whole name is the tooltip.
 */
function nameElement(name: string, className: string): HTMLElement {
  const [head, tail] = splitName(name);
  return h(
    'span',
    { class: `jp-AssetsName ${className}`, title: name, 'data-testid': 'asset-name' },
    h('span', { class: 'jp-AssetsName-head' }, head),
    h('span', { class: 'jp-AssetsName-tail' }, tail)
  );
}

/** One `upload-item` row: name, progress bar, then done or the server's error. */
class UploadRow {
  readonly node: HTMLLIElement;
  private readonly bar = h('progress', { max: 1, value: 0 });
  private readonly statusEl = h('span', { class: 'jp-AssetsUpload-status' }, 'waiting');

  constructor(name: string) {
    this.node = h(
      'li',
      { class: 'jp-AssetsUpload', 'data-testid': 'upload-item', 'data-state': 'uploading' },
      nameElement(name, 'jp-AssetsUpload-name'),
      this.bar,
      this.statusEl
    );
  }

  progress(fraction: number): void {
    this.bar.value = fraction;
    this.statusEl.textContent = `${Math.round(fraction * 100)}%`;
  }

  done(asset: Asset): void {
    this.bar.value = 1;
    this.node.dataset.state = 'done';
    this.node.dataset.outcome = 'done';
    this.node.dataset.assetId = asset.id;
    this.statusEl.textContent = 'done';
  }

  fail(error: unknown): void {
    this.node.dataset.state = 'error';
    this.node.dataset.outcome = uploadOutcome(error instanceof ApiError ? error.status : 0);
    this.bar.remove();
    this.statusEl.textContent = errorText(error);
    this.statusEl.setAttribute('role', 'alert');
  }
}

function cardOf(target: EventTarget | null): HTMLElement | null {
  return target instanceof Element ? target.closest<HTMLElement>('[data-testid="asset-card"]') : null;
}

function hasFiles(event: DragEvent): boolean {
  return dragCarries(event, 'Files');
}
