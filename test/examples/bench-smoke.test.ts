/**
 * Smoke test of the benchmark runner: `--quick` runs every transport for a
 * moment and writes its report to a temporary file (never docs/benchmarks.md).
 * It checks that every transport has a row for every size; it never asserts speed.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, runScript, tempDir } from '../helpers/kernel-harness.js';

const TRANSPORTS = [
  'ipcbox (kernel daemon)',
  "child_process IPC (serialization 'json')",
  "child_process IPC (serialization 'advanced')",
  'raw Unix socket (length-prefixed)',
];

interface ReportRow {
  label: string;
  size: number;
  oneWay: { msgsPerSec: { median: number } } | undefined;
  roundTrip: { p50us: { median: number } } | undefined;
}

test('bench --quick measures every transport at 64 B and 64 KiB and writes the report where --out says', async () => {
  const dir = tempDir('ipcbox-bench-smoke-');
  try {
    const out = join(dir, 'benchmarks.md');
    const { code, stdout, stderr } = await runScript(join(ROOT, 'dist', 'bench', 'run.js'), [
      '--quick',
      '--out',
      out,
    ]);
    assert.equal(code, 0, stderr);

    const md = readFileSync(out, 'utf8');
    for (const label of TRANSPORTS) {
      for (const size of ['64 B', '64 KiB']) {
        const row = `| ${label} | ${size} |`;
        assert.ok(md.includes(row), `report lacks the row ${row}`);
        assert.ok(stdout.includes(row), `stdout lacks the row ${row}`);
      }
    }
    assert.match(md, /64 B one-way through the kernel ≥ 1,000,000 msgs\/s/);
    assert.match(md, /Machine: .+ cores/);

    const json = JSON.parse(readFileSync(join(dir, 'benchmarks.json'), 'utf8')) as { rows: ReportRow[] };
    assert.equal(json.rows.length, TRANSPORTS.length * 2);
    for (const row of json.rows) {
      assert.ok(
        row.oneWay !== undefined && row.oneWay.msgsPerSec.median > 0,
        `${row.label} ${row.size}: one-way measured`,
      );
      assert.ok(
        row.roundTrip !== undefined && row.roundTrip.p50us.median > 0,
        `${row.label} ${row.size}: round trip measured`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
