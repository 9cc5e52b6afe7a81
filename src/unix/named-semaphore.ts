/**
 * NamedSemaphore: a named POSIX semaphore (sem_open & co.), shared by name
 * with any process — C's sem_open("/ready"), Python through ctypes, another
 * ipcbox process. (For a semaphore inside a Segment, see shm/semaphore.ts.)
 *
 * Contract:
 * - Names are "/name" (or "name"), at most 251 bytes (glibc keeps the
 *   semaphore in /dev/shm/sem.<name>). `open` attaches; `create: true`
 *   creates it if missing with value `initial` (default 0, at most
 *   SEM_VALUE_MAX = 2^31-1) and exactly `mode` (default 0o600) on Linux;
 *   `exclusive: true` makes an existing name NAME_TAKEN.
 * - Trio, as for the shm Semaphore: `tryWait()` takes a permit or returns
 *   false; `waitSync(timeoutMs)` blocks the thread (sem_clockwait, for
 *   workers and tools); `wait({ timeout, signal })` waits on a dedicated
 *   thread of the addon's bounded pool (IPCBOX_SEM_WAITER_THREADS, default
 *   64 waits at once; never libuv's pool) and leaves the event loop free.
 *   Timeouts throw/reject TimeoutError, aborts AbortError; no permit is taken
 *   then (a permit the waiter thread took after the abort is posted back). A
 *   full pool rejects with NATIVE_UNAVAILABLE.
 * - `post(n = 1)` adds permits (past SEM_VALUE_MAX: OS_LIMIT, EOVERFLOW);
 *   `value()` is sem_getvalue (NOT_SUPPORTED on macOS).
 * - Not FIFO and no owner: a process killed while waiting holds nothing, and
 *   a process killed after taking a permit does not give it back (semaphores
 *   are counters, not locks).
 * - `close()` drops this handle; later calls on it throw INVALID_ARGUMENT.
 *   A wait already pending keeps the semaphore open natively (sem_close runs
 *   after it) and finishes normally. `NamedSemaphore.unlink(name)` removes
 *   the name; open handles keep working.
 */
import { chmodSync } from 'node:fs';
import { AbortError, IpcError, TimeoutError } from '../errors.js';
import { deadlineAfter, remaining, throwIfAborted, type WaitOptions } from '../shm/futex.js';
import { nativeUnix } from './native-unix.js';
import { checkMode, errnoCode, fromErrno } from './os-errors.js';
import { posixIpcName } from './posix-name.js';

export interface NamedSemaphoreOpenOptions {
  /** Create the semaphore if it does not exist (default false). */
  create?: boolean;
  /** With `create`: fail with NAME_TAKEN if it exists (default false). */
  exclusive?: boolean;
  /** With `create`: the initial value, default 0. */
  initial?: number;
  /** With `create`: permission bits, default 0o600. */
  mode?: number;
}

/** glibc's sem_open prefixes "sem." inside NAME_MAX (255). */
const NAME_MAX = 252;
/** SEM_VALUE_MAX on Linux. */
export const SEM_VALUE_MAX = 0x7fffffff;

export class NamedSemaphore {
  /** The POSIX name, with its leading slash. */
  readonly name: string;
  #id: number;

  private constructor(name: string, id: number) {
    this.name = name;
    this.#id = id;
  }

  static open(name: string, options: NamedSemaphoreOpenOptions = {}): NamedSemaphore {
    const posix = posixIpcName(name, 'semaphore', NAME_MAX);
    const create = options.create ?? false;
    const exclusive = options.exclusive ?? false;
    const mode = checkMode(options.mode, 0o600);
    const initial = options.initial ?? 0;
    if (!Number.isInteger(initial) || initial < 0 || initial > SEM_VALUE_MAX)
      throw new IpcError(
        'INVALID_ARGUMENT',
        `initial must be an integer 0..${SEM_VALUE_MAX}, got ${String(initial)}`,
      );
    let id: number;
    try {
      id = nativeUnix().semOpen(posix, { create, exclusive, mode, initial });
    } catch (err) {
      throw fromErrno(err, `semaphore ${posix}`);
    }
    // sem_open applies the umask; an exclusive creator owns the semaphore and
    // sets the mode it asked for (glibc keeps it in /dev/shm/sem.<name>).
    if (create && exclusive && process.platform === 'linux') {
      try {
        chmodSync(`/dev/shm/sem.${posix.slice(1)}`, mode);
      } catch {
        // Not glibc's layout (another libc): the umask'd mode stays.
      }
    }
    return new NamedSemaphore(posix, id);
  }

  /** Remove the name; open handles keep working. */
  static unlink(name: string): void {
    const posix = posixIpcName(name, 'semaphore', NAME_MAX);
    try {
      nativeUnix().semUnlink(posix);
    } catch (err) {
      throw fromErrno(err, `semaphore ${posix}`);
    }
  }

  get closed(): boolean {
    return this.#id === 0;
  }

  post(n = 1): void {
    if (!Number.isInteger(n) || n < 1)
      throw new IpcError('INVALID_ARGUMENT', `n must be a positive integer, got ${String(n)}`);
    const id = this.#open();
    for (let i = 0; i < n; i++) {
      try {
        nativeUnix().semPost(id);
      } catch (err) {
        if (errnoCode(err) === 'EOVERFLOW')
          throw new IpcError('OS_LIMIT', `semaphore ${this.name} is at SEM_VALUE_MAX (${SEM_VALUE_MAX})`, {
            cause: err,
          });
        throw this.#failure(err);
      }
    }
  }

  /** Take a permit if one is available now. */
  tryWait(): boolean {
    try {
      return nativeUnix().semTryWait(this.#open());
    } catch (err) {
      throw this.#failure(err);
    }
  }

  /** Block this thread until a permit is taken; TimeoutError after `timeoutMs`. */
  waitSync(timeoutMs: number = Number.POSITIVE_INFINITY): void {
    const left = remaining(deadlineAfter(timeoutMs));
    let got: boolean;
    try {
      got = nativeUnix().semWaitSync(this.#open(), left);
    } catch (err) {
      throw this.#failure(err);
    }
    if (!got) throw new TimeoutError(`wait on semaphore ${this.name} timed out`);
  }

  /** Take a permit without blocking the event loop. */
  async wait(options: WaitOptions = {}): Promise<void> {
    const { signal } = options;
    throwIfAborted(signal);
    const left = remaining(deadlineAfter(options.timeout));
    if (this.tryWait()) return;
    const unix = nativeUnix();
    let pending: { id: number; promise: Promise<'ok' | 'timed-out' | 'cancelled'> };
    try {
      pending = unix.semWaitAsync(this.#open(), left);
    } catch (err) {
      if (errnoCode(err) === 'EAGAIN' || errnoCode(err) === 'ENOMEM')
        throw new IpcError('NATIVE_UNAVAILABLE', `no semaphore waiter thread available: ${String(err)}`, {
          cause: err,
        });
      throw this.#failure(err);
    }
    const onAbort = (): void => {
      unix.semCancel(pending.id);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let result: 'ok' | 'timed-out' | 'cancelled';
    try {
      result = await pending.promise;
    } catch (err) {
      throw this.#failure(err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (result === 'cancelled')
      throw new AbortError(`wait on semaphore ${this.name} aborted`, { cause: signal?.reason });
    if (result === 'timed-out') throw new TimeoutError(`wait on semaphore ${this.name} timed out`);
  }

  /** sem_getvalue: the permits available now (0 when processes wait, on Linux). */
  value(): number {
    try {
      return nativeUnix().semValue(this.#open());
    } catch (err) {
      throw this.#failure(err);
    }
  }

  /** Drop this handle (sem_close once no wait of this handle is pending). Idempotent. */
  close(): void {
    if (this.#id === 0) return;
    nativeUnix().semClose(this.#id);
    this.#id = 0;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#id === 0) throw new IpcError('INVALID_ARGUMENT', `semaphore ${this.name} is closed`);
    return this.#id;
  }

  #failure(err: unknown): unknown {
    return fromErrno(err, `semaphore ${this.name}`);
  }
}
