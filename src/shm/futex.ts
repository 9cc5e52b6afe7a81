/**
 * Futex waits and wakes on 32-bit words of shared memory, across processes.
 *
 * Contract:
 * - A word is addressed like `Atomics`: an Int32Array over a
 *   SharedArrayBuffer (normally a Segment's) plus an index.
 * - `futexWait*` sleep only while the word still equals `expected` (checked
 *   atomically by the kernel) and may return early ('ok') without a matching
 *   wake: callers always recheck their condition in a loop.
 * - `futexWaitSync` blocks the calling thread (meant for worker threads);
 *   `futexWaitAsync` parks on an addon thread and leaves the event loop free.
 *   A pending async wait keeps the process alive, like a pending socket read.
 * - Timeouts are in milliseconds; undefined/Infinity (or a finite value too
 *   large for the OS to hold as a deadline) means no timeout. An aborted
 *   `signal` rejects with AbortError (reason as `cause`).
 * - `futexWaitAsync` never settles within the same macrotask: when the word
 *   already differs it answers 'not-equal' after yielding to the event loop
 *   (setImmediate), so a caller's retry loop can never starve timers and I/O
 *   even if its condition never comes true.
 * - A failing futex call (or no waiter thread: the addon's pool is bounded)
 *   throws / rejects with an IpcError whose `cause` is the addon's errno
 *   Error: NATIVE_UNAVAILABLE for a lack of threads or memory, NOT_SUPPORTED
 *   without futexes (ENOSYS), INVALID_ARGUMENT otherwise. Never a wake.
 * - Waking a sleeper on another CPU costs ~100-200 µs, so callers spin on the
 *   word first (`spinWhile`) and park only when spinning did not help.
 */
import { AbortError, IpcError } from '../errors.js';
import { type FutexWaitResult, native } from './native.js';

export type { FutexWaitResult } from './native.js';

export interface WaitOptions {
  /** Milliseconds; undefined or Infinity waits forever. */
  timeout?: number;
  signal?: AbortSignal;
}

/** Spin iterations before parking; each is one Atomics.load (~tens of ns). */
export const DEFAULT_SPIN = 2000;

/** Absolute deadline (performance.now() clock) for a timeout option. */
export function deadlineAfter(timeout: number | undefined): number {
  if (timeout === undefined || timeout === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `timeout must be a non-negative number of milliseconds, got ${String(timeout)}`,
    );
  }
  return performance.now() + timeout;
}

/** Milliseconds left until `deadline` (0 when past, Infinity when none). */
export function remaining(deadline: number): number {
  return deadline === Number.POSITIVE_INFINITY ? deadline : Math.max(0, deadline - performance.now());
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError('operation aborted', { cause: signal.reason });
}

function byteOffsetOf(view: Int32Array, index: number): number {
  return view.byteOffset + index * 4;
}

function sabOf(view: Int32Array): SharedArrayBuffer {
  const buffer = view.buffer;
  if (!(buffer instanceof SharedArrayBuffer))
    throw new IpcError('INVALID_ARGUMENT', 'futex words must live in a SharedArrayBuffer');
  return buffer;
}

/** Spin while the word equals `expected`; true if it changed within `spins` loads. */
export function spinWhile(
  view: Int32Array,
  index: number,
  expected: number,
  spins: number = DEFAULT_SPIN,
): boolean {
  for (let i = 0; i < spins; i++) {
    if (Atomics.load(view, index) !== expected) return true;
  }
  return false;
}

/** The addon's errno Error from a futex call as an IpcError (anything else as it is). */
function futexFailure(err: unknown): unknown {
  const errno = (err as { errno?: unknown } | null)?.errno;
  if (!(err instanceof Error) || typeof errno !== 'number') return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EAGAIN' || code === 'ENOMEM')
    return new IpcError('NATIVE_UNAVAILABLE', `no futex waiter thread available: ${err.message}`, {
      cause: err,
    });
  if (code === 'ENOSYS')
    return new IpcError('NOT_SUPPORTED', `futexes are not available here: ${err.message}`, { cause: err });
  return new IpcError('INVALID_ARGUMENT', `futex wait failed: ${err.message}`, { cause: err });
}

const yieldThenNotEqual = (): Promise<FutexWaitResult> =>
  new Promise((resolve) => setImmediate(resolve, 'not-equal'));

/** Block this thread while the word equals `expected`, up to `timeoutMs`. */
export function futexWaitSync(
  view: Int32Array,
  index: number,
  expected: number,
  timeoutMs: number = Number.POSITIVE_INFINITY,
): FutexWaitResult {
  try {
    return native().futexWait(sabOf(view), byteOffsetOf(view, index), expected, timeoutMs);
  } catch (err) {
    throw futexFailure(err);
  }
}

/** Wait without blocking the event loop. */
export async function futexWaitAsync(
  view: Int32Array,
  index: number,
  expected: number,
  options: WaitOptions = {},
): Promise<FutexWaitResult> {
  const { signal } = options;
  throwIfAborted(signal);
  const timeoutMs = remaining(deadlineAfter(options.timeout));
  if (Atomics.load(view, index) !== expected) return yieldThenNotEqual();
  const shm = native();
  let pending: { id: number; promise: Promise<FutexWaitResult | 'cancelled'> };
  try {
    pending = shm.futexWaitAsync(sabOf(view), byteOffsetOf(view, index), expected, timeoutMs);
  } catch (err) {
    throw futexFailure(err);
  }
  const { id, promise } = pending;
  const onAbort = (): void => {
    shm.futexCancel(id);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await promise;
    if (result === 'cancelled') throw new AbortError('operation aborted', { cause: signal?.reason });
    return result;
  } catch (err) {
    throw futexFailure(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Wake up to `count` waiters on the word (any process); returns how many woke. */
export function futexWake(view: Int32Array, index: number, count = 1): number {
  return native().futexWake(sabOf(view), byteOffsetOf(view, index), count);
}
