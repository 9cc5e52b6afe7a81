/**
 * Turning raw peer results into figures (median and min–max over the
 * repetitions), the Markdown report with every figure as a ratio to the
 * ipcbox mailbox, and the charts (vega-lite specs rendered to SVG headlessly
 * with vega's `renderer: 'none'` view; no hand-written drawing).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { PeerResult, RingResult, RttResult, Scenario, Stat, StreamResult } from './common.js';
import { stat } from './common.js';

export const BASELINE = 'ipcbox-mailbox';
/** The OS objects of issue 11, and what their section compares them with (ratios to each). */
const UNIX_OBJECTS = ['posix-mq', 'fifo'];
const UNIX_BASES = ['ipcbox-mailbox', 'ipcbox-shm-mailbox', 'net-socket'];

export interface Summary {
  /** msgs/s (streams; fan-out: per receiver) or µs (round trip p50, ring per hop). */
  main: Stat;
  mbPerSec?: Stat;
  p99?: Stat;
  p999?: Stat;
  /** Messages sent but never received (pub/sub that dropped, or a receiver that gave up). */
  lost?: number;
  hopsPerLap?: number;
  /** A receiver gave up after a silence while messages were still missing (stalled or dropped). */
  stalled?: string;
  text: string;
}

export interface CellOutcome {
  transport: string;
  scenario: Scenario;
  param: number;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  spec?: {
    size: number;
    peers: number;
    warmup: number;
    count?: number;
    windowMs?: number;
    reps?: number;
    window?: number;
  };
  results?: PeerResult[];
  summary?: Summary;
}

export interface Report {
  generatedAt: string;
  plan: string;
  durationSec: number;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number;
    os: string;
    node: string;
    loadavg1mBefore: number;
    loadavg1mAfter: number;
  };
  packages: Record<string, string>;
  servers: Record<string, string>;
  ipcboxVersion: string;
  labels: Record<string, string>;
  transports: string[];
  skipped: Record<string, string>;
  cells: CellOutcome[];
}

// ------------------------------------------------------------------ formatting

function sig(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return '–';
  if (x >= 10 ** digits) return Math.round(x).toLocaleString('en-US');
  return Number(x.toPrecision(digits)).toString();
}

export function fmtRate(x: number): string {
  if (x >= 1e6) return `${sig(x / 1e6)} M`;
  if (x >= 1e3) return `${sig(x / 1e3)} k`;
  return sig(x);
}

const fmtUs = (x: number): string => `${sig(x)} µs`;
const fmtMB = (x: number): string => `${sig(x)} MB/s`;

export function fmtSize(n: number): string {
  if (n >= 1048576) return `${n / 1048576} MiB`;
  if (n >= 1024) return `${n / 1024} KiB`;
  return `${n} B`;
}

// ------------------------------------------------------------------ summaries

export function summarize(o: CellOutcome): Summary | undefined {
  const results = o.results ?? [];
  if (o.scenario === 'round-trip') {
    const r = results.find((x): x is RttResult => x.kind === 'rtt');
    const reps = r?.reps.filter((x) => x.rounds > 0) ?? [];
    const main = stat(reps.map((x) => x.p50us));
    if (main === undefined) return undefined;
    const p99 = stat(reps.map((x) => x.p99us))!;
    const p999 = stat(reps.map((x) => x.p999us))!;
    return {
      main,
      p99,
      p999,
      text: `p50 ${fmtUs(main.median)}, p99 ${fmtUs(p99.median)}, p999 ${fmtUs(p999.median)}`,
    };
  }
  if (o.scenario === 'ring') {
    const r = results.find((x): x is RingResult => x.kind === 'ring');
    const main = stat((r?.reps ?? []).filter((x) => x.hops > 0).map((x) => (x.seconds * 1e6) / x.hops));
    if (main === undefined) return undefined;
    return { main, hopsPerLap: r!.hopsPerLap, text: `${fmtUs(main.median)} per hop` };
  }
  const streams = results.filter((x): x is StreamResult => x.kind === 'stream');
  const rates = streams.flatMap((s) =>
    s.windows.filter((w) => w.seconds > 0).map((w) => w.messages / w.seconds),
  );
  const main = stat(rates);
  if (main === undefined) return undefined;
  const size = o.spec?.size ?? o.param;
  const mb = (x: number): number => (x * size) / 1e6;
  const mbPerSec = { median: mb(main.median), min: mb(main.min), max: mb(main.max), n: main.n };
  const sent = results.reduce((a, x) => a + (x.kind === 'sent' ? x.messages : 0), 0);
  const received = streams.reduce((a, s) => a + s.received, 0);
  const lost = Math.max(0, (o.scenario === 'fan-out' ? sent * streams.length : sent) - received);
  const per = o.scenario === 'fan-out' ? ' per receiver' : '';
  const gaveUp = streams.some((s) => s.idle);
  const want = o.scenario === 'fan-out' ? sent * streams.length : sent;
  return {
    main,
    mbPerSec,
    lost,
    stalled:
      gaveUp && lost > 0
        ? `the receiver went silent for seconds with ${received} of ${want} messages delivered (stalled or dropped)`
        : undefined,
    text: `${fmtRate(main.median)} msg/s${per}, ${fmtMB(mbPerSec.median)}${lost > 0 ? `, ${lost} lost` : ''}`,
  };
}

// ------------------------------------------------------------------ markdown

function find(r: Report, t: string, s: Scenario, p: number): CellOutcome | undefined {
  return r.cells.find((c) => c.transport === t && c.scenario === s && c.param === p);
}

function ratio(value: number, base: number | undefined): string {
  if (base === undefined || !Number.isFinite(base) || base === 0) return '';
  const x = value / base;
  return ` · ×${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(2) : x.toPrecision(2)}`;
}

function cellText(
  r: Report,
  c: CellOutcome | undefined,
  kind: 'rate' | 'latency',
  notes: Map<string, number>,
): string {
  if (c === undefined) return '';
  if (c.status !== 'ok') {
    const reason = c.status === 'skipped' && r.skipped[c.transport] !== undefined ? undefined : c.reason;
    if (reason === undefined) return 'skipped';
    let k = notes.get(reason);
    if (k === undefined) {
      k = notes.size + 1;
      notes.set(reason, k);
    }
    return `${c.status} [${k}]`;
  }
  const s = c.summary!;
  const base = find(r, BASELINE, c.scenario, c.param)?.summary?.main.median;
  if (kind === 'rate') {
    const mb = s.mbPerSec !== undefined && c.scenario === 'one-way' ? ` · ${fmtMB(s.mbPerSec.median)}` : '';
    const lost = s.lost !== undefined && s.lost > 0 ? ` · ${s.lost} lost` : '';
    return `**${fmtRate(s.main.median)}**${mb} (${fmtRate(s.main.min)}–${fmtRate(s.main.max)})${ratio(s.main.median, base)}${lost}`;
  }
  return `**${fmtUs(s.main.median)}** (${sig(s.main.min)}–${sig(s.main.max)})${ratio(s.main.median, base)}`;
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 0 ? ':---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function params(r: Report, s: Scenario): number[] {
  return [...new Set(r.cells.filter((c) => c.scenario === s).map((c) => c.param))].sort((a, b) => a - b);
}

/** Cells where an alternative beats the ipcbox mailbox by more than 10 %. */
export function behind(r: Report): { cell: CellOutcome; base: CellOutcome; factor: number }[] {
  const out: { cell: CellOutcome; base: CellOutcome; factor: number }[] = [];
  for (const c of r.cells) {
    if (c.status !== 'ok' || c.transport.startsWith('ipcbox')) continue;
    const b = find(r, BASELINE, c.scenario, c.param);
    if (b?.summary === undefined) continue;
    const higherBetter = c.scenario === 'one-way' || c.scenario === 'fan-out' || c.scenario === 'fan-in';
    const factor = higherBetter
      ? c.summary!.main.median / b.summary.main.median
      : b.summary.main.median / c.summary!.main.median;
    if (factor > 1.1) out.push({ cell: c, base: b, factor });
  }
  return out.sort((a, b) => b.factor - a.factor);
}

/** Why an alternative can beat the kernel path (printed for those that do). */
const WHY: Record<string, string> = {
  'net-socket':
    'one socket hop between the two processes and no per-message work beyond a 4-byte length; the ipcbox kernel path is two socket hops through a third process (the kernel daemon), with a frame header, a mailbox queue and credits per message. On 2 cores the daemon competes with both peers for CPU.',
  'worker-copy':
    'threads of one process: no system call on the data path, messages move between isolates in memory.',
  'worker-transfer': 'threads of one process: the ArrayBuffer is handed over, not copied through a socket.',
  'cp-advanced':
    'one pipe hop between parent and child, written by libuv in C++; ipcbox makes two hops through the daemon.',
  'cp-json': 'one pipe hop between parent and child; ipcbox makes two hops through the daemon.',
  zeromq:
    'libzmq batches messages on a background I/O thread in C++ and moves them over one ipc:// socket hop, without a broker process.',
  nats: 'nats-server is a Go broker using other cores efficiently and batching per subscriber; it is also a third process, like the ipcbox kernel.',
  redis:
    'the Redis list costs are paid in C by redis-server; BLMPOP fetches up to 256 messages per round trip.',
  'node-ipc': 'one socket hop, no broker.',
  'posix-mq':
    'one system call per message each way (mq_send, mq_receive) straight between the two processes, no daemon hop and no framing; a full or empty queue (10 messages deep) costs a poll wake-up.',
  fifo: 'one pipe hop between the two processes, the same frames and writes as the raw socket; no daemon, no per-message header beyond 4 bytes.',
};

/** Known causes of failures, printed under the table of reasons. */
const FAILURE_NOTES: Record<string, string> = {
  'node-ipc':
    "node-ipc 9's socket reader appends every chunk to one pending string and only parses when a chunk happens to end on the '\\f' delimiter (node-ipc/dao/client.js and socketServer.js, the `data` handlers); under a continuous stream of messages of 1 KiB and more that rarely happens, so messages stop being delivered (and each append re-scans an ever longer string) until the sender pauses. Ping-pong and the ring, where the sender waits, work.",
};

export function markdown(r: Report, chartFiles: string[], chartBase: string): string {
  const label = (t: string): string => r.labels[t] ?? t;
  const notes = new Map<string, number>();
  const parts: string[] = [];
  parts.push('# ipcbox compared with other IPC for Node.js');
  parts.push(
    `Generated by \`npm run bench\` (\`node dist/bench/compare/run.js${r.plan === 'full' ? '' : ` --${r.plan}`}\`) on ${r.generatedAt.slice(0, 10)}, in ${r.durationSec} s. ` +
      'Do not edit by hand; the raw results are in the JSON file written next to it (bench/compare/results/latest.json).',
  );
  if (r.plan !== 'full')
    parts.push(`> **${r.plan} run**: small windows and few repetitions; figures are indicative only.`);
  parts.push('## Machine');
  parts.push(
    [
      `- CPU: ${r.machine.cpu}, ${r.machine.cores} cores available, ${r.machine.memoryGiB} GiB RAM; ${r.machine.os}`,
      `- Node ${r.machine.node}; ipcbox ${r.ipcboxVersion}`,
      `- Load average (1 min) when the run started / ended: ${r.machine.loadavg1mBefore} / ${r.machine.loadavg1mAfter} (anything above ~0 means other work shared the cores)`,
      `- Packages: ${Object.entries(r.packages)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
      `- Servers: ${
        Object.entries(r.servers)
          .map(([k, v]) => `${k}: ${v}`)
          .join('; ') || 'none'
      }`,
    ].join('\n'),
  );
  parts.push('## How it is measured');
  parts.push(
    [
      '- Every cell runs in fresh processes started for it (worker_threads: threads of one fresh process; child_process: the forked parent/children), all on this machine in one run, one cell at a time. Servers (ipcbox kernel daemon, nats-server, redis-server) are started by the benchmark on loopback / in a temp dir and shared by the cells of the run.',
      '- **Streams** (one-way, fan-out, fan-in): each sender sends a warm-up (10 % of its messages, unmeasured), then a bounded number of messages (at most 1 GiB / 2 M messages per sender, fan-out/fan-in 150 k; a sender also stops after 3 s), then an end marker. The receiver cuts the measured part into windows of ≥ 50 ms on its own clock; figure = median over the windows (fan-out: over the windows of all four receivers, so it is the rate *each* receiver gets), with min–max in parentheses. The bounded counts keep transports without backpressure (worker_threads, NATS, Redis, node-ipc) from running away with memory. A receiver that goes silent for seconds while messages are missing fails the cell (stalled or dropped).',
      '- **Round trip**: a pinger sends a message and waits for the echo of the same size; p50/p99/p999 per repetition, figure = median over the repetitions.',
      '- **Ring**: N processes pass a 64 B token around; figure = time per hop (one process handing the token to the next). child_process can only connect a parent with its children, so its "ring" is a chain where the token goes down and back up (2(N−1) hops per lap).',
      `- **Ratios** (× …) compare with **${label(BASELINE)}** in the same cell: for throughput > 1 means faster than ipcbox, for latency and per-hop time > 1 means slower than ipcbox.`,
      '- JSON-only transports (child_process `json`, node-ipc) carry the payload as a string of the same number of ASCII characters (a Buffer would travel as a JSON array of numbers); the others carry bytes. The raw socket receiver reads the payload bytes as they come and counts frames (the floor for a socket); ipcbox receivers get a `Message` per payload. The receivers of ipcbox, worker_threads and the raw socket read every payload byte (one native scan: readEvery in common.ts), and ipcbox releases each message (a mapped one is handed back).',
      '- ipcbox kernel paths involve three processes (sender, daemon, receiver) and two socket hops per message; point-to-point alternatives have one hop.',
    ].join('\n'),
  );

  const goalSection = (title: string, intro: string, rows: string[][]): void => {
    if (rows.length === 0) return;
    parts.push(`## ${title}, from this run`, intro, table(['goal', 'reached', 'ratio', 'met'], rows));
  };
  goalSection(
    'Same-host goals (issue 10)',
    "Each row compares two cells of this run, whose receivers read every payload byte (see How it is measured). The shm mailbox row is its default store, the one with the whole contract (`queue: 'priority'`); the lock-free ring store and the parked round trip against a C futex are measured by `npm run bench:shm` (docs/benchmarks-shm.md), not here.",
    goalRows(r),
  );
  goalSection(
    'Cross-node goals (issue 9)',
    "A process connected to kernel B sends to a mailbox homed on kernel A (or to a process on A), the two kernels one cluster over the run's nats-server; NATS is raw nats.js between two processes through the same server: publish/subscribe, and for the round trip request/reply when the run has it (else a publish echoed back; each row says which). See docs/cluster.md, Speed, for what limits these.",
    clusterGoalRows(r),
  );

  const sizes = params(r, 'one-way');
  parts.push('## One-way throughput (msgs/s; higher is better)');
  parts.push(
    table(
      ['transport', ...sizes.map(fmtSize)],
      r.transports.map((t) => [
        label(t),
        ...sizes.map((s) => cellText(r, find(r, t, 'one-way', s), 'rate', notes)),
      ]),
    ),
  );
  const rtt = params(r, 'round-trip');
  parts.push('## Round-trip latency (lower is better)');
  parts.push(
    table(
      ['transport', ...rtt.flatMap((s) => [`${fmtSize(s)} p50`, 'p99', 'p999'])],
      r.transports.map((t) => [
        label(t),
        ...rtt.flatMap((s) => {
          const c = find(r, t, 'round-trip', s);
          if (c?.status !== 'ok') return [cellText(r, c, 'latency', notes), '', ''];
          const base = find(r, BASELINE, 'round-trip', s)?.summary;
          const sm = c.summary!;
          return [
            cellText(r, c, 'latency', notes),
            `${fmtUs(sm.p99!.median)}${ratio(sm.p99!.median, base?.p99?.median)}`,
            `${fmtUs(sm.p999!.median)}${ratio(sm.p999!.median, base?.p999?.median)}`,
          ];
        }),
      ]),
    ),
  );
  const unix = UNIX_OBJECTS.filter((t) => r.transports.includes(t));
  if (unix.length > 0) {
    parts.push("## The OS's own objects: POSIX message queue and FIFO");
    parts.push(
      [
        `- Through ipcbox's \`MessageQueue\` and \`openFifo\` (docs/unix.md), two processes, no kernel daemon. Message queue: as deep as the OS lets an unprivileged user make it (\`fs.mqueue.msg_max\`, 10 by default) with messages of the cell's size; \`fs.mqueue.msgsize_max\` (8 KiB by default) is why these objects run no larger cells. FIFO: the raw socket's length-prefixed frames and writes, over a pipe buffer (64 KiB) instead of a Unix socket.`,
        `- Each figure with its ratio to ${UNIX_BASES.map(label).join(', ')} in the same run (throughput: > 1 is faster; latency: > 1 is slower).`,
      ].join('\n'),
    );
    const cols: { head: string; scenario: Scenario; size: number; p99?: boolean }[] = [
      ...params(r, 'one-way')
        .filter((sz) =>
          r.cells.some((c) => unix.includes(c.transport) && c.scenario === 'one-way' && c.param === sz),
        )
        .map((sz) => ({
          head: `${fmtSize(sz)} one-way (msgs/s)`,
          scenario: 'one-way' as Scenario,
          size: sz,
        })),
      ...params(r, 'round-trip').flatMap((sz) => [
        { head: `${fmtSize(sz)} round trip p50`, scenario: 'round-trip' as Scenario, size: sz },
        { head: 'p99', scenario: 'round-trip' as Scenario, size: sz, p99: true },
      ]),
    ];
    const figure = (t: string, col: (typeof cols)[number]): number | undefined => {
      const sm = find(r, t, col.scenario, col.size)?.summary;
      return col.p99 ? sm?.p99?.median : sm?.main.median;
    };
    parts.push(
      table(
        ['transport', ...cols.map((c) => c.head)],
        unix.map((t) => [
          label(t),
          ...cols.map((col) => {
            const c = find(r, t, col.scenario, col.size);
            const v = figure(t, col);
            if (c?.status !== 'ok' || v === undefined) return cellText(r, c, 'rate', notes);
            const shown = col.scenario === 'one-way' ? fmtRate(v) : fmtUs(v);
            const ratios = UNIX_BASES.map((b) => ratio(v, figure(b, col)).replace(' · ', '') || '–');
            return `**${shown}** · ${ratios.join(' / ')}`;
          }),
        ]),
      ),
    );
  }
  const fan = params(r, 'fan-out')[0] ?? 1024;
  parts.push(`## Fan-out and fan-in (${fmtSize(fan)} messages, msgs/s; higher is better)`);
  parts.push(
    [
      '- **fan-out**: one sender, four receivers that each get every message; the figure is per receiver. ipcbox mailbox: one broadcast mailbox; NATS: one subject with four subscribers; zeromq: PUB (noDrop) / SUB; node-ipc: `server.broadcast`; the others send to each receiver in turn (ipcbox direct, shm Ring, sockets, child_process, worker_threads, Redis lists).',
      '- **fan-in**: four senders, one receiver; the figure is the total the receiver gets.',
    ].join('\n'),
  );
  parts.push(
    table(
      ['transport', 'fan-out (per receiver)', 'fan-in (total)'],
      r.transports.map((t) => [
        label(t),
        cellText(r, find(r, t, 'fan-out', fan), 'rate', notes),
        cellText(r, find(r, t, 'fan-in', fan), 'rate', notes),
      ]),
    ),
  );
  const ns = params(r, 'ring');
  parts.push('## Process ring (64 B token, time per hop; lower is better)');
  parts.push(
    table(
      ['transport', ...ns.map((n) => `N = ${n}`)],
      r.transports.map((t) => [
        label(t),
        ...ns.map((n) => cellText(r, find(r, t, 'ring', n), 'latency', notes)),
      ]),
    ),
  );
  if (chartFiles.length > 0) {
    parts.push('## Charts');
    parts.push(chartFiles.map((f) => `![${f}](${join(chartBase, f)})`).join('\n\n'));
  }
  const b = behind(r);
  parts.push('## Where ipcbox is behind');
  if (b.length === 0) parts.push(`No alternative beats ${label(BASELINE)} by more than 10 % in any cell.`);
  else {
    parts.push(
      `Cells where an alternative beats ${label(BASELINE)} by more than 10 % (factor = how much better the alternative is):`,
    );
    parts.push(
      b
        .map(
          (x) =>
            `- ${label(x.cell.transport)}, ${x.cell.scenario} ${x.cell.scenario === 'ring' ? `N = ${x.cell.param}` : fmtSize(x.cell.param)}: ×${x.factor.toFixed(2)}`,
        )
        .join('\n'),
    );
    const ts = [...new Set(b.map((x) => x.cell.transport))].filter((t) => WHY[t] !== undefined);
    parts.push('Why:');
    parts.push(ts.map((t) => `- **${label(t)}**: ${WHY[t]}`).join('\n'));
  }
  const skipped = Object.entries(r.skipped);
  if (skipped.length > 0 || notes.size > 0) {
    parts.push('## Skipped and failed');
    parts.push(
      [
        ...skipped.map(([t, why]) => `- **${label(t)}** SKIPPED: ${why}`),
        ...[...notes.entries()].map(([why, k]) => `- [${k}] ${why}`),
      ].join('\n'),
    );
    const failedTransports = [
      ...new Set(r.cells.filter((c) => c.status === 'failed').map((c) => c.transport)),
    ];
    const known = failedTransports.filter((t) => FAILURE_NOTES[t] !== undefined);
    if (known.length > 0)
      parts.push(known.map((t) => `- **${label(t)}** failures: ${FAILURE_NOTES[t]}`).join('\n'));
  }
  return `${parts.join('\n\n')}\n`;
}

// ------------------------------------------------------------------ charts

// biome-ignore lint/suspicious/noExplicitAny: vega / vega-lite are dev dependencies loaded at run time
type Any = any;

async function render(vega: Any, vl: Any, spec: object): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg: string = await view.toSVG();
  view.finalize();
  return svg;
}

/** The same-host goals of issue 10 as rows: what, the figures, the ratio, met or not (only those whose cells ran). */
/** Rows of a goals table: `higher` for throughput goals (a ≥ want × b), `lower` for 64 B round trips. */
function goalTable(r: Report) {
  const rows: string[][] = [];
  const main = (t: string, sc: Scenario, p: number): number | undefined => {
    const c = find(r, t, sc, p);
    return c?.status === 'ok' ? c.summary?.main.median : undefined;
  };
  const mbps = (t: string, p: number): number | undefined => {
    const c = find(r, t, 'one-way', p);
    return c?.status === 'ok' ? c.summary?.mbPerSec?.median : undefined;
  };
  const label = (t: string): string => r.labels[t] ?? t;
  const higher = (goal: string, a: string, b: string, sc: Scenario, p: number, want: number): void => {
    const x = main(a, sc, p);
    const y = main(b, sc, p);
    if (x === undefined || y === undefined) return;
    rows.push([
      goal,
      `${fmtRate(x)} vs ${fmtRate(y)} msgs/s`,
      `×${(x / y).toPrecision(2)}`,
      x / y >= want ? 'yes' : '**no**',
    ]);
  };
  const lower = (goal: string, a: string, b: string, want: number): void => {
    const x = main(a, 'round-trip', 64);
    const y = main(b, 'round-trip', 64);
    if (x === undefined || y === undefined) return;
    rows.push([
      goal,
      `${fmtUs(x)} vs ${fmtUs(y)}`,
      `×${(x / y).toPrecision(2)}`,
      x / y <= want ? 'yes' : '**no**',
    ]);
  };
  return { rows, higher, lower, mbps, label };
}

/** The cross-node goals of issue 9: cluster cells against raw NATS through the same nats-server. */
function clusterGoalRows(r: Report): string[][] {
  const { rows, higher, lower } = goalTable(r);
  // The issue's yardstick for the round trip is NATS request/reply (older results: the pub/sub echo).
  const rtt = find(r, 'nats-request', 'round-trip', 64)?.status === 'ok' ? 'nats-request' : 'nats';
  for (const [t, what] of [
    ['ipcbox-cluster-mailbox', 'mailbox'],
    ['ipcbox-cluster-direct', 'direct send'],
  ] as const) {
    for (const size of [64, 64 * 1024])
      higher(
        `${what} across nodes ${fmtSize(size)} one-way ≥ 0.5× NATS pub/sub`,
        t,
        'nats',
        'one-way',
        size,
        0.5,
      );
    lower(
      `${what} across nodes 64 B round trip p50 ≤ 2× NATS ${rtt === 'nats' ? 'pub/sub echo' : 'request/reply'}`,
      t,
      rtt,
      2,
    );
  }
  return rows;
}

function goalRows(r: Report): string[][] {
  const { rows, higher, lower, mbps, label } = goalTable(r);
  higher(
    'direct send 64 B one-way ≥ 0.5× raw Unix socket',
    'ipcbox-direct',
    'net-socket',
    'one-way',
    64,
    0.5,
  );
  lower('direct send 64 B round trip p50 ≤ 1.3× raw Unix socket', 'ipcbox-direct', 'net-socket', 1.3);
  lower("direct send 64 B round trip p50 below child_process 'json'", 'ipcbox-direct', 'cp-json', 1);
  higher(
    'kernel mailbox 64 B one-way ≥ 1/3 raw Unix socket',
    'ipcbox-mailbox',
    'net-socket',
    'one-way',
    64,
    1 / 3,
  );
  lower("kernel mailbox 64 B round trip p50 ≤ child_process 'json'", 'ipcbox-mailbox', 'cp-json', 1);
  for (const t of ['ipcbox-mailbox', 'ipcbox-direct', 'ipcbox-shm-mailbox']) {
    higher(
      `${label(t)} 1 MiB one-way ≥ worker_threads transfer`,
      t,
      'worker-transfer',
      'one-way',
      1 << 20,
      1,
    );
    const m = mbps(t, 1 << 20);
    if (m !== undefined)
      rows.push([
        `${label(t)} 1 MiB one-way ≥ 2 GB/s`,
        fmtMB(m),
        `×${(m / 2000).toPrecision(2)} of 2 GB/s`,
        m >= 2000 ? 'yes' : '**no**',
      ]);
  }
  higher(
    'shm mailbox 64 B one-way ≥ 0.5× SPSC Ring',
    'ipcbox-shm-mailbox',
    'ipcbox-shm-ring',
    'one-way',
    64,
    0.5,
  );
  return rows;
}

function chartSpecs(r: Report): { file: string; spec: object }[] {
  const label = (t: string): string => r.labels[t] ?? t;
  const order = r.transports.map(label);
  const ok = r.cells.filter((c) => c.status === 'ok');
  const color = { field: 'transport', type: 'nominal', sort: order, scale: { scheme: 'tableau20' } };
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', background: 'white' };
  const specs: { file: string; spec: object }[] = [];
  const tput = ok
    .filter((c) => c.scenario === 'one-way')
    .map((c) => ({
      transport: label(c.transport),
      size: fmtSize(c.param),
      bytes: c.param,
      mbps: c.summary!.mbPerSec!.median,
      lo: c.summary!.mbPerSec!.min,
      hi: c.summary!.mbPerSec!.max,
    }));
  if (tput.length > 0) {
    const sizeSort = [...new Set(tput.sort((a, b) => a.bytes - b.bytes).map((d) => d.size))];
    const enc = {
      x: { field: 'size', type: 'ordinal', sort: sizeSort, title: 'message size' },
      xOffset: { field: 'transport', sort: order },
    };
    specs.push({
      file: 'throughput.svg',
      spec: {
        ...base,
        title: 'One-way throughput by message size (MB/s, log scale; higher is better)',
        width: 860,
        height: 340,
        data: { values: tput },
        layer: [
          {
            mark: 'bar',
            encoding: {
              ...enc,
              y: { field: 'mbps', type: 'quantitative', scale: { type: 'log' }, title: 'MB/s' },
              color,
              tooltip: [{ field: 'transport' }, { field: 'mbps', format: '.1f' }],
            },
          },
          {
            mark: { type: 'rule', color: 'black' },
            encoding: { ...enc, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
          },
        ],
      },
    });
  }
  const lat = ok
    .filter((c) => c.scenario === 'round-trip')
    .flatMap((c) =>
      (['p50', 'p99', 'p999'] as const).map((p) => ({
        transport: label(c.transport),
        size: fmtSize(c.param),
        percentile: p,
        us:
          p === 'p50'
            ? c.summary!.main.median
            : p === 'p99'
              ? c.summary!.p99!.median
              : c.summary!.p999!.median,
      })),
    );
  if (lat.length > 0) {
    specs.push({
      file: 'latency.svg',
      spec: {
        ...base,
        title: 'Round-trip latency by transport (µs, log scale; lower is better)',
        data: { values: lat },
        facet: { row: { field: 'size', title: 'message size' } },
        spec: {
          width: 860,
          height: 220,
          mark: 'bar',
          encoding: {
            x: {
              field: 'transport',
              type: 'nominal',
              sort: order,
              title: null,
              axis: { labelAngle: -30, labelLimit: 260 },
            },
            xOffset: { field: 'percentile', sort: ['p50', 'p99', 'p999'] },
            y: { field: 'us', type: 'quantitative', scale: { type: 'log' }, title: 'µs' },
            color: { field: 'percentile', type: 'nominal', sort: ['p50', 'p99', 'p999'] },
          },
        },
      },
    });
  }
  const ring = ok
    .filter((c) => c.scenario === 'ring')
    .map((c) => ({
      transport: label(c.transport),
      n: `N = ${c.param}`,
      np: c.param,
      us: c.summary!.main.median,
    }));
  if (ring.length > 0) {
    const nSort = [...new Set(ring.sort((a, b) => a.np - b.np).map((d) => d.n))];
    specs.push({
      file: 'ring.svg',
      spec: {
        ...base,
        title: 'Process ring: time per hop (µs, log scale; lower is better)',
        width: 860,
        height: 300,
        data: { values: ring },
        mark: 'bar',
        encoding: {
          x: { field: 'n', type: 'ordinal', sort: nSort, title: 'processes in the ring' },
          xOffset: { field: 'transport', sort: order },
          y: { field: 'us', type: 'quantitative', scale: { type: 'log' }, title: 'µs per hop' },
          color,
        },
      },
    });
  }
  const fan = ok
    .filter((c) => c.scenario === 'fan-out' || c.scenario === 'fan-in')
    .map((c) => ({ transport: label(c.transport), scenario: c.scenario, rate: c.summary!.main.median }));
  if (fan.length > 0) {
    specs.push({
      file: 'fan.svg',
      spec: {
        ...base,
        title: 'Fan-out (per receiver) and fan-in (total), msgs/s, log scale; higher is better',
        width: 560,
        height: 300,
        data: { values: fan },
        mark: 'bar',
        encoding: {
          x: { field: 'scenario', type: 'nominal', title: null },
          xOffset: { field: 'transport', sort: order },
          y: { field: 'rate', type: 'quantitative', scale: { type: 'log' }, title: 'msgs/s' },
          color,
        },
      },
    });
  }
  return specs;
}

export async function writeReport(
  r: Report,
  mdPath: string,
  chartDir: string,
  note: (text: string) => void,
): Promise<void> {
  const files: string[] = [];
  try {
    const vegaName = 'vega';
    const vlName = 'vega-lite';
    const vega: Any = await import(vegaName);
    const vl: Any = await import(vlName);
    mkdirSync(chartDir, { recursive: true });
    for (const { file, spec } of chartSpecs(r)) {
      writeFileSync(join(chartDir, file), await render(vega, vl, spec));
      files.push(file);
    }
  } catch (e) {
    note(`charts not written: ${(e as Error).message} (vega and vega-lite are devDependencies)`);
  }
  mkdirSync(dirname(mdPath), { recursive: true });
  writeFileSync(mdPath, markdown(r, files, relative(dirname(mdPath), chartDir)));
}
