import type { MailboxCounters, MailboxStatsInfo, RateInfo } from '../wire/info-types.js';

/**
 * What the kernel measures about a mailbox beyond its counters: how long
 * messages wait in its queue, and its rates.
 *
 * Wait time is from the moment a message entered the queue (accepted, or put
 * back by a redelivery) to the moment it was handed to a receiver. It is kept
 * as a histogram with log2 buckets of microseconds, so recording costs one
 * clock read at each end, a `Math.clz32` and an increment: O(1) per message,
 * nothing allocated, and the record is the same size however many messages pass.
 *
 * Buckets: bucket 0 counts waits under 1 µs; bucket i (1 ≤ i < LAST) counts
 * waits in [2^(i-1), 2^i) µs; the last counts everything from 2^(LAST-1) µs
 * (about 67 s) up. The histogram covers the mailbox's whole life, like a
 * Prometheus histogram; percentiles read from it are within a factor of two
 * (linear inside the bucket).
 */
export const WAIT_BUCKETS = 28;
const LAST = WAIT_BUCKETS - 1;

/** Upper bound of bucket `i` in seconds (Infinity for the last), as /metrics labels it. */
export function waitBucketBound(i: number): number {
  return i >= LAST ? Number.POSITIVE_INFINITY : 2 ** i / 1e6;
}

/** The monotonic clock both ends of a wait read (ms, fractional). */
export const now: () => number = performance.now.bind(performance);

export class WaitHistogram {
  readonly buckets = new Float64Array(WAIT_BUCKETS);
  count = 0;
  /** Sum of all waits, ms (for /metrics' `_sum`). */
  sumMs = 0;

  record(waitMs: number): void {
    // Waits past 2^32 µs (71 min) would wrap in `>>> 0`: they go to the last bucket anyway.
    const us = waitMs <= 0 ? 0 : waitMs >= 4_294_967 ? 0xffffffff : (waitMs * 1000) >>> 0;
    this.buckets[Math.min(32 - Math.clz32(us), LAST)]++;
    this.count++;
    this.sumMs += waitMs;
  }

  /** The `q` quantile (0..1) in ms, or null before any message was delivered. */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const target = q * this.count;
    let seen = 0;
    for (let i = 0; i < WAIT_BUCKETS; i++) {
      const n = this.buckets[i]!;
      if (n === 0) continue;
      if (seen + n >= target) {
        const lo = i === 0 ? 0 : 2 ** (i - 1) / 1000;
        if (i === LAST) return lo;
        const hi = 2 ** i / 1000;
        return lo + ((target - seen) / n) * (hi - lo);
      }
      seen += n;
    }
    return null;
  }
}

/** Per-second rates of a set of counters, from the difference between two samples. */
export class RateMeter<K extends string> {
  private prev: Record<K, number> | undefined;
  private prevAt = 0;
  rates: Record<K, number>;

  constructor(private readonly keys: readonly K[]) {
    this.rates = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  }

  /** Take a sample at `at` (ms): the rates become the change since the last sample, per second. */
  sample(values: Record<K, number>, at: number): void {
    const prev = this.prev;
    const dt = (at - this.prevAt) / 1000;
    const next = {} as Record<K, number>;
    for (const k of this.keys) {
      next[k] = values[k];
      if (prev !== undefined && dt > 0) this.rates[k] = (values[k] - prev[k]) / dt;
    }
    this.prev = next;
    this.prevAt = at;
  }
}

const MAILBOX_RATES = ['sent', 'received', 'acked', 'redelivered'] as const;

/** A mailbox's wait histogram and rates (sampled by rate-sampler.ts). */
export class MailboxStats {
  readonly wait = new WaitHistogram();
  readonly meter = new RateMeter<(typeof MAILBOX_RATES)[number]>(MAILBOX_RATES);

  sample(counters: MailboxCounters, at: number): void {
    this.meter.sample(counters, at);
  }

  describe(): MailboxStatsInfo {
    const r = this.meter.rates;
    const rates: MailboxStatsInfo['rates'] = {
      sent: round(r.sent),
      received: round(r.received),
      acked: round(r.acked),
      redelivered: round(r.redelivered),
    };
    return {
      rates,
      wait: {
        count: this.wait.count,
        sumMs: this.wait.sumMs,
        p50: roundOrNull(this.wait.quantile(0.5)),
        p99: roundOrNull(this.wait.quantile(0.99)),
        buckets: Array.from(this.wait.buckets),
      },
    };
  }
}

/** Rates of a process (messages it sent and received per second). */
export function processRates(m: RateMeter<'sent' | 'received'>): RateInfo {
  return { sent: round(m.rates.sent), received: round(m.rates.received) };
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

function roundOrNull(v: number | null): number | null {
  return v === null ? null : Math.round(v * 1000) / 1000;
}
