// The panel on a JupyterLab without a CLIP model, and the API's XSRF protection seen from the JupyterLab page.
// Started by tests/test_labextension.py (one run per CHECK), which checks on the server what the page did.
//
// Environment: LAB_URL, TOKEN, ARTIFACTS, CHROMIUM (as for panel.mjs), CHECK and PLAN (JSON):
// - CHECK=no-model: the "by meaning" checkbox is disabled and says why; screenshots in both themes.
// - CHECK=xsrf: with Jupyter's login cookie only (no token), the page fetch()es writes carrying
//   `Authorization: Bearer x` and no XSRF token, then the same writes with the `_xsrf` cookie as X-XSRFToken and no
//   Authorization header. What the server answered, and what it holds after the refused writes, goes to
//   ARTIFACTS/xsrf.json for the test to judge: this script only fails when it cannot do what it is asked.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const LAB_URL = required('LAB_URL').replace(/\/?$/, '/');
const TOKEN = required('TOKEN');
const ARTIFACTS = required('ARTIFACTS');
const CHECK = required('CHECK');
const PLAN = JSON.parse(required('PLAN'));
const TIMEOUT = 30_000;
const tid = id => `[data-testid="${id}"]`;

fs.mkdirSync(ARTIFACTS, { recursive: true });

/** The server as the test sees it: Jupyter's token, never the page's cookie. */
async function api(pathname) {
  const response = await fetch(new URL(pathname, LAB_URL), { headers: { Authorization: `token ${TOKEN}` } });
  const body = (response.headers.get('content-type') || '').includes('json') ? await response.json() : null;
  return { status: response.status, body };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);

let current = '(start)';
const consoleLog = [];
const errors = [];
const expectedErrors = []; // errors a step provokes on purpose; each one excuses one
page.on('console', message => {
  const where = message.location();
  const line = `[${message.type()}] during "${current}": ${message.text()} (${where.url}:${where.lineNumber})`;
  consoleLog.push(line);
  if (message.type() === 'error') {
    const expected = expectedErrors.findIndex(pattern => pattern.test(line));
    if (expected >= 0) {
      expectedErrors.splice(expected, 1);
    } else {
      errors.push(line);
    }
  }
});
page.on('pageerror', error => {
  const line = `[uncaught] during "${current}": ${error.stack || error}`;
  consoleLog.push(line);
  errors.push(line);
});

async function step(name, body) {
  current = name;
  const started = Date.now();
  await body();
  console.log(`ok  ${name} (${Date.now() - started} ms)`);
}

async function waitForTheme(name) {
  await page.waitForFunction(theme => document.body.dataset.jpThemeName === theme, name);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' }); // see panel.mjs
}

async function changeTheme(theme) {
  await page.evaluate(theme => window.jupyterapp.commands.execute('apputils:change-theme', { theme }).then(() => true), theme);
  await waitForTheme(theme);
}

async function loadLab() {
  // The token in the URL logs the browser in: from then on Jupyter's login cookie authenticates the page.
  await page.goto(`${LAB_URL}lab?token=${TOKEN}`);
  await page.waitForFunction(() => window.jupyterapp !== undefined, null, { timeout: 90_000 });
  await page.evaluate(() => window.jupyterapp.restored.then(() => true));
}

/** A fetch() from the page: same-origin, so the browser adds Jupyter's cookies, and nothing else. */
function fetchFromPage(method, pathname, headers, body) {
  return page.evaluate(
    async ([method, url, headers, body]) => {
      const response = await fetch(url, { method, headers, body: JSON.stringify(body), credentials: 'same-origin' });
      const text = await response.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON (Jupyter's own HTML error page): the status says enough
      }
      return { status: response.status, body: json, text: json ? undefined : text.slice(0, 500) };
    },
    [method, new URL(pathname, LAB_URL).href, headers, body]
  );
}

async function noModel() {
  const panel = page.locator(tid('assets-panel'));
  const byMeaning = page.locator(tid('assets-by-meaning'));
  const label = page.locator(tid('assets-by-meaning-label'));
  const note = page.locator(tid('assets-by-meaning-note'));

  await step('JupyterLab loads', loadLab);

  await step('without a model, the "by meaning" checkbox is disabled and says why', async () => {
    // The panel's probe (a one-item search by text) is answered 409 model_unavailable: Chromium logs that answer.
    expectedErrors.push(/status of 409 \(Conflict\) \(\S+\/api\/v1\/assets\?text=x/);
    await page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-assets-panel"]').click();
    await panel.waitFor({ state: 'visible' });
    await note.waitFor({ state: 'visible' });
    assert.equal(await byMeaning.isDisabled(), true);
    assert.equal(await byMeaning.isChecked(), false);
    for (const element of [label, byMeaning]) {
      const title = await element.getAttribute('title');
      assert.match(title, /c\.AssetsApp\.clip_pretrained/, title);
      assert.match(title, /needs a CLIP model/, title);
    }
    assert.equal(await label.getAttribute('aria-disabled'), 'true');
    assert.equal((await note.textContent()).trim(), 'needs a CLIP model');
    assert.equal(await page.locator(tid('assets-search')).getAttribute('placeholder'), 'Search assets');
    console.log(`    tooltip: ${JSON.stringify(await label.getAttribute('title'))}`);
  });

  await step('screenshots in the light and the dark theme', async () => {
    for (const [theme, file] of [['JupyterLab Light', 'no-model-light.png'], ['JupyterLab Dark', 'no-model-dark.png']]) {
      await changeTheme(theme);
      await label.hover(); // a native tooltip is not in a screenshot: the note beside the checkbox is
      await panel.screenshot({ path: path.join(ARTIFACTS, file) });
    }
    await changeTheme('JupyterLab Light');
  });

  await step('no console errors', async () => {
    assert.deepEqual(errors, [], `console errors:\n${errors.join('\n')}`);
    assert.deepEqual(expectedErrors, [], 'an error provoked on purpose never showed');
  });
}

async function xsrf() {
  const results = {};
  await step('JupyterLab loads; the page holds the login and _xsrf cookies', async () => {
    await loadLab();
    const cookies = await context.cookies(LAB_URL);
    assert.ok(cookies.some(cookie => cookie.name === '_xsrf'), JSON.stringify(cookies.map(c => c.name)));
  });
  const xsrfCookie = (await context.cookies(LAB_URL)).find(cookie => cookie.name === '_xsrf').value;
  const json = { 'Content-Type': 'application/json' };
  const bogusBearer = { ...json, Authorization: 'Bearer x' };
  const withXsrf = { ...json, 'X-XSRFToken': xsrfCookie };

  await step('writes with a bogus Bearer header and no XSRF token', async () => {
    results.bearerDelete = await fetchFromPage('POST', 'api/v1/assets/batch-delete', bogusBearer, { ids: [PLAN.assetId] });
    results.assetAfterBearerDelete = (await api(`api/v1/assets/${PLAN.assetId}`)).status;
    results.bearerKey = await fetchFromPage('POST', 'api/v1/system/api-keys', bogusBearer, {
      name: PLAN.refusedKeyName,
      scopes: ['assets:read']
    });
    const keys = await api('api/v1/system/api-keys');
    assert.equal(keys.status, 200, JSON.stringify(keys.body));
    results.keysAfterBearerKey = keys.body.data.map(key => key.name);
  });

  await step('the same writes with the _xsrf cookie as X-XSRFToken and no Authorization header', async () => {
    results.xsrfDelete = await fetchFromPage('POST', 'api/v1/assets/batch-delete', withXsrf, { ids: [PLAN.assetId] });
    results.xsrfKey = await fetchFromPage('POST', 'api/v1/system/api-keys', withXsrf, {
      name: PLAN.keyName,
      scopes: ['assets:read']
    });
  });
  fs.writeFileSync(path.join(ARTIFACTS, 'xsrf.json'), JSON.stringify(results, null, 2) + '\n');
}

try {
  if (CHECK === 'no-model') {
    await noModel();
  } else if (CHECK === 'xsrf') {
    await xsrf();
  } else {
    throw new Error(`unknown CHECK ${CHECK}`);
  }
} catch (error) {
  console.error(`FAILED at step "${current}":\n${error.stack || error}`);
  await page.screenshot({ path: path.join(ARTIFACTS, `failure-${CHECK}.png`) }).catch(() => {});
  process.exitCode = 1;
} finally {
  fs.writeFileSync(path.join(ARTIFACTS, `console-${CHECK}.log`), consoleLog.join('\n') + '\n');
  await browser.close();
}
