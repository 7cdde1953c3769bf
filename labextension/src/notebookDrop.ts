// Dropping a dragged asset card on a notebook: Markdown cells get an image, code cells a `client.get(...)`, and a
// drop beside the cells appends a Markdown cell.

import type { MarkdownCell } from '@jupyterlab/cells';
import type { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';

import { dragCarries } from './dom';
import { ASSET_MIME, appendLine, codeSnippet, markdownSnippet, parseDragPayload } from './format';
import type { AssetDragPayload } from './types';

function carriesAsset(event: DragEvent): boolean {
  return dragCarries(event, ASSET_MIME);
}

/** Listen on every notebook, in the capture phase so that CodeMirror and the cells never see our drags (the editor
 * would otherwise also insert the `text/plain` snippet). */
export function installNotebookDrop(tracker: INotebookTracker): void {
  const watch = (panel: NotebookPanel) => {
    const allow = (event: DragEvent) => {
      if (carriesAsset(event)) {
        event.preventDefault();
        event.stopPropagation();
        event.dataTransfer!.dropEffect = 'copy';
      }
    };
    panel.node.addEventListener('dragenter', allow, true);
    panel.node.addEventListener('dragover', allow, true);
    panel.node.addEventListener(
      'drop',
      event => {
        if (!carriesAsset(event)) {
          return;
        }
        event.preventDefault();
        event.stopPropagation();
        const payload = parseDragPayload(event.dataTransfer!.getData(ASSET_MIME));
        if (payload) {
          insertAsset(panel.content, event.target, payload);
        }
      },
      true
    );
  };
  tracker.forEach(watch);
  tracker.widgetAdded.connect((_, panel) => watch(panel));
}

function insertAsset(notebook: Notebook, target: EventTarget | null, asset: AssetDragPayload): void {
  const model = notebook.model;
  if (!model || notebook.isDisposed) {
    return;
  }
  const image = markdownSnippet(asset.name, asset.altText, asset.url);
  const cellNode = target instanceof Element ? target.closest('.jp-Cell') : null;
  let index = cellNode ? notebook.widgets.findIndex(cell => cell.node === cellNode) : -1;
  if (index < 0) {
    index = model.sharedModel.cells.length;
    model.sharedModel.insertCell(index, { cell_type: 'markdown', source: image });
  } else {
    const cell = notebook.widgets[index];
    const snippet = cell.model.type === 'code' ? codeSnippet(asset.id) : image;
    cell.model.sharedModel.setSource(appendLine(cell.model.sharedModel.getSource(), snippet));
  }
  const cell = notebook.widgets[index];
  if (cell.model.type === 'markdown') {
    (cell as MarkdownCell).rendered = true;
    cell.update(); // an already rendered cell does not re-render on its own when its source changes
  }
  notebook.activeCellIndex = index;
}
