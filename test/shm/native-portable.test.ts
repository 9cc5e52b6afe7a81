/**
 * The addon's sources build where Linux's futex and mqueue headers do not exist (macOS, the BSDs): each
 * is compiled here with IPCBOX_PORTABLE, which takes every non-Linux branch, warnings as errors. (What those branches do
 * at run time — futex calls failing ENOSYS, surfaced as NOT_SUPPORTED — is checked by the shm tests'
 * error mapping; this machine cannot run them.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/kernel-harness.js';

const headers = [join(dirname(dirname(process.execPath)), 'include', 'node'), '/usr/include/node'].find((d) =>
  existsSync(join(d, 'node.h')),
);

for (const source of ['ipcbox_shm.cc', 'ipcbox_unix.cc']) {
  test(`native/${source} compiles without Linux-only headers (IPCBOX_PORTABLE, -Werror)`, {
    skip: headers === undefined ? 'no Node headers on this machine' : false,
  }, () => {
    const flags = ['-std=c++17', '-fsyntax-only', '-Wall', '-Wextra', '-Werror', '-Wno-unused-parameter'];
    const portable = spawnSync(
      'g++',
      [
        ...flags,
        '-Wno-cast-function-type',
        '-DIPCBOX_PORTABLE',
        `-I${headers}`,
        join(ROOT, 'native', source),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(portable.error, undefined, 'g++ runs');
    assert.equal(portable.status, 0, portable.stderr);
  });
}
