import { IpcError } from '../../errors.js';
import { listHostObjects } from '../../unix/host-objects.js';
import { forgetObject, rememberObject } from '../../unix/known-objects.js';
import { MessageQueue, type QueueMessage } from '../../unix/message-queue.js';
import { type MessageSource, readMessage } from '../message-input.js';
import { formatHost } from '../object-tables.js';
import { formatMode } from '../option-parsers.js';
import { writeJsonLine, writeOut } from '../output.js';
import { forEachName, type GlobalOptions, registryOf } from './common.js';

/**
 * POSIX message queues from the shell (`ipcbox mq ...`), over MessageQueue.
 * Queues are OS objects: no kernel is needed. Messages are bytes; `send`
 * takes them from the command line, stdin or a file, `recv` prints each
 * followed by a newline (`--raw`: the bytes only).
 */

export async function listQueues(g: GlobalOptions, o: { json?: boolean }): Promise<void> {
  const host = listHostObjects(registryOf(g));
  const queues = host.objects.filter((x) => x.kind === 'mqueue');
  const notes = host.notes.filter((n) => n.kinds.includes('mqueue'));
  if (o.json) await writeOut(`${JSON.stringify({ queues, notes }, null, 2)}\n`);
  else await writeOut(formatHost({ objects: queues, notes }, ['mqueue']));
}

export interface CreateQueueOptions {
  maxMessages?: number;
  messageSize?: number;
  mode?: number;
  json?: boolean;
}

/** Create a queue (an existing name is NAME_TAKEN) and record it, so `ls` can list it without /dev/mqueue. */
export async function createQueue(g: GlobalOptions, name: string, o: CreateQueueOptions): Promise<void> {
  const q = MessageQueue.open(name, {
    create: true,
    exclusive: true,
    ...(o.maxMessages === undefined ? {} : { maxMessages: o.maxMessages }),
    ...(o.messageSize === undefined ? {} : { messageSize: o.messageSize }),
    ...(o.mode === undefined ? {} : { mode: o.mode }),
  });
  let info: { created: string; kind: 'mqueue'; maxMessages: number; messageSize: number; mode: string };
  try {
    info = {
      created: q.name,
      kind: 'mqueue',
      maxMessages: q.maxMessages,
      messageSize: q.messageSize,
      mode: formatMode(q.stat().mode),
    };
  } finally {
    q.close();
  }
  rememberObject('mqueue', q.name, registryOf(g));
  if (o.json) await writeJsonLine(info);
  else
    await writeOut(
      `created message queue ${info.created} (${info.maxMessages} messages of at most ${info.messageSize} bytes, mode ${info.mode})\n`,
    );
}

export interface QueueSendCliOptions {
  priority?: number;
  timeout?: number;
  nonblock?: boolean;
  json?: boolean;
}

/** Send one message: waits for room (forever, --timeout MS: exit 3), or with --nonblock fails at once (exit 4). */
export async function sendToQueue(name: string, src: MessageSource, o: QueueSendCliOptions): Promise<void> {
  // Open first: a missing queue fails before stdin is read.
  const q = MessageQueue.open(name);
  try {
    const input = await readMessage(src, q.messageSize, `the messageSize of message queue ${q.name}`);
    const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
    const priority = o.priority ?? 0;
    if (o.nonblock) q.trySend(bytes, { priority });
    else await q.send(bytes, { priority, ...(o.timeout === undefined ? {} : { timeout: o.timeout }) });
    if (o.json) await writeJsonLine({ queue: q.name, bytes: bytes.byteLength, priority });
  } finally {
    q.close();
  }
}

export interface QueueRecvCliOptions {
  timeout?: number;
  nonblock?: boolean;
  count?: number;
  raw?: boolean;
  json?: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function formatQueueMessage(queue: string, m: QueueMessage, o: QueueRecvCliOptions): string | Buffer {
  if (o.json) {
    let text: string | null;
    try {
      text = utf8.decode(m.bytes);
    } catch {
      text = null;
    }
    const line = {
      queue,
      priority: m.priority,
      size: m.bytes.length,
      text,
      base64: m.bytes.toString('base64'),
    };
    return `${JSON.stringify(line)}\n`;
  }
  return o.raw ? m.bytes : Buffer.concat([m.bytes, Buffer.from('\n')]);
}

/**
 * Receive --count messages (default 1), highest priority first. mq_receive
 * takes a message for good, so one that cannot be printed (stdout closed) is
 * sent back with its priority — behind the others of that priority, the
 * nearest the OS allows to "not taken"; if the queue filled meanwhile, it is lost.
 */
export async function receiveFromQueue(name: string, o: QueueRecvCliOptions): Promise<void> {
  const q = MessageQueue.open(name);
  try {
    for (let i = 0; i < (o.count ?? 1); i++) {
      const m = o.nonblock
        ? q.tryReceive()
        : await q.receive(o.timeout === undefined ? {} : { timeout: o.timeout });
      try {
        await writeOut(formatQueueMessage(q.name, m, o));
      } catch (e) {
        try {
          q.trySend(m.bytes, { priority: m.priority });
        } catch {
          // Full again: the message is lost, as documented.
        }
        throw e;
      }
    }
  } finally {
    q.close();
  }
}

/** Remove queues (like ipcrm -Q) and forget them; each is tried, status of the first failure. */
export function removeQueues(g: GlobalOptions, names: string[], o: { json?: boolean }): Promise<number> {
  return forEachName(names, o.json === true, 'mq rm', async (name) => {
    try {
      MessageQueue.unlink(name);
    } catch (e) {
      if (e instanceof IpcError && e.code === 'NO_SUCH_OBJECT') forgetObject('mqueue', name, registryOf(g));
      throw e;
    }
    forgetObject('mqueue', name, registryOf(g));
    const posix = name.startsWith('/') ? name : `/${name}`;
    if (o.json) await writeJsonLine({ removed: posix });
    else await writeOut(`removed message queue ${posix}\n`);
  });
}
