// Small DOM builders, so the views read as markup.

import { caretDownEmptyIcon, type LabIcon } from '@jupyterlab/ui-components';

type Attributes = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | null | undefined | false;

/** An element with attributes (`true`: present, `false`/null/undefined: absent) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) {
      element.setAttribute(name, '');
    } else if (value !== false && value !== null && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      element.append(child);
    }
  }
  return element;
}

/** A JupyterLab-styled button with an icon; `text` empty makes it icon-only (the label is then its aria-label). */
export function iconButton(
  icon: LabIcon,
  label: string,
  testId: string,
  text = '',
  variant: 'minimal' | 'accept' | 'warn' = 'minimal'
): HTMLButtonElement {
  const classes = ['jp-Button', 'jp-AssetsButton', variant === 'minimal' ? 'jp-mod-minimal' : 'jp-mod-styled'];
  if (variant !== 'minimal') {
    classes.push(`jp-mod-${variant}`);
  }
  const button = h('button', {
    type: 'button',
    class: classes.join(' '),
    'data-testid': testId,
    'aria-label': label,
    title: label
  });
  button.append(icon.element({ tag: 'span', className: 'jp-AssetsButton-icon' }));
  if (text) {
    button.append(h('span', { class: 'jp-AssetsButton-label' }, text));
  }
  return button;
}

/** A `<select>` with a label for assistive technology and a tooltip; put it in the page with `styledSelect`. */
export function select(testId: string, label: string, options: [value: string, text: string][]): HTMLSelectElement {
  return h(
    'select',
    { 'data-testid': testId, 'aria-label': label, title: label },
    ...options.map(([value, text]) => h('option', { value }, text))
  );
}

/**
 * What @jupyterlab/ui-components' `HTMLSelect` renders, without React: the select in a `jp-HTMLSelect` wrapper with
 * the theme's caret icon over its right end. `toolbar` (HTMLSelect's `defaultStyle`): the compact, borderless look
 * of JupyterLab's toolbars; otherwise the select keeps the bordered `jp-mod-styled` look of forms.
 */
export function styledSelect(select: HTMLSelectElement, toolbar = true): HTMLDivElement {
  if (!toolbar) {
    select.classList.add('jp-mod-styled');
  }
  return h(
    'div',
    { class: `jp-HTMLSelect ${toolbar ? 'jp-DefaultStyle ' : ''}jp-mod-styled jp-AssetsSelect` },
    select,
    caretDownEmptyIcon.element({ tag: 'span', stylesheet: 'select', right: '4px', top: toolbar ? '4px' : '8px' })
  );
}

/** Whether a drag carries data of this type ('Files' for files from the desktop). */
export function dragCarries(event: DragEvent, type: string): boolean {
  return !!event.dataTransfer && Array.from(event.dataTransfer.types).includes(type);
}
