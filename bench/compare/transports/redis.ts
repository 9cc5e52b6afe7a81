/**
 * Redis lists (Debian's redis-server on 127.0.0.1, started by the runner)
 * with `ioredis`: a sender LPUSHes to the target's list `<id>:p<i>` with up
 * to WINDOW commands outstanding (ioredis pipelines them); a receiver pops
 * with BLMPOP ... RIGHT COUNT 256 (blocking, up to 256 per round trip) on
 * its own connection. Fan-out pushes to each receiver's list (lists have no
 * broadcast; Redis pub/sub would drop messages for slow subscribers).
 */
import type { CellSpec, PeerSpec } from '../common.js';
import { payloadOf } from '../common.js';
import type { Link } from '../roles.js';

// biome-ignore lint/suspicious/noExplicitAny: optional dependency loaded at run time, typed loosely
type Any = any;

const WINDOW = 256;
const POP = '256';

export async function redisLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const name = 'ioredis';
  const mod: Any = await import(name);
  const Redis: Any = mod.default ?? mod.Redis ?? mod;
  const open = async (): Promise<Any> => {
    const r = new Redis({ host: '127.0.0.1', port: cell.port, lazyConnect: true, maxRetriesPerRequest: 1 });
    await r.connect();
    return r;
  };
  const key = (i: number): string => `${cell.id}:p${i}`;
  const writer: Any = await open();
  let reader: Any;
  let closing = false;
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const settled = (): void => {
    outstanding--;
    if (wake !== undefined && outstanding <= WINDOW / 2) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  return {
    async listen(onMessage) {
      if (me.sources.length === 0) return;
      reader = await open();
      const k = key(me.index);
      void (async () => {
        while (!closing) {
          try {
            const r = await reader.callBuffer('BLMPOP', '1', '1', k, 'RIGHT', 'COUNT', POP);
            if (r === null) continue;
            for (const item of r[1] as Buffer[]) onMessage(item.length);
          } catch {
            if (closing) return;
          }
        }
      })();
    },
    async connect() {},
    prepare: (size) => payloadOf(size),
    send(target, payload) {
      outstanding++;
      writer.lpush(key(target), payload).then(settled, settled);
      if (outstanding < WINDOW) return undefined;
      return new Promise<void>((r) => {
        wake = r;
      });
    },
    async flush() {
      while (outstanding > 0) {
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    },
    async close() {
      closing = true;
      writer.disconnect();
      reader?.disconnect();
    },
  };
}
