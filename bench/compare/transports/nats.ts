/**
 * NATS core (Debian's nats-server on 127.0.0.1, started by the runner) with
 * `@nats-io/transport-node`. Each receiving peer subscribes to its subject
 * `<id>.p<i>` (callback subscription); senders publish to the target's
 * subject. Fan-out with `broadcast`: one publish to `<id>.fan`, which every
 * receiver subscribes to (NATS pub/sub). Publish has no backpressure (the
 * client buffers); the bounded message counts bound memory, and the sender
 * flushes (a server round trip) at the end.
 */
import type { CellSpec, PeerSpec } from '../common.js';
import { payloadOf } from '../common.js';
import type { Link } from '../roles.js';

// biome-ignore lint/suspicious/noExplicitAny: optional dependency loaded at run time, typed loosely
type Any = any;

export async function natsLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const name = '@nats-io/transport-node';
  const nats: Any = await import(name);
  const nc: Any = await nats.connect({ servers: `127.0.0.1:${cell.port}`, name: `${cell.id}-p${me.index}` });
  const subject = (i: number): string => `${cell.id}.p${i}`;
  const fan = `${cell.id}.fan`;
  const fanOut = cell.broadcast && cell.scenario === 'fan-out';
  return {
    async listen(onMessage) {
      if (me.sources.length === 0) return;
      nc.subscribe(fanOut ? fan : subject(me.index), {
        callback: (_err: unknown, msg: { data: Uint8Array }) => onMessage(msg.data.length),
      });
      await nc.flush();
    },
    async connect() {},
    prepare: (size) => payloadOf(size),
    send(target, payload) {
      nc.publish(subject(target), payload);
      return undefined;
    },
    publish: fanOut
      ? (payload) => {
          nc.publish(fan, payload);
          return undefined;
        }
      : undefined,
    flush: () => nc.flush(),
    async close() {
      await nc.close();
    },
  };
}
