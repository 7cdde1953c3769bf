// What the browser tests in this folder share: their environment, the server as the test sees it, Debian's
// Chromium with a page on JupyterLab, the console log and the steps.
//
// Environment: LAB_URL (http://127.0.0.1:<port>/...), TOKEN (Jupyter's), ARTIFACTS (folder for screenshots and
// logs), CHROMIUM (default /usr/bin/chromium).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

export const LAB_URL = required('LAB_URL').replace(/\/?$/, '/');
export const TOKEN = required('TOKEN');
export const ARTIFACTS = required('ARTIFACTS');
export const TIMEOUT = 30_000; // generous: a loaded CI machine, and a first JupyterLab load
export const tid = id => `[data-testid="${id}"]`;

fs.mkdirSync(ARTIFACTS, { recursive: true });

/** The server as the test sees it: Jupyter's token, never the page's cookie. */
export async function api(pathname) {
  const response = await fetch(new URL(pathname, LAB_URL), { headers: { Authorization: `token ${TOKEN}` } });
  const body = (response.headers.get('content-type') || '').includes('json') ? await response.json() : null;
  return { status: response.status, body };
}

/**
 * Debian's Chromium with one page, every console message of which goes to the log with the step it came in;
 * console errors and uncaught errors are collected in `errors` (uncaught ones in `uncaught` too).
 */
export async function openBrowser({ viewport, timeout = TIMEOUT, permissions = [] }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync'
    ]
  });
  const context = await browser.newContext({ viewport });
  if (permissions.length) {
    await context.grantPermissions(permissions, { origin: new URL(LAB_URL).origin });
  }
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);

  const session = {
    browser,
    context,
    page,
    current: '(start)',
    consoleLog: [],
    errors: [],
    uncaught: [],
    // Errors a step provokes on purpose (Chromium logs every 4xx answer as a console error); each one excuses one.
    expectedErrors: []
  };
  page.on('console', message => {
    const where = message.location();
    const line = `[${message.type()}] during "${session.current}": ${message.text()} (${where.url}:${where.lineNumber})`;
    session.consoleLog.push(line);
    if (message.type() === 'error') {
      const expected = session.expectedErrors.findIndex(pattern => pattern.test(line));
      if (expected >= 0) {
        session.expectedErrors.splice(expected, 1);
      } else {
        session.errors.push(line);
      }
    }
  });
  page.on('pageerror', error => {
    const line = `[uncaught] during "${session.current}": ${error.stack || error}`;
    session.consoleLog.push(line);
    session.errors.push(line);
    session.uncaught.push(String(error.stack || error));
  });

  session.step = async (name, body) => {
    session.current = name;
    const started = Date.now();
    await body();
    console.log(`ok  ${name} (${Date.now() - started} ms)`);
  };

  session.noConsoleErrors = () => {
    assert.deepEqual(session.errors, [], `console errors:\n${session.errors.join('\n')}`);
    assert.deepEqual(session.expectedErrors, [], 'an error provoked on purpose never showed');
  };

  /** For the catch of a run: what failed, where, and a screenshot of the page as it was. */
  session.fail = async (error, screenshot) => {
    console.error(`FAILED at step "${session.current}":\n${error.stack || error}`);
    if (session.errors.length) {
      console.error(`console errors so far:\n${session.errors.join('\n')}`);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, screenshot) }).catch(() => {});
    process.exitCode = 1;
  };

  /** For the finally of a run: the console log to ARTIFACTS, and the browser closed. */
  session.close = async logFile => {
    fs.writeFileSync(path.join(ARTIFACTS, logFile), session.consoleLog.join('\n') + '\n');
    await browser.close();
  };

  return session;
}

/** Loads JupyterLab; the token in the URL logs the browser in (from then on Jupyter's login cookie does). */
export async function loadLab(page) {
  await page.goto(`${LAB_URL}lab?token=${TOKEN}`);
  await page.waitForFunction(() => window.jupyterapp !== undefined, null, { timeout: 90_000 });
  await page.evaluate(() => window.jupyterapp.restored.then(() => true));
}

export async function runCommand(page, id, args = {}) {
  // Resolves to true: what a command returns (a widget ...) cannot cross into Node.
  return page.evaluate(([id, args]) => window.jupyterapp.commands.execute(id, args).then(() => true), [id, args]);
}

export async function waitForTheme(page, name) {
  await page.waitForFunction(theme => document.body.dataset.jpThemeName === theme, name);
  // A theme change shows JupyterLab's splash screen over everything and removes it 200 ms after the new theme is in
  // place. Until then it would cover the screenshot; and a second change within those 200 ms makes JupyterLab remove
  // the splash twice (an uncaught NotFoundError from its own code).
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
}

export async function changeTheme(page, theme) {
  await runCommand(page, 'apputils:change-theme', { theme });
  await waitForTheme(page, theme);
}
