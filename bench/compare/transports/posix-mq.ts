/**
 * POSIX message queues (src/unix/message-queue.ts): each receiving peer
 * creates `/<id>-mq<i>` as deep as the OS lets an unprivileged user make it
 * (fs.mqueue.msg_max: 10 by default) with messages of exactly the cell's size
 * (at most fs.mqueue.msgsize_max, 8 KiB by default: the runner gives this
 * transport no larger cells); senders open it. `send` and `receive` are the
 * async forms: they try the non-blocking call and, on a full / empty queue,
 * wait for the descriptor with uv_poll. The queue is unlinked at the end of
 * the cell (the runner unlinks it too, should a peer die first).
 */
import { readFileSync } from 'node:fs';
import { MessageQueue } from '../../../src/index.js';
import type { CellSpec, PeerSpec } from '../common.js';
import { END_SIZE, payloadOf } from '../common.js';
import type { Link } from '../roles.js';

export function queueName(cell: { id: string }, peer: number): string {
  return `/${cell.id}-mq${peer}`;
}

function msgMax(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/mqueue/msg_max', 'utf8')) || 10;
  } catch {
    return 10;
  }
}

export async function posixMqLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const out = new Map<number, MessageQueue>();
  const abort = new AbortController();
  let own: MessageQueue | undefined;
  return {
    async listen(onMessage) {
      if (me.sources.length === 0) return;
      const q = MessageQueue.open(queueName(cell, me.index), {
        create: true,
        exclusive: true,
        maxMessages: msgMax(),
        messageSize: Math.max(cell.size, END_SIZE),
      });
      own = q;
      void (async () => {
        try {
          for (;;) onMessage((await q.receive({ signal: abort.signal })).bytes.length);
        } catch {
          // aborted or closed at the end of the cell
        }
      })();
    },
    async connect() {
      for (const t of me.targets) out.set(t, MessageQueue.open(queueName(cell, t)));
    },
    prepare: (size) => payloadOf(size),
    send: (target, payload) => out.get(target)!.send(payload as Buffer),
    async close() {
      abort.abort();
      for (const q of out.values()) q.close();
      if (own !== undefined) {
        own.close();
        MessageQueue.unlink(own.name);
      }
    },
  };
}
