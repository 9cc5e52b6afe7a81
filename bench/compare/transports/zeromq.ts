/**
 * ZeroMQ (npm `zeromq` 6) over `ipc://` endpoints in the cell's directory.
 * Point to point: each receiving peer binds a PULL socket, senders connect a
 * PUSH socket per target and `await send()` each message (zeromq.js blocks
 * at the high-water mark). Fan-out with `broadcast`: the sender binds a
 * PUB socket with `noDrop` (block instead of drop at the HWM), receivers
 * connect SUB sockets and subscribe to everything.
 */
import { join } from 'node:path';
import type { CellSpec, PeerSpec } from '../common.js';
import { payloadOf, sleep } from '../common.js';
import type { Link } from '../roles.js';

// biome-ignore lint/suspicious/noExplicitAny: optional dependency loaded at run time, typed loosely
type Any = any;

export async function zeromqLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const name = 'zeromq';
  const zmq: Any = await import(name);
  const endpoint = (i: number): string => `ipc://${join(cell.dir, `zmq-p${i}`)}`;
  const pubEndpoint = `ipc://${join(cell.dir, 'zmq-pub')}`;
  const fanOut = cell.broadcast && cell.scenario === 'fan-out';
  const out = new Map<number, Any>();
  const sockets: Any[] = [];
  let pub: Any;
  let onMessage: (length: number) => void = () => {};
  const drain = async (sock: Any): Promise<void> => {
    try {
      for await (const [m] of sock) onMessage((m as Buffer).length);
    } catch {
      // closed
    }
  };
  return {
    async listen(cb) {
      onMessage = cb;
      if (fanOut && me.role === 'send') {
        pub = new zmq.Publisher({ noDrop: true, linger: 2000 });
        await pub.bind(pubEndpoint);
        sockets.push(pub);
        return;
      }
      if (me.sources.length === 0 || (fanOut && me.role === 'recv')) return;
      const pull = new zmq.Pull();
      await pull.bind(endpoint(me.index));
      sockets.push(pull);
      void drain(pull);
    },
    async connect() {
      if (fanOut && me.role === 'recv') {
        const sub = new zmq.Subscriber();
        sub.connect(pubEndpoint);
        sub.subscribe();
        sockets.push(sub);
        void drain(sub);
        await sleep(300); // let the subscription reach the publisher (the "slow joiner")
        return;
      }
      if (fanOut) return;
      for (const t of me.targets) {
        const push = new zmq.Push({ linger: 2000 });
        push.connect(endpoint(t));
        sockets.push(push);
        out.set(t, push);
      }
    },
    prepare: (size) => payloadOf(size),
    send(target, payload) {
      return out.get(target)!.send(payload);
    },
    // With noDrop a PUB socket at its high-water mark fails the send with EAGAIN
    // instead of waiting (zeromq.js cannot poll PUB for writability): retry.
    publish:
      fanOut && me.role === 'send'
        ? async (payload) => {
            for (;;) {
              try {
                return await pub.send(payload);
              } catch (e) {
                if ((e as { code?: string }).code !== 'EAGAIN') throw e;
                await sleep(1);
              }
            }
          }
        : undefined,
    async close() {
      for (const s of sockets) s.close();
    },
  };
}
