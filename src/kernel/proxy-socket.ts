/**
 * The socket of a proxy session: what a process on another node does with this kernel's mailboxes
 * and processes arrives over a cluster channel (src/cluster/channels.ts) and is served by an
 * ordinary Session, so this kernel's core decides everything for remote callers exactly as for
 * local ones. Writes wait while the pipe to that node is full, so the session's flow control
 * (choke, pause) works across nodes as it does for a slow local reader.
 */
import { Duplex } from 'node:stream';
import type { HomeChannel } from '../cluster/channels.js';

export class ProxySocket extends Duplex {
  constructor(private readonly channel: HomeChannel) {
    super({ allowHalfOpen: false });
    // Once the session read everything, the socket is done: writes still waiting for the pipe are
    // for a process that is gone.
    this.once('end', () => this.destroy());
  }

  /** Bytes from the remote process's kernel. */
  deliver(bytes: Buffer): void {
    this.push(bytes);
  }

  /**
   * The channel ended (the process left, its node went down, the link broke). The session still
   * reads what came before the end, as it would from a local socket that closed: sends the process
   * saw resolved are in there (a paused session holds them in the read buffer). With half-open
   * off, the end of reading ends the socket, and 'close' follows.
   */
  ended(): void {
    this.push(null);
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.channel.write(chunk);
    this.channel.whenWritable(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.channel.close(err === null ? 'closed' : err.message);
    done(err);
  }
}
