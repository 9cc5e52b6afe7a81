/**
 * ipcbox shared memory: src/shm/ring.ts SPSC Rings between processes, no
 * kernel on the data path. Each receiving peer creates one segment holding
 * one Ring per sender (fan-in: 4 rings, drained by one async loop each);
 * a sender attaches a RingProducer to its ring in the target's segment.
 * Fan-out writes the record into each receiver's ring (no native broadcast).
 */
import { Ring, RingConsumer, RingProducer, Segment } from '../../../src/index.js';
import type { CellSpec, PeerSpec } from '../common.js';
import { END_SIZE, payloadOf } from '../common.js';
import type { Link } from '../roles.js';

function ringCapacity(size: number): number {
  let c = 1 << 20;
  while (c / 2 - 8 < Math.max(size, END_SIZE)) c *= 2;
  return c;
}

export async function shmRingLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const segName = (i: number): string => `${cell.id}-shm${i}`;
  const capacity = ringCapacity(cell.size);
  const stride = Ring.bytesFor(capacity);
  const producers = new Map<number, RingProducer>();
  const segments: Segment[] = [];
  let owned: Segment | undefined;
  let closing = false;
  const abort = new AbortController();
  return {
    async listen(onMessage) {
      if (me.sources.length === 0) return;
      owned = Segment.create(segName(me.index), { size: stride * me.sources.length });
      for (let k = 0; k < me.sources.length; k++) Ring.init(owned.buffer, k * stride, capacity);
      for (let k = 0; k < me.sources.length; k++) {
        const consumer = new RingConsumer(owned.buffer, k * stride);
        const each = (r: Uint8Array): void => onMessage(r.byteLength);
        void (async () => {
          try {
            while (!closing) {
              if (consumer.readBatch(each) === 0)
                onMessage((await consumer.read({ signal: abort.signal })).byteLength);
            }
          } catch {
            // aborted at close
          }
        })();
      }
    },
    async connect() {
      for (const t of me.targets) {
        const seg = Segment.open(segName(t));
        segments.push(seg);
        const slot = cell.peers[t]!.sources.indexOf(me.index);
        producers.set(t, new RingProducer(seg.buffer, slot * stride));
      }
    },
    prepare: (size) => payloadOf(size),
    send(target, payload) {
      const p = producers.get(target)!;
      const b = payload as Buffer;
      if (p.tryWrite(b)) return undefined;
      return p.write(b);
    },
    async close() {
      closing = true;
      abort.abort();
      for (const s of segments) s.close();
      if (owned !== undefined) {
        owned.close();
        try {
          Segment.unlink(segName(me.index));
        } catch {
          // already gone
        }
      }
    },
  };
}
