// Small DOM builders, so the views read as markup.

import type { LabIcon } from '@jupyterlab/ui-components';

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

export function select(testId: string, label: string, options: [value: string, text: string][]): HTMLSelectElement {
  return h(
    'select',
    { class: 'jp-mod-styled jp-AssetsSelect', 'data-testid': testId, 'aria-label': label, title: label },
    ...options.map(([value, text]) => h('option', { value }, text))
  );
}

/** Whether a drag carries data of this type ('Files' for files from the desktop). */
export function dragCarries(event: DragEvent, type: string): boolean {
  return !!event.dataTransfer && Array.from(event.dataTransfer.types).includes(type);
}
