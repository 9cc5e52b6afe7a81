/**
 * Anonymous pipes: `createPipe()` makes one (pipe2 with O_CLOEXEC) and gives
 * both descriptors plus lazily made Node streams over them; `openPipeFd()`
 * makes the stream over a descriptor a parent handed to this process.
 *
 * Contract:
 * - Both descriptors are close-on-exec: a child started with `spawn` gets only
 *   the ones listed in its `stdio` array (there as ordinary blocking fds: a C
 *   or shell child reads or writes fd N).
 * - `readable` / `writable` wrap the descriptor in a PipeSocket on first
 *   access. That switches the end to non-blocking mode, which a child sharing
 *   the same end would see too: never touch the stream of an end you give to a
 *   child; give it away and then `closeRead()`/`closeWrite()` this process's
 *   copy, or the reader never sees EOF (the parent would still be a writer).
 * - EOF: the reader ends once every copy of the write end (in any process) is
 *   closed. BROKEN_PIPE: writing once every copy of the read end is closed.
 * - Capacity is the kernel's pipe buffer: 64 KiB by default on Linux
 *   (/proc/sys/fs/pipe-max-size caps what F_SETPIPE_SZ may set). Writes of up
 *   to PIPE_BUF (4096) bytes are atomic.
 */
import { closeSync, fstatSync } from 'node:fs';
import { IpcError } from '../errors.js';
import { nativeUnix } from './native-unix.js';
import { fromErrno } from './os-errors.js';
import { type PipeEnd, PipeSocket } from './pipe-socket.js';

export type { PipeEnd } from './pipe-socket.js';

/** One end of the pipe in this process: its fd, its stream once made, or closed. */
class End {
  readonly fd: number;
  stream: PipeSocket | undefined;
  closed = false;

  constructor(fd: number) {
    this.fd = fd;
  }

  socket(end: PipeEnd): PipeSocket {
    if (this.closed) throw new IpcError('INVALID_ARGUMENT', `the ${end} end of this pipe is closed here`);
    this.stream ??= new PipeSocket(this.fd, end, `pipe (fd ${this.fd})`);
    return this.stream;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.stream !== undefined) this.stream.destroy();
    else closeSync(this.fd);
  }
}

export class Pipe {
  readonly #read: End;
  readonly #write: End;

  /** Use createPipe(). */
  constructor(readFd: number, writeFd: number) {
    this.#read = new End(readFd);
    this.#write = new End(writeFd);
  }

  /** The read end's descriptor (to hand to a child through spawn's stdio). */
  get readFd(): number {
    return this.#read.fd;
  }

  /** The write end's descriptor (to hand to a child through spawn's stdio). */
  get writeFd(): number {
    return this.#write.fd;
  }

  /** A stream over the read end (made on first access; see the module contract). */
  get readable(): PipeSocket {
    return this.#read.socket('read');
  }

  /** A stream over the write end (made on first access; see the module contract). */
  get writable(): PipeSocket {
    return this.#write.socket('write');
  }

  /** Close this process's copy of the read end (its stream too). Idempotent. */
  closeRead(): void {
    this.#read.close();
  }

  /** Close this process's copy of the write end (its stream too). Idempotent. */
  closeWrite(): void {
    this.#write.close();
  }

  close(): void {
    this.closeRead();
    this.closeWrite();
  }
}

/** A new anonymous pipe (both ends close-on-exec). */
export function createPipe(): Pipe {
  let fds: [number, number];
  try {
    fds = nativeUnix().pipe();
  } catch (err) {
    throw fromErrno(err, 'pipe');
  }
  return new Pipe(fds[0], fds[1]);
}

/**
 * The stream over an inherited pipe (or socket) descriptor, e.g. fd 3 that a
 * parent passed through spawn's stdio. The stream owns the descriptor.
 */
export function openPipeFd(fd: number, end: PipeEnd): PipeSocket {
  if (!Number.isInteger(fd) || fd < 0)
    throw new IpcError('INVALID_ARGUMENT', `fd must be a descriptor, got ${String(fd)}`);
  if (end !== 'read' && end !== 'write')
    throw new IpcError('INVALID_ARGUMENT', `end must be 'read' or 'write', got ${String(end)}`);
  let stat: ReturnType<typeof fstatSync>;
  try {
    stat = fstatSync(fd);
  } catch (err) {
    throw fromErrno(err, `fd ${fd}`);
  }
  if (!stat.isFIFO() && !stat.isSocket())
    throw new IpcError('INVALID_ARGUMENT', `fd ${fd} is not a pipe, FIFO or socket`);
  return new PipeSocket(fd, end, `pipe (fd ${fd})`);
}
