// widgets.show() in a notebook of a real JupyterLab: runs the notebook, measures the cards in the light theme, with
// the detail pane open, in the dark theme and in a narrow window, screenshots each, and prints the measurements as
// one JSON line. Started by tests/test_widgets.py, which judges them.
//
// Environment: LAB_URL, TOKEN, ARTIFACTS, CHROMIUM (see harness.mjs), NOTEBOOK (its path on the server) and CARDS
// (how many cards the library shows).
import { ARTIFACTS, changeTheme, LAB_URL, openBrowser, required, TOKEN } from './harness.mjs';

const NOTEBOOK = required('NOTEBOOK');
const CARDS = required('CARDS');

const { browser, page, uncaught: errors } = await openBrowser({ viewport: { width: 1400, height: 1000 }, timeout: 60_000 });
try {
  await page.goto(`${LAB_URL}lab/tree/${NOTEBOOK}?token=${TOKEN}`);
  await page.waitForFunction(() => window.jupyterapp?.shell?.currentWidget?.sessionContext);
  await page.evaluate(async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
    await window.jupyterapp.commands.execute('notebook:run-all-cells');
  });
  const cards = Number(CARDS);
  await page.waitForFunction(count => document.querySelectorAll('.jupyter-assets-card').length === count, cards);
  // Every public card's thumbnail has loaded (a broken URL would never get a natural width).
  await page.waitForFunction(() =>
    [...document.querySelectorAll('.jupyter-assets-card img')].every(img => img.complete && img.naturalWidth > 0)
  );
  const measure = () =>
    page.evaluate(() => {
      const box = element => {
        const r = element.getBoundingClientRect();
        return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
      };
      return [...document.querySelectorAll('.jupyter-assets-card')].map(card => ({
        card: box(card),
        picture: box(card.querySelector('.jupyter-assets-thumb')),
        checkbox: box(card.querySelector('input[type="checkbox"]')),
        button: box(card.querySelector('button')),
        name: card.querySelector('.jupyter-assets-name').textContent,
        border: getComputedStyle(card).borderTopWidth,
        background: getComputedStyle(card).backgroundColor
      }));
    });
  const output = page.locator('.jp-OutputArea-child', { has: page.locator('.jupyter-assets-grid') });
  const wide = await measure();
  await output.screenshot({ path: `${ARTIFACTS}/browser-light.png` });
  // A selected card, and the detail pane open beside the grid.
  const first = page.locator('.jupyter-assets-card').first();
  await first.locator('input[type="checkbox"]').check();
  await page.locator('.jupyter-assets-card.jupyter-assets-selected').waitFor();
  await first.locator('button').click();
  await page.locator('.jupyter-assets-detail textarea').waitFor({ state: 'visible' });
  const detail = await measure();
  const pane = await page.locator('.jupyter-assets-detail').evaluate(element => {
    const r = element.getBoundingClientRect();
    return { left: r.left, right: r.right, text: element.textContent };
  });
  await output.screenshot({ path: `${ARTIFACTS}/browser-detail-light.png` });
  await changeTheme(page, 'JupyterLab Dark');
  const dark = await measure();
  await output.screenshot({ path: `${ARTIFACTS}/browser-dark.png` });
  await page.setViewportSize({ width: 760, height: 1600 }); // tall enough for the whole output
  // JupyterLab lays its panels out again on the next frames: wait until the grid fits the narrower window.
  await page.waitForFunction(() => document.querySelector('.jupyter-assets-grid').getBoundingClientRect().right <= 760);
  const narrow = await measure();
  await output.screenshot({ path: `${ARTIFACTS}/browser-narrow.png` });
  console.log(JSON.stringify({ wide, detail, pane, dark, narrow, errors }));
} finally {
  await browser.close();
}
