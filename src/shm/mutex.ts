/**
 * Mutex: a robust, cross-process mutual-exclusion lock in shared memory.
 *
 * Layout (4 bytes, 4-byte aligned):
 *   +0  state  i32  0 = unlocked; otherwise OWNER_MASK bits hold the holder's
 *                   thread id (gettid(); the pid for a main thread) and
 *                   WAITERS is set once anyone parked. The futex word.
 *                   Written by lockers (CAS 0 → tid, CAS v → v|WAITERS,
 *                   CAS dead-holder → tid|WAITERS) and by the holder's
 *                   unlock (CAS → 0).
 *
 * Contract:
 * - tryLock() → LockResult | null; lockSync(timeoutMs) blocks the thread;
 *   lock({timeout, signal}) does not block the event loop. Timeouts throw/
 *   reject TimeoutError, aborts AbortError; the lock is not held then.
 * - Owner death: a locker that finds the holder's thread gone (kill(tid, 0)
 *   fails with ESRCH) takes the lock over and gets `{ ownerDied: true }`.
 *   The lock IS held then; the data it protects may be half-updated, and the
 *   new holder must repair or reinitialise it before unlocking. Parked
 *   lockers check the holder's liveness every `livenessCheckMs` (default
 *   100 ms), so a SIGKILLed holder is detected within about that long.
 * - Identity is the OS thread: every async task on one thread shares it. An
 *   async lock() on a thread that already holds the lock waits for it (so
 *   tasks on one event loop exclude each other); lockSync() on such a thread
 *   would deadlock and throws INVALID_ARGUMENT instead. unlock() by a thread
 *   that does not hold the lock throws INVALID_ARGUMENT.
 * - Not recursive, not fair. Limits: thread ids must fit OWNER_MASK
 *   (pid_max ≤ 2^22 on Linux, so they do); a holder's tid reused by a new
 *   thread before the check defeats death detection; processes in different
 *   pid namespaces must not share a mutex.
 */
import { IpcError, TimeoutError } from '../errors.js';
import {
  DEFAULT_SPIN,
  deadlineAfter,
  futexWaitAsync,
  futexWaitSync,
  futexWake,
  remaining,
  throwIfAborted,
  type WaitOptions,
} from './futex.js';
import {
  currentThreadId,
  holderDied,
  livenessCheckMs,
  parkValue,
  RETRY,
  takeOver,
  WAITERS,
} from './holder-liveness.js';
import { wordsAt } from './layout-checks.js';

const STATE = 0;
const WORDS = 1;

/** Owner-word bits below WAITERS (see holder-liveness.ts). */
const OWNER_MASK = 0x3fffffff;

/** What a successful lock reports. */
export interface LockResult {
  /** The previous holder died holding the lock; the protected data may be inconsistent. */
  readonly ownerDied: boolean;
}

const LOCKED: LockResult = Object.freeze({ ownerDied: false });
const OWNER_DIED: LockResult = Object.freeze({ ownerDied: true });

export interface MutexOptions {
  /** How often parked lockers check that the holder is alive, in ms (default 100). */
  livenessCheckMs?: number;
}

export interface LockOptions extends WaitOptions {}

function myTag(): number {
  return currentThreadId() & OWNER_MASK;
}

export class Mutex {
  static readonly BYTES = WORDS * 4;

  readonly #w: Int32Array;
  readonly #livenessMs: number;

  constructor(buffer: SharedArrayBuffer, byteOffset: number, options: MutexOptions = {}) {
    this.#w = wordsAt(buffer, byteOffset, WORDS, 'Mutex');
    this.#livenessMs = livenessCheckMs(options);
  }

  /** Initialise the memory to unlocked (once, before use) and attach. */
  static init(buffer: SharedArrayBuffer, byteOffset: number, options: MutexOptions = {}): Mutex {
    const m = new Mutex(buffer, byteOffset, options);
    Atomics.store(m.#w, STATE, 0);
    return m;
  }

  /** The holder's thread id, or 0 when unlocked (a snapshot). */
  get owner(): number {
    return Atomics.load(this.#w, STATE) & OWNER_MASK;
  }

  /**
   * Take the lock if free (or held by a dead thread); null if held. A held
   * lock stays as it was: a try does not park, so it must not set WAITERS
   * (that would cost the holder a wake syscall at unlock for nobody).
   */
  tryLock(): LockResult | null {
    const me = myTag();
    const w = this.#w;
    const v = Atomics.load(w, STATE);
    if (v === 0) return Atomics.compareExchange(w, STATE, 0, me) === 0 ? LOCKED : null;
    if (holderDied(v & OWNER_MASK, me)) return takeOver(w, STATE, v, me) ? OWNER_DIED : null;
    return null;
  }

  /**
   * Take the lock only if it is free: one compare-and-swap, no liveness
   * check (a system call). For spinning on a lock held by a live thread; a
   * spin that fails must end with tryLock() or lock(), which find a dead
   * holder.
   */
  tryLockFree(): boolean {
    return Atomics.compareExchange(this.#w, STATE, 0, myTag()) === 0;
  }

  lockSync(timeoutMs: number = Number.POSITIVE_INFINITY): LockResult {
    const deadline = deadlineAfter(timeoutMs);
    const me = myTag();
    const w = this.#w;
    let want = me;
    for (let i = 0; ; i++) {
      const v = Atomics.load(w, STATE);
      if (v === 0) {
        if (Atomics.compareExchange(w, STATE, 0, want) === 0) return LOCKED;
        continue;
      }
      if ((v & OWNER_MASK) === me) {
        throw new IpcError(
          'INVALID_ARGUMENT',
          'lockSync() on a mutex this thread already holds would deadlock',
        );
      }
      if (i < DEFAULT_SPIN) continue;
      const next = this.#afterSpin(me, w, v);
      if (typeof next !== 'number') return next;
      if (next === RETRY) continue;
      const left = remaining(deadline);
      if (left === 0) throw new TimeoutError('mutex lock timed out');
      want = me | WAITERS;
      futexWaitSync(w, STATE, next, Math.min(left, this.#livenessMs));
    }
  }

  async lock(options: LockOptions = {}): Promise<LockResult> {
    const { signal } = options;
    throwIfAborted(signal);
    const deadline = deadlineAfter(options.timeout);
    const me = myTag();
    const w = this.#w;
    let want = me;
    for (let i = 0; ; i++) {
      const v = Atomics.load(w, STATE);
      if (v === 0) {
        if (Atomics.compareExchange(w, STATE, 0, want) === 0) return LOCKED;
        continue;
      }
      // Spinning cannot help when this thread itself holds the lock.
      if (i < DEFAULT_SPIN && (v & OWNER_MASK) !== me) continue;
      const next = this.#afterSpin(me, w, v);
      if (typeof next !== 'number') return next;
      if (next === RETRY) continue;
      const left = remaining(deadline);
      if (left === 0) throw new TimeoutError('mutex lock timed out');
      want = me | WAITERS;
      await futexWaitAsync(w, STATE, next, { timeout: Math.min(left, this.#livenessMs), signal });
    }
  }

  /** Release the lock; the calling thread must hold it. Wakes one waiter if any parked. */
  unlock(): void {
    const me = myTag();
    const w = this.#w;
    const v = Atomics.load(w, STATE);
    if ((v & OWNER_MASK) !== me) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `unlock() by thread ${me}, but the mutex is held by ${v & OWNER_MASK || 'nobody'}`,
      );
    }
    // While held, others can only add WAITERS, so an exchange loses nothing.
    const prev = Atomics.exchange(w, STATE, 0);
    if ((prev & WAITERS) !== 0) futexWake(w, STATE, 1);
  }

  /**
   * Given a held state `v` after spinning: take over from a dead holder
   * (→ OWNER_DIED), or set WAITERS and return the value to park on, or
   * RETRY if the state changed under us. A locker that parked once acquires
   * with WAITERS set, so its unlock wakes whoever else still sleeps.
   */
  #afterSpin(me: number, w: Int32Array, v: number): LockResult | number {
    if (holderDied(v & OWNER_MASK, me)) return takeOver(w, STATE, v, me) ? OWNER_DIED : RETRY;
    return parkValue(w, STATE, v);
  }
}
