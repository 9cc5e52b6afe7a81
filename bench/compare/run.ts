/**
 * The comparison: ipcbox (kernel: direct and mailbox; shared memory: Ring)
 * against Node built-ins (child_process IPC json/advanced, worker_threads
 * copy/transfer, a raw Unix socket), the OS's own objects through ipcbox
 * (POSIX message queue, named FIFO: up to 8 KiB, see UNIX_OBJECTS) and
 * libraries/servers (zeromq ipc://, node-ipc, NATS, Redis), in one run on
 * one machine, same sizes.
 *
 * Scenarios: one-way throughput per size, round-trip latency, fan-out
 * (1 → 4), fan-in (4 → 1), process ring (N = 2, 8, 32). Every cell runs in
 * fresh processes (see roles.ts for how each is measured); every figure is
 * the median of the repetitions after a warm-up, with min–max. An
 * alternative that cannot be loaded or started is reported as SKIPPED with
 * the reason; a cell that fails is reported as FAILED with the error.
 *
 * Output: progress on stderr (one updating line on a TTY), then
 *   <out>/benchmarks.json (raw results + machine), <out>/benchmarks.md,
 *   <out>/charts/*.svg. Defaults: docs/benchmarks.md, docs/charts/,
 *   bench/compare/results/latest.json.
 *
 * Usage: node dist/bench/compare/run.js [--quick | --tiny] [--out DIR] [--only t1,t2]
 *          [--sizes n,n] [--scenarios s,s]
 *   --quick  under two minutes: fewer repetitions, smaller windows, ring N = 2, 8
 *   --tiny   the smoke test: one size (1 KiB), tiny counts, ring N = 2
 *   --sizes  only these one-way (and round-trip) sizes, bytes
 *   --scenarios  only these scenarios (one-way, round-trip, fan-out, fan-in, ring)
 *   --render FILE.json  measure nothing: rewrite the Markdown and charts from a results file
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { CellSpec, PeerResult, PeerSpec, Scenario } from './common.js';
import { sleep } from './common.js';
import { type CellOutcome, type Report, summarize, writeReport } from './report.js';
import { type Server, startKernel, startNats, startRedis } from './servers.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

export const TRANSPORTS = [
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
] as const;
export type Transport = (typeof TRANSPORTS)[number];

export const LABELS: Record<Transport, string> = {
  'ipcbox-mailbox': 'ipcbox mailbox (kernel)',
  'ipcbox-direct': 'ipcbox direct send (one-hop link)',
  'ipcbox-direct-kernel': 'ipcbox direct send (kernel path, links off)',
  'ipcbox-cluster-mailbox': 'ipcbox mailbox across two kernels (NATS)',
  'ipcbox-cluster-direct': 'ipcbox direct send across two kernels (NATS)',
  'ipcbox-shm-ring': 'ipcbox shm Ring (SPSC)',
  'ipcbox-shm-mailbox': 'ipcbox shm mailbox',
  'cp-json': "child_process IPC 'json'",
  'cp-advanced': "child_process IPC 'advanced'",
  'worker-copy': 'worker_threads postMessage (copy)',
  'worker-transfer': 'worker_threads postMessage (transfer)',
  'net-socket': 'raw Unix socket (length-prefixed)',
  'posix-mq': 'POSIX message queue (mq_send/mq_receive)',
  fifo: 'named FIFO (length-prefixed)',
  zeromq: 'zeromq (ipc://)',
  'node-ipc': 'node-ipc (Unix socket)',
  nats: 'NATS (nats-server, loopback)',
  'nats-request': 'NATS request/reply (nats-server, loopback)',
  redis: 'Redis lists (redis-server, loopback)',
};

/** Optional npm packages each transport needs (name, for versions in the report). */
const PACKAGES: Partial<Record<Transport, string>> = {
  zeromq: 'zeromq',
  'node-ipc': 'node-ipc',
  nats: '@nats-io/transport-node',
  'nats-request': '@nats-io/transport-node',
  redis: 'ioredis',
};

interface Plan {
  name: 'full' | 'quick' | 'tiny';
  sizes: number[];
  /** Round trip sizes; empty: round trip not run (tiny: its paths are the ring's). */
  rttSizes: number[];
  fanSize: number;
  ringSizes: number[];
  reps: number;
  /** Streams: measured bytes and messages per sender (upper bounds), the receiver's window. */
  streamBytes: number;
  streamMax: number;
  fanStreamMax: number;
  windowMs: number;
  rttRounds: number;
  rttWarmup: number;
  ringHops: number;
  capMs: number;
}

const PLANS: Record<Plan['name'], Plan> = {
  full: {
    name: 'full',
    sizes: [64, 1024, 65536, 1048576],
    rttSizes: [64, 65536],
    fanSize: 1024,
    ringSizes: [2, 8, 32],
    reps: 5,
    streamBytes: 1024 << 20,
    streamMax: 2_000_000,
    fanStreamMax: 150_000,
    windowMs: 50,
    rttRounds: 2000,
    rttWarmup: 300,
    ringHops: 4000,
    capMs: 3000,
  },
  quick: {
    name: 'quick',
    sizes: [64, 1024, 65536, 1048576],
    rttSizes: [64],
    fanSize: 1024,
    ringSizes: [2, 8],
    reps: 3,
    streamBytes: 192 << 20,
    streamMax: 300_000,
    fanStreamMax: 20_000,
    windowMs: 25,
    rttRounds: 500,
    rttWarmup: 100,
    ringHops: 800,
    capMs: 1500,
  },
  tiny: {
    name: 'tiny',
    sizes: [1024],
    rttSizes: [],
    fanSize: 1024,
    ringSizes: [2],
    reps: 2,
    streamBytes: 1 << 20,
    streamMax: 600,
    fanStreamMax: 300,
    windowMs: 10,
    rttRounds: 50,
    rttWarmup: 10,
    ringHops: 40,
    capMs: 1000,
  },
};

// ------------------------------------------------------------------ topology

function topology(scenario: Scenario, n: number): PeerSpec[] {
  const peer = (index: number, role: PeerSpec['role'], targets: number[], sources: number[]): PeerSpec => ({
    index,
    role,
    targets,
    sources,
  });
  switch (scenario) {
    case 'one-way':
      return [peer(0, 'send', [1], []), peer(1, 'recv', [], [0])];
    case 'round-trip':
      return [peer(0, 'ping', [1], [1]), peer(1, 'echo', [0], [0])];
    case 'fan-out':
      return [peer(0, 'send', [1, 2, 3, 4], []), ...[1, 2, 3, 4].map((i) => peer(i, 'recv', [], [0]))];
    case 'fan-in':
      return [peer(0, 'recv', [], [1, 2, 3, 4]), ...[1, 2, 3, 4].map((i) => peer(i, 'send', [0], []))];
    case 'ring':
      return Array.from({ length: n }, (_, i) => peer(i, 'ring', [(i + 1) % n], [(i + n - 1) % n]));
  }
}

export interface CellPlan {
  transport: Transport;
  scenario: Scenario;
  /** Payload size, or N for the ring. */
  param: number;
}

/**
 * The Unix IPC objects (issue 11) run where they compare: one-way up to 8 KiB
 * (a message queue's largest message by default, fs.mqueue.msgsize_max) and
 * the round trip; no fan or ring cells. At 8 KiB, a size the other cells do
 * not have, they are measured beside the kernel mailbox, the shm mailbox and
 * the raw socket (not in --tiny, which keeps one size).
 */
const UNIX_OBJECTS: readonly Transport[] = ['posix-mq', 'fifo'];
const UNIX_PEERS: readonly Transport[] = ['ipcbox-mailbox', 'ipcbox-shm-mailbox', 'net-socket'];
const UNIX_SIZE = 8192;

function cellsOf(plan: Plan, transports: readonly Transport[]): CellPlan[] {
  const cells: CellPlan[] = [];
  const extra = plan.name !== 'tiny' && transports.some((t) => UNIX_OBJECTS.includes(t)) ? [UNIX_SIZE] : [];
  for (const t of transports) {
    const unix = UNIX_OBJECTS.includes(t);
    const sizes = unix
      ? [...plan.sizes.filter((s) => s < UNIX_SIZE), ...extra]
      : [...plan.sizes, ...(UNIX_PEERS.includes(t) ? extra : [])].sort((a, b) => a - b);
    if (t === 'nats-request') {
      // Request/reply is a round trip by nature: the cells the cross-node round trip is compared with.
      for (const s of plan.rttSizes.length > 0 ? plan.rttSizes : [plan.sizes[0]!])
        cells.push({ transport: t, scenario: 'round-trip', param: s });
      continue;
    }
    for (const s of sizes) cells.push({ transport: t, scenario: 'one-way', param: s });
    for (const s of plan.rttSizes.length > 0 ? plan.rttSizes : [plan.sizes[0]!]) {
      // A message queue holds at most msgsize_max (8 KiB by default) per message: no larger round trip.
      if (unix && s > UNIX_SIZE) continue;
      cells.push({ transport: t, scenario: 'round-trip', param: s });
    }
    if (unix) continue;
    cells.push({ transport: t, scenario: 'fan-out', param: plan.fanSize });
    cells.push({ transport: t, scenario: 'fan-in', param: plan.fanSize });
    for (const n of PLANS.full.ringSizes) cells.push({ transport: t, scenario: 'ring', param: n });
  }
  return cells;
}

// ------------------------------------------------------------------ running one cell

interface Proc {
  child: ChildProcess;
  lines: string[];
  err: string;
  exited: Promise<void>;
}

function spawnProc(args: string[]): Proc {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const p: Proc = { child, lines: [], err: '', exited: new Promise((r) => child.once('exit', () => r())) };
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    p.lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => {
    p.err += d.toString();
  });
  child.stdin!.on('error', () => {});
  return p;
}

async function waitAll(procs: Proc[], word: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const p of procs) {
      const bad = p.lines.find((l) => l.startsWith('ERROR '));
      if (bad !== undefined) throw new Error(bad.slice(6, 600));
    }
    if (procs.every((p) => p.lines.includes(word))) return;
    const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
    if (dead !== undefined && !dead.lines.includes(word)) {
      throw new Error(
        `a peer exited (${dead.child.exitCode ?? dead.child.signalCode}) before ${word}: ${dead.err.trim().slice(-500)}`,
      );
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${word}`);
    await sleep(5);
  }
}

async function runCell(spec: CellSpec): Promise<PeerResult[]> {
  const json = JSON.stringify(spec);
  let procs: Proc[];
  if (spec.transport.startsWith('worker-')) procs = [spawnProc([join(here, 'worker-host.js'), json])];
  else if (spec.transport.startsWith('cp-')) procs = [spawnProc([join(here, 'cp-host.js'), 'host', json])];
  else procs = spec.peers.map((p) => spawnProc([join(here, 'peer.js'), String(p.index), json]));
  const tell = (word: string): void => {
    for (const p of procs) if (p.child.stdin!.writable) p.child.stdin!.write(`${word}\n`);
  };
  const t0 = Date.now();
  const phase = (what: string): void => {
    if (process.env.IPCBOX_CMP_DEBUG) process.stderr.write(`  ${what} +${Date.now() - t0} ms\n`);
  };
  try {
    await waitAll(procs, 'READY', 20_000 + spec.peers.length * 1000);
    phase('ready');
    tell('CONNECT');
    await waitAll(procs, 'CONNECTED', 20_000);
    phase('connected');
    tell('START');
    await waitAll(procs, 'DONE', spec.capMs * (spec.reps + 2) + 20_000);
    phase('done');
    const results: PeerResult[] = [];
    for (const p of procs) {
      for (const l of p.lines)
        if (l.startsWith('RESULT ')) results.push(JSON.parse(l.slice(7)) as PeerResult);
    }
    return results;
  } finally {
    tell('EXIT');
    for (const p of procs) p.child.stdin!.end();
    const all = Promise.all(procs.map((p) => p.exited));
    const graceful = await Promise.race([all.then(() => true), sleep(5000).then(() => false)]);
    if (!graceful) for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await all;
    phase('exited');
  }
}

function specOf(plan: Plan, cell: CellPlan, id: string, dir: string, servers: ServerSet): CellSpec {
  const ring = cell.scenario === 'ring';
  const size = ring ? 64 : cell.param;
  const peers = topology(cell.scenario, ring ? cell.param : 0);
  let window = 0;
  let warmup: number;
  let count = 0;
  if (cell.scenario === 'round-trip') {
    window = plan.rttRounds;
    warmup = plan.rttWarmup;
  } else if (ring) {
    window = Math.max(10, Math.round(plan.ringHops / cell.param));
    warmup = Math.max(2, Math.round(window / 4));
  } else {
    const max = cell.scenario === 'one-way' ? plan.streamMax : plan.fanStreamMax;
    count = Math.max(20, Math.min(max, Math.floor(plan.streamBytes / size)));
    warmup = Math.max(4, Math.round(count / 10));
  }
  return {
    transport: cell.transport,
    scenario: cell.scenario,
    size,
    peers,
    broadcast: cell.scenario === 'fan-out',
    warmup,
    count,
    windowMs: plan.windowMs,
    reps: plan.reps,
    window,
    capMs: plan.capMs,
    dir,
    id,
    kernelSocket: servers.kernel?.address,
    clusterSockets:
      servers.nodeA !== undefined && servers.nodeB !== undefined
        ? [servers.nodeA.address, servers.nodeB.address]
        : undefined,
    port:
      cell.transport === 'nats' || cell.transport === 'nats-request'
        ? servers.nats?.port
        : cell.transport === 'redis'
          ? servers.redis?.port
          : undefined,
  };
}

// ------------------------------------------------------------------ availability

interface ServerSet {
  kernel?: Server;
  nats?: Server;
  redis?: Server;
  /** Two kernels that are one cluster over `nats` (the cross-node transports). */
  nodeA?: Server;
  nodeB?: Server;
}

function packageVersion(name: string): string | undefined {
  try {
    const pj = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string;
    };
    return pj.version;
  } catch {
    return undefined;
  }
}

async function canImport(name: string): Promise<string | undefined> {
  try {
    await import(name);
    return undefined;
  } catch (e) {
    return `npm package ${name} cannot be loaded (${String((e as Error).message).split('\n')[0]}); it is an optionalDependency`;
  }
}

/** Why the shm mailbox cannot run, or undefined when its module loads with the API the adapter uses. */
async function shmMailboxSkip(): Promise<string | undefined> {
  const dir = join(ROOT, 'src', 'backends', 'shm');
  if (!existsSync(dir)) return 'src/backends/shm/ does not exist yet';
  try {
    const { SHM_MAILBOX_MODULE } = await import('./transports/shm-mailbox.js');
    const mod = (await import(SHM_MAILBOX_MODULE)) as { ShmMailbox?: { create?: unknown; open?: unknown } };
    if (typeof mod.ShmMailbox?.create !== 'function' || typeof mod.ShmMailbox.open !== 'function') {
      return 'src/backends/shm/shm-mailbox.ts has no ShmMailbox.create/open yet';
    }
    return undefined;
  } catch (e) {
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    return `no usable shm mailbox in src/backends/shm/ (${files.join(', ')}): ${(e as Error).message.split('\n')[0]}`;
  }
}

async function skipReasons(
  transports: readonly Transport[],
  servers: ServerSet,
  failed: Map<string, string>,
): Promise<Map<Transport, string>> {
  const skip = new Map<Transport, string>();
  if (servers.kernel === undefined) {
    skip.set('ipcbox-mailbox', failed.get('kernel')!);
    skip.set('ipcbox-direct', failed.get('kernel')!);
    skip.set('ipcbox-direct-kernel', failed.get('kernel')!);
  }
  try {
    const { Segment } = await import('../../src/index.js');
    const name = `ipcbox-cmp-probe-${process.pid}`;
    Segment.create(name, { size: 4096 }).close();
    Segment.unlink(name);
  } catch (e) {
    skip.set('ipcbox-shm-ring', `shared memory unavailable: ${(e as Error).message}`);
  }
  try {
    const { MessageQueue } = await import('../../src/index.js');
    const name = `/ipcbox-cmp-probe-${process.pid}`;
    MessageQueue.open(name, { create: true, maxMessages: 1, messageSize: 64 }).close();
    MessageQueue.unlink(name);
  } catch (e) {
    skip.set('posix-mq', `POSIX message queues unavailable: ${(e as Error).message}`);
  }
  try {
    const { mkfifo } = await import('../../src/index.js');
    const dir = mkdtempSync(join(tmpdir(), 'ipcbox-cmp-fifo-'));
    try {
      mkfifo(join(dir, 'probe'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } catch (e) {
    skip.set('fifo', `FIFOs unavailable: ${(e as Error).message}`);
  }
  const shmMailbox = servers.kernel === undefined ? failed.get('kernel') : await shmMailboxSkip();
  if (shmMailbox !== undefined) skip.set('ipcbox-shm-mailbox', shmMailbox);
  for (const [t, pkg] of Object.entries(PACKAGES) as [Transport, string][]) {
    const why = await canImport(pkg);
    if (why !== undefined) skip.set(t, why);
  }
  for (const t of ['nats', 'nats-request'] as const)
    if (!skip.has(t) && servers.nats === undefined) skip.set(t, failed.get('nats')!);
  for (const t of ['ipcbox-cluster-mailbox', 'ipcbox-cluster-direct'] as const) {
    const why = failed.get('nats') ?? failed.get('nodeA') ?? failed.get('nodeB');
    if (servers.nodeA === undefined || servers.nodeB === undefined)
      skip.set(t, why ?? 'the two clustered kernels did not start');
  }
  if (!skip.has('redis') && servers.redis === undefined) skip.set('redis', failed.get('redis')!);
  for (const t of [...skip.keys()]) if (!transports.includes(t)) skip.delete(t);
  return skip;
}

function cellSkip(plan: Plan, cell: CellPlan): string | undefined {
  if (cell.scenario === 'round-trip' && !plan.rttSizes.includes(cell.param)) {
    return `round trip runs only in the quick and full runs (--${plan.name} covers the same two-way paths with the ring)`;
  }
  if (cell.scenario === 'ring' && !plan.ringSizes.includes(cell.param)) {
    return `ring N=${cell.param} runs only in the full run (--${plan.name} keeps N=${plan.ringSizes.join(', ')})`;
  }
  return undefined;
}

// ------------------------------------------------------------------ progress

class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly t0 = Date.now();
  private done = 0;

  constructor(private readonly total: number) {}

  private prefix(): string {
    const s = Math.round((Date.now() - this.t0) / 1000);
    return `[${String(this.done).padStart(3)}/${this.total} ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s]`;
  }

  start(what: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K${this.prefix()} ${what} …`);
  }

  finish(what: string, summary: string): void {
    this.done++;
    const line = `${this.prefix()} ${what}: ${summary}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}\n`);
    else process.stderr.write(`${line}\n`);
  }

  note(text: string): void {
    process.stderr.write(`${this.tty ? '\r\x1b[K' : ''}${text}\n`);
  }
}

function describe(cell: CellPlan): string {
  const p =
    cell.scenario === 'ring'
      ? `N=${cell.param}`
      : cell.param >= 1048576
        ? `${cell.param / 1048576} MiB`
        : cell.param >= 1024
          ? `${cell.param / 1024} KiB`
          : `${cell.param} B`;
  return `${cell.transport} ${cell.scenario} ${p}`;
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      out: { type: 'string' },
      only: { type: 'string' },
      render: { type: 'string' },
      sizes: { type: 'string' },
      scenarios: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      [
        'usage: node dist/bench/compare/run.js [--quick | --tiny] [--out DIR] [--only t1,t2] [--sizes n,n] [--scenarios s,s]',
        '  --quick             under two minutes: fewer repetitions, smaller windows',
        '  --tiny              the smoke test: one size (1 KiB), tiny counts',
        '  --out DIR           write benchmarks.md, benchmarks.json and charts/ there',
        `  --only t1,t2        only these transports: ${TRANSPORTS.join(', ')}`,
        '  --sizes n,n         only these one-way and round-trip sizes (bytes)',
        '  --scenarios s,s     only these scenarios: one-way, round-trip, fan-out, fan-in, ring',
        '  --render FILE.json  measure nothing: rewrite the Markdown and charts from a results file',
        '',
      ].join('\n'),
    );
    return;
  }
  const plan = PLANS[values.tiny ? 'tiny' : values.quick ? 'quick' : 'full'];
  const only = values.only?.split(',').map((s) => s.trim());
  for (const o of only ?? [])
    if (!(TRANSPORTS as readonly string[]).includes(o)) throw new Error(`unknown transport ${o}`);
  const transports = TRANSPORTS.filter((t) => only === undefined || only.includes(t));
  const outDir = values.out === undefined ? undefined : resolve(values.out);
  const mdPath = outDir === undefined ? join(ROOT, 'docs', 'benchmarks.md') : join(outDir, 'benchmarks.md');
  const chartDir = outDir === undefined ? join(ROOT, 'docs', 'charts') : join(outDir, 'charts');
  const jsonPath =
    outDir === undefined
      ? join(ROOT, 'bench', 'compare', 'results', 'latest.json')
      : join(outDir, 'benchmarks.json');

  if (values.render !== undefined) {
    const report = JSON.parse(readFileSync(values.render, 'utf8')) as Report;
    await writeReport(report, mdPath, chartDir, (t) => process.stderr.write(`${t}\n`));
    process.stderr.write(`wrote ${mdPath}, ${chartDir}/ from ${values.render}\n`);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'ipcbox-cmp-'));
  const loadBefore = loadavg()[0]!;
  const started = Date.now();
  const servers: ServerSet = {};
  const failed = new Map<string, string>();
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
    .version;
  const needs = (t: Transport): boolean => transports.includes(t);
  const progress = new Progress(0);
  const tryStart = async (key: keyof ServerSet, start: () => Promise<Server>): Promise<void> => {
    try {
      servers[key] = await start();
    } catch (e) {
      failed.set(key, (e as Error).message);
    }
  };
  try {
    if (
      needs('ipcbox-mailbox') ||
      needs('ipcbox-direct') ||
      needs('ipcbox-direct-kernel') ||
      needs('ipcbox-shm-mailbox')
    ) {
      await tryStart('kernel', () => startKernel(CLI, join(work, 'kernel.sock'), version));
    }
    const acrossNodes = needs('ipcbox-cluster-mailbox') || needs('ipcbox-cluster-direct');
    if (needs('nats') || needs('nats-request') || acrossNodes) await tryStart('nats', () => startNats(work));
    if (acrossNodes && servers.nats !== undefined) {
      const url = `nats://127.0.0.1:${servers.nats.port}`;
      for (const [key, node] of [
        ['nodeA', 'bench-a'],
        ['nodeB', 'bench-b'],
      ] as const) {
        await tryStart(key, () =>
          startKernel(CLI, join(work, `${node}.sock`), version, [
            '--cluster',
            url,
            '--node',
            node,
            '--cluster-name',
            `bench-${process.pid}`,
          ]),
        );
      }
    }
    if (needs('redis')) await tryStart('redis', () => startRedis(work));
    const skip = await skipReasons(transports, servers, failed);
    const sizes = values.sizes?.split(',').map((x) => Number(x.trim()));
    if (sizes?.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`bad --sizes ${values.sizes}`);
    const scenarios = values.scenarios?.split(',').map((x) => x.trim());
    const cells = cellsOf(plan, transports).filter(
      (c) =>
        (scenarios === undefined || scenarios.includes(c.scenario)) &&
        (sizes === undefined ||
          (c.scenario !== 'one-way' && c.scenario !== 'round-trip') ||
          sizes.includes(c.param)),
    );
    const runnable = cells.filter((c) => !skip.has(c.transport) && cellSkip(plan, c) === undefined);
    const bar = new Progress(runnable.length);
    progress.note(
      `ipcbox comparison (${plan.name}): ${runnable.length} cells, ${transports.length - skip.size} transports` +
        [...skip.entries()].map(([t, why]) => `\n  SKIPPED ${t}: ${why}`).join(''),
    );
    const outcomes: CellOutcome[] = [];
    let n = 0;
    if (servers.kernel !== undefined && runnable.some((c) => c.transport.startsWith('ipcbox-'))) {
      // Warm the kernel daemon's JIT once, unrecorded, so the first ipcbox cell is not its warm-up.
      const id = `c${process.pid}x${n++}`;
      const dir = join(work, id);
      mkdirSync(dir);
      const primer: CellPlan = { transport: 'ipcbox-mailbox', scenario: 'one-way', param: 1024 };
      await runCell(specOf(plan, primer, id, dir, servers)).catch(() => []);
      rmSync(dir, { recursive: true, force: true });
    }
    for (const cell of cells) {
      const reason = skip.get(cell.transport) ?? cellSkip(plan, cell);
      if (reason !== undefined) {
        outcomes.push({ ...cell, status: 'skipped', reason });
        continue;
      }
      const id = `c${process.pid}x${n++}`;
      const dir = join(work, id);
      mkdirSync(dir);
      const spec = specOf(plan, cell, id, dir, servers);
      bar.start(describe(cell));
      try {
        const results = await runCell(spec);
        const o: CellOutcome = { ...cell, status: 'ok', spec: specSummary(spec), results };
        o.summary = summarize(o);
        if (o.summary === undefined) {
          o.status = 'failed';
          o.reason = noFigureReason(results, spec);
        } else if (o.summary.stalled !== undefined) {
          o.status = 'failed';
          o.reason = `${o.summary.stalled}; figure before that: ${o.summary.text}`;
        }
        outcomes.push(o);
        bar.finish(describe(cell), o.status === 'ok' ? o.summary!.text : `FAILED: ${o.reason}`);
      } catch (e) {
        const reason = (e as Error).message.replace(/\s+/g, ' ').slice(0, 400);
        outcomes.push({ ...cell, status: 'failed', reason });
        bar.finish(describe(cell), `FAILED: ${reason}`);
      }
      rmSync(dir, { recursive: true, force: true });
      if (cell.transport === 'posix-mq') await unlinkQueues(spec);
    }
    const report: Report = {
      generatedAt: new Date().toISOString(),
      plan: plan.name,
      durationSec: Math.round((Date.now() - started) / 1000),
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: availableParallelism(),
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        os: `${type()} ${release()}`,
        node: process.version,
        loadavg1mBefore: Math.round(loadBefore * 100) / 100,
        loadavg1mAfter: Math.round(loadavg()[0]! * 100) / 100,
      },
      packages: Object.fromEntries(
        ['zeromq', 'node-ipc', '@nats-io/transport-node', 'ioredis', 'vega', 'vega-lite'].map((p) => [
          p,
          packageVersion(p) ?? 'not installed',
        ]),
      ),
      servers: Object.fromEntries(
        Object.values(servers)
          .filter((s): s is Server => s !== undefined)
          .map((s) => [s.name, s.version]),
      ),
      ipcboxVersion: version,
      labels: LABELS,
      transports: [...transports],
      skipped: Object.fromEntries(skip),
      cells: outcomes,
    };
    mkdirSync(dirname(jsonPath), { recursive: true });
    writeFileSync(jsonPath, `${JSON.stringify(report, null, 1)}\n`);
    await writeReport(report, mdPath, chartDir, (t) => progress.note(t));
    progress.note(`wrote ${jsonPath}, ${mdPath}, ${chartDir}/ in ${report.durationSec} s`);
  } finally {
    for (const s of Object.values(servers)) await s?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** A peer that died before its close() leaves its queue behind; queues outlive processes. */
async function unlinkQueues(spec: CellSpec): Promise<void> {
  const { MessageQueue } = await import('../../src/index.js');
  const { queueName } = await import('./transports/posix-mq.js');
  for (const p of spec.peers) {
    try {
      MessageQueue.unlink(queueName(spec, p.index));
    } catch {
      // Unlinked by its peer, as it should be.
    }
  }
}

function noFigureReason(results: PeerResult[], spec: CellSpec): string {
  const streams = results.filter((r) => r.kind === 'stream');
  if (streams.length === 0) return 'no measurement came back';
  const got = streams.reduce((a, r) => a + r.received, 0);
  const want = streams.reduce((a, r) => a + r.expected, 0);
  const who = `the receiver${streams.length > 1 ? 's' : ''} got ${got} of ${want} messages`;
  // A receiver that got every END marker was not idle: the stream was too short to measure.
  if (streams.every((r) => !r.idle)) return `no complete window: ${who}, then the senders' END`;
  return `no complete window: ${who} (warm-up ${spec.warmup} per sender) before going idle for ${2000 + spec.capMs / 4} ms`;
}

function specSummary(spec: CellSpec): CellOutcome['spec'] {
  const stream = spec.count > 0;
  return {
    size: spec.size,
    peers: spec.peers.length,
    warmup: spec.warmup,
    ...(stream ? { count: spec.count, windowMs: spec.windowMs } : { reps: spec.reps, window: spec.window }),
  };
}

await main();
