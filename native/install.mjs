// `npm install` runs this (package.json "install"). It must never fail the install: message passing
// needs no addon, and shared memory reports NATIVE_UNAVAILABLE with the fixing command when the addon
// is missing. So: if a binary that loads is already here (a prebuild shipped in the package, or an
// earlier build), do nothing; otherwise compile with node-gyp, and if that fails say why and exit 0.
// `npm rebuild ipcbox --build-from-source` (or IPCBOX_BUILD_FROM_SOURCE=1) compiles even when a
// prebuild fits.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const truthy = (v) => v !== undefined && v !== '' && v !== '0' && v !== 'false';
const fromSource = truthy(process.env.npm_config_build_from_source) || truthy(process.env.IPCBOX_BUILD_FROM_SOURCE);

function loads() {
  try {
    require(require('node-gyp-build').path(here));
    return true;
  } catch {
    return false;
  }
}

if (!fromSource && loads()) process.exit(0);

// npm hands its bundled node-gyp to lifecycle scripts as npm_config_node_gyp; outside npm, PATH's.
const gyp = process.env.npm_config_node_gyp;
const run = gyp
  ? spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: here, stdio: 'inherit' })
  : spawnSync('node-gyp', ['rebuild'], { cwd: here, stdio: 'inherit', shell: process.platform === 'win32' });
if (run.status === 0 && loads()) process.exit(0);

const target = `${process.platform}-${process.arch}, Node ${process.version} (ABI ${process.versions.modules})`;
process.stderr.write(
  `\nipcbox: no prebuilt shared-memory addon fits ${target}, and compiling it failed` +
    `${run.error ? ` (${run.error.message})` : ''}.\n` +
    'ipcbox is installed: message passing works; shared memory (Segment, ShmMailbox, semaphores, ...)\n' +
    'throws NATIVE_UNAVAILABLE. To fix: install a C++ compiler, make and python3, then run\n' +
    '  npm rebuild ipcbox\n\n',
);
process.exit(0);
