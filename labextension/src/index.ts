// The jupyter-assets JupyterLab extension: the Assets side panel, its command-palette entry, the file browser's
// "Add to asset library" and dropping assets into notebooks.

import { ILayoutRestorer, type JupyterFrontEnd, type JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';

import { AssetsApi } from './api';
import { base64ToBytes, guessContentType } from './format';
import { assetsIcon } from './icon';
import { installNotebookDrop } from './notebookDrop';
import { AssetsPanel, type UploadSource } from './panel';

const OPEN = 'jupyter-assets:open';
const ADD_FROM_FILE_BROWSER = 'jupyter-assets:add-from-file-browser';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-assets:plugin',
  description: 'The asset library side panel, with uploads from the desktop and the file browser.',
  autoStart: true,
  optional: [ICommandPalette, IFileBrowserFactory, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    browsers: IFileBrowserFactory | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new AssetsPanel(new AssetsApi());
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(OPEN, {
      label: 'Open Asset Library',
      caption: 'Show the Assets side panel',
      icon: assetsIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: OPEN, category: 'Assets' });

    if (browsers) {
      app.commands.addCommand(ADD_FROM_FILE_BROWSER, {
        label: 'Add to asset library',
        caption: 'Upload the selected files to the asset library',
        icon: assetsIcon,
        execute: () => {
          const browser = browsers.tracker.currentWidget;
          if (!browser) {
            return;
          }
          const files = Array.from(browser.selectedItems()).filter(item => item.type !== 'directory');
          app.shell.activateById(panel.id);
          panel.upload(files.map(file => contentsSource(app, file.path, file.name)));
        }
      });
      app.contextMenu.addItem({
        command: ADD_FROM_FILE_BROWSER,
        selector: '.jp-DirListing-item[data-isdir="false"]',
        rank: 20
      });
    }
  }
};

/** Dropping asset cards on notebooks; a plugin of its own so the panel works where there are no notebooks. */
const notebookDrop: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-assets:notebook-drop',
  description: 'Insert an asset dragged from the Assets panel into a notebook cell.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => installNotebookDrop(tracker)
};

/** A file of the Jupyter server, read through the contents API when its upload starts. */
function contentsSource(app: JupyterFrontEnd, path: string, name: string): UploadSource {
  return {
    name,
    blob: async () => {
      const model = await app.serviceManager.contents.get(path, { content: true, format: 'base64' });
      return new Blob([base64ToBytes(model.content)], { type: guessContentType(name) });
    }
  };
}

export default [plugin, notebookDrop];
