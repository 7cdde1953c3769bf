// The "Assets" panel in a real JupyterLab, driven through Debian's Chromium with playwright-core.
// Started by tests/test_labextension.py, which seeds the library, passes what to do in PLAN, and afterwards checks on
// the server what the browser did. Only the panel's data-testid hooks (labextension/README.md) are used, plus
// JupyterLab's own commands and DOM for the notebook and the dialog.
//
// Environment: LAB_URL, TOKEN, ARTIFACTS, CHROMIUM (see harness.mjs) and PLAN (JSON, see the test).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  api,
  ARTIFACTS,
  changeTheme as changeLabTheme,
  LAB_URL,
  loadLab,
  openBrowser,
  required,
  runCommand as runLabCommand,
  tid,
  TIMEOUT
} from './harness.mjs';

const PLAN = JSON.parse(required('PLAN'));
const card = id => `${tid('assets-grid')} ${tid('asset-card')}[data-asset-id="${id}"]`;

// -- the server, as the test sees it (Jupyter's token, like the panel's session) ----------------------------------

/** Polls `probe` until it returns something truthy: for server state that the UI changes asynchronously. */
async function until(what, probe, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    }
    await new Promise(resolve => setTimeout(resolve, 200));
  }
}

const asset = async id => (await api(`api/v1/assets/${id}`)).body?.data;

// -- the browser ----------------------------------------------------------------------------------------------

// Every console message goes to the log, with the step it came in; errors are collected and fail the run.
const session = await openBrowser({
  viewport: { width: 1400, height: 900 },
  permissions: ['clipboard-read', 'clipboard-write']
});
const { page, step } = session;

/** Waits until exactly `count` elements match `selector`. */
async function waitForCount(selector, count) {
  await page.waitForFunction(
    ([selector, count]) => document.querySelectorAll(selector).length === count,
    [selector, count]
  );
}

async function changeTheme(theme) {
  await changeLabTheme(page, theme);
  await page.waitForFunction(light => document.body.dataset.jpThemeLight === light, String(theme.endsWith('Light')));
}

/** Whether a text fits in an element's content box, measured in the element's own font. */
async function textFits(selector, text) {
  return page.evaluate(
    ([selector, text]) => {
      const element = document.querySelector(selector);
      const style = getComputedStyle(element);
      const context = document.createElement('canvas').getContext('2d');
      context.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      const room =
        element.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const width = context.measureText(text).width;
      return { fits: width <= room, width: Math.ceil(width), room };
    },
    [selector, text]
  );
}

const runCommand = (id, args) => runLabCommand(page, id, args);

const panel = page.locator(tid('assets-panel'));
const grid = page.locator(tid('assets-grid'));
const cards = `${tid('assets-grid')} ${tid('asset-card')}`;
const detail = page.locator(tid('asset-detail'));

async function openDetail(id, { keyboard = false } = {}) {
  if (keyboard) {
    await page.locator(card(id)).focus();
    await page.keyboard.press('Enter');
  } else {
    await page.locator(card(id)).click();
  }
  await page.locator(`${tid('asset-detail')}[data-asset-id="${id}"]`).waitFor({ state: 'visible' });
}

async function backToGrid() {
  await page.locator(tid('asset-back')).click();
  await grid.waitFor({ state: 'visible' });
}

try {
  await step('JupyterLab loads', () => loadLab(page));

  await step('the panel opens from its sidebar tab', async () => {
    // The sidebar tab of the widget whose id is jupyter-assets-panel (the README: the panel's root).
    await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-assets-panel"]').click();
    await panel.waitFor({ state: 'visible' });
    assert.equal(await panel.getAttribute('id'), 'jupyter-assets-panel');
  });

  await step('the filters are JupyterLab styled selects, on one row, their labels and the placeholder fit', async () => {
    const selects = ['assets-content-type', 'assets-status', 'assets-sort'];
    const boxes = [];
    for (const id of selects) {
      const select = page.locator(tid(id));
      // What @jupyterlab/ui-components' HTMLSelect renders: the wrapper's classes and the theme's caret icon.
      const wrapper = await select.evaluate(element => {
        const parent = element.parentElement;
        return { classes: [...parent.classList], caret: !!parent.querySelector(':scope > span > svg') };
      });
      for (const name of ['jp-HTMLSelect', 'jp-DefaultStyle', 'jp-mod-styled']) {
        assert.ok(wrapper.classes.includes(name), `${id}: ${wrapper.classes}`);
      }
      assert.ok(wrapper.caret, `${id} has no caret icon`);
      boxes.push(await select.boundingBox());
      const shown = await select.evaluate(element => element.selectedOptions[0].textContent);
      const fit = await textFits(tid(id), shown);
      assert.ok(fit.fits, `${id}: "${shown}" is cut (${fit.width} px of text in ${fit.room} px)`);
    }
    assert.ok(boxes.every(box => Math.abs(box.y - boxes[0].y) < 1), `not one row: ${JSON.stringify(boxes)}`);
    assert.ok(boxes[0].x < boxes[1].x && boxes[1].x < boxes[2].x, JSON.stringify(boxes));
    // The type filter offers what uploads accept, nothing more.
    const types = await page.locator(`${tid('assets-content-type')} option`).evaluateAll(options => options.map(o => o.value));
    assert.deepEqual(types, ['', 'image/png', 'image/jpeg', 'image/gif', 'image/webp']);
    const placeholder = await page.locator(tid('assets-search')).getAttribute('placeholder');
    const fit = await textFits(tid('assets-search'), placeholder);
    assert.ok(fit.fits, `the placeholder "${placeholder}" is cut (${fit.width} px of text in ${fit.room} px)`);
  });

  await step('the seeded thumbnails show', async () => {
    await waitForCount(cards, PLAN.seededCount);
    for (const element of await page.locator(cards).all()) {
      assert.equal(await element.getAttribute('draggable'), 'true');
      await element.scrollIntoViewIfNeeded(); // a lazily loaded image loads once in view
      const image = element.locator('img').first();
      await image.waitFor({ state: 'visible' });
      await page.waitForFunction(img => img.complete && img.naturalWidth > 0, await image.elementHandle());
    }
  });

  await step('the usage line counts them', async () => {
    const usage = page.locator(tid('assets-usage'));
    await page.waitForFunction(
      ([selector, count]) => new RegExp(`\\b${count} assets\\b`).test(document.querySelector(selector)?.textContent ?? ''),
      [tid('assets-usage'), PLAN.seededCount]
    );
    console.log(`    usage: ${(await usage.textContent()).trim()}`);
  });

  await step('long names of one series show their distinct ends (middle ellipsis), the full name on hover', async () => {
    const tails = [];
    for (const { id, name } of PLAN.series) {
      const label = page.locator(`${card(id)} ${tid('asset-name')}`);
      assert.equal(await label.getAttribute('title'), name);
      assert.equal(await page.locator(card(id)).getAttribute('title'), name);
      const shown = await label.evaluate(element => {
        const [head, tail] = element.children;
        return {
          headCut: head.scrollWidth > head.clientWidth,
          tailWhole: tail.scrollWidth <= tail.clientWidth,
          text: head.textContent + tail.textContent,
          tail: tail.textContent
        };
      });
      assert.equal(shown.text, name);
      assert.ok(shown.headCut, `${name}: the start was not shortened (the card is wider than the test expects)`);
      assert.ok(shown.tailWhole, `${name}: the end "${shown.tail}" is cut`);
      assert.ok(name.endsWith(shown.tail) && shown.tail.endsWith('.jpg'), shown.tail);
      tails.push(shown.tail);
    }
    assert.equal(new Set(tails).size, PLAN.series.length, `the visible ends are the same: ${tails}`);
  });

  await step('a search by name narrows the grid', async () => {
    const search = page.locator(tid('assets-search'));
    await search.fill(PLAN.search.term);
    await search.press('Enter');
    await waitForCount(cards, 1);
    await page.locator(card(PLAN.search.expectedId)).waitFor({ state: 'visible' });
    await search.fill('');
    await search.press('Enter');
    await waitForCount(cards, PLAN.seededCount);
  });

  await step('a search by meaning ranks the library', async () => {
    const byMeaning = page.locator(tid('assets-by-meaning'));
    const search = page.locator(tid('assets-search'));
    await search.fill(PLAN.meaning.text);
    await search.press('Enter');
    await waitForCount(cards, 0); // by name: no description holds these words
    // Enabled once the panel has heard that the server has a model.
    await page.waitForFunction(selector => !document.querySelector(selector).disabled, tid('assets-by-meaning'));
    assert.match(await page.locator(tid('assets-by-meaning-label')).getAttribute('title'), /CLIP/);
    assert.equal(await page.locator(tid('assets-by-meaning-note')).isVisible(), false);
    await byMeaning.check();
    const placeholder = await search.getAttribute('placeholder');
    assert.notEqual(placeholder, 'Search assets'); // the box asks for a description now
    const fit = await textFits(tid('assets-search'), placeholder);
    assert.ok(fit.fits, `the placeholder "${placeholder}" is cut (${fit.width} px of text in ${fit.room} px)`);
    await waitForCount(cards, PLAN.seededCount); // by meaning: every asset, ranked
    assert.equal((await page.locator(tid('assets-message')).textContent()).trim(), '');
    await byMeaning.uncheck();
    await search.fill('');
    await search.press('Enter');
    await waitForCount(cards, PLAN.seededCount);
  });

  await step('files dropped from the desktop are uploaded, a refused one shows its error code', async () => {
    const bytes = [...fs.readFileSync(PLAN.drop.path)];
    // Uploads go to the batch endpoint, which answers 207 with an item per file: a refused file is no HTTP error.
    const posted = [];
    const noteUpload = request => request.method() === 'POST' && posted.push(new URL(request.url()).pathname);
    page.on('request', noteUpload);
    // What the browser does for files dragged in from the desktop: drag events carrying Files.
    await panel.evaluate(
      (root, { bytes, name, type, refused }) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], name, { type }));
        transfer.items.add(new File([refused.text], refused.name, { type: 'image/png' }));
        const box = root.getBoundingClientRect();
        const at = { clientX: box.x + box.width / 2, clientY: box.y + box.height / 2 };
        for (const kind of ['dragenter', 'dragover', 'drop']) {
          root.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer, ...at }));
        }
      },
      { bytes, name: PLAN.drop.name, type: PLAN.drop.type, refused: PLAN.refusedDrop }
    );
    const items = `${tid('assets-uploads')} ${tid('upload-item')}`;
    await page.waitForFunction(
      selector =>
        [...document.querySelectorAll(selector)].filter(item => ['done', 'error'].includes(item.dataset.state))
          .length === 2,
      items
    );
    const item = page.locator(items, { hasText: PLAN.drop.name });
    assert.equal(await item.getAttribute('data-state'), 'done', `upload failed: ${await item.textContent()}`);
    const refused = page.locator(items, { hasText: PLAN.refusedDrop.name });
    assert.equal(await refused.getAttribute('data-state'), 'error');
    assert.match(await refused.textContent(), new RegExp(PLAN.refusedDrop.code));
    page.off('request', noteUpload);
    assert.ok(posted.length > 0 && posted.every(path => path.endsWith('/api/v1/assets/batch')), posted.join(', '));
    // The new asset is listed.
    const found = await until('the dropped file on the server', async () => {
      const { body } = await api(`api/v1/assets?q=${encodeURIComponent(PLAN.drop.name)}`);
      return body?.data?.items?.[0];
    });
    await page.locator(card(found.id)).waitFor({ state: 'visible' });
    await waitForCount(cards, PLAN.seededCount + 1);
  });

  const uploads = page.locator(tid('assets-uploads-section'));
  const uploadList = page.locator(tid('assets-uploads'));
  const summary = page.locator(tid('assets-uploads-summary'));
  const toggle = page.locator(tid('assets-uploads-toggle'));

  /** Waits for the uploads to be folded into their summary line, and checks that line. */
  async function uploadsCollapsedTo(text) {
    await page.waitForFunction(
      ([section, summary, text]) =>
        document.querySelector(section)?.dataset.state === 'finished' &&
        document.querySelector(summary)?.textContent === text,
      [tid('assets-uploads-section'), tid('assets-uploads-summary'), text]
    );
    await uploadList.waitFor({ state: 'hidden' });
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
    assert.equal(await uploads.isVisible(), true);
    const height = (await uploads.boundingBox()).height;
    assert.ok(height < 40, `the folded uploads take ${height} px`);
  }

  await step('finished uploads fold into one line; the refused one stays discoverable', async () => {
    await uploadsCollapsedTo('1 uploaded, 1 refused');
    assert.equal(await uploads.getAttribute('data-failures'), '1');
    await toggle.click();
    await uploadList.waitFor({ state: 'visible' });
    const refused = page.locator(`${tid('upload-item')}[data-state="error"]`);
    await refused.waitFor({ state: 'visible' });
    assert.match(await refused.textContent(), new RegExp(PLAN.refusedDrop.code));
    await toggle.click();
    await uploadList.waitFor({ state: 'hidden' });
  });

  await step('the upload button opens a file picker for several images and uploads the picked files', async () => {
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.locator(tid('assets-upload')).click()]);
    assert.equal(chooser.isMultiple(), true);
    const accept = await chooser.element().getAttribute('accept');
    for (const type of ['image/png', 'image/jpeg', 'image/gif', 'image/webp']) {
      assert.ok(accept.split(',').includes(type), accept);
    }
    await chooser.setFiles([{ name: PLAN.picked.name, mimeType: 'image/png', buffer: fs.readFileSync(PLAN.picked.path) }]);
    await uploadsCollapsedTo('2 uploaded, 1 refused');
    const found = await until('the picked file on the server', async () => {
      const { body } = await api(`api/v1/assets?q=${encodeURIComponent(PLAN.picked.name)}`);
      return body?.data?.items?.[0];
    });
    await page.locator(card(found.id)).waitFor({ state: 'visible' });
    await waitForCount(cards, PLAN.seededCount + 2);
  });

  await step('screenshots in the light and the dark theme (uploads folded, then unfolded)', async () => {
    for (const [theme, suffix] of [['JupyterLab Light', 'light'], ['JupyterLab Dark', 'dark']]) {
      await changeTheme(theme);
      await page.mouse.move(900, 450); // over the main area: no hover highlight in the panel
      await panel.screenshot({ path: path.join(ARTIFACTS, `panel-${suffix}.png`) });
      await page.locator('.jp-AssetsPanel-toolbar').screenshot({ path: path.join(ARTIFACTS, `toolbar-${suffix}.png`) });
      await toggle.click();
      await uploadList.waitFor({ state: 'visible' });
      await page.mouse.move(900, 450);
      await panel.screenshot({ path: path.join(ARTIFACTS, `uploads-expanded-${suffix}.png`) });
      await toggle.click();
      await uploadList.waitFor({ state: 'hidden' });
    }
    await changeTheme('JupyterLab Light');
  });

  await step('dismissing the finished uploads removes their line', async () => {
    await page.locator(tid('assets-uploads-clear')).click();
    await uploads.waitFor({ state: 'hidden' });
    await waitForCount(tid('upload-item'), 0);
  });

  await step('the detail view, opened from the keyboard, edits the description and the visibility', async () => {
    await openDetail(PLAN.edit.id, { keyboard: true });
    await page.locator(tid('asset-preview')).waitFor({ state: 'visible' });
    // The zero-shot tags of the enrichment, once the full asset has loaded.
    assert.ok(PLAN.tags.labels.length > 0);
    await page.waitForFunction(
      ([selector, labels]) => labels.every(label => document.querySelector(selector)?.textContent.includes(label)),
      [tid('asset-tags'), PLAN.tags.labels]
    );
    const description = page.locator(tid('asset-description'));
    await description.fill(PLAN.edit.description);
    await page.locator(tid('asset-save')).click();
    await until('the description saved', async () => (await asset(PLAN.edit.id))?.description === PLAN.edit.description);
    const visibility = page.locator(tid('asset-public'));
    assert.equal(await visibility.isChecked(), true);
    await visibility.uncheck();
    await until('the asset private on the server', async () => (await asset(PLAN.edit.id))?.isPublic === false);
    // The copied URL of a private asset is its authenticated content URL.
    await page.locator(tid('asset-copy-url')).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, `${LAB_URL}api/v1/assets/${PLAN.edit.id}/content`);
    await backToGrid();
  });

  await step('the watermark skill runs from the skill form', async () => {
    await openDetail(PLAN.skill.id);
    await page.locator(tid('asset-skill')).selectOption(PLAN.skill.name);
    const text = page.locator(`${tid('asset-skill-form')} [data-param="text"]`);
    await text.fill(PLAN.skill.text);
    // The skill select and the form's enum select are JupyterLab styled selects too (bordered, with the caret).
    const position = page.locator(`${tid('asset-skill-form')} select[data-param="position"]`);
    for (const select of [page.locator(tid('asset-skill')), position]) {
      assert.ok(await select.evaluate(element => element.parentElement.matches('.jp-HTMLSelect.jp-mod-styled')));
    }
    await position.scrollIntoViewIfNeeded();
    await page.mouse.move(900, 450);
    await panel.screenshot({ path: path.join(ARTIFACTS, 'detail-skill-light.png') });
    await page.locator(tid('asset-run-skill')).click();
    const result = page.locator(tid('asset-skill-result'));
    await page.waitForFunction(selector => document.querySelector(selector)?.textContent.trim(), tid('asset-skill-result'));
    console.log(`    skill result: ${(await result.textContent()).trim()}`);
    const summary = await until('the watermark execution on the server', async () => {
      const latest = (await asset(PLAN.skill.id))?.latestExecutionSummary;
      return latest?.skillName === PLAN.skill.name && latest.triggerSource === 'manual' ? latest : null;
    });
    assert.ok(summary.succeeded, JSON.stringify(summary));
    await backToGrid();
  });

  await step('an asset is deleted after confirming', async () => {
    await openDetail(PLAN.delete.id);
    await page.locator(tid('asset-delete')).click();
    const dialog = page.locator('.jp-Dialog');
    await dialog.waitFor({ state: 'visible' });
    await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
    await dialog.waitFor({ state: 'detached' });
    await until('the deleted asset gone from the server', async () => (await api(`api/v1/assets/${PLAN.delete.id}`)).status === 404);
    await grid.waitFor({ state: 'visible' });
    await page.locator(card(PLAN.delete.id)).waitFor({ state: 'detached' });
    await waitForCount(cards, PLAN.seededCount + 1);
  });

  await step('a card dragged onto a Markdown cell inserts an image link', async () => {
    await runCommand('docmanager:open', { path: PLAN.notebook });
    const notebook = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
    await notebook.locator('.jp-Cell').first().waitFor({ state: 'visible' });
    // The first cell, as a Markdown cell.
    await page.evaluate(async () => {
      const panel = window.jupyterapp.shell.currentWidget;
      await panel.context.ready;
      // The kernel's first answer writes language_info into the notebook's metadata: let that happen before the
      // edits, so that it cannot make the notebook dirty again after the save below.
      await panel.sessionContext.ready;
      panel.content.activeCellIndex = 0;
    });
    await runCommand('notebook:change-cell-to-markdown');
    const cell = notebook.locator('.jp-Cell').first();
    await page.waitForFunction(
      () => window.jupyterapp.shell.currentWidget.content.widgets[0]?.model.type === 'markdown'
    );
    await cell.locator('.jp-InputArea-editor').waitFor({ state: 'visible' });
    // A real HTML5 drag and drop, from the card to the cell's editor.
    await page.dragAndDrop(card(PLAN.drag.id), '.jp-NotebookPanel .jp-Notebook .jp-Cell.jp-MarkdownCell .jp-InputArea-editor');
    const source = await page.waitForFunction(
      () => {
        const text = window.jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.getSource();
        return text.includes('![') ? text : null;
      }
    ).then(handle => handle.jsonValue());
    console.log(`    cell source: ${JSON.stringify(source)}`);
    const match = source.trim().match(/^!\[([^\]]*)\]\(([^)\s]+)\)$/);
    assert.ok(match, `not one Markdown image: ${JSON.stringify(source)}`);
    assert.equal(match[1], PLAN.drag.altText);
    // Rendered, the link shows the image.
    await runCommand('notebook:run-cell');
    const image = cell.locator('.jp-RenderedMarkdown img');
    await image.waitFor({ state: 'visible' });
    await page.waitForFunction(img => img.complete && img.naturalWidth > 0, await image.elementHandle());
  });

  await step('a card dragged onto a code cell inserts client.get', async () => {
    await runCommand('notebook:insert-cell-below');
    await page.waitForFunction(
      () => window.jupyterapp.shell.currentWidget.content.widgets[1]?.model.type === 'code'
    );
    const editor = '.jp-NotebookPanel .jp-Notebook .jp-Cell.jp-CodeCell .jp-InputArea-editor';
    await page.locator(editor).first().waitFor({ state: 'visible' });
    await page.dragAndDrop(card(PLAN.drag.id), editor);
    const source = await page.waitForFunction(
      () => window.jupyterapp.shell.currentWidget.content.widgets[1].model.sharedModel.getSource() || null
    ).then(handle => handle.jsonValue());
    assert.equal(source.trim(), `client.get("${PLAN.drag.id}")`);
  });

  await step('the notebook is saved', async () => {
    await runCommand('docmanager:save');
    await until('the saved notebook on the server', async () => {
      const { body } = await api(`api/contents/${PLAN.notebook}?content=1`);
      const cells = body?.content?.cells ?? [];
      return cells[0]?.source.includes('![') && cells[1]?.source.includes('client.get(');
    });
  });

  await step("the file browser's context menu adds a server file to the library", async () => {
    await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]').click();
    const item = page.locator('.jp-DirListing-item', {
      has: page.locator('.jp-DirListing-itemText', { hasText: PLAN.serverFile.name })
    });
    await item.click({ button: 'right' });
    await page.locator('.lm-Menu-item', { hasText: 'Add to asset library' }).click();
    await panel.waitFor({ state: 'visible' }); // the panel shows itself with the upload's progress
    const row = page.locator(`${tid('upload-item')}`, { hasText: PLAN.serverFile.name });
    await page.waitForFunction(
      ([selector, name]) =>
        [...document.querySelectorAll(selector)].some(
          element => element.textContent.includes(name) && ['done', 'error'].includes(element.dataset.state)
        ),
      [tid('upload-item'), PLAN.serverFile.name]
    );
    assert.equal(await row.getAttribute('data-state'), 'done', `upload failed: ${await row.textContent()}`);
  });

  await step('no console errors', async () => {
    // Nothing else is ignored: the panel, JupyterLab and the kernel all run clean in this setup.
    session.noConsoleErrors();
  });
} catch (error) {
  await session.fail(error, 'failure.png');
} finally {
  await session.close('console.log');
}
