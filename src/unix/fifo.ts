/**
 * Named FIFOs: `mkfifo` makes one, `openFifo` opens an end as a Node stream
 * without ever blocking the event loop or a libuv pool thread, `removeFifo`
 * deletes the name.
 *
 * Contract:
 * - `mkfifo(path, mode = 0o600)` creates the FIFO with exactly `mode` (the
 *   umask does not apply); an existing path is NAME_TAKEN.
 * - Opening uses O_NONBLOCK, so the open system call never waits:
 *   - 'write': with no reader the OS answers ENXIO; openFifo retries (every
 *     5 ms, backing off to 50 ms) until a reader has the FIFO open, then
 *     resolves. A reader that appears is noticed within that interval.
 *   - 'read': the open succeeds at once, but openFifo resolves only when a
 *     writer has written something or has come and gone (poll readiness on
 *     the descriptor; the bytes stay in the pipe for the stream). So the
 *     stream never shows an instant EOF because no writer has arrived yet. A
 *     writer that opens and writes nothing keeps the reader's open waiting.
 *   Both wait abortably: `timeout` → TimeoutError (TIMEOUT), `signal` →
 *   AbortError (ABORTED); the descriptor is closed then.
 * - When the other side leaves: the reader's stream ends ('end') once the
 *   last writer has closed (data written before is delivered first); a
 *   writer's writes fail with BROKEN_PIPE once the last reader has closed.
 *   A process killed mid-way counts as having closed.
 * - Capacity is the pipe buffer (64 KiB by default on Linux); writes up to
 *   PIPE_BUF (4096 bytes) are atomic, so several writers' small records never
 *   interleave.
 * - Errors: ENOENT → NO_SUCH_OBJECT, EACCES → PERMISSION_DENIED, EEXIST →
 *   NAME_TAKEN, a path that is not a FIFO → INVALID_ARGUMENT.
 */
import { chmodSync, closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync } from 'node:fs';
import { AbortError, IpcError, TimeoutError } from '../errors.js';
import { deadlineAfter } from '../shm/futex.js';
import { FdReadiness } from './fd-readiness.js';
import { nativeUnix, READABLE } from './native-unix.js';
import { checkMode, errnoCode, fromErrno } from './os-errors.js';
import { type PipeEnd, PipeSocket } from './pipe-socket.js';

export interface OpenFifoOptions {
  /** Milliseconds to wait for the other side; default forever. */
  timeout?: number;
  signal?: AbortSignal;
}

const FIRST_RETRY_MS = 5;
const MAX_RETRY_MS = 50;

/** Create a FIFO at `path` with permission bits `mode` (default 0o600). */
export function mkfifo(path: string, mode?: number): void {
  const bits = checkMode(mode, 0o600);
  try {
    nativeUnix().mkfifo(path, bits);
    chmodSync(path, bits);
  } catch (err) {
    throw fromErrno(err, `FIFO ${path}`);
  }
}

/** Remove a FIFO's name (open ends keep working). */
export function removeFifo(path: string): void {
  try {
    // lstat, not open: opening would make this process a reader for a moment.
    if (!lstatSync(path).isFIFO()) throw new IpcError('INVALID_ARGUMENT', `${path} is not a FIFO`);
    unlinkSync(path);
  } catch (err) {
    throw fromErrno(err, `FIFO ${path}`);
  }
}

/** Alias of removeFifo, named after the system call. */
export const unlinkFifo = removeFifo;

/** Open one end of the FIFO at `path` as a stream; see the module contract for when it resolves. */
export async function openFifo(
  path: string,
  end: PipeEnd,
  options: OpenFifoOptions = {},
): Promise<PipeSocket> {
  if (end !== 'read' && end !== 'write')
    throw new IpcError('INVALID_ARGUMENT', `end must be 'read' or 'write', got ${String(end)}`);
  const deadline = deadlineAfter(options.timeout);
  const { signal } = options;
  const what = `FIFO ${path}`;
  if (signal?.aborted) throw new AbortError(`opening ${what} aborted`, { cause: signal.reason });
  const fd = end === 'read' ? openNow(path, constants.O_RDONLY) : await openWriter(path, deadline, signal);
  try {
    if (!fstatSync(fd).isFIFO()) throw new IpcError('INVALID_ARGUMENT', `${path} is not a FIFO`);
    if (end === 'read') await firstWriter(fd, deadline, signal, what);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return new PipeSocket(fd, end, what);
}

/** open(O_NONBLOCK): never waits; a writer without a reader gets ENXIO (returned as -1). */
function openNow(path: string, flags: number): number {
  try {
    return openSync(path, flags | constants.O_NONBLOCK);
  } catch (err) {
    if (errnoCode(err) === 'ENXIO') return -1;
    throw fromErrno(err, `FIFO ${path}`);
  }
}

async function openWriter(path: string, deadline: number, signal: AbortSignal | undefined): Promise<number> {
  let delay = FIRST_RETRY_MS;
  for (;;) {
    const fd = openNow(path, constants.O_WRONLY);
    if (fd >= 0) return fd;
    const left = deadline - performance.now();
    if (left <= 0) throw new TimeoutError(`no reader opened FIFO ${path} in time`);
    await sleep(Math.min(delay, left), signal, path);
    delay = Math.min(delay * 2, MAX_RETRY_MS);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortError(`opening FIFO ${path} aborted`, { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Resolves once a writer has written or come and gone (the descriptor polls readable). */
async function firstWriter(
  fd: number,
  deadline: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<void> {
  const readiness = new FdReadiness(fd);
  try {
    await readiness.wait(READABLE, deadline, signal, `waiting for a writer on ${what}`);
  } finally {
    readiness.close(new IpcError('INVALID_ARGUMENT', `${what}: poller closed`));
  }
}
