/**
 * Benchmark runner: ipcbox through the kernel daemon against child_process
 * IPC (json and advanced serialization) and a raw length-prefixed Unix
 * socket, in one run, between the same kind of processes (fresh child node
 * processes running dist/bench/workers/*.js for every measurement).
 *
 * For 64 B and 64 KiB payloads it measures one-way throughput (msgs/s) and
 * round-trip latency (p50/p99), repeats every measurement, reports the median
 * with the spread (min-max), prints a table, and writes docs/benchmarks-kernel.md
 * and bench/results/latest.json.
 *
 * Usage: node dist/bench/run.js [--quick] [--reps N] [--only ipcbox,socket,...]
 *          [--out FILE.md] [--json FILE.json] [--cpu-prof-dir DIR]
 *   --quick         tiny time windows and one repetition (a smoke test, numbers meaningless)
 *   --out           where the markdown report goes (default docs/benchmarks-kernel.md);
 *                   the JSON then defaults to the same path with .json
 *   --cpu-prof-dir  run the ipcbox processes (daemon, sender, receiver) under --cpu-prof
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Mode, OneWayResult, RoundTripResult, RunResult, ScenarioConfig } from './scenario.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (this file runs from dist/bench). */
const ROOT = resolve(here, '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const WORKERS = join(here, 'workers');

const TRANSPORTS = ['ipcbox', 'cp-json', 'cp-advanced', 'socket'] as const;
type Transport = (typeof TRANSPORTS)[number];

const LABELS: Record<Transport, string> = {
  ipcbox: 'ipcbox (kernel daemon)',
  'cp-json': "child_process IPC (serialization 'json')",
  'cp-advanced': "child_process IPC (serialization 'advanced')",
  socket: 'raw Unix socket (length-prefixed)',
};

const SIZES = [64, 64 * 1024];
const MODES: Mode[] = ['one-way', 'round-trip'];

interface Timing {
  warmupMs: number;
  oneWayMs: number;
  roundTripMs: number;
  reps: number;
}

const FULL: Timing = { warmupMs: 300, oneWayMs: 1500, roundTripMs: 1000, reps: 3 };
const QUICK: Timing = { warmupMs: 30, oneWayMs: 100, roundTripMs: 100, reps: 1 };

// ---------------------------------------------------------------- worker processes

interface Worker {
  child: ChildProcess;
  line(prefix: string, timeoutMs: number): Promise<string>;
  exited: Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

function spawnNode(args: string[], execArgv: string[] = []): Worker {
  const child = spawn(process.execPath, [...execArgv, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  let onLine: (() => void) | undefined;
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    onLine?.();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    child,
    exited,
    output: () => `${lines.join('\n')}\n${err}`,
    line(prefix, timeoutMs) {
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(() => fail(`no "${prefix}" within ${timeoutMs} ms`), timeoutMs);
        const fail = (why: string): void => {
          clearTimeout(timer);
          onLine = undefined;
          reject(
            new Error(
              `${args
                .map((a) => a.replace(ROOT, '.'))
                .slice(0, 2)
                .join(' ')}: ${why}\n${err}`,
            ),
          );
        };
        const check = (): void => {
          const found = lines.find((l) => l.startsWith(prefix));
          if (found === undefined) return;
          clearTimeout(timer);
          onLine = undefined;
          resolveLine(found);
        };
        onLine = check;
        check();
        exited.then(() => {
          if (onLine === check) {
            check();
            if (onLine === check) fail(`exited (${child.exitCode ?? child.signalCode}) first`);
          }
        });
      });
    },
    async stop() {
      if (!running()) return;
      // Give a worker that is finishing a moment to exit by itself (so --cpu-prof can write).
      const graceful = await Promise.race([exited.then(() => true), sleep(2000).then(() => false)]);
      if (!graceful && running()) child.kill('SIGKILL');
      await exited;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function parseResult(line: string): RunResult {
  return JSON.parse(line.slice('RESULT '.length)) as RunResult;
}

// ---------------------------------------------------------------- one measurement per transport

interface RunContext {
  config: ScenarioConfig;
  deadlineMs: number;
  dir: string;
  profile: ((role: string) => string[]) | undefined;
}

async function runIpcbox(ctx: RunContext): Promise<RunResult> {
  const socketPath = join(ctx.dir, 'kernel.sock');
  const prof = ctx.profile ?? (() => []);
  const daemon = spawnNode([CLI, '--socket', socketPath, 'daemon'], prof('kernel'));
  const peers: Worker[] = [];
  try {
    await daemon.line('ipcbox kernel listening', 15_000);
    const config = JSON.stringify({ ...ctx.config, socketPath, mailbox: 'bench' });
    const [receiving, sending] =
      ctx.config.mode === 'one-way' ? ['receiver', 'sender'] : ['responder', 'pinger'];
    const peer = join(WORKERS, 'ipcbox-peer.js');
    const receiver = spawnNode([peer, receiving!, config], prof(receiving!));
    peers.push(receiver);
    await receiver.line('READY', 15_000);
    const sender = spawnNode([peer, sending!, config], prof(sending!));
    peers.push(sender);
    const measurer = ctx.config.mode === 'one-way' ? receiver : sender;
    return parseResult(await measurer.line('RESULT ', ctx.deadlineMs));
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
    if (daemon.child.exitCode === null) daemon.child.kill('SIGTERM');
    await daemon.stop();
  }
}

async function runChildProcess(ctx: RunContext, serialization: 'json' | 'advanced'): Promise<RunResult> {
  const parent = spawnNode([
    join(WORKERS, 'child-process-peer.js'),
    'parent',
    JSON.stringify({ ...ctx.config, serialization }),
  ]);
  try {
    return parseResult(await parent.line('RESULT ', ctx.deadlineMs));
  } finally {
    await parent.stop();
  }
}

async function runSocket(ctx: RunContext): Promise<RunResult> {
  const config = JSON.stringify({ ...ctx.config, socketPath: join(ctx.dir, 'raw.sock') });
  const peer = join(WORKERS, 'socket-peer.js');
  const server = spawnNode([peer, 'server', config]);
  const workers = [server];
  try {
    await server.line('READY', 15_000);
    const client = spawnNode([peer, 'client', config]);
    workers.push(client);
    const measurer = ctx.config.mode === 'one-way' ? server : client;
    return parseResult(await measurer.line('RESULT ', ctx.deadlineMs));
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

function runOne(transport: Transport, ctx: RunContext): Promise<RunResult> {
  switch (transport) {
    case 'ipcbox':
      return runIpcbox(ctx);
    case 'cp-json':
      return runChildProcess(ctx, 'json');
    case 'cp-advanced':
      return runChildProcess(ctx, 'advanced');
    case 'socket':
      return runSocket(ctx);
  }
}

// ---------------------------------------------------------------- statistics and report

interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: values };
}

interface Row {
  transport: Transport;
  label: string;
  size: number;
  oneWay: { msgsPerSec: Spread; mbPerSec: Spread } | undefined;
  roundTrip: { p50us: Spread; p99us: Spread } | undefined;
}

interface Machine {
  cpu: string;
  cores: number;
  node: string;
  os: string;
  memoryGiB: number;
  /** 1-minute load average when the run started and ended: anything else running skews the numbers. */
  loadBefore: number;
  loadAfter: number;
}

function machine(): Machine {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    node: process.version,
    os: `${type()} ${release()} ${arch()}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadBefore: loadavg()[0]!,
    loadAfter: Number.NaN,
  };
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits = 1): string => n.toFixed(digits);
const sizeLabel = (size: number): string => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`);
const ratio = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');

function tableLines(rows: Row[]): string[] {
  const out = [
    '| transport | size | one-way msgs/s (median) | spread (min-max) | one-way MB/s | round trip p50 µs (median) | spread (min-max) | round trip p99 µs (median) |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ow = r.oneWay;
    const rt = r.roundTrip;
    out.push(
      `| ${r.label} | ${sizeLabel(r.size)} | ${ow ? int(ow.msgsPerSec.median) : '-'} | ${
        ow ? `${int(ow.msgsPerSec.min)}-${int(ow.msgsPerSec.max)}` : '-'
      } | ${ow ? fixed(ow.mbPerSec.median) : '-'} | ${rt ? fixed(rt.p50us.median) : '-'} | ${
        rt ? `${fixed(rt.p50us.min)}-${fixed(rt.p50us.max)}` : '-'
      } | ${rt ? fixed(rt.p99us.median) : '-'} |`,
    );
  }
  return out;
}

function find(rows: Row[], transport: Transport, size: number): Row | undefined {
  return rows.find((r) => r.transport === transport && r.size === size);
}

function ratioLines(rows: Row[]): string[] {
  const out = [
    '| size | compared with | ipcbox one-way msgs/s ÷ theirs (higher is better) | ipcbox p50 round trip ÷ theirs (lower is better) |',
    '|---|---|---:|---:|',
  ];
  for (const size of SIZES) {
    const ours = find(rows, 'ipcbox', size);
    if (ours === undefined) continue;
    for (const t of TRANSPORTS) {
      if (t === 'ipcbox') continue;
      const theirs = find(rows, t, size);
      if (theirs === undefined) continue;
      const tp =
        ours.oneWay && theirs.oneWay
          ? ratio(ours.oneWay.msgsPerSec.median / theirs.oneWay.msgsPerSec.median)
          : 'n/a';
      const lat =
        ours.roundTrip && theirs.roundTrip
          ? ratio(ours.roundTrip.p50us.median / theirs.roundTrip.p50us.median)
          : 'n/a';
      out.push(`| ${sizeLabel(size)} | ${LABELS[t]} | ${tp} | ${lat} |`);
    }
  }
  return out;
}

interface Goal {
  text: string;
  met: boolean | undefined;
  detail: string;
}

function goals(rows: Row[]): Goal[] {
  const rate = (t: Transport): number | undefined => find(rows, t, 64)?.oneWay?.msgsPerSec.median;
  const ours = rate('ipcbox');
  const cps = [rate('cp-json'), rate('cp-advanced')].filter((n): n is number => n !== undefined);
  const cp = cps.length > 0 ? Math.max(...cps) : undefined;
  const sock = rate('socket');
  const judge = (ok: boolean | undefined): boolean | undefined => (ours === undefined ? undefined : ok);
  return [
    {
      text: '64 B one-way through the kernel ≥ 1,000,000 msgs/s',
      met: judge(ours !== undefined && ours >= 1_000_000),
      detail: ours === undefined ? 'not measured' : `${int(ours)} msgs/s`,
    },
    {
      text: '≥ 5x child_process IPC (the faster serialization)',
      met: cp === undefined ? undefined : judge(ours !== undefined && ours >= 5 * cp),
      detail:
        ours === undefined || cp === undefined ? 'not measured' : `${ratio(ours / cp)} of ${int(cp)} msgs/s`,
    },
    {
      text: '≥ 1/3 of raw socket',
      met: sock === undefined ? undefined : judge(ours !== undefined && ours >= sock / 3),
      detail:
        ours === undefined || sock === undefined
          ? 'not measured'
          : `${ratio(ours / sock)} of ${int(sock)} msgs/s`,
    },
  ];
}

function markdown(rows: Row[], m: Machine, timing: Timing, quick: boolean, date: string): string {
  const verdict = (g: Goal): string =>
    g.met === undefined ? 'not measured' : g.met ? '**met**' : '**not met**';
  return [
    '# Benchmarks',
    '',
    quick
      ? '> Produced with `--quick` (tiny windows, one repetition): a smoke test, the numbers mean nothing.'
      : '> Produced by `npm run bench` (`node dist/bench/run.js`). Never edit by hand; rerun it.',
    '',
    `Run ${date}. Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}.`,
    `Load average (1 min): ${m.loadBefore.toFixed(2)} before the run, ${m.loadAfter.toFixed(2)} after it (the run itself keeps about two processes busy; a high value before it means other work shared the CPUs).`,
    '',
    '## Goal',
    '',
    'From the issue: "64 B one-way through the kernel ≥ 1,000,000 msgs/s, ≥ 5x child_process IPC, ≥ 1/3 of raw socket".',
    '',
    ...goals(rows).map((g) => `- ${g.text}: ${verdict(g)} (${g.detail})`),
    '',
    '## Results',
    '',
    ...tableLines(rows),
    '',
    '## Ratios (ipcbox against each alternative, medians)',
    '',
    ...ratioLines(rows),
    '',
    '## Method',
    '',
    `- Every measurement runs in fresh child processes spawned by the runner from the same compiled worker scripts (\`dist/bench/workers/*.js\`); nothing is measured in the runner itself. ${timing.reps} repetition(s) per cell, interleaved across transports; the table shows the median and the min-max spread over repetitions.`,
    `- One-way: the sender streams for ${timing.warmupMs} ms (warm-up), sends a START marker, streams for ${timing.oneWayMs} ms, then sends an END marker; the receiver counts the messages between the markers on its own clock. Backpressure is respected everywhere: ipcbox sends \`await mailbox.send(buf)\` to a mailbox of capacity 1024 (sends within credit need no round trip) and the receiver iterates with \`messages({ prefetch: 512 })\`; child_process keeps at most 1 MiB of sends unconfirmed by their callback; the raw socket copies frames into 256 KiB batches and waits for 'drain' when \`write\` asks it to.`,
    `- Round trip: one message in flight, echoed back by the peer; ${timing.warmupMs} ms warm-up, then every round is timed for ${timing.roundTripMs} ms; p50/p99 are per run, the table shows their medians over repetitions. ipcbox pings through one mailbox and pongs through another.`,
    '- ipcbox involves three processes (sender, kernel daemon, receiver) and two socket hops per message; the others involve two processes and one hop. On a 2-core machine the kernel competes with the peers for CPU.',
    "- child_process sends Buffers: with 'json' a Buffer travels as `{type:'Buffer',data:[...]}` (one number per byte), with 'advanced' as a structured clone; the raw socket and ipcbox send the bytes as they are.",
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      reps: { type: 'string' },
      only: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      'cpu-prof-dir': { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const timing = { ...(quick ? QUICK : FULL) };
  if (values.reps !== undefined) {
    timing.reps = Number(values.reps);
    if (!Number.isInteger(timing.reps) || timing.reps < 1)
      throw new RangeError('--reps must be a positive integer');
  }
  const transports: Transport[] =
    values.only === undefined
      ? [...TRANSPORTS]
      : values.only.split(',').map((t) => {
          if (!(TRANSPORTS as readonly string[]).includes(t))
            throw new RangeError(`--only: unknown transport ${t}`);
          return t as Transport;
        });
  const out = resolve(values.out ?? join(ROOT, 'docs', 'benchmarks-kernel.md'));
  const jsonOut = resolve(
    values.json ??
      (values.out !== undefined
        ? `${out.replace(/\.md$/, '')}.json`
        : join(ROOT, 'bench', 'results', 'latest.json')),
  );
  const profDir = values['cpu-prof-dir'] === undefined ? undefined : resolve(values['cpu-prof-dir']);
  if (profDir !== undefined) mkdirSync(profDir, { recursive: true });

  const m = machine();
  process.stderr.write(`machine: ${m.cpu}, ${m.cores} cores, Node ${m.node}\n`);
  const raw: { transport: Transport; size: number; mode: Mode; rep: number; result: RunResult }[] = [];
  const total = timing.reps * SIZES.length * MODES.length * transports.length;
  let done = 0;
  const dir = mkdtempSync(join(tmpdir(), 'ipcbox-bench-'));
  try {
    for (let rep = 0; rep < timing.reps; rep++) {
      for (const size of SIZES) {
        for (const mode of MODES) {
          for (const transport of transports) {
            const measureMs = mode === 'one-way' ? timing.oneWayMs : timing.roundTripMs;
            const config: ScenarioConfig = { mode, size, warmupMs: timing.warmupMs, measureMs };
            const profile =
              profDir === undefined || transport !== 'ipcbox'
                ? undefined
                : (role: string) => [
                    '--cpu-prof',
                    '--cpu-prof-dir',
                    profDir,
                    '--cpu-prof-name',
                    `ipcbox-${mode}-${size}-r${rep}-${role}.cpuprofile`,
                  ];
            const result = await runOne(transport, {
              config,
              deadlineMs: timing.warmupMs + measureMs + 60_000,
              dir,
              profile,
            });
            raw.push({ transport, size, mode, rep, result });
            done++;
            const shown =
              result.mode === 'one-way'
                ? `${int(result.msgsPerSec)} msgs/s`
                : `p50 ${fixed(result.p50us)} µs, p99 ${fixed(result.p99us)} µs (${result.rounds} rounds)`;
            process.stderr.write(`[${done}/${total}] ${transport} ${mode} ${sizeLabel(size)}: ${shown}\n`);
          }
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  m.loadAfter = loadavg()[0]!;
  const rows: Row[] = [];
  for (const transport of transports) {
    for (const size of SIZES) {
      const pick = <R extends RunResult>(mode: Mode) =>
        raw
          .filter((r) => r.transport === transport && r.size === size && r.mode === mode)
          .map((r) => r.result as R);
      const ow = pick<OneWayResult>('one-way');
      const rt = pick<RoundTripResult>('round-trip');
      rows.push({
        transport,
        label: LABELS[transport],
        size,
        oneWay:
          ow.length === 0
            ? undefined
            : {
                msgsPerSec: spread(ow.map((r) => r.msgsPerSec)),
                mbPerSec: spread(ow.map((r) => r.mbPerSec)),
              },
        roundTrip:
          rt.length === 0
            ? undefined
            : { p50us: spread(rt.map((r) => r.p50us)), p99us: spread(rt.map((r) => r.p99us)) },
      });
    }
  }

  const date = new Date().toISOString();
  const report = markdown(rows, m, timing, quick, date);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, report);
  mkdirSync(dirname(jsonOut), { recursive: true });
  writeFileSync(
    jsonOut,
    `${JSON.stringify({ date, quick, machine: m, timing, rows, runs: raw }, null, 2)}\n`,
  );
  process.stdout.write(`${tableLines(rows).join('\n')}\n\n${ratioLines(rows).join('\n')}\n\n`);
  for (const g of goals(rows)) {
    process.stdout.write(
      `goal: ${g.text}: ${g.met === undefined ? 'not measured' : g.met ? 'met' : 'NOT met'} (${g.detail})\n`,
    );
  }
  process.stdout.write(`\nwrote ${out} and ${jsonOut}\n`);
}

await main();
