/**
 * PipeSocket: the Node stream over one end of a pipe or FIFO.
 *
 * A `net.Socket` on the descriptor: libuv puts it in non-blocking mode and
 * polls it, so reads and writes never block the event loop or a pool thread,
 * and the stream has Node's usual backpressure (`write()` returns false once
 * the pipe buffer — 64 KiB by default on Linux — and the stream's
 * highWaterMark are full; 'drain' follows).
 *
 * Contract:
 * - The reading end ends ('end') when the last writer anywhere has closed.
 * - Writing after the last reader closed fails with IpcError BROKEN_PIPE
 *   (errno EPIPE as `cause`) — in the write callback and as the stream's
 *   'error' — never a crash: Node ignores SIGPIPE in every process it starts.
 * - The descriptor is owned by the stream: destroying or ending it closes the
 *   descriptor.
 */
import net from 'node:net';
import { IpcError } from '../errors.js';
import { errnoCode } from './os-errors.js';

export type PipeEnd = 'read' | 'write';

/** EPIPE as BROKEN_PIPE; other errors unchanged. */
function brokenPipe(err: Error | null | undefined, what: string): Error | null | undefined {
  if (err && !(err instanceof IpcError) && errnoCode(err) === 'EPIPE')
    return new IpcError('BROKEN_PIPE', `${what}: nobody reads the other end any more (EPIPE)`, {
      cause: err,
    });
  return err;
}

export class PipeSocket extends net.Socket {
  readonly #what: string;

  constructor(fd: number, end: PipeEnd, what: string) {
    super({ fd, readable: end === 'read', writable: end === 'write', allowHalfOpen: true });
    this.#what = what;
  }

  override _write(chunk: unknown, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    super._write(chunk, encoding, (err) => cb(brokenPipe(err, this.#what)));
  }

  override _writev(
    chunks: Array<{ chunk: unknown; encoding: BufferEncoding }>,
    cb: (err?: Error | null) => void,
  ): void {
    // net.Socket always has _writev (the optional type is Duplex's).
    super._writev?.(chunks, (err) => cb(brokenPipe(err, this.#what)));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    super._destroy(brokenPipe(err, this.#what) ?? null, cb);
  }
}
