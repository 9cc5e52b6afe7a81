/**
 * Smoke test for the shared-memory benchmark runner: `--quick --out <tmp>`
 * must finish and report every row with a number. Never asserts speed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const RUNNER = new URL('../../bench/shm/run.js', import.meta.url).pathname;

const ROWS = [
  'ring-64-oneway-readbatch',
  'ring-64-oneway-per-message',
  'ring-64-oneway-batch-publish',
  'ring-64-oneway-readbatch-256k',
  'ring-64-rt-spin',
  'kernel-64-oneway',
  'shm-mailbox-ring-64-oneway',
  'shm-mailbox-priority-64-oneway',
  'threads-postmessage-64-oneway',
  'threads-postmessage-64-rt',
  'threads-sab-ring-64-oneway',
  'threads-sab-ring-64-rt',
  'map-1mib-handover',
  'map-1mib-touch',
  'copy-1mib-ring',
  'c-futex-rt',
  'ipcbox-futex-rt',
  'shm-mailbox-ring-rt',
  'shm-mailbox-priority-rt',
  'ipcbox-semaphore-rt',
  'ipcbox-semaphore-async-rt',
];

interface Row {
  id: string;
  median: number | null;
  error?: string;
}

test('bench/shm/run.js --quick writes every row to the markdown and the JSON', {
  timeout: 300_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipcbox-bench-smoke-'));
  try {
    const out = join(dir, 'shm.md');
    const child = spawn(process.execPath, [RUNNER, '--quick', '--out', out], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, output);
    const json = JSON.parse(readFileSync(join(dir, 'shm.json'), 'utf8')) as { rows: Row[]; quick: boolean };
    assert.equal(json.quick, true);
    assert.deepEqual(
      json.rows.map((r) => r.id),
      ROWS,
    );
    for (const r of json.rows) {
      assert.equal(r.error, undefined, `${r.id}: ${r.error}`);
      assert.ok(
        typeof r.median === 'number' && Number.isFinite(r.median) && r.median > 0,
        `${r.id} has a figure`,
      );
    }
    const md = readFileSync(out, 'utf8');
    assert.match(md, /QUICK MODE/);
    for (const id of ROWS) assert.ok(md.includes(`\`${id}\``), `${id} is in the markdown table`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
