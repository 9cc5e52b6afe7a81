/**
 * From a failure seen under load to a minimal input, described for a reader:
 * `describeInput` (one line per step), `shrink` (smaller variants), and
 * `triage`, which replays the suspects one at a time on a fresh kernel (with
 * the pair, one connection at a time) until one reproduces the failure's
 * signature, then shrinks that input step by step while it still does. Each
 * replay runs on a harness of its own once the previous one failed, so state
 * from one trial never explains the next.
 */
import { MAGIC, Op } from '../../src/wire/protocol.js';
import {
  type Body,
  type FuzzInput,
  generateInput,
  hex,
  type Step,
  type TargetRef,
  type Word,
} from './frame-fuzzer.js';
import { type Failure, FuzzHarness, fuzzContext, type HarnessOptions } from './fuzz-harness.js';
import { PAIR_PROCESSES, PAIR_TARGETS } from './pair-report.js';

// ---------------------------------------------------------------- description and shrinking

const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([name, code]) => [code, name]));

function opName(op: number): string {
  return OP_NAMES.get(op) ?? `op${op}`;
}

function refText(t: TargetRef): string {
  if ('lit' in t) return `#${t.lit}`;
  if (t.pool === 'own') return 'own-inbox';
  if (t.pool === 'pair') return PAIR_TARGETS[t.pick % PAIR_TARGETS.length]!;
  // How many the connection has learned of is known only at run time: the bytes written show the id.
  return `${t.pool}(pick ${t.pick})`;
}

function wordText(w: Word): string {
  if ('lit' in w) return String(w.lit);
  if ('epoch' in w) return 'last-revoke-epoch';
  if (w.pid === 'pair') return `pid of ${PAIR_PROCESSES[w.pick % PAIR_PROCESSES.length]}`;
  return `${w.pid}-pid`;
}

function shortBytes(b: Buffer): string {
  if (b.length === 0) return '';
  if (b.length <= 24) return `0x${b.toString('hex')}`;
  return `${b.length} bytes (0x${b.subarray(0, 12).toString('hex')}…)`;
}

function shortText(s: string): string {
  return s.length <= 120 ? s : `${s.slice(0, 60)}…(${s.length} chars)…${s.slice(-30)}`;
}

function bodyText(b: Body): string {
  switch (b.k) {
    case 'raw':
      return shortBytes(b.bytes);
    case 'call':
      return shortText(b.text) + (b.idRef ? ` id=${refText(b.idRef)}` : '');
    case 'words':
      return [...b.words.map(wordText), ...(b.tail.length > 0 ? [`payload ${shortBytes(b.tail)}`] : [])].join(
        ', ',
      );
    case 'ids':
      return `ids [${b.ids.map((i) => ('lit' in i ? String(i.lit) : `delivery(pick ${i.delivered})`)).join(', ')}]${b.odd ? ` +${b.odd} stray bytes` : ''}`;
    case 'giveBack':
      return `give back delivery(pick ${b.pick})${b.mutate ? ' (header as written)' : ''}`;
  }
}

/** A HELLO body field by field, when it has them all. */
function helloText(b: Body): string {
  if (b.k !== 'raw' || b.bytes.length < 16) return bodyText(b);
  const x = b.bytes;
  const magic = x.readUInt32LE(0) === MAGIC ? '' : `magic=0x${x.readUInt32LE(0).toString(16)} `;
  const cap = x.readUInt32LE(12);
  return `${magic}version=${x.readUInt16LE(4)} inbox=${cap === 0xffffffff ? 'unbounded' : cap} name=${JSON.stringify(shortText(x.toString('utf8', 16)))}`;
}

/** One line per step, as a reader would want to see a minimal input. */
export function describeInput(input: FuzzInput): string {
  const lines: string[] = [];
  for (const s of input.steps) {
    switch (s.t) {
      case 'frame': {
        const fields: string[] = [];
        if (s.flags) fields.push(`flags=${s.flags}`);
        if (s.priority) fields.push(`priority=${s.priority}`);
        if (s.codec) fields.push(`codec=${s.codec}`);
        fields.push(`reqId=${'lit' in s.reqId ? s.reqId.lit : 'fresh' in s.reqId ? 'fresh' : 'earlier'}`);
        if (!('lit' in s.target) || s.target.lit !== 0) fields.push(`target=${refText(s.target)}`);
        if (s.lengthDelta) fields.push(`length${s.lengthDelta > 0 ? '+' : ''}${s.lengthDelta}`);
        if (s.truncate >= 0) fields.push(`cut to ${s.truncate} bytes`);
        const body = s.op === Op.HELLO ? helloText(s.body) : bodyText(s.body);
        lines.push(`${opName(s.op)} ${fields.join(' ')}${body ? ` body: ${body}` : ''}`);
        break;
      }
      case 'bytes':
        lines.push(`raw bytes ${shortBytes(s.bytes)}`);
        break;
      case 'flush':
        if (s.cuts.length > 0)
          lines.push(`(write split in ${s.cuts.length + 1} pieces${s.spaced ? ', spaced' : ''})`);
        break;
      case 'await':
        lines.push(`(wait for ${s.count} ${s.what}, ≤${s.ms} ms)`);
        break;
      case 'pause':
      case 'resume':
        lines.push(`(${s.t} reading)`);
        break;
      case 'sleep':
        lines.push(`(sleep ${s.ms} ms)`);
        break;
    }
  }
  lines.push(`then ${input.end}${input.linger ? ` after ${input.linger} ms` : ''}`);
  return lines.join('\n');
}

/** Smaller variants of an input, most promising first (the minimizer keeps the first that still fails). */
export function* shrink(input: FuzzInput): Generator<FuzzInput> {
  const steps = input.steps;
  const n = steps.length;
  // Drop runs of steps, from large to single ones.
  for (let size = Math.max(1, n >> 1); size >= 1; size >>= 1) {
    for (let i = 0; i + size <= n; i += size) {
      yield { ...input, steps: [...steps.slice(0, i), ...steps.slice(i + size)] };
    }
  }
  if (input.linger > 0) yield { ...input, linger: 0 };
  // Simplify single frames: plain length, whole frame, shorter payloads, no flags.
  for (let i = 0; i < n; i++) {
    const s = steps[i]!;
    const at = (r: Step): FuzzInput => ({
      ...input,
      steps: [...steps.slice(0, i), r, ...steps.slice(i + 1)],
    });
    if (s.t === 'flush' && s.cuts.length > 0) yield at({ ...s, cuts: [] });
    if (s.t === 'await' && s.ms > 20) yield at({ ...s, ms: 20 });
    if (s.t !== 'frame') continue;
    if (s.lengthDelta !== 0) yield at({ ...s, lengthDelta: 0 });
    if (s.truncate >= 0) yield at({ ...s, truncate: -1 });
    if (s.flags !== 0) yield at({ ...s, flags: 0 });
    if (s.body.k === 'words' && s.body.tail.length > 0) {
      yield at({ ...s, body: { ...s.body, tail: Buffer.alloc(0) } });
      if (s.body.tail.length > 8)
        yield at({ ...s, body: { ...s.body, tail: s.body.tail.subarray(0, s.body.tail.length >> 1) } });
    }
    if (s.body.k === 'raw' && s.body.bytes.length > 16)
      yield at({ ...s, body: { k: 'raw', bytes: s.body.bytes.subarray(0, s.body.bytes.length >> 1) } });
    if (s.body.k === 'ids' && s.body.ids.length > 1)
      yield at({ ...s, body: { ...s.body, ids: s.body.ids.slice(1) } });
  }
}

// ---------------------------------------------------------------- triage

export interface Triage {
  failure: Failure;
  /** It happens with no hostile input at all: the well-behaved pair alone runs into it. */
  withoutInput: boolean;
  /** Inputs that reproduce it only when run together (load, not one frame), when no single one does. */
  group: number[] | undefined;
  /** The input that reproduces it alone, if one did. */
  seed: number | undefined;
  minimal: FuzzInput | undefined;
  /** What the minimal input wrote on its connection, write by write. */
  writes: Buffer[];
  trials: number;
}

export interface TriageOptions extends HarnessOptions {
  /** Give up attributing and shrinking after this long. */
  budgetMs?: number;
  /** Most suspects replayed. */
  maxSuspects?: number;
  log?: (line: string) => void;
}

/** Failures only the end-of-run checks see need the whole finish; the rest show while running. */
function needsFinish(f: Failure): boolean {
  return f.kind === 'leak' || f.signature === 'pair: lost';
}

function settleMs(f: Failure): number {
  if (f.kind === 'kernel-stderr') return 600;
  if (f.kind === 'pair' || f.kind === 'pair-crash') return 500;
  return 200;
}

class Replayer {
  private harness: FuzzHarness | undefined;
  trials = 0;

  constructor(
    private readonly options: HarnessOptions,
    private readonly target: Failure,
  ) {}

  /**
   * Do these inputs, run together (one: alone; none: just the pair's traffic
   * for `idleMs`), reproduce the failure? Returns the writes of the first.
   */
  async reproduces(inputs: readonly FuzzInput[], idleMs = 0): Promise<{ yes: boolean; writes: Buffer[] }> {
    this.trials++;
    const concurrency = Math.max(1, inputs.length);
    if (this.harness !== undefined && this.harness.concurrency !== concurrency) await this.close();
    if (this.harness === undefined) this.harness = await FuzzHarness.start({ ...this.options, concurrency });
    const h = this.harness;
    const outcomes = inputs.length === 0 ? [] : await h.runTogether(inputs, settleMs(this.target));
    if (idleMs > 0) await new Promise((r) => setTimeout(r, idleMs));
    let failures = h.failures;
    if (needsFinish(this.target)) {
      failures = await h.finish();
      this.harness = undefined;
    } else if (h.failed) {
      await h.kill();
      this.harness = undefined;
    }
    return {
      yes: failures.some((f) => f.signature === this.target.signature),
      writes: outcomes[0]?.writes ?? [],
    };
  }

  async close(): Promise<void> {
    await this.harness?.kill();
    this.harness = undefined;
  }
}

/**
 * The smallest subset of `seeds` whose inputs, run together, still reproduce
 * (halves first, then one seed at a time), or undefined if all of them together do not.
 */
async function minimalGroup(
  seeds: readonly number[],
  reproduces: (group: readonly number[]) => Promise<boolean>,
  deadline: number,
): Promise<number[] | undefined> {
  if (seeds.length < 2 || !(await reproduces(seeds))) return undefined;
  let group = [...seeds];
  for (let size = group.length >> 1; size >= 1 && Date.now() < deadline; ) {
    let removed = false;
    for (let i = 0; i + size <= group.length && group.length > 1 && Date.now() < deadline; i += size) {
      const candidate = [...group.slice(0, i), ...group.slice(i + size)];
      if (await reproduces(candidate)) {
        group = candidate;
        removed = true;
        break;
      }
    }
    if (!removed) size >>= 1;
  }
  return group;
}

/** Attribute `failure` to one input and shrink it; bounded by `budgetMs`. */
export async function triage(failure: Failure, options: TriageOptions = {}): Promise<Triage> {
  const ctx = fuzzContext(options.config);
  const inputOf = (seed: number): FuzzInput => generateInput(seed, ctx);
  const deadline = Date.now() + (options.budgetMs ?? 120_000);
  const log = options.log ?? (() => {});
  const replayer = new Replayer(options, failure);
  const result: Triage = {
    failure,
    withoutInput: false,
    group: undefined,
    seed: undefined,
    minimal: undefined,
    writes: [],
    trials: 0,
  };
  try {
    // What the pair may run into on its own must not be pinned on the first suspect replayed.
    if (failure.kind !== 'kernel-contract' && failure.seed === undefined) {
      for (let i = 0; i < 2 && !result.withoutInput; i++) {
        result.withoutInput = (await replayer.reproduces([], 3000)).yes;
      }
      if (result.withoutInput) {
        log(`  ${failure.signature} happens with no hostile input: the well-behaved pair alone`);
        return result;
      }
    }
    const suspects =
      failure.seed !== undefined ? [failure.seed] : failure.suspects.slice(0, options.maxSuspects ?? 32);
    for (const seed of suspects) {
      if (Date.now() > deadline) break;
      if ((await replayer.reproduces([inputOf(seed)])).yes) {
        result.seed = seed;
        break;
      }
    }
    if (result.seed === undefined) {
      log(
        `  no single suspect reproduces ${failure.signature} alone (${replayer.trials} replays); trying them together`,
      );
      result.group = await minimalGroup(
        suspects.slice(0, 16),
        async (group) => (await replayer.reproduces(group.map(inputOf))).yes,
        deadline,
      );
      return result;
    }
    log(`  input ${hex(result.seed)} reproduces it alone; shrinking`);
    let current = inputOf(result.seed);
    let progress = true;
    while (progress && Date.now() < deadline) {
      progress = false;
      for (const candidate of shrink(current)) {
        if (Date.now() > deadline) break;
        if ((await replayer.reproduces([candidate])).yes) {
          current = candidate;
          progress = true;
          break;
        }
      }
    }
    result.minimal = current;
    // One more run to record the bytes the minimal input writes.
    const last = await replayer.reproduces([current]);
    result.writes = last.yes ? last.writes : [];
    return result;
  } finally {
    result.trials = replayer.trials;
    await replayer.close();
  }
}

function hexDump(writes: readonly Buffer[], limit = 1024): string {
  const lines: string[] = [];
  let shown = 0;
  for (const w of writes) {
    const part = w.subarray(0, Math.max(0, limit - shown));
    shown += part.length;
    lines.push(`${part.toString('hex')}${part.length < w.length ? `… (${w.length} bytes)` : ''}`);
    if (shown >= limit) break;
  }
  return lines.join('\n');
}

/** A finding as a reader wants it: what, how to replay, the minimal input and its bytes. */
export function formatTriage(t: Triage, runSeed?: number): string {
  const f = t.failure;
  const lines = [`FINDING: ${f.signature}`, f.detail.split('\n').slice(0, 12).join('\n')];
  if (t.withoutInput) {
    lines.push(
      'reproduces with no hostile input at all: the well-behaved pair alone (ordinary client traffic) runs into it',
    );
  } else if (t.seed !== undefined) {
    lines.push(`replay: npm run fuzz -- --replay ${hex(t.seed)}`);
  } else if (t.group !== undefined) {
    lines.push(
      `no single input does it, but these ${t.group.length} run together do: npm run fuzz -- --replay ${t.group.map(hex).join(',')}`,
    );
  } else {
    lines.push(
      `not reproduced by any single input alone; suspects: ${f.suspects.slice(0, 16).map(hex).join(' ')}`,
    );
  }
  if (runSeed !== undefined)
    lines.push(
      `whole run: npm run fuzz -- --seed ${hex(runSeed)} (with the run's --inputs and --concurrency)`,
    );
  if (t.minimal !== undefined) {
    lines.push(
      `minimal input (${t.minimal.scenario}, ${t.minimal.steps.length} steps, ${t.trials} replays to shrink):`,
    );
    lines.push(
      ...describeInput(t.minimal)
        .split('\n')
        .map((l) => `  ${l}`),
    );
    if (t.writes.length > 0) lines.push('bytes written, one line per write:', hexDump(t.writes));
  }
  return lines.join('\n');
}
