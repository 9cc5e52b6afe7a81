/**
 * NATS core (Debian's nats-server on 127.0.0.1, started by the runner) with
 * `@nats-io/transport-node`. Each receiving peer subscribes to its subject
 * `<id>.p<i>` (callback subscription); senders publish to the target's
 * subject. Fan-out with `broadcast`: one publish to `<id>.fan`, which every
 * receiver subscribes to (NATS pub/sub). Publish has no backpressure (the
 * client buffers); the bounded message counts bound memory, and the sender
 * flushes (a server round trip) at the end.
 *
 * `nats-request` (round trip only): the pinger's send is `nc.request` and its reply counts as the
 * echo; the echoer answers with `msg.respond` (a reply of the same size), so the round trip is NATS's
 * own request/reply, with its inbox subscription, instead of two publishes.
 */
import type { CellSpec, PeerSpec } from '../common.js';
import { payloadOf } from '../common.js';
import type { Link } from '../roles.js';

// biome-ignore lint/suspicious/noExplicitAny: optional dependency loaded at run time, typed loosely
type Any = any;

export async function natsLink(cell: CellSpec, me: PeerSpec, request = false): Promise<Link> {
  const name = '@nats-io/transport-node';
  const nats: Any = await import(name);
  const nc: Any = await nats.connect({ servers: `127.0.0.1:${cell.port}`, name: `${cell.id}-p${me.index}` });
  const subject = (i: number): string => `${cell.id}.p${i}`;
  const fan = `${cell.id}.fan`;
  const fanOut = cell.broadcast && cell.scenario === 'fan-out';
  let onReply: ((length: number) => void) | undefined;
  let reply: Uint8Array | undefined;
  return {
    async listen(onMessage) {
      onReply = onMessage;
      if (me.sources.length === 0) return;
      nc.subscribe(fanOut ? fan : subject(me.index), {
        callback: (
          _err: unknown,
          msg: { data: Uint8Array; reply?: string; respond(d: Uint8Array): boolean },
        ) => {
          if (request && msg.reply) {
            // The echo is the reply; the end marker is told to the role, which then stops.
            if (msg.data.length === cell.size) {
              reply ??= payloadOf(cell.size) as Uint8Array;
              msg.respond(reply);
              return;
            }
            msg.respond(msg.data);
          }
          onMessage(msg.data.length);
        },
      });
      await nc.flush();
    },
    async connect() {},
    prepare: (size) => payloadOf(size),
    send(target, payload) {
      if (request && me.role === 'ping') {
        return nc
          .request(subject(target), payload, { timeout: 10_000 })
          .then((m: { data: Uint8Array }) => onReply?.(m.data.length));
      }
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
