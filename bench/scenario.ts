/**
 * What the runner and the bench workers agree on: the scenario a worker is
 * told to run (one JSON argument), the result it prints back (one
 * `RESULT <json>` line on stdout), the in-band markers that delimit the
 * measured window, and the measuring helpers every transport shares.
 *
 * Measuring rules, the same for every transport:
 * - one-way: the sender streams for `warmupMs`, sends the START marker,
 *   streams for `measureMs`, then sends the END marker. The receiver counts
 *   data messages between the markers on its own monotonic clock, so the
 *   rate is what the receiving process actually consumed.
 * - round trip: the pinger sends one message and waits for its echo, for
 *   `warmupMs` unmeasured and then for `measureMs`, timing every round.
 * Markers are payloads of MARKER_SIZE bytes; data payloads are never that small.
 */

export type Mode = 'one-way' | 'round-trip';

export interface ScenarioConfig {
  mode: Mode;
  /** Payload size in bytes. */
  size: number;
  warmupMs: number;
  measureMs: number;
  /** Kernel socket (ipcbox) or the listening socket (raw net). */
  socketPath?: string;
  /** child_process serialization. */
  serialization?: 'json' | 'advanced';
  /** Mailbox names for this run (ipcbox). */
  mailbox?: string;
}

export interface OneWayResult {
  mode: 'one-way';
  messages: number;
  seconds: number;
  msgsPerSec: number;
  mbPerSec: number;
}

export interface RoundTripResult {
  mode: 'round-trip';
  rounds: number;
  p50us: number;
  p99us: number;
}

export type RunResult = OneWayResult | RoundTripResult;

export const MARKER_SIZE = 1;
export const START = 1;
export const END = 2;

export const startMarker = (): Buffer => Buffer.from([START]);
export const endMarker = (): Buffer => Buffer.from([END]);

/** A data payload: `size` bytes of a recognisable pattern. */
export function payloadOf(size: number): Buffer {
  if (size <= MARKER_SIZE) throw new RangeError(`payload size must exceed the ${MARKER_SIZE}-byte marker`);
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

export function now(): number {
  return performance.now();
}

/** Receiver-side accounting for a one-way run. Feed it every message in order. */
export class OneWayMeter {
  private started = -1;
  private count = 0;
  private result: OneWayResult | undefined;

  constructor(private readonly size: number) {}

  /** Account for one message; returns the result once the END marker arrived. */
  onMessage(length: number, marker: number): OneWayResult | undefined {
    if (length !== MARKER_SIZE) {
      if (this.started >= 0) this.count++;
      return undefined;
    }
    if (marker === START) {
      this.started = now();
      this.count = 0;
      return undefined;
    }
    const seconds = (now() - this.started) / 1000;
    this.result = {
      mode: 'one-way',
      messages: this.count,
      seconds,
      msgsPerSec: this.count / seconds,
      mbPerSec: (this.count * this.size) / seconds / 1e6,
    };
    return this.result;
  }
}

/**
 * Drive a one-way sender: `sendOne()` sends one data message (awaiting it
 * only when it returns a promise); markers are sent with `sendMarker`.
 */
export async function streamFor(
  config: ScenarioConfig,
  sendOne: () => undefined | Promise<unknown>,
  sendMarker: (marker: Buffer) => undefined | Promise<unknown>,
  batch = 256,
): Promise<void> {
  const run = async (ms: number): Promise<void> => {
    const end = now() + ms;
    do {
      for (let i = 0; i < batch; i++) {
        const p = sendOne();
        if (p !== undefined) await p;
      }
    } while (now() < end);
  };
  await run(config.warmupMs);
  await sendMarker(startMarker());
  await run(config.measureMs);
  await sendMarker(endMarker());
}

/** Drive a pinger: `round()` sends one message and resolves when its echo is back. */
export async function pingFor(
  config: ScenarioConfig,
  round: () => Promise<unknown>,
): Promise<RoundTripResult> {
  let end = now() + config.warmupMs;
  while (now() < end) await round();
  const samples: number[] = [];
  end = now() + config.measureMs;
  while (now() < end) {
    const t = now();
    await round();
    samples.push(now() - t);
  }
  return roundTripResult(samples);
}

export function roundTripResult(samplesMs: number[]): RoundTripResult {
  const sorted = Float64Array.from(samplesMs).sort();
  return {
    mode: 'round-trip',
    rounds: sorted.length,
    p50us: percentile(sorted, 0.5) * 1000,
    p99us: percentile(sorted, 0.99) * 1000,
  };
}

/** Nearest-rank percentile of sorted values (NaN when empty). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Worker side: read the scenario from argv (role, then JSON). */
export function workerArgs(): { role: string; config: ScenarioConfig } {
  const role = process.argv[2];
  const json = process.argv[3];
  if (role === undefined || json === undefined) throw new Error('usage: <worker>.js <role> <scenario-json>');
  return { role, config: JSON.parse(json) as ScenarioConfig };
}

export function report(result: RunResult): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

export function ready(): void {
  process.stdout.write('READY\n');
}
