/**
 * Raw Unix-domain socket (`node:net`), frames = u32 LE length + payload: the
 * floor any socket-based IPC pays. Each receiving peer listens on its own
 * socket; senders connect. Writes are corked for the current tick (one
 * writev per turn of the event loop) and wait for 'drain' when the socket
 * says so. The receiver parses frame lengths without copying payloads.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { CellSpec, PeerSpec } from '../common.js';
import { payloadOf, readEvery } from '../common.js';
import type { Link } from '../roles.js';

/** Counts frames in a byte stream; calls `onFrame(length)` per complete frame. */
export class FrameCounter {
  private need = -1; // payload bytes still to skip, -1: reading a header
  private header = Buffer.alloc(4);
  private headerFill = 0;
  private length = 0;

  constructor(private readonly onFrame: (length: number) => void) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.need < 0) {
        if (this.headerFill === 0 && off + 4 <= chunk.length) {
          this.length = chunk.readUInt32LE(off);
          off += 4;
        } else {
          const n = Math.min(4 - this.headerFill, chunk.length - off);
          chunk.copy(this.header, this.headerFill, off, off + n);
          this.headerFill += n;
          off += n;
          if (this.headerFill < 4) return;
          this.headerFill = 0;
          this.length = this.header.readUInt32LE(0);
        }
        this.need = this.length;
      }
      const n = Math.min(this.need, chunk.length - off);
      if (n > 0) readEvery(chunk.subarray(off, off + n));
      off += n;
      this.need -= n;
      if (this.need === 0) {
        this.need = -1;
        this.onFrame(this.length);
      }
    }
  }
}

/**
 * Writes corked for the current tick: one writev per turn of the event loop.
 * A write the stream cannot take returns a promise of 'drain' (backpressure).
 * Shared with the FIFO transport, whose ends are sockets on the descriptor too.
 */
export class TickCorker {
  private corked: Socket[] = [];

  readonly uncorkAll = (): void => {
    for (const s of this.corked) s.uncork();
    this.corked = [];
  };

  write(sock: Socket, frame: Buffer): undefined | Promise<void> {
    if (!sock.writableCorked) {
      sock.cork();
      if (this.corked.length === 0) process.nextTick(this.uncorkAll);
      this.corked.push(sock);
    }
    if (sock.write(frame)) return undefined;
    this.uncorkAll();
    return new Promise<void>((r) => sock.once('drain', r));
  }
}

/** A length-prefixed frame: u32 LE length, then the payload. */
export function frameOf(size: number): Buffer {
  const f = Buffer.allocUnsafe(4 + size);
  f.writeUInt32LE(size, 0);
  payloadOf(size).copy(f, 4);
  return f;
}

export async function netLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const path = (i: number): string => join(cell.dir, `net-p${i}.sock`);
  const out = new Map<number, Socket>();
  const accepted: Socket[] = [];
  let server: Server | undefined;
  const writer = new TickCorker();
  return {
    async listen(onMessage) {
      if (me.sources.length === 0) return;
      server = createServer((sock) => {
        accepted.push(sock);
        const counter = new FrameCounter(onMessage);
        sock.on('data', (c: Buffer) => counter.push(c));
        sock.on('error', () => sock.destroy());
      });
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(path(me.index), resolve);
      });
    },
    async connect() {
      for (const t of me.targets) {
        const sock = netConnect(path(t));
        await new Promise<void>((resolve, reject) => {
          sock.once('connect', resolve);
          sock.once('error', reject);
        });
        sock.setNoDelay(true);
        out.set(t, sock);
      }
    },
    prepare: frameOf,
    send: (target, payload) => writer.write(out.get(target)!, payload as Buffer),
    async flush() {
      writer.uncorkAll();
    },
    async close() {
      writer.uncorkAll();
      await Promise.all([...out.values()].map((s) => new Promise<void>((r) => s.end(r))));
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
    },
  };
}
