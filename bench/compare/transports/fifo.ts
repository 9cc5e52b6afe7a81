/**
 * Named FIFOs (src/unix/fifo.ts): each receiving peer makes `fifo-p<i>` in
 * the cell's directory and opens its read end (openFifo opens at once and
 * resolves once a writer has written); senders open the write end. Frames and
 * writes are the raw socket's (u32 LE length + payload, corked per tick,
 * 'drain' for backpressure), so the two differ only in the kernel object:
 * a pipe buffer (64 KiB) instead of a Unix socket's. One writer per FIFO in
 * the cells that run it (one-way, round trip), so frames never interleave.
 */
import { join } from 'node:path';
import { mkfifo, openFifo, type PipeSocket } from '../../../src/index.js';
import type { CellSpec, PeerSpec } from '../common.js';
import type { Link } from '../roles.js';
import { FrameCounter, frameOf, TickCorker } from './net-socket.js';

export async function fifoLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const path = (i: number): string => join(cell.dir, `fifo-p${i}`);
  const out = new Map<number, PipeSocket>();
  const writer = new TickCorker();
  let reader: Promise<PipeSocket> | undefined;
  return {
    async listen(onMessage) {
      if (me.sources.length === 0) return;
      mkfifo(path(me.index));
      // The read end is open from here on, so a writer's open succeeds at once.
      reader = openFifo(path(me.index), 'read');
      void reader.then((sock) => {
        const counter = new FrameCounter(onMessage);
        sock.on('data', (c: Buffer) => counter.push(c));
        sock.on('error', () => sock.destroy());
      });
    },
    async connect() {
      for (const t of me.targets) out.set(t, await openFifo(path(t), 'write', { timeout: 10_000 }));
    },
    prepare: frameOf,
    send: (target, payload) => writer.write(out.get(target)!, payload as Buffer),
    async flush() {
      writer.uncorkAll();
    },
    async close() {
      writer.uncorkAll();
      await Promise.all([...out.values()].map((s) => new Promise<void>((r) => s.end(r))));
      (await reader)?.destroy();
    },
  };
}
