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
 * - Timeouts are in milliseconds; undefined/Infinity means no timeout. An
 *   aborted `signal` rejects with AbortError (reason as `cause`).
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

/** Block this thread while the word equals `expected`, up to `timeoutMs`. */
export function futexWaitSync(
  view: Int32Array,
  index: number,
  expected: number,
  timeoutMs: number = Number.POSITIVE_INFINITY,
): FutexWaitResult {
  return native().futexWait(sabOf(view), byteOffsetOf(view, index), expected, timeoutMs);
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
  if (Atomics.load(view, index) !== expected) return 'not-equal';
  const shm = native();
  const { id, promise } = shm.futexWaitAsync(sabOf(view), byteOffsetOf(view, index), expected, timeoutMs);
  if (signal === undefined) return promise as Promise<FutexWaitResult>;
  const onAbort = (): void => {
    shm.futexCancel(id);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const result = await promise;
    if (result === 'cancelled') throw new AbortError('operation aborted', { cause: signal.reason });
    return result;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Wake up to `count` waiters on the word (any process); returns how many woke. */
export function futexWake(view: Int32Array, index: number, count = 1): number {
  return native().futexWake(sabOf(view), byteOffsetOf(view, index), count);
}
