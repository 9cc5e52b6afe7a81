/**
 * The kernel under fuzz: the real daemon as a child process on a private
 * socket, the well-behaved pair (pair-client.ts) exchanging numbered messages
 * through it, a well-behaved raw sentinel connection, and many hostile
 * connections running generated inputs (frame-fuzzer.ts, hostile-session.ts).
 *
 * What it checks, and reports as a `Failure`:
 * - kernel-exit: the kernel process never exits (until we stop it; then cleanly);
 * - kernel-stderr: the kernel writes nothing to stderr (no warnings, no traces);
 * - pair / pair-crash: the pair receives every message it sent, in order, none
 *   lost, duplicated or forged, its sends and receives fail only with
 *   load-shedding codes (KERNEL_FULL, WOULD_BLOCK, TIMEOUT, ABORTED), it gets
 *   a message through at least every 20 s, and its process (the client
 *   library) does not crash;
 * - bystander: no well-behaved connection (pair, sentinel) is closed or told
 *   off, and the sentinel's control calls keep working;
 * - unresponsive: the kernel answers the sentinel within 5 s;
 * - kernel-contract: what each hostile connection sees of the kernel is well
 *   formed (hostile-session.ts);
 * - rss: the kernel's resident set stays under `2 x baseline + memory budget +
 *   concurrency x largest frame + GC_SLACK` (one frame being assembled per
 *   connection, and garbage V8 has not collected yet);
 * - leak: once every hostile connection is gone and the pair has drained and
 *   left, the kernel holds no message bytes and no processes but the sentinel.
 */
import { readFileSync } from 'node:fs';
import type { KernelStatus, MailboxInfo, SegmentInfo } from '../../src/wire/info-types.js';
import { HEADER_REST, MAX_CONTROL_BODY } from '../../src/wire/protocol.js';
import { runCli, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';
import { type KernelConfig, KernelProcess, PairProcess } from './child-processes.js';
import { type FuzzContext, type FuzzInput, generateInput, hex } from './frame-fuzzer.js';
import { type HostileOutcome, type PairIds, runHostile } from './hostile-session.js';
import { PAIR_A, PAIR_B, PAIR_MAILBOX, PAIR_RENDEZVOUS, type PairReport } from './pair-report.js';
import { CallError, SENTINEL, Sentinel } from './sentinel.js';

const SEGMENT_PREFIX = 'fuzzseg-';
const MiB = 1024 * 1024;
/**
 * What V8 and malloc keep on top of live data under hostile load. Measured
 * with every scenario running and a 16 MiB budget: the kernel's RSS levels
 * off at 220-245 MiB over 300,000 inputs (V8 heap under 90 MiB, external
 * memory under 65 MiB, the rest the allocator's), whatever the concurrency.
 * A cross-node campaign's kernel (--cluster) peaks at 205-220 MiB over
 * 100,000 inputs. It used to reach 360-410 MiB, over the bound, while
 * thousands of hung-up connections each kept their frame buffers until
 * NATS answered their name claims; test/cluster/name-churn.test.ts holds
 * that fixed. The bound is for blow-ups (buffering without bound), not for
 * that.
 */
const GC_SLACK = 192 * MiB;
/** The pair must get a message through at least this often (it sends several a millisecond). */
const STALL_MS = 20_000;

export type { KernelConfig };

export const DEFAULT_CONFIG: KernelConfig = { maxMessageSize: MiB, memoryBudget: 16 * MiB };

export type FailureKind =
  | 'kernel-exit'
  | 'kernel-stderr'
  | 'kernel-contract'
  | 'pair'
  | 'pair-crash'
  | 'bystander'
  | 'unresponsive'
  | 'rss'
  | 'leak';

export interface Failure {
  kind: FailureKind;
  /** Short and stable (no ids, no sizes): what went wrong, to match a replay and deduplicate. */
  signature: string;
  detail: string;
  /** The input that did it, when known. */
  seed?: number;
  /** Inputs running or just finished when it was seen, most recent first. */
  suspects: number[];
}

/** Digits out, so one bug keeps one signature whatever the ids and sizes. */
function normalize(text: string): string {
  return text
    .replace(/0x[0-9a-f]+/gi, '#')
    .replace(/\d+/g, '#')
    .slice(0, 200);
}

/** The error and the frame of our code it was thrown in, from a Node crash on stderr. */
export function crashSignature(stderr: string): string {
  const lines = stderr.split('\n');
  const error = lines.find((l) => /^\s*(\w*Error|\w+Exception|Uncaught)\b/.test(l))?.trim();
  const at = lines.find((l) => /^\s+at .*dist\/(src|test)\//.test(l));
  const fn = at?.match(/at (?:async )?([^\s(]+) \(/)?.[1] ?? at?.match(/dist\/((?:src|test)\/[^:]+)/)?.[1];
  if (error === undefined) return normalize(lines.find((l) => l.trim() !== '')?.trim() ?? 'no output');
  return `${normalize(error)}${fn ? ` at ${fn}` : ''}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resident set (VmRSS) and its peak (VmHWM) of a process, in bytes; undefined once it is gone. */
export function memoryOf(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number =>
      Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
    return { rss: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 };
  } catch {
    return undefined;
  }
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

// ---------------------------------------------------------------- the harness

/** What generated inputs know of the world they attack; the same for every harness with `config`. */
export function fuzzContext(config: KernelConfig = DEFAULT_CONFIG): FuzzContext {
  return {
    maxMessageSize: config.maxMessageSize,
    peerNames: [PAIR_A, PAIR_B, SENTINEL],
    protectedMailboxes: [PAIR_MAILBOX, PAIR_RENDEZVOUS],
    segmentPrefix: SEGMENT_PREFIX,
  };
}

export interface HarnessOptions {
  config?: KernelConfig;
  /** Seed of the pair's own choices (receive styles, codecs). */
  pairSeed?: number;
  /** Hostile connections running at once (the RSS bound allows one frame in assembly for each). */
  concurrency?: number;
  /**
   * Across nodes: a second kernel (the pair's home: its mailboxes and fuzz-pair-a) joins the fuzzed
   * kernel in a cluster over a nats-server started here; fuzz-pair-b, the sentinel and every hostile
   * connection are on the fuzzed kernel, so hostile frames reach the home through its routes and
   * the pair's messages all cross nodes. The home is held to the same exit, stderr and RSS checks.
   */
  cluster?: boolean;
}

/** The second node of a cross-node campaign, and the nats-server under both. */
interface HomeNode {
  kernel: KernelProcess;
  nats: NatsServer;
  baseline: number;
  bound: number;
  peak: number;
}

export interface CampaignProgress {
  done: number;
  total: number;
  elapsedMs: number;
  protocolErrors: number;
  rss: number;
  peak: number;
  bound: number;
  pairSent: number;
  pairReceived: number;
}

export class FuzzHarness {
  private readonly seen: Failure[] = [];
  /** Resident set after start-up with the pair running, and the bound derived from it. */
  baseline = 0;
  bound = 0;
  peak = 0;
  protocolErrors = 0;
  private readonly active = new Set<number>();
  private readonly lingering = new Map<Promise<HostileOutcome>, number>();
  private recent: number[] = [];
  private monitor: NodeJS.Timeout | undefined;
  private janitoring: Promise<void> | undefined;
  private stopped = false;

  private constructor(
    readonly config: KernelConfig,
    readonly concurrency: number,
    readonly kernel: KernelProcess,
    readonly ctx: FuzzContext,
    private pair: PairProcess | undefined,
    readonly pairIds: PairIds,
    private readonly sentinel: Sentinel,
    private readonly home: HomeNode | undefined,
  ) {}

  static async start(options: HarnessOptions = {}): Promise<FuzzHarness> {
    const config = options.config ?? DEFAULT_CONFIG;
    const concurrency = options.concurrency ?? 8;
    let home: HomeNode | undefined;
    let kernelConfig = config;
    if (options.cluster === true) {
      const nats = await startNatsServer();
      const cluster = (node: string) => ({ servers: nats.url, node, name: `fuzz${process.pid}` });
      const homeKernel = await KernelProcess.start({ ...config, cluster: cluster('fuzz-home') }).catch(
        async (e: unknown) => {
          await nats.stop();
          throw e;
        },
      );
      home = { kernel: homeKernel, nats, baseline: 0, bound: 0, peak: 0 };
      kernelConfig = { ...config, cluster: cluster('fuzz-edge') };
    }
    const stopHome = async () => {
      await home?.kernel.stop();
      await home?.nats.stop();
    };
    const kernel = await KernelProcess.start(kernelConfig).catch(async (e: unknown) => {
      await stopHome();
      throw e;
    });
    let harness: FuzzHarness | undefined;
    const early: PairReport[] = [];
    try {
      const { pair, ids } = await PairProcess.start(
        home?.kernel.socketPath ?? kernel.socketPath,
        options.pairSeed ?? 1,
        (r) => {
          if (harness === undefined) early.push(r);
          else harness.onPairReport(r);
        },
        home === undefined ? undefined : kernel.socketPath,
      );
      const sentinel = await Sentinel.connect(kernel.socketPath);
      harness = new FuzzHarness(config, concurrency, kernel, fuzzContext(config), pair, ids, sentinel, home);
      for (const r of early) harness.onPairReport(r);
      await harness.watch();
      return harness;
    } catch (e) {
      await kernel.stop();
      await stopHome();
      throw e;
    }
  }

  /**
   * What went wrong. A kernel that exited explains whatever its clients saw
   * meanwhile (lost connections, failed sends, closes without ERROR), so then
   * only the exit is reported.
   */
  get failures(): Failure[] {
    const exit = this.seen.filter((f) => f.kind === 'kernel-exit');
    return exit.length > 0 ? exit : [...this.seen];
  }

  get failed(): boolean {
    return this.seen.length > 0;
  }

  get socketPath(): string {
    return this.kernel.socketPath;
  }

  /** Largest frame the kernel buffers for one connection before it can reject it. */
  get maxFrame(): number {
    return HEADER_REST + Math.max(this.config.maxMessageSize + 8, MAX_CONTROL_BODY);
  }

  get pairProgress(): { sent: number; received: number } {
    return { sent: this.pair?.sent ?? 0, received: this.pair?.received ?? 0 };
  }

  private suspects(): number[] {
    return [...new Set([...this.active, ...this.lingering.values(), ...[...this.recent].reverse()])];
  }

  fail(kind: FailureKind, signature: string, detail: string, seed?: number): void {
    if (
      this.stopped &&
      kind !== 'leak' &&
      kind !== 'kernel-exit' &&
      kind !== 'kernel-stderr' &&
      kind !== 'rss'
    )
      return;
    if (this.seen.some((f) => f.signature === signature)) return;
    const f: Failure = { kind, signature, detail, suspects: this.suspects() };
    if (seed !== undefined) f.seed = seed;
    this.seen.push(f);
  }

  private onPairReport(r: PairReport): void {
    if (r.type === 'violation') this.fail('pair', `pair: ${normalize(r.kind)}`, r.detail);
  }

  /** Start watching the kernel, the pair and the sentinel; measure the baseline. */
  private async watch(): Promise<void> {
    const kernel = this.kernel;
    const home = this.home;
    this.watchExit(kernel, 'kernel');
    if (home !== undefined) this.watchExit(home.kernel, 'home kernel');
    void this.pair!.exit.then(({ code, signal }) => {
      if (this.pair?.stopping && code === 0) return;
      const stderr = this.pair?.stderr ?? '';
      this.fail(
        'pair-crash',
        `pair crashed: ${crashSignature(stderr)}`,
        `the pair's process exited (${code ?? signal}):\n${stderr.trim()}`,
      );
    });
    // Warm up with the pair's traffic before taking the baseline.
    await sleep(500);
    this.baseline = memoryOf(kernel.pid)?.rss ?? 0;
    this.bound = this.boundOver(this.baseline);
    if (home !== undefined) {
      // The home buffers at most what its proxy sessions for the hostile connections are sent.
      home.baseline = memoryOf(home.kernel.pid)?.rss ?? 0;
      home.bound = this.boundOver(home.baseline);
    }
    let pingInFlight = false;
    let tick = 0;
    this.monitor = setInterval(() => {
      const m = memoryOf(kernel.pid);
      if (m !== undefined) {
        this.peak = Math.max(this.peak, m.rss, m.peak);
        if (this.peak > this.bound) this.failRss();
      }
      this.checkStderr(kernel, 'kernel');
      if (home !== undefined) {
        const hm = memoryOf(home.kernel.pid);
        if (hm !== undefined) {
          home.peak = Math.max(home.peak, hm.rss, hm.peak);
          if (home.peak > home.bound) this.failHomeRss(home);
        }
        this.checkStderr(home.kernel, 'home kernel');
      }
      if (this.sentinel.lost !== undefined && !kernel.exited) {
        this.fail('bystander', `bystander: ${normalize(this.sentinel.lost)}`, this.sentinel.lost);
      }
      const pair = this.pair;
      if (
        pair !== undefined &&
        !pair.stopping &&
        !kernel.exited &&
        Date.now() - pair.lastProgressAt > STALL_MS
      ) {
        pair.lastProgressAt = Date.now();
        void this.failStall(pair.sent, pair.received, pair.retries);
      }
      if (++tick % 5 === 0 && !pingInFlight && !kernel.exited) {
        pingInFlight = true;
        const started = Date.now();
        this.sentinel
          .call('process.lookup', { name: SENTINEL }, 5000)
          .catch((e: unknown) => {
            if (kernel.exited) return;
            if (e instanceof CallError && e.code === 'TIMEOUT') {
              this.fail(
                'unresponsive',
                'kernel unresponsive',
                `the kernel did not answer a control call within 5 s`,
              );
            } else {
              this.fail(
                'bystander',
                `bystander call failed: ${normalize(String(e))}`,
                `${SENTINEL}'s process.lookup failed after ${Date.now() - started} ms: ${String(e)}`,
              );
            }
          })
          .finally(() => {
            pingInFlight = false;
          });
      }
    }, 100);
  }

  /** A kernel (the fuzzed one, or a campaign's second node) that exits before we stop it is a finding. */
  private watchExit(k: KernelProcess, who: string): void {
    void k.exit.then(({ code, signal }) => {
      if (this.stopped) return;
      this.fail(
        'kernel-exit',
        `${who} exited: ${crashSignature(k.stderr)}`,
        `the ${who} exited (${code ?? signal}):\n${k.stderr.trim()}`,
      );
    });
  }

  /** One tick's stderr check: a kernel writes nothing there. */
  private checkStderr(k: KernelProcess, who: string): void {
    if (k.stderr === '' || k.exited) return;
    // Give a dying kernel a moment: then it is an exit, not a warning.
    const text = k.stderr;
    setTimeout(() => {
      if (!k.exited)
        this.fail(
          'kernel-stderr',
          `${who} stderr: ${crashSignature(text)}`,
          `the ${who} wrote to stderr:\n${text.trim()}`,
        );
    }, 300);
  }

  /** After a kernel stopped: a clean exit (0) and nothing on stderr, if it was still running. */
  private checkShutdown(
    k: KernelProcess,
    who: string,
    wasAlive: boolean,
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (!wasAlive) return;
    if (code !== 0)
      this.fail(
        'kernel-exit',
        `${who} shutdown: ${crashSignature(k.stderr)}`,
        `the ${who} stopped with ${code ?? signal}:\n${k.stderr.trim()}`,
      );
    if (k.stderr !== '' && !this.seen.some((f) => f.kind === 'kernel-stderr'))
      this.fail(
        'kernel-stderr',
        `${who} stderr: ${crashSignature(k.stderr)}`,
        `the ${who} wrote to stderr:\n${k.stderr.trim()}`,
      );
  }

  /** The RSS a kernel may reach: twice its baseline, the budget, a frame in assembly per hostile connection, and garbage. */
  private boundOver(baseline: number): number {
    return 2 * baseline + this.config.memoryBudget + this.concurrency * this.maxFrame + GC_SLACK;
  }

  private failHomeRss(home: HomeNode): void {
    this.fail(
      'rss',
      'home kernel RSS over its bound',
      `the home kernel's resident set reached ${mib(home.peak)}, over the bound of ${mib(home.bound)} (2 x baseline ${mib(home.baseline)} + the same allowances as the fuzzed kernel's)`,
    );
  }

  /** The pair got nothing through for STALL_MS: say what the kernel holds, which is usually why. */
  private async failStall(sent: number, received: number, retries: number): Promise<void> {
    let held = '';
    try {
      const status = await this.sentinel.call<KernelStatus>('status');
      const top = [...status.mailboxes]
        .sort((x, y) => y.bytes - x.bytes)
        .slice(0, 3)
        .map((m) => `${m.name} ${m.bytes} bytes (depth ${m.depth})`);
      held = `; the kernel holds ${status.kernel.memoryUsed} of ${status.kernel.memoryBudget} budget bytes, most in ${top.join(', ')}`;
    } catch (e) {
      held = `; status failed: ${String(e)}`;
    }
    this.fail(
      'pair',
      'pair: stalled',
      `the pair got no message through for ${STALL_MS / 1000} s (sent ${sent}, received ${received}, ${retries} send retries so far)${held}`,
    );
  }

  private failRss(): void {
    this.fail(
      'rss',
      'kernel RSS over its bound',
      `the kernel's resident set reached ${mib(this.peak)}, over the bound of ${mib(this.bound)} ` +
        `(2 x baseline ${mib(this.baseline)} + memory budget ${mib(this.config.memoryBudget)} + ` +
        `${this.concurrency} x frame limit ${mib(this.maxFrame)} + ${mib(GC_SLACK)} for garbage not yet collected)`,
    );
  }

  /**
   * Delete what hostile inputs left that outlives them: system-owned
   * mailboxes and segments, and mailboxes they transferred to the sentinel
   * (one pass at a time).
   */
  janitor(): Promise<void> {
    if (this.kernel.exited) return Promise.resolve();
    this.janitoring ??= this.sweep().finally(() => {
      this.janitoring = undefined;
    });
    return this.janitoring;
  }

  private async sweep(): Promise<void> {
    try {
      const boxes = await this.sentinel.call<MailboxInfo[]>('mailbox.list');
      for (const m of boxes) {
        // System-owned ones outlive their creators; hostile inputs may also hand theirs to the sentinel (transfer).
        if (
          (m.ownership === 'system' || m.owner === SENTINEL) &&
          !this.ctx.protectedMailboxes.includes(m.name)
        ) {
          await this.sentinel.call('mailbox.delete', { name: m.name, force: true }).catch(ignoreGone);
        }
      }
      const segments = await this.sentinel.call<SegmentInfo[]>('segment.list');
      for (const s of segments) {
        if (s.ownership === 'system' && s.name.startsWith(SEGMENT_PREFIX)) {
          await this.sentinel.call('segment.remove', { name: s.name, force: true }).catch(ignoreGone);
        }
      }
    } catch (e) {
      if (!this.kernel.exited && !(e instanceof CallError && e.code === 'DISCONNECTED')) {
        this.fail(
          'bystander',
          `bystander call failed: ${normalize(String(e))}`,
          `${SENTINEL}'s clean-up calls (mailbox.list, segment.list) failed: ${String(e)}`,
        );
      }
    }
  }

  private record(o: HostileOutcome): void {
    if (o.protocolError) this.protocolErrors++;
    const real = o.violations.filter((v) => v !== 'could not connect to the kernel');
    if (real.length > 0 && !this.kernel.exited) {
      this.fail('kernel-contract', `kernel contract: ${normalize(real[0]!)}`, real.join('\n'), o.seed);
    }
  }

  private async runTracked(
    input: FuzzInput,
    options: { record?: boolean; linger?: boolean } = {},
  ): Promise<HostileOutcome> {
    this.active.add(input.seed);
    try {
      const o = await runHostile(this.socketPath, input, this.pairIds, {
        record: options.record === true,
        ...(options.linger
          ? {
              onLinger: (done: Promise<HostileOutcome>) => {
                this.lingering.set(done, input.seed);
                void done.then((late) => {
                  this.lingering.delete(done);
                  this.record(late);
                });
              },
            }
          : {}),
      });
      if (!options.linger || input.linger === 0) this.record(o);
      return o;
    } finally {
      this.active.delete(input.seed);
      this.recent.push(input.seed);
      if (this.recent.length > 4 * this.concurrency) this.recent = this.recent.slice(-2 * this.concurrency);
    }
  }

  /**
   * Run `count` inputs, the i-th generated from `seedOf(i)`, `concurrency` at
   * a time, until done or the first failure (inputs `accept` refuses are
   * skipped). Returns how many were taken.
   */
  async campaign(
    seedOf: (i: number) => number,
    count: number,
    onProgress?: (p: CampaignProgress) => void,
    progressEveryMs = 2000,
    accept: (input: FuzzInput) => boolean = () => true,
  ): Promise<number> {
    const started = Date.now();
    let next = 0;
    let done = 0;
    let lastJanitor = Date.now();
    let lastProgress = Date.now();
    const worker = async (): Promise<void> => {
      while (!this.failed && next < count) {
        const i = next++;
        const input = generateInput(seedOf(i), this.ctx);
        if (accept(input)) await this.runTracked(input, { linger: true });
        done++;
        const now = Date.now();
        if (now - lastJanitor > 1000) {
          lastJanitor = now;
          void this.janitor();
        }
        if (onProgress !== undefined && now - lastProgress >= progressEveryMs) {
          lastProgress = now;
          onProgress(this.progress(done, count, now - started));
        }
      }
    };
    await Promise.all(Array.from({ length: this.concurrency }, worker));
    await Promise.all(this.lingering.keys());
    onProgress?.(this.progress(done, count, Date.now() - started));
    return done;
  }

  private progress(done: number, total: number, elapsedMs: number): CampaignProgress {
    return {
      done,
      total,
      elapsedMs,
      protocolErrors: this.protocolErrors,
      rss: memoryOf(this.kernel.pid)?.rss ?? 0,
      peak: this.peak,
      bound: this.bound,
      pairSent: this.pair?.sent ?? 0,
      pairReceived: this.pair?.received ?? 0,
    };
  }

  /** Run one input alone (recording its writes), then let the kernel settle for `settleMs`. */
  async runAlone(input: FuzzInput, settleMs = 150): Promise<HostileOutcome> {
    const [o] = await this.runTogether([input], settleMs);
    return o!;
  }

  /** Run inputs all at once (recording their writes), then let the kernel settle for `settleMs`. */
  async runTogether(inputs: readonly FuzzInput[], settleMs = 150): Promise<HostileOutcome[]> {
    const outcomes = await Promise.all(inputs.map((input) => this.runTracked(input, { record: true })));
    await sleep(settleMs);
    return outcomes;
  }

  /**
   * The end-of-run checks: the pair drains and leaves having lost nothing,
   * the kernel is back to holding nothing, its peak RSS stayed in bound, and
   * it stops cleanly. Returns every failure seen.
   */
  async finish(): Promise<Failure[]> {
    await Promise.all(this.lingering.keys());
    const kernel = this.kernel;
    if (!kernel.exited && !this.failed) {
      // A pass that started while inputs still ran may have missed their last mailboxes: one more after it.
      await this.janitor();
      await this.janitor();
      await this.pair?.stop();
      await this.checkLeaks();
      if (this.home !== undefined && !this.home.kernel.exited) await this.checkHomeLeaks(this.home);
    }
    this.stopped = true;
    clearInterval(this.monitor);
    this.pair?.kill();
    const m = memoryOf(kernel.pid);
    if (m !== undefined) this.peak = Math.max(this.peak, m.peak);
    if (this.peak > this.bound && this.bound > 0) this.failRss();
    this.sentinel.close();
    const wasAlive = !kernel.exited;
    const { code, signal } = await kernel.stop();
    if (this.home !== undefined) await this.stopHome(this.home);
    this.checkShutdown(kernel, 'kernel', wasAlive, code, signal);
    return this.failures;
  }

  /** The home kernel stops cleanly (exit 0, nothing on stderr) and its nats-server goes with it. */
  private async stopHome(home: HomeNode): Promise<void> {
    const m = memoryOf(home.kernel.pid);
    if (m !== undefined) home.peak = Math.max(home.peak, m.peak);
    if (home.peak > home.bound && home.bound > 0) this.failHomeRss(home);
    const wasAlive = !home.kernel.exited;
    const { code, signal } = await home.kernel.stop();
    await home.nats.stop();
    this.checkShutdown(home.kernel, 'home kernel', wasAlive, code, signal);
  }

  /**
   * Once the pair has left, the home holds nothing either: the proxy sessions that served hostile
   * connections of the other node ended with them, and nothing they sent or were delivered is held.
   */
  private async checkHomeLeaks(home: HomeNode): Promise<void> {
    let status: KernelStatus | undefined;
    const me = 'fuzz-home-status';
    const others = (s: KernelStatus) => s.processes.filter((p) => p.name !== me);
    try {
      await waitFor(
        async () => {
          const r = await runCli(['--name', me, 'status', '--json'], home.kernel.socketPath);
          if (r.code !== 0) return false;
          status = JSON.parse(r.stdout) as KernelStatus;
          return (
            others(status).length === 0 && status.kernel.memoryUsed === 0 && status.mailboxes.length === 0
          );
        },
        5000,
        'the home kernel to let go of everything',
      );
    } catch {
      if (status === undefined || home.kernel.exited) return;
      this.fail(
        'leak',
        `leak: home kernel holds ${status.kernel.memoryUsed > 0 ? 'message bytes' : others(status).length > 0 ? 'processes' : 'mailboxes'} after everyone left`,
        `with every client gone the home kernel still holds ${status.kernel.memoryUsed} bytes of messages; ` +
          `processes: ${others(status)
            .map((p) => p.name)
            .join(
              ', ',
            )}; mailboxes: ${status.mailboxes.map((b) => `${b.name} (depth ${b.depth})`).join(', ') || 'none'}`,
      );
    }
  }

  /** Once the pair has left: no processes but the sentinel, no mailboxes, no message bytes. */
  private async checkLeaks(): Promise<void> {
    let status: KernelStatus | undefined;
    const clean = (s: KernelStatus): boolean =>
      s.processes.length === 1 &&
      s.kernel.memoryUsed === 0 &&
      s.kernel.processWaits === 0 &&
      s.mailboxes.length === 0 &&
      s.segments.length === 0;
    try {
      await waitFor(
        async () => {
          status = await this.sentinel.call<KernelStatus>('status');
          return clean(status);
        },
        3000,
        'the kernel to let go of everything',
      );
    } catch {
      if (status === undefined || this.kernel.exited) return;
      const held = status.mailboxes.map(
        (m) =>
          `${m.name} (${m.ownership}-owned by ${m.owner}, depth ${m.depth}, ${m.bytes} bytes, promised ${m.promised}, attached ${m.attached}, waiting senders ${m.waitingSenders})`,
      );
      this.fail(
        'leak',
        `leak: ${status.kernel.memoryUsed > 0 ? 'message bytes' : status.processes.length > 1 ? 'processes' : status.kernel.processWaits > 0 ? 'process waits' : status.mailboxes.length > 0 ? 'mailboxes' : 'segments'} held after everyone left`,
        `with every client but ${SENTINEL} gone the kernel still holds ${status.kernel.memoryUsed} bytes of messages; ` +
          `processes: ${status.processes.map((p) => p.name).join(', ')}; mailboxes: ${held.join(', ') || 'none'}; ` +
          `segments: ${status.segments.map((g) => `${g.name} (${g.ownership}-owned by ${g.owner})`).join(', ') || 'none'}`,
      );
    }
  }

  /** After a run: the end-of-run checks if nothing failed yet, else just the teardown; every failure seen. */
  async conclude(): Promise<Failure[]> {
    if (!this.failed) return this.finish();
    await this.kill();
    return this.failures;
  }

  /** Tear down without the end-of-run checks (after a failure, or to start afresh). */
  async kill(): Promise<void> {
    this.stopped = true;
    clearInterval(this.monitor);
    this.pair?.kill();
    this.sentinel.close();
    await this.kernel.stop();
    if (this.home !== undefined) {
      await this.home.kernel.stop();
      await this.home.nats.stop();
    }
  }
}

function ignoreGone(e: unknown): void {
  if (e instanceof CallError && (e.code === 'NO_SUCH_MAILBOX' || e.code === 'NO_SUCH_SEGMENT')) return;
  throw e;
}

export function describeFailure(f: Failure): string {
  return `${f.signature}${f.seed !== undefined ? ` (input ${hex(f.seed)})` : ''}\n${f.detail}`;
}
