/**
 * Smoke test of the comparison harness (bench/compare): `--tiny` runs every
 * transport on the smallest workload end to end, writing to a temp dir
 * (never docs/). Every transport must appear in the JSON, either with
 * figures for each scenario it ran or as SKIPPED / FAILED with a reason;
 * the Markdown and at least one chart must be written. It never asserts speed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, ROOT, tempDir } from '../helpers/kernel-harness.js';

interface Cell {
  transport: string;
  scenario: string;
  param: number;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  summary?: { main: { median: number } };
}

interface Report {
  machine: { cpu: string; cores: number; node: string };
  packages: Record<string, string>;
  transports: string[];
  skipped: Record<string, string>;
  cells: Cell[];
}

const TRANSPORTS = [
  'ipcbox-mailbox',
  'ipcbox-direct',
  'ipcbox-direct-kernel',
  'ipcbox-cluster-mailbox',
  'ipcbox-cluster-direct',
  'ipcbox-shm-ring',
  'ipcbox-shm-mailbox',
  'cp-json',
  'cp-advanced',
  'worker-copy',
  'worker-transfer',
  'net-socket',
  'posix-mq',
  'fifo',
  'zeromq',
  'node-ipc',
  'nats',
  'nats-request',
  'redis',
];

/** Built-ins and ipcbox's own finished paths: these must produce figures (libraries and servers may be skipped or fail with a reason). */
const MUST_MEASURE = [
  'ipcbox-mailbox',
  'ipcbox-direct',
  'ipcbox-direct-kernel',
  'ipcbox-shm-ring',
  'cp-json',
  'cp-advanced',
  'worker-copy',
  'worker-transfer',
  'net-socket',
  'posix-mq',
  'fifo',
];

test('bench/compare --tiny reports every transport, with figures or a reason', {
  timeout: 110_000,
}, async () => {
  const dir = tempDir('ipcbox-compare-smoke-');
  try {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'dist', 'bench', 'compare', 'run.js'), '--tiny', '--out', dir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0, output);

    const report = JSON.parse(readFileSync(join(dir, 'benchmarks.json'), 'utf8')) as Report;
    assert.ok(
      report.machine.cpu.length > 0 && report.machine.cores > 0 && report.machine.node.startsWith('v'),
    );
    assert.ok('zeromq' in report.packages && 'ioredis' in report.packages);
    assert.deepEqual(report.transports, TRANSPORTS);
    for (const t of TRANSPORTS) {
      const cells = report.cells.filter((c) => c.transport === t);
      assert.ok(cells.length > 0, `${t} has no cells`);
      if (report.skipped[t] !== undefined) {
        assert.ok(report.skipped[t]!.length > 0, `${t} skipped without a reason`);
        assert.ok(cells.every((c) => c.status === 'skipped'));
        continue;
      }
      for (const c of cells) {
        if (c.status === 'ok') {
          assert.ok(
            c.summary !== undefined && Number.isFinite(c.summary.main.median),
            `${t} ${c.scenario}: no figure`,
          );
        } else {
          assert.ok((c.reason ?? '').length > 0, `${t} ${c.scenario} ${c.status} without a reason`);
        }
      }
      if (!MUST_MEASURE.includes(t)) continue;
      assert.ok(
        cells.some((c) => c.status === 'ok'),
        `${t} measured nothing: ${cells.map((c) => `${c.scenario}: ${c.reason}`).join('; ')}`,
      );
    }
    // The ipcbox kernel path itself must be measured, or nothing is compared to it.
    assert.equal(report.skipped['ipcbox-mailbox'], undefined);

    const md = readFileSync(join(dir, 'benchmarks.md'), 'utf8');
    assert.match(md, /One-way throughput/);
    assert.match(md, /×1\.00/);
    // The message queue and the FIFO get their own section, with ratios to the mailbox, shm mailbox and socket.
    assert.match(
      md,
      /## The OS's own objects: POSIX message queue and FIFO\n[^#]*\| POSIX message queue [^|]*\| \*\*[\d.]+ [kM]?\*\* · ×/,
    );
    if (existsSync(join(dir, 'charts'))) {
      const svgs = readdirSync(join(dir, 'charts')).filter((f) => f.endsWith('.svg'));
      assert.ok(svgs.length > 0);
      for (const f of svgs) {
        assert.match(readFileSync(join(dir, 'charts', f), 'utf8'), /^<svg/);
        assert.ok(md.includes(`charts/${f}`), `${f} is not embedded`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the bench starts its daemons with the node flags of the CLI shebang, and node accepts them', async () => {
  const { shebangFlags } = await import('../../bench/compare/servers.js');
  const flags = shebangFlags(CLI);
  // The daemon's heap flag (see src/cli/main.ts) must survive tsc and be what the bench measures with.
  assert.deepEqual(flags, ['--initial-old-space-size=128']);
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const c = spawn(process.execPath, [...flags, CLI, '--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    c.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    c.on('close', (code) => resolve({ code, out }));
  });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out.trim(), /^\d+\.\d+\.\d+/);
});
