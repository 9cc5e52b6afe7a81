/**
 * From a failure seen under load to a minimal input: replay the suspects one
 * at a time on a fresh kernel (with the pair, one connection at a time) until
 * one reproduces the failure's signature, then shrink that input step by step
 * while it still does. Each replay runs on a harness of its own once the
 * previous one failed, so state from one trial never explains the next.
 */
import { describeInput, type FuzzInput, generateInput, hex, shrink } from './frame-fuzzer.js';
import { type Failure, FuzzHarness, fuzzContext, type HarnessOptions } from './fuzz-harness.js';

export interface Triage {
  failure: Failure;
  /** It happens with no hostile input at all: the well-behaved pair alone runs into it. */
  withoutInput: boolean;
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

  /** Does `input` (or, undefined, just the pair's traffic for `idleMs`) reproduce the failure? */
  async reproduces(
    input: FuzzInput | undefined,
    record = false,
    idleMs = 0,
  ): Promise<{ yes: boolean; writes: Buffer[] }> {
    this.trials++;
    if (this.harness === undefined)
      this.harness = await FuzzHarness.start({ ...this.options, concurrency: 1 });
    const h = this.harness;
    const outcome = input === undefined ? undefined : await h.runAlone(input, settleMs(this.target));
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
      writes: record && outcome !== undefined ? outcome.writes : [],
    };
  }

  async close(): Promise<void> {
    await this.harness?.kill();
    this.harness = undefined;
  }
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
    seed: undefined,
    minimal: undefined,
    writes: [],
    trials: 0,
  };
  try {
    // What the pair may run into on its own must not be pinned on the first suspect replayed.
    if (failure.kind !== 'kernel-contract' && failure.seed === undefined) {
      for (let i = 0; i < 2 && !result.withoutInput; i++) {
        result.withoutInput = (await replayer.reproduces(undefined, false, 3000)).yes;
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
      if ((await replayer.reproduces(inputOf(seed))).yes) {
        result.seed = seed;
        break;
      }
    }
    if (result.seed === undefined) {
      log(`  no single suspect reproduces ${failure.signature} alone (${replayer.trials} replays)`);
      return result;
    }
    log(`  input ${hex(result.seed)} reproduces it alone; shrinking`);
    let current = inputOf(result.seed);
    let progress = true;
    while (progress && Date.now() < deadline) {
      progress = false;
      for (const candidate of shrink(current)) {
        if (Date.now() > deadline) break;
        if ((await replayer.reproduces(candidate)).yes) {
          current = candidate;
          progress = true;
          break;
        }
      }
    }
    result.minimal = current;
    // One more run to record the bytes the minimal input writes.
    const last = await replayer.reproduces(current, true);
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
