/**
 * RwLock: a cross-process read-write lock in shared memory, with writer
 * preference and recovery from dead writers.
 *
 * Layout (16 bytes, 4-byte aligned; give it its own 64-byte line):
 *   +0   writer   i32  0 = no writer. Otherwise OWNER_MASK holds the thread id
 *                      (gettid(); the pid for a main thread) of the one writer
 *                      that holds or is acquiring the lock, WRITING (bit 29)
 *                      is set once it has exclusive access (all readers
 *                      drained), WAITERS (bit 30) once anyone parked on this
 *                      word. Futex word for readers and writers waiting for
 *                      the writer. Written by writers (CAS 0 → tid, OR
 *                      WRITING, exchange → 0 on unlock), by waiters (OR
 *                      WAITERS via CAS) and by whoever recovers a dead
 *                      writer (CAS → 0).
 *   +4   readers  i32  readers holding the lock, plus readers briefly probing
 *                      (a reader adds 1, then backs off if a writer appeared).
 *                      Futex word the acquiring writer parks on while readers
 *                      drain. Written by readers only (add/sub).
 *   +8   died     i32  thread id of a writer that died with exclusive access
 *                      (its data may be half-written); 0 when clean. Set by
 *                      whoever recovers the dead writer, cleared by the next
 *                      writeUnlock() (the writer that saw `ownerDied` repaired
 *                      the data).
 *   +12  reserved i32
 *
 * Contract:
 * - Any number of readers or one writer. Writer preference: once a writer
 *   has claimed the `writer` word, new readers wait, so a stream of readers
 *   cannot starve writers (a stream of writers can starve readers). Among
 *   writers, and among readers, there is no FIFO order.
 * - Trios: tryReadLock()/readLockSync(ms)/readLock({timeout, signal}) and
 *   tryWriteLock()/writeLockSync(ms)/writeLock({timeout, signal}); release
 *   with readUnlock()/writeUnlock(). try* return null when they would block;
 *   timeouts throw TimeoutError, aborts AbortError, and the lock is then not
 *   held (a writer that timed out while readers drained gives its claim up).
 * - Why no lost wakeups: a reader adds itself to `readers` and then loads
 *   `writer`; a writer claims `writer` and then loads `readers` (all Atomics
 *   are sequentially consistent), so one of them sees the other. The last
 *   reader to leave wakes the draining writer if `writer` is set. Waiters set
 *   WAITERS before parking on the value they saw, and writeUnlock() exchanges
 *   the word to 0 and wakes everyone if WAITERS was set.
 * - Dead writer: a waiter (reader or writer) that finds the writer's thread
 *   gone (kill(tid, 0) → ESRCH) clears the `writer` word and wakes everyone.
 *   If the dead writer had exclusive access, `died` records it and every
 *   acquisition (read or write) returns `{ ownerDied: true }` until a writer
 *   completes a write section (writeUnlock clears it): readers learn the data
 *   may be inconsistent, the next writer must repair it. A writer that died
 *   before getting exclusive access (while readers drained) left the data
 *   untouched, so nothing is flagged. Parked waiters recheck liveness every
 *   `livenessCheckMs` (default 100 ms).
 * - Dead reader: readers are anonymous (a count), so a reader that dies
 *   holding the lock is NOT detected: its hold leaks, and every writer then
 *   waits for it until its own timeout (without a timeout, forever). Readers
 *   are unaffected once no writer is pending, because a writer that times
 *   out gives its claim up. Use timeouts on writes when readers may die;
 *   reinitialise (RwLock.init) once every party is known to be gone.
 * - Identity is the OS thread for the writer, as with Mutex: async tasks on
 *   one thread share it; writeLockSync()/readLockSync() on a thread that
 *   holds the write lock throw INVALID_ARGUMENT instead of deadlocking (the
 *   async forms wait). writeUnlock() by a non-holder throws INVALID_ARGUMENT.
 *   Not recursive: taking a second read lock while a writer is pending
 *   deadlocks that thread until a timeout; taking the write lock while
 *   holding a read lock (an "upgrade") waits for itself. Same limits as
 *   Mutex: tid reuse defeats death detection; no sharing across pid
 *   namespaces.
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
import type { LockResult } from './mutex.js';

const WRITER = 0;
const READERS = 1;
const DIED = 2;
const WORDS = 4;

/** Owner-word bits of `writer` besides WAITERS (see holder-liveness.ts). */
const WRITING = 0x20000000;
const OWNER_MASK = 0x1fffffff;
const WAKE_ALL = 0x7fffffff;

const CLEAN: LockResult = Object.freeze({ ownerDied: false });
const OWNER_DIED: LockResult = Object.freeze({ ownerDied: true });

export interface RwLockOptions {
  /** How often parked waiters check that the writer is alive, in ms (default 100). */
  livenessCheckMs?: number;
}

function myTag(): number {
  return currentThreadId() & OWNER_MASK;
}

/** Outcome of one attempt to claim the `writer` word (besides RETRY). */
const CLAIMED = -1;

export class RwLock {
  static readonly BYTES = WORDS * 4;

  readonly #w: Int32Array;
  readonly #livenessMs: number;

  constructor(buffer: SharedArrayBuffer, byteOffset: number, options: RwLockOptions = {}) {
    this.#w = wordsAt(buffer, byteOffset, WORDS, 'RwLock');
    this.#livenessMs = livenessCheckMs(options);
  }

  /** Initialise the memory to unlocked (once, before use) and attach. */
  static init(buffer: SharedArrayBuffer, byteOffset: number, options: RwLockOptions = {}): RwLock {
    const l = new RwLock(buffer, byteOffset, options);
    for (let i = 0; i < WORDS; i++) Atomics.store(l.#w, i, 0);
    return l;
  }

  /** Readers inside (plus any briefly probing); a snapshot. */
  get readers(): number {
    return Atomics.load(this.#w, READERS);
  }

  /** Thread id of the writer holding or acquiring the lock, 0 if none; a snapshot. */
  get writer(): number {
    return Atomics.load(this.#w, WRITER) & OWNER_MASK;
  }

  // ------------------------------------------------------------ readers

  tryReadLock(): LockResult | null {
    for (let attempt = 0; attempt < 2; attempt++) {
      const v = this.#readAttempt();
      if (typeof v !== 'number') return v;
      // One retry, only after clearing a dead writer.
      if (v === RETRY || !this.#recoverIfDead(myTag(), v)) return null;
    }
    return null;
  }

  readLockSync(timeoutMs: number = Number.POSITIVE_INFINITY): LockResult {
    const deadline = deadlineAfter(timeoutMs);
    const me = myTag();
    const w = this.#w;
    for (let i = 0; ; i++) {
      const v = this.#readAttempt();
      if (typeof v !== 'number') return v;
      if (v === RETRY) continue;
      if ((v & OWNER_MASK) === me) {
        throw new IpcError(
          'INVALID_ARGUMENT',
          'readLockSync() on a thread holding the write lock would deadlock',
        );
      }
      if (i < DEFAULT_SPIN) continue;
      const park = this.#parkValue(me, v);
      if (park === RETRY) continue;
      const left = remaining(deadline);
      if (left === 0) throw new TimeoutError('rwlock read lock timed out');
      futexWaitSync(w, WRITER, park, Math.min(left, this.#livenessMs));
    }
  }

  async readLock(options: WaitOptions = {}): Promise<LockResult> {
    const { signal } = options;
    throwIfAborted(signal);
    const deadline = deadlineAfter(options.timeout);
    const me = myTag();
    const w = this.#w;
    for (let i = 0; ; i++) {
      const v = this.#readAttempt();
      if (typeof v !== 'number') return v;
      if (v === RETRY) continue;
      if (i < DEFAULT_SPIN && (v & OWNER_MASK) !== me) continue;
      const park = this.#parkValue(me, v);
      if (park === RETRY) continue;
      const left = remaining(deadline);
      if (left === 0) throw new TimeoutError('rwlock read lock timed out');
      await futexWaitAsync(w, WRITER, park, { timeout: Math.min(left, this.#livenessMs), signal });
    }
  }

  /** Release a read lock. */
  readUnlock(): void {
    const w = this.#w;
    let r = Atomics.load(w, READERS);
    for (;;) {
      if (r <= 0) throw new IpcError('INVALID_ARGUMENT', 'readUnlock() without a read lock held');
      const seen = Atomics.compareExchange(w, READERS, r, r - 1);
      if (seen === r) break;
      r = seen;
    }
    if (r === 1 && Atomics.load(w, WRITER) !== 0) futexWake(w, READERS, 1);
  }

  // ------------------------------------------------------------ writers

  tryWriteLock(): LockResult | null {
    const me = myTag();
    for (let attempt = 0; attempt < 2; attempt++) {
      const v = this.#claimAttempt(me);
      if (v === CLAIMED) {
        if (Atomics.load(this.#w, READERS) === 0) return this.#becomeExclusive();
        this.#releaseClaim();
        return null;
      }
      if (v === RETRY || !this.#recoverIfDead(me, v)) return null;
    }
    return null;
  }

  writeLockSync(timeoutMs: number = Number.POSITIVE_INFINITY): LockResult {
    const deadline = deadlineAfter(timeoutMs);
    const me = myTag();
    const w = this.#w;
    let want = me;
    for (let i = 0; ; i++) {
      const v = this.#claimAttempt(want);
      if (v === CLAIMED) break;
      if (v === RETRY) continue;
      if ((v & OWNER_MASK) === me) {
        throw new IpcError(
          'INVALID_ARGUMENT',
          'writeLockSync() on a thread holding the write lock would deadlock',
        );
      }
      if (i < DEFAULT_SPIN) continue;
      const park = this.#parkValue(me, v);
      if (park === RETRY) continue;
      const left = remaining(deadline);
      if (left === 0) throw new TimeoutError('rwlock write lock timed out');
      want = me | WAITERS;
      futexWaitSync(w, WRITER, park, Math.min(left, this.#livenessMs));
    }
    try {
      for (let i = 0; ; i++) {
        const r = Atomics.load(w, READERS);
        if (r === 0) return this.#becomeExclusive();
        if (i < DEFAULT_SPIN) continue;
        const left = remaining(deadline);
        if (left === 0) throw new TimeoutError('rwlock write lock timed out waiting for readers');
        futexWaitSync(w, READERS, r, left);
      }
    } catch (err) {
      this.#releaseClaim();
      throw err;
    }
  }

  async writeLock(options: WaitOptions = {}): Promise<LockResult> {
    const { signal } = options;
    throwIfAborted(signal);
    const deadline = deadlineAfter(options.timeout);
    const me = myTag();
    const w = this.#w;
    let want = me;
    for (let i = 0; ; i++) {
      const v = this.#claimAttempt(want);
      if (v === CLAIMED) break;
      if (v === RETRY) continue;
      if (i < DEFAULT_SPIN && (v & OWNER_MASK) !== me) continue;
      const park = this.#parkValue(me, v);
      if (park === RETRY) continue;
      const left = remaining(deadline);
      if (left === 0) throw new TimeoutError('rwlock write lock timed out');
      want = me | WAITERS;
      await futexWaitAsync(w, WRITER, park, { timeout: Math.min(left, this.#livenessMs), signal });
    }
    try {
      for (let i = 0; ; i++) {
        const r = Atomics.load(w, READERS);
        if (r === 0) return this.#becomeExclusive();
        if (i < DEFAULT_SPIN) continue;
        const left = remaining(deadline);
        if (left === 0) throw new TimeoutError('rwlock write lock timed out waiting for readers');
        await futexWaitAsync(w, READERS, r, { timeout: left, signal });
      }
    } catch (err) {
      this.#releaseClaim();
      throw err;
    }
  }

  /** Release the write lock; the calling thread must hold it. Clears `ownerDied`. */
  writeUnlock(): void {
    const me = myTag();
    const w = this.#w;
    const v = Atomics.load(w, WRITER);
    if ((v & OWNER_MASK) !== me || (v & WRITING) === 0) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `writeUnlock() by thread ${me}, but the write lock is held by ${(v & WRITING) !== 0 ? v & OWNER_MASK : 'nobody'}`,
      );
    }
    Atomics.store(w, DIED, 0);
    this.#releaseClaim();
  }

  // ------------------------------------------------------------ internals

  /**
   * One reader attempt: the LockResult if the read lock was taken, RETRY if
   * a writer appeared while probing (try again), or the non-zero `writer`
   * word that blocks readers.
   */
  #readAttempt(): LockResult | number {
    const w = this.#w;
    const v = Atomics.load(w, WRITER);
    if (v !== 0) return v;
    Atomics.add(w, READERS, 1);
    if (Atomics.load(w, WRITER) === 0) return Atomics.load(w, DIED) === 0 ? CLEAN : OWNER_DIED;
    // A writer claimed the lock between our two loads: back off for it.
    if (Atomics.sub(w, READERS, 1) === 1) futexWake(w, READERS, 1);
    return RETRY;
  }

  /**
   * One CAS at the `writer` word: CLAIMED, RETRY, or the holder's word. A
   * writer that parked once claims with WAITERS set, so its release wakes
   * whoever else still sleeps.
   */
  #claimAttempt(want: number): number {
    const w = this.#w;
    const v = Atomics.load(w, WRITER);
    if (v !== 0) return v;
    return Atomics.compareExchange(w, WRITER, 0, want) === 0 ? CLAIMED : RETRY;
  }

  #becomeExclusive(): LockResult {
    const w = this.#w;
    Atomics.or(w, WRITER, WRITING);
    return Atomics.load(w, DIED) === 0 ? CLEAN : OWNER_DIED;
  }

  #releaseClaim(): void {
    const w = this.#w;
    if ((Atomics.exchange(w, WRITER, 0) & WAITERS) !== 0) futexWake(w, WRITER, WAKE_ALL);
  }

  /**
   * If the writer in word `v` is dead, recover: take its claim over (so no
   * one enters while `died` is written), record the death if it had
   * exclusive access, release and wake everyone. True if the word is no
   * longer `v` (recovered here or elsewhere), false if the writer lives.
   */
  #recoverIfDead(me: number, v: number): boolean {
    const owner = v & OWNER_MASK;
    if (!holderDied(owner, me)) return false;
    const w = this.#w;
    if (takeOver(w, WRITER, v, me)) {
      if ((v & WRITING) !== 0) Atomics.store(w, DIED, owner);
      this.#releaseClaim();
    }
    return true;
  }

  /**
   * Given a non-zero `writer` word `v` after spinning: recover a dead writer
   * (→ RETRY), or set WAITERS and return the value to park on, or RETRY if
   * the word changed under us.
   */
  #parkValue(me: number, v: number): number {
    if (this.#recoverIfDead(me, v)) return RETRY;
    return parkValue(this.#w, WRITER, v);
  }
}
