/**
 * What the comparison runner (run.ts) and its peers (peer.ts, cp-host.ts,
 * worker-host.ts) agree on: the cell a peer is told to run, the results it
 * reports, and the statistics helpers.
 *
 * Every cell is a topology of peers with indices 0..n-1:
 * - one-way:   0 → 1                     (0 'send', 1 'recv')
 * - fan-out:   0 → 1..4, every receiver gets every message
 * - fan-in:    1..4 → 0
 * - round-trip 0 ⇄ 1                     (0 'ping', 1 'echo')
 * - ring:      i → (i+1) mod n, a token passed around; 0 starts and measures
 *
 * Measuring (the same for every transport):
 * - streams: each sender sends `warmup` data messages, then `count` more
 *   (fewer if its time cap `capMs` ran out), then an END marker (1 byte;
 *   data is never that small). A receiver ignores the first
 *   `warmup × senders` messages (or what came in the first quarter of
 *   `capMs`, if that ends first: a slow transport's senders reach their cap
 *   before the warm-up count), then cuts what follows into windows of at
 *   least `windowMs` on its own clock (a window closes at the first message
 *   after that time), each giving a rate; a last partial window counts if it
 *   lasted at least half of `windowMs`. Time windows, not message counts,
 *   so transports that deliver in batches (Redis BLMPOP, prefetch) are not
 *   measured inside one batch. Bounded counts keep memory bounded for
 *   transports without backpressure.
 * - round trip: `warmup` unmeasured rounds, then `reps` repetitions of
 *   `rounds` timed rounds (each repetition capped in time), p50/p99/p999 each.
 * - ring: `warmup` laps, then `reps` repetitions of `laps` laps; the figure
 *   is the time per hop (a hop = one process handing the token to the next).
 */

export type Scenario = 'one-way' | 'fan-out' | 'fan-in' | 'round-trip' | 'ring';
export type Role = 'send' | 'recv' | 'ping' | 'echo' | 'ring';

export interface PeerSpec {
  index: number;
  role: Role;
  /** Peers this one sends to. */
  targets: number[];
  /** Peers that send to this one. */
  sources: number[];
}

export interface CellSpec {
  transport: string;
  scenario: Scenario;
  /** Payload bytes (ring: the token size). */
  size: number;
  peers: PeerSpec[];
  /** fan-out: use the transport's native broadcast / pub-sub if it has one. */
  broadcast: boolean;
  /** Unmeasured messages per sender (streams), rounds (round trip), laps (ring). */
  warmup: number;
  /** Streams: measured messages per sender (an upper bound: the time cap may end it first). */
  count: number;
  /** Streams: the receiver's measuring window. */
  windowMs: number;
  /** Round trip and ring: repetitions, each of `window` rounds / laps. */
  reps: number;
  window: number;
  /** A sender stops sending (and sends END) after this long; repetitions are capped alike. */
  capMs: number;
  /** Scratch directory for sockets and config (unique per cell). */
  dir: string;
  /** Unique id of this cell (names of mailboxes, segments, subjects, keys). */
  id: string;
  /** Where servers listen: kernel socket, NATS / Redis port. */
  kernelSocket?: string;
  /** The two kernels of the cross-node transports (one cluster over the run's nats-server). */
  clusterSockets?: [string, string];
  port?: number;
}

export interface StreamResult {
  kind: 'stream';
  peer: number;
  windows: { messages: number; seconds: number }[];
  received: number;
  expected: number;
  /** True when the receiver stopped on its idle timeout instead of END markers (lost messages). */
  idle: boolean;
}

export interface RttResult {
  kind: 'rtt';
  peer: number;
  reps: { rounds: number; p50us: number; p99us: number; p999us: number }[];
}

export interface RingResult {
  kind: 'ring';
  peer: number;
  reps: { hops: number; seconds: number }[];
  /** Hops per lap (n for a true ring; 2(n-1) for the child_process chain). */
  hopsPerLap: number;
}

/** A stream sender: data messages it sent (per target), so losses can be told from a time cap. */
export interface SentResult {
  kind: 'sent';
  peer: number;
  messages: number;
}

export type PeerResult = StreamResult | RttResult | RingResult | SentResult;

export const END_SIZE = 1;

export function now(): number {
  return performance.now();
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return percentile(s, 0.5);
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stat(values: number[]): Stat | undefined {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return undefined;
  const s = [...v].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const med = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median: med, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A data payload of `size` bytes (first byte never matters; END is identified by length). */
/** Where readEvery's results go, so no engine can skip the read. */
export let readSink = 0;

/**
 * Read every byte of a received payload, as a receiver that uses its data would: a native scan
 * (memchr for a byte no payload holds, see payloadOf), the same for every transport.
 */
export function readEvery(b: ArrayBuffer | Uint8Array): void {
  const bytes = b instanceof ArrayBuffer ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  readSink ^= bytes.indexOf(0);
}

export function payloadOf(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 0x61 + (i % 26);
  return b;
}
