/**
 * Semaphore: a counting semaphore in shared memory, usable from any process
 * or thread that maps the same segment.
 *
 * Layout (8 bytes, 4-byte aligned; give it its own 64-byte line if hot):
 *   +0  count    i32  permits available; the futex word. Written by post()
 *                     (add) and by waiters taking a permit (CAS to count-1).
 *   +4  waiters  i32  number of threads parked or about to park on `count`.
 *                     Written by waiters only (add/sub around parking);
 *                     read by post() to skip the wake syscall when zero.
 *
 * Contract:
 * - post(n) adds n permits and wakes up to n parked waiters. The count never
 *   exceeds 2^31-1: a post that would overflow it adds nothing and throws
 *   INVALID_ARGUMENT (an i32 that wrapped negative would block every waiter
 *   for good).
 * - tryWait() takes a permit or returns false; waitSync(timeoutMs) blocks the
 *   thread; wait({timeout, signal}) does not block the event loop. Timeouts
 *   throw/reject TimeoutError, aborts AbortError; no permit is taken then.
 * - Waiting spins briefly before parking. No FIFO fairness: when several
 *   wait, any of them may take the next permit (callers that need an order,
 *   like the shared-memory mailbox's per-handle FIFO, queue in front of it).
 * - A waiter parks on the count it last saw (<= 0), so a count that is not 0
 *   (corrupted from outside) still parks instead of spinning.
 * - Why no lost wakeups: a waiter increments `waiters` before its last read
 *   of `count`, and post() increments `count` before reading `waiters`; all
 *   Atomics are sequentially consistent, so either post() sees the waiter and
 *   wakes it, or the waiter sees the permit. The kernel rechecks that the
 *   count still equals the value the waiter saw, atomically, when parking.
 * - A process that dies while parked leaves `waiters` too high: that only
 *   costs post() a needless wake syscall.
 */
import { IpcError, TimeoutError } from '../errors.js';
import {
  DEFAULT_SPIN,
  deadlineAfter,
  futexWaitAsync,
  futexWaitSync,
  futexWake,
  remaining,
  spinWhile,
  throwIfAborted,
  type WaitOptions,
} from './futex.js';
import { checkInteger, wordsAt } from './layout-checks.js';

const COUNT = 0;
const WAITERS = 1;
const WORDS = 2;

const MAX_COUNT = 0x7fffffff;
/** #takeOrSee's answer when it took a permit (a count it could return is <= 0). */
const TAKEN = 1;

export class Semaphore {
  /** Bytes the semaphore occupies. */
  static readonly BYTES = WORDS * 4;

  readonly #w: Int32Array;

  /** Attach to a semaphore already initialised at `byteOffset`. */
  constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    this.#w = wordsAt(buffer, byteOffset, WORDS, 'Semaphore');
  }

  /** Initialise the memory (once, before any other process uses it) and attach. */
  static init(buffer: SharedArrayBuffer, byteOffset: number, initial = 0): Semaphore {
    checkInteger(initial, 0, MAX_COUNT, 'initial');
    const sem = new Semaphore(buffer, byteOffset);
    Atomics.store(sem.#w, WAITERS, 0);
    Atomics.store(sem.#w, COUNT, initial);
    return sem;
  }

  /** Permits currently available (a snapshot). */
  get value(): number {
    return Atomics.load(this.#w, COUNT);
  }

  /** Threads parked (or about to park) in a wait, in every attached process (a snapshot). */
  get waiters(): number {
    return Atomics.load(this.#w, WAITERS);
  }

  tryWait(): boolean {
    const w = this.#w;
    let v = Atomics.load(w, COUNT);
    while (v > 0) {
      const seen = Atomics.compareExchange(w, COUNT, v, v - 1);
      if (seen === v) return true;
      v = seen;
    }
    return false;
  }

  /** Block this thread until a permit is taken; TimeoutError after `timeoutMs`. */
  waitSync(timeoutMs: number = Number.POSITIVE_INFINITY): void {
    const deadline = deadlineAfter(timeoutMs);
    if (this.#spinTake()) return;
    const w = this.#w;
    Atomics.add(w, WAITERS, 1);
    try {
      for (;;) {
        const seen = this.#takeOrSee();
        if (seen === TAKEN) return;
        const r = futexWaitSync(w, COUNT, seen, remaining(deadline));
        if (r === 'timed-out') {
          if (this.tryWait()) return;
          throw new TimeoutError('semaphore wait timed out');
        }
      }
    } finally {
      Atomics.sub(w, WAITERS, 1);
    }
  }

  /** Take a permit without blocking the event loop. */
  async wait(options: WaitOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    const deadline = deadlineAfter(options.timeout);
    if (this.#spinTake()) return;
    const w = this.#w;
    Atomics.add(w, WAITERS, 1);
    try {
      for (;;) {
        const seen = this.#takeOrSee();
        if (seen === TAKEN) return;
        const r = await futexWaitAsync(w, COUNT, seen, {
          timeout: remaining(deadline),
          signal: options.signal,
        });
        if (r === 'timed-out') {
          if (this.tryWait()) return;
          throw new TimeoutError('semaphore wait timed out');
        }
      }
    } finally {
      Atomics.sub(w, WAITERS, 1);
    }
  }

  /** Add `n` permits and wake up to `n` waiters. */
  post(n = 1): void {
    checkInteger(n, 0, MAX_COUNT, 'n');
    if (n === 0) return;
    const w = this.#w;
    let v = Atomics.load(w, COUNT);
    for (;;) {
      if (v > MAX_COUNT - n) {
        throw new IpcError(
          'INVALID_ARGUMENT',
          `semaphore post(${n}) would overflow its count of ${v} (at most ${MAX_COUNT})`,
        );
      }
      const seen = Atomics.compareExchange(w, COUNT, v, v + n);
      if (seen === v) break;
      v = seen;
    }
    if (Atomics.load(w, WAITERS) > 0) futexWake(w, COUNT, n);
  }

  /** Take a permit (TAKEN) or return the count seen (<= 0) to park on. */
  #takeOrSee(): number {
    const w = this.#w;
    let v = Atomics.load(w, COUNT);
    while (v > 0) {
      const seen = Atomics.compareExchange(w, COUNT, v, v - 1);
      if (seen === v) return TAKEN;
      v = seen;
    }
    return v;
  }

  #spinTake(): boolean {
    for (let round = 0; round < 4; round++) {
      if (this.tryWait()) return true;
      spinWhile(this.#w, COUNT, 0, DEFAULT_SPIN >> 2);
    }
    return this.tryWait();
  }
}
