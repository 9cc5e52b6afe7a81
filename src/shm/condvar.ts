/**
 * Condvar: a condition variable in shared memory, used with a Mutex.
 *
 * Layout (8 bytes, 4-byte aligned):
 *   +0  seq      i32  bumped (wrapping) by every signal/broadcast; the futex
 *                     word waiters park on. Written by signal()/broadcast().
 *   +4  waiters  i32  threads between "read seq" and "done waiting".
 *                     Written by waiters (add/sub); read by signalers to skip
 *                     the wake syscall when zero.
 *
 * Contract:
 * - wait(mutex) / waitSync(mutex): the caller holds `mutex`; it is released
 *   while waiting and re-acquired before returning (also on timeout and
 *   abort, which then throw TimeoutError / AbortError with the mutex held).
 *   The re-acquire's LockResult is returned, so a waiter learns when the
 *   mutex holder died (`ownerDied`) and must repair the protected state.
 * - Wakeups may be spurious: always wait in a loop on your predicate.
 * - No lost signals: a waiter reads `seq` and joins `waiters` while still
 *   holding the mutex; a signal sent after it released the mutex changes
 *   `seq`, so the kernel refuses to park it (or wakes it).
 * - seq wraps at 2^32; a waiter would miss a signal only if exactly 2^32
 *   signals arrived between its unlock and its park.
 */
import { TimeoutError } from '../errors.js';
import { deadlineAfter, futexWaitAsync, futexWaitSync, futexWake, type WaitOptions } from './futex.js';
import { wordsAt } from './layout-checks.js';
import type { LockResult, Mutex } from './mutex.js';

const SEQ = 0;
const WAITERS = 1;
const WORDS = 2;

const WAKE_ALL = 0x7fffffff;

export class Condvar {
  static readonly BYTES = WORDS * 4;

  readonly #w: Int32Array;

  constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    this.#w = wordsAt(buffer, byteOffset, WORDS, 'Condvar');
  }

  static init(buffer: SharedArrayBuffer, byteOffset: number): Condvar {
    const c = new Condvar(buffer, byteOffset);
    Atomics.store(c.#w, SEQ, 0);
    Atomics.store(c.#w, WAITERS, 0);
    return c;
  }

  /** Release `mutex`, block this thread until signalled or timed out, re-acquire. */
  waitSync(mutex: Mutex, timeoutMs: number = Number.POSITIVE_INFINITY): LockResult {
    deadlineAfter(timeoutMs);
    const w = this.#w;
    const seq = Atomics.load(w, SEQ);
    this.#join(mutex);
    let result: string;
    try {
      result = futexWaitSync(w, SEQ, seq, timeoutMs);
    } finally {
      Atomics.sub(w, WAITERS, 1);
    }
    const relocked = mutex.lockSync();
    if (result === 'timed-out') throw new TimeoutError('condvar wait timed out');
    return relocked;
  }

  /** Release `mutex`, wait without blocking the event loop, re-acquire. */
  async wait(mutex: Mutex, options: WaitOptions = {}): Promise<LockResult> {
    deadlineAfter(options.timeout);
    const w = this.#w;
    const seq = Atomics.load(w, SEQ);
    this.#join(mutex);
    let failure: unknown;
    let timedOut = false;
    try {
      timedOut = (await futexWaitAsync(w, SEQ, seq, options)) === 'timed-out';
    } catch (err) {
      failure = err;
    } finally {
      Atomics.sub(w, WAITERS, 1);
    }
    const relocked = await mutex.lock();
    if (failure !== undefined) throw failure;
    if (timedOut) throw new TimeoutError('condvar wait timed out');
    return relocked;
  }

  /** Wake one waiter. */
  signal(): void {
    this.#bump(1);
  }

  /** Wake every waiter. */
  broadcast(): void {
    this.#bump(WAKE_ALL);
  }

  /** Count this thread as a waiter, then release the mutex (which must be held). */
  #join(mutex: Mutex): void {
    Atomics.add(this.#w, WAITERS, 1);
    try {
      mutex.unlock();
    } catch (err) {
      Atomics.sub(this.#w, WAITERS, 1);
      throw err;
    }
  }

  #bump(count: number): void {
    const w = this.#w;
    Atomics.add(w, SEQ, 1);
    if (Atomics.load(w, WAITERS) > 0) futexWake(w, SEQ, count);
  }
}
