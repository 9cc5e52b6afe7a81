/**
 * Owner words: how Mutex and RwLock record which thread holds them, and how
 * a waiter takes the lock over from a holder that died.
 *
 * An owner word is an i32 futex word (Mutex `state`, RwLock `writer`):
 *   bits 0..    the holder's thread id (gettid(); the pid for a main thread),
 *               masked by the lock's own OWNER_MASK; 0 when nobody holds it.
 *   bit 30      WAITERS: set once anyone parked on the word, so the holder's
 *               release knows it must wake.
 *   other bits  the lock's own (RwLock's WRITING).
 *
 * Invariants:
 * - A waiter only CASes from a value `v` it has just seen: to v | WAITERS
 *   before parking on it, or, when the holder in `v` is dead, to
 *   me | WAITERS to take the word over (WAITERS stays set, so the new
 *   holder's release wakes whoever else still sleeps). A failed CAS means
 *   the word changed under the caller, who retries.
 * - Death is kill(tid, 0) failing with ESRCH. A tid reused by a new thread
 *   before the check defeats it; threads in different pid namespaces must not
 *   share a lock. A thread never considers itself dead.
 * - Parked waiters wake every `livenessCheckMs` to look at the holder again.
 */
import { IpcError } from '../errors.js';
import { native } from './native.js';

/** Owner-word bit: someone parked on the word. */
export const WAITERS = 0x40000000;

/** Returned by `parkValue` when the owner word changed under the caller: try again. */
export const RETRY = 0;

/** Default of the `livenessCheckMs` option, in ms. */
const DEFAULT_LIVENESS_CHECK_MS = 100;

let tid = 0;
/** This thread's id, as owner words record it before masking (a thread's id never changes). */
export function currentThreadId(): number {
  if (tid === 0) tid = native().gettid();
  return tid;
}

/** The validated `livenessCheckMs` option: a positive number, default 100. */
export function livenessCheckMs(options: { livenessCheckMs?: number }): number {
  const ms = options.livenessCheckMs ?? DEFAULT_LIVENESS_CHECK_MS;
  if (typeof ms !== 'number' || !(ms > 0)) {
    throw new IpcError('INVALID_ARGUMENT', `livenessCheckMs must be a positive number, got ${String(ms)}`);
  }
  return ms;
}

/** True if `owner` (a thread id read from an owner word) is another thread that no longer exists. */
export function holderDied(owner: number, me: number): boolean {
  return owner !== me && !native().isAlive(owner);
}

/**
 * Take the owner word at `w[index]`, seen as `v` with a dead holder, over
 * for `me`: true if this caller now holds it (as me | WAITERS), false if the
 * word changed first (someone else recovered it, or it was released).
 */
export function takeOver(w: Int32Array, index: number, v: number, me: number): boolean {
  return Atomics.compareExchange(w, index, v, me | WAITERS) === v;
}

/**
 * Announce a waiter on the owner word at `w[index]`, seen as `v` with a live
 * holder: the value to park on (v with WAITERS set), or RETRY if the word
 * changed under the caller.
 */
export function parkValue(w: Int32Array, index: number, v: number): number {
  if ((v & WAITERS) !== 0) return v;
  return Atomics.compareExchange(w, index, v, v | WAITERS) === v ? v | WAITERS : RETRY;
}
