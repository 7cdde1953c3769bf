// The panel on a JupyterLab without a CLIP model, and the API's XSRF protection seen from the JupyterLab page.
// Started by tests/test_labextension.py (one run per CHECK), which checks on the server what the page did.
//
// Environment: LAB_URL, TOKEN, ARTIFACTS, CHROMIUM (see harness.mjs), CHECK and PLAN (JSON):
// - CHECK=no-model: the "by meaning" checkbox is disabled and says why; screenshots in both themes.
// - CHECK=xsrf: with Jupyter's login cookie only (no token), the page fetch()es writes carrying
//   `Authorization: Bearer x` and no XSRF token, then the same writes with the `_xsrf` cookie as X-XSRFToken and no
//   Authorization header. What the server answered, and what it holds after the refused writes, goes to
//   ARTIFACTS/xsrf.json for the test to judge: this script only fails when it cannot do what it is asked.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { api, ARTIFACTS, changeTheme, LAB_URL, loadLab, openBrowser, required, tid } from './harness.mjs';

const CHECK = required('CHECK');
const PLAN = JSON.parse(required('PLAN'));

const session = await openBrowser({ viewport: { width: 1400, height: 900 } });
const { context, page, step, expectedErrors } = session;

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

  await step('JupyterLab loads', () => loadLab(page));

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
      await changeTheme(page, theme);
      await label.hover(); // a native tooltip is not in a screenshot: the note beside the checkbox is
      await panel.screenshot({ path: path.join(ARTIFACTS, file) });
    }
    await changeTheme(page, 'JupyterLab Light');
  });

  await step('no console errors', async () => {
    session.noConsoleErrors();
  });
}

async function xsrf() {
  const results = {};
  await step('JupyterLab loads; the page holds the login and _xsrf cookies', async () => {
    await loadLab(page);
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
  await session.fail(error, `failure-${CHECK}.png`);
} finally {
  await session.close(`console-${CHECK}.log`);
}
