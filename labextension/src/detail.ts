// The detail view of one asset: preview, facts, editable metadata, enrichment results and skill runs.

import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { caretLeftIcon, copyIcon, deleteIcon, runIcon, saveIcon } from '@jupyterlab/ui-components';

import type { AssetsApi } from './api';
import { h, iconButton, styledSelect } from './dom';
import {
  POLL_MS,
  blankToNull,
  captionOf,
  dimensions,
  formatDate,
  humanBytes,
  imageUrl,
  inProgress,
  shareUrl,
  tagsOf
} from './format';
import { errorText } from './http';
import { fieldsFromSchema, initialValue, parametersFromForm, type Field, type FormValues } from './schemaForm';
import type { Asset, Skill, SkillRun } from './types';

/** What the detail view asks of the panel that shows it. */
export interface DetailHost {
  back(): void;
  deleted(asset: Asset): void;
  /** The asset changed on the server (saved, made public, rewritten by a skill). */
  changed(asset: Asset): void;
  message(text: string): void;
  error(error: unknown): void;
  skills(): Promise<Skill[]>;
}

let formCount = 0;

export class AssetDetail {
  readonly node: HTMLElement;
  private asset: Asset | null = null;
  private disposed = false;
  private pollTimer: number | undefined;
  /** The user typed in description / alt text: reloads must not overwrite it. */
  private edited = false;
  private skillsByName = new Map<string, Skill>();
  private fields: Field[] = [];

  private readonly backButton = iconButton(caretLeftIcon, 'Back to the asset grid', 'asset-back', 'Back');
  private readonly titleEl = h('h3', { class: 'jp-AssetDetail-title' });
  private readonly preview = h('img', { class: 'jp-AssetDetail-preview', 'data-testid': 'asset-preview', alt: '' });
  private readonly facts = h('dl', { class: 'jp-AssetDetail-facts' });
  private readonly description = h('textarea', {
    class: 'jp-mod-styled',
    rows: 3,
    'data-testid': 'asset-description',
    id: `jp-AssetDetail-description-${++formCount}`
  });
  private readonly altText = h('input', {
    type: 'text',
    class: 'jp-mod-styled',
    'data-testid': 'asset-alt-text',
    id: `jp-AssetDetail-alt-${formCount}`
  });
  private readonly saveButton = iconButton(saveIcon, 'Save description and alt text', 'asset-save', 'Save', 'accept');
  private readonly publicInput = h('input', { type: 'checkbox', 'data-testid': 'asset-public' });
  private readonly copyButton = iconButton(copyIcon, 'Copy the content URL', 'asset-copy-url', 'Copy URL');
  private readonly deleteButton = iconButton(deleteIcon, 'Delete this asset', 'asset-delete', 'Delete', 'warn');
  private readonly tagsEl = h('div', { class: 'jp-AssetDetail-tags', 'data-testid': 'asset-tags' });
  private readonly captionEl = h('p', { class: 'jp-AssetDetail-caption', 'data-testid': 'asset-caption' });
  private readonly derivativesEl = h('ul', { class: 'jp-AssetDetail-list', 'data-testid': 'asset-derivatives' });
  private readonly latestRunEl = h('div', { class: 'jp-AssetDetail-run', 'data-testid': 'asset-latest-run' });
  private readonly skillSelect = h('select', {
    class: 'jp-mod-styled',
    'data-testid': 'asset-skill',
    'aria-label': 'Skill to run'
  });
  private readonly skillDescription = h('p', { class: 'jp-AssetDetail-hint' });
  private readonly skillForm = h('form', { class: 'jp-AssetDetail-form', 'data-testid': 'asset-skill-form' });
  private readonly runButton = iconButton(runIcon, 'Run the skill on this asset', 'asset-run-skill', 'Run', 'accept');
  private readonly skillResult = h('div', {
    class: 'jp-AssetDetail-result',
    'data-testid': 'asset-skill-result',
    'aria-live': 'polite'
  });

  constructor(
    private readonly api: AssetsApi,
    readonly assetId: string,
    listed: Asset | null,
    private readonly host: DetailHost
  ) {
    this.node = h(
      'div',
      { class: 'jp-AssetDetail', 'data-testid': 'asset-detail', 'data-asset-id': assetId },
      h('div', { class: 'jp-AssetDetail-header' }, this.backButton, this.titleEl),
      this.preview,
      this.facts,
      section(
        'Metadata',
        h('label', { for: this.description.id }, 'Description'),
        this.description,
        h('label', { for: this.altText.id }, 'Alt text'),
        this.altText,
        h('div', { class: 'jp-AssetDetail-actions' }, this.saveButton),
        h('label', { class: 'jp-AssetDetail-check' }, this.publicInput, 'Public (anyone with the URL can see it)')
      ),
      h('div', { class: 'jp-AssetDetail-actions' }, this.copyButton, this.deleteButton),
      section('Tags', this.tagsEl),
      section('Caption', this.captionEl),
      section('Derivatives', this.derivativesEl),
      section('Latest run', this.latestRunEl),
      section(
        'Run a skill',
        styledSelect(this.skillSelect, false),
        this.skillDescription,
        this.skillForm,
        h('div', { class: 'jp-AssetDetail-actions' }, this.runButton),
        this.skillResult
      )
    );
    this.skillSelect.append(h('option', { value: '' }, 'Choose a skill…'));
    this.runButton.disabled = true;

    this.backButton.addEventListener('click', () => host.back());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        host.back();
      }
    });
    for (const input of [this.description, this.altText]) {
      input.addEventListener('input', () => (this.edited = true));
    }
    this.saveButton.addEventListener('click', () => void this.save());
    this.publicInput.addEventListener('change', () => void this.setPublic(this.publicInput.checked));
    this.copyButton.addEventListener('click', () => this.copyUrl());
    this.deleteButton.addEventListener('click', () => void this.confirmDelete());
    this.skillSelect.addEventListener('change', () => this.showSkill(this.skillSelect.value));
    this.skillForm.addEventListener('submit', event => {
      event.preventDefault(); // Enter in a parameter runs the skill, never a page load
      void this.runSkill();
    });
    this.runButton.addEventListener('click', () => void this.runSkill());

    if (listed) {
      this.render(listed); // at once from the list; the full asset (results, derivatives) follows
    }
    void this.load();
    void this.loadSkills();
  }

  focus(): void {
    this.backButton.focus();
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.pollTimer);
  }

  private async load(): Promise<void> {
    window.clearTimeout(this.pollTimer);
    try {
      this.show(await this.api.get(this.assetId));
    } catch (error) {
      if (!this.disposed) {
        this.host.error(error);
      }
    }
  }

  /** Show a fresh copy of the asset and tell the panel. */
  private show(asset: Asset): void {
    if (!this.disposed) {
      window.clearTimeout(this.pollTimer);
      this.render(asset);
      this.host.changed(asset);
    }
  }

  private render(asset: Asset): void {
    this.asset = asset;
    const name = asset.originalFileName;
    this.titleEl.textContent = name;
    this.titleEl.title = name;
    const src = imageUrl(asset, this.api.contentUrl(asset.id), false);
    if (this.preview.getAttribute('src') !== src) {
      this.preview.src = src;
    }
    this.preview.alt = asset.altText || name;

    this.facts.replaceChildren(
      ...fact('Type', asset.contentType),
      ...fact('Size', humanBytes(asset.size)),
      ...fact('Dimensions', dimensions(asset.width, asset.height)),
      ...fact('Status', asset.status),
      ...fact('Created', formatDate(asset.createdAtUtc)),
      ...fact('Owner', asset.owner)
    );
    if (!this.edited) {
      this.description.value = asset.description ?? '';
      this.altText.value = asset.altText ?? '';
    }
    this.publicInput.checked = asset.isPublic;

    // A list item carries no results or derivatives: until the full asset arrives, say so rather than "none".
    const loading = asset.structuredResults === undefined;
    const none = (text: string) => (loading ? 'Loading…' : text);
    const tags = tagsOf(asset.structuredResults);
    this.tagsEl.replaceChildren(
      ...(tags.length
        ? tags.map(tag =>
            h(
              'span',
              { class: 'jp-AssetDetail-tag', title: tag.score === null ? tag.label : `score ${tag.score}` },
              tag.score === null ? tag.label : `${tag.label} ${tag.score.toFixed(2)}`
            )
          )
        : [h('span', { class: 'jp-AssetDetail-hint' }, none('No tags.'))])
    );
    const caption = captionOf(asset.structuredResults);
    this.captionEl.textContent = caption ?? none('No caption.');
    this.captionEl.classList.toggle('jp-AssetDetail-hint', caption === null);

    const derivatives = asset.derivatives ?? [];
    this.derivativesEl.replaceChildren(
      ...(derivatives.length
        ? derivatives.map(d =>
            h(
              'li',
              {},
              `${d.kind} · ${d.contentType} · ${dimensions(d.width, d.height)} · ${humanBytes(d.size)} `,
              d.publicUrl && h('a', { href: d.publicUrl, target: '_blank', rel: 'noopener' }, 'open')
            )
          )
        : [h('li', { class: 'jp-AssetDetail-hint' }, none('None.'))])
    );

    const run = asset.latestExecutionSummary;
    this.latestRunEl.replaceChildren(
      ...(run
        ? [
            h(
              'div',
              { 'data-succeeded': String(run.succeeded) },
              `${run.skillName} · ${run.succeeded ? 'succeeded' : 'failed'} · ${run.triggerSource} · ` +
                formatDate(run.startedAtUtc)
            ),
            stepList(run.steps.map(s => ({ name: s.stepName, succeeded: s.succeeded, errorMessage: s.errorMessage })))
          ]
        : [h('span', { class: 'jp-AssetDetail-hint' }, none('No runs yet.'))])
    );

    // Enrichment still running: look again, as the grid does.
    if (inProgress(asset)) {
      window.clearTimeout(this.pollTimer);
      this.pollTimer = window.setTimeout(() => void this.load(), POLL_MS);
    }
  }

  private async save(): Promise<void> {
    this.saveButton.disabled = true;
    try {
      const asset = await this.api.patch(this.assetId, {
        description: blankToNull(this.description.value),
        altText: blankToNull(this.altText.value)
      });
      this.edited = false;
      this.apply(asset);
      this.host.message('Saved.');
    } catch (error) {
      this.host.error(error);
    } finally {
      this.saveButton.disabled = false;
    }
  }

  private async setPublic(isPublic: boolean): Promise<void> {
    this.publicInput.disabled = true;
    try {
      this.apply(await this.api.patch(this.assetId, { isPublic }));
      this.host.message(isPublic ? 'The asset is public.' : 'The asset is private.');
    } catch (error) {
      this.publicInput.checked = !isPublic;
      this.host.error(error);
    } finally {
      this.publicInput.disabled = false;
    }
  }

  private apply(asset: Asset): void {
    if (!this.disposed) {
      this.render(asset);
      this.host.changed(asset);
    }
  }

  /** Synchronous: the clipboard only accepts a copy made while handling the click. */
  private copyUrl(): void {
    if (!this.asset) {
      return;
    }
    const url = shareUrl(this.asset, this.api.contentUrl(this.asset.id));
    Clipboard.copyToSystem(url);
    this.host.message(`Copied ${url}`);
  }

  private async confirmDelete(): Promise<void> {
    const asset = this.asset;
    if (!asset) {
      return;
    }
    const result = await showDialog({
      title: 'Delete asset',
      body: `Delete “${asset.originalFileName}”, its derivatives and results? This cannot be undone.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept || this.disposed) {
      return;
    }
    try {
      await this.api.delete(asset.id);
      this.host.deleted(asset);
    } catch (error) {
      this.host.error(error);
    }
  }

  private async loadSkills(): Promise<void> {
    try {
      const skills = await this.host.skills();
      if (this.disposed) {
        return;
      }
      this.skillsByName = new Map(skills.map(skill => [skill.name, skill]));
      this.skillSelect.append(...skills.map(skill => h('option', { value: skill.name }, skill.name)));
    } catch (error) {
      this.host.error(error);
    }
  }

  /** The parameter form of the chosen skill: one input per schema property, defaults filled in. */
  private showSkill(name: string): void {
    const skill = this.skillsByName.get(name);
    this.fields = skill ? fieldsFromSchema(skill.parameters) : [];
    this.skillDescription.textContent = skill?.description ?? '';
    this.skillForm.replaceChildren(...this.fields.map(field => fieldRow(field)));
    this.skillResult.replaceChildren();
    delete this.skillResult.dataset.state;
    this.runButton.disabled = !skill;
  }

  private formValues(): FormValues {
    const values: FormValues = {};
    for (const input of Array.from(this.skillForm.querySelectorAll<HTMLInputElement>('[data-param]'))) {
      values[input.dataset.param!] = input.type === 'checkbox' ? input.checked : input.value;
    }
    return values;
  }

  private async runSkill(): Promise<void> {
    const name = this.skillSelect.value;
    if (!name || this.runButton.disabled) {
      return;
    }
    const parameters = parametersFromForm(this.fields, this.formValues());
    this.runButton.disabled = true;
    this.skillResult.dataset.state = 'running';
    this.skillResult.replaceChildren(`Running ${name}…`);
    try {
      const run = await this.api.runSkill(this.assetId, name, parameters);
      this.showRun(run);
      this.show(run.asset); // the run answers with the asset in full, as a GET would
    } catch (error) {
      this.skillResult.dataset.state = 'error';
      this.skillResult.replaceChildren(errorText(error));
      this.host.error(error);
      await this.load();
    } finally {
      this.runButton.disabled = false;
    }
  }

  private showRun(run: SkillRun): void {
    this.skillResult.dataset.state = run.succeeded ? 'succeeded' : 'failed';
    this.skillResult.replaceChildren(
      h('div', {}, `${run.skillName} ${run.succeeded ? 'succeeded' : 'failed'}`),
      stepList(run.steps)
    );
  }
}

function section(title: string, ...children: Node[]): HTMLElement {
  return h('section', { class: 'jp-AssetDetail-section' }, h('h4', {}, title), ...children);
}

function fact(label: string, value: string): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function stepList(steps: { name: string; succeeded: boolean; errorMessage: string | null }[]): HTMLElement {
  return h(
    'ul',
    { class: 'jp-AssetDetail-steps' },
    ...steps.map(step =>
      h(
        'li',
        { 'data-succeeded': String(step.succeeded) },
        `${step.succeeded ? '✓' : '✗'} ${step.name}${step.errorMessage ? `: ${step.errorMessage}` : ''}`
      )
    )
  );
}

/** One labelled input for a schema field; `data-param` names the parameter it holds. */
function fieldRow(field: Field): HTMLElement {
  const id = `jp-AssetDetail-param-${++formCount}`;
  const common = {
    id,
    'data-param': field.name,
    'aria-required': field.required ? 'true' : undefined,
    title: field.description || undefined
  };
  const value = initialValue(field);
  const label = field.required ? `${field.label} *` : field.label;
  if (field.kind === 'checkbox') {
    const input = h('input', { ...common, type: 'checkbox' });
    input.checked = value === true;
    return h('div', { class: 'jp-AssetDetail-field' }, h('label', { for: id }, input, ` ${label}`), hint(field));
  }
  let input: HTMLInputElement | HTMLSelectElement;
  if (field.kind === 'select') {
    input = h(
      'select',
      { ...common, class: 'jp-mod-styled' },
      h('option', { value: '' }, field.required ? 'Choose…' : '(default)'),
      ...field.options.map(option => h('option', { value: option.label }, option.label))
    );
  } else if (field.kind === 'number') {
    input = h('input', {
      ...common,
      type: 'number',
      class: 'jp-mod-styled',
      step: field.integer ? 1 : 'any',
      min: field.minimum,
      max: field.maximum
    });
  } else {
    input = h('input', {
      ...common,
      type: 'text',
      class: 'jp-mod-styled',
      placeholder: field.kind === 'list' ? 'comma-separated' : undefined
    });
  }
  input.value = String(value);
  const control = input instanceof HTMLSelectElement ? styledSelect(input, false) : input;
  return h('div', { class: 'jp-AssetDetail-field' }, h('label', { for: id }, label), control, hint(field));
}

function hint(field: Field): HTMLElement | null {
  return field.description ? h('div', { class: 'jp-AssetDetail-hint' }, field.description) : null;
}
