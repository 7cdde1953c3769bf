// Lays out PLAYWRIGHT_BROWSERS_PATH so that `playwright install chromium` finds its browsers already installed and
// `chromium.launch()` runs Debian's Chromium instead of a downloaded one.
//
//   PLAYWRIGHT_BROWSERS_PATH=<dir> node debian-chromium.mjs <folder where playwright is installed> <chromium binary>
//
// The folder names, executable paths and marker files come from that Playwright's own registry (they change between
// Playwright versions), so nothing here hard-codes a revision. Prints {name: executablePath} as JSON.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [installedIn, chromiumBinary] = process.argv.slice(2);
if (!installedIn || !chromiumBinary || !process.env.PLAYWRIGHT_BROWSERS_PATH) {
  console.error('usage: PLAYWRIGHT_BROWSERS_PATH=<dir> node debian-chromium.mjs <playwright folder> <chromium binary>');
  process.exit(2);
}
if (!fs.existsSync(chromiumBinary)) {
  console.error(`no Chromium at ${chromiumBinary}`);
  process.exit(1);
}

// The registry is internal: `lib/coreBundle` since Playwright 1.58, `lib/server/registry/index` before.
const require = createRequire(path.join(path.resolve(installedIn), 'package.json'));
function loadRegistry() {
  const errors = [];
  for (const [module, pick] of [
    ['playwright-core/lib/coreBundle', m => m.registry?.registry],
    ['playwright-core/lib/server/registry/index', m => m.registry]
  ]) {
    try {
      const registry = pick(require(module));
      if (registry?.findExecutable) {
        return registry;
      }
      errors.push(`${module}: no registry in it`);
    } catch (error) {
      errors.push(`${module}: ${error.message}`);
    }
  }
  const version = require('playwright-core/package.json').version;
  throw new Error(`cannot find the browser registry of playwright-core ${version}:\n  ${errors.join('\n  ')}`);
}
const registry = loadRegistry();

// Playwright's ffmpeg (a build of its own that Debian does not package) only records videos, which no test here
// does. `install chromium` still wants it present; this stand-in fails loudly if anything ever calls it.
const ffmpegStub = '#!/bin/sh\necho "ffmpeg is not installed: this browsers folder only provides Debian\'s Chromium" >&2\nexit 1\n';

const laidOut = {};
for (const name of ['chromium', 'chromium-headless-shell', 'ffmpeg']) {
  const executable = registry.findExecutable(name);
  if (!executable) {
    continue; // e.g. no headless shell before Playwright 1.49
  }
  const executablePath = executable.executablePath('javascript');
  const directory = executable.directory;
  if (!executablePath || !directory || !executablePath.startsWith(directory + path.sep)) {
    throw new Error(`unexpected layout for ${name}: ${directory} / ${executablePath}`);
  }
  fs.mkdirSync(path.dirname(executablePath), { recursive: true });
  fs.rmSync(executablePath, { force: true });
  if (name === 'ffmpeg') {
    fs.writeFileSync(executablePath, ffmpegStub, { mode: 0o755 });
  } else {
    fs.symlinkSync(chromiumBinary, executablePath);
  }
  // INSTALLATION_COMPLETE: `install` skips the download; DEPENDENCIES_VALIDATED: it skips the host-library check
  // (the Debian package brings its own dependencies).
  for (const marker of ['INSTALLATION_COMPLETE', 'DEPENDENCIES_VALIDATED']) {
    fs.writeFileSync(path.join(directory, marker), '');
  }
  laidOut[name] = executablePath;
}
if (!laidOut.chromium) {
  throw new Error('the registry knows no chromium');
}
console.log(JSON.stringify(laidOut));
