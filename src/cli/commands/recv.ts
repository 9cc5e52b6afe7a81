import type { ReceiveOptions } from '../../client/connection.js';
import type { Message } from '../../client/message.js';
import { IpcError } from '../../errors.js';
import { MAX_PEEK_COUNT } from '../../wire/protocol.js';
import { UsageError } from '../failure.js';
import { formatMessage } from '../message-format.js';
import { writeErr, writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions, untilInterrupted } from './common.js';

export interface RecvCliOptions {
  timeout?: number;
  nonblock?: boolean;
  count?: number;
  follow?: boolean;
  /** false with --no-ack: take the message outright. Default (and --ack): acknowledge once printed. */
  ack?: boolean;
  peek?: boolean;
  json?: boolean;
}

/**
 * Print one message, then acknowledge it. The acknowledgement waits for the
 * stdout write callback, so a message is never gone without having been
 * printed: if decoding or writing fails (EPIPE) it is handed back to the
 * kernel, which delivers it again. With --no-ack it was taken on delivery.
 */
async function printThenAck(m: Message, json: boolean): Promise<void> {
  let out: string | Buffer;
  try {
    out = formatMessage(m, json);
  } catch (e) {
    if (m.needsAck) m.nack();
    const fate = m.needsAck ? `it stays in ${m.mailbox}` : 'it is lost (received with --no-ack)';
    throw new IpcError(
      'PROTOCOL',
      `cannot decode the ${m.codec} message from ${m.sender}: ${(e as Error).message}; ${fate}`,
      {
        cause: e,
      },
    );
  }
  try {
    await writeOut(out);
  } catch (e) {
    if (m.needsAck) m.nack();
    throw e;
  }
  if (m.needsAck) m.ack();
}

/**
 * Print copies of the first --count (default 1, at most 100) queued messages,
 * leaving them queued. Nothing queued is WOULD_BLOCK (exit 4), as for
 * `recv --nonblock`. Fewer than asked while more are queued means the
 * kernel's per-answer payload cap was reached: said on stderr (text mode).
 */
async function peek(g: GlobalOptions, target: string, o: RecvCliOptions): Promise<void> {
  if (target.startsWith('@'))
    throw new UsageError(
      '--peek cannot look into @name: recv @name connects as that process, so it would see its own new, empty inbox',
      'recv',
    );
  const count = o.count ?? 1;
  if (count > MAX_PEEK_COUNT)
    throw new UsageError(`--count with --peek is at most ${MAX_PEEK_COUNT}`, 'recv');
  const p = await connectFromCli(g);
  try {
    const mb = await p.openMailbox(target);
    const { messages, more } = await mb.peek({ count });
    if (messages.length === 0) throw new IpcError('WOULD_BLOCK', `no message is queued in ${target}`);
    for (const m of messages) await writeOut(formatMessage(m, o.json === true));
    if (more && messages.length < count && !o.json)
      writeErr(`ipcbox: ${messages.length} shown; more are queued than one peek answer carries\n`);
  } finally {
    await p.close();
  }
}

/**
 * Receive from a mailbox, or with @name act as process `name` and receive its
 * direct messages (the name must be free); --peek only looks. --follow receives until SIGINT or
 * SIGTERM (exit 0); with --timeout or --nonblock it also ends, with 0, once
 * no message comes in time.
 */
export async function recv(g: GlobalOptions, target: string, o: RecvCliOptions): Promise<void> {
  if (o.peek) return peek(g, target, o);
  const options: ReceiveOptions = { ack: o.ack !== false };
  if (o.timeout !== undefined) options.timeout = o.timeout;
  if (o.nonblock) options.nonblock = true;
  const follow = o.follow === true;
  const count = follow ? Number.POSITIVE_INFINITY : (o.count ?? 1);
  const interrupt = follow ? untilInterrupted() : undefined;
  if (interrupt !== undefined) options.signal = interrupt.signal;
  const direct = target.startsWith('@');
  const p = await connectFromCli(g, direct ? target.slice(1) : undefined);
  try {
    const mb = direct ? undefined : await p.openMailbox(target);
    for (let i = 0; i < count; i++) {
      let m: Message;
      try {
        m = mb !== undefined ? await mb.receive(options) : await p.receive(options);
      } catch (e) {
        if (follow && e instanceof IpcError && ['ABORTED', 'TIMEOUT', 'WOULD_BLOCK'].includes(e.code)) return;
        throw e;
      }
      await printThenAck(m, o.json === true);
    }
  } finally {
    interrupt?.done();
    await p.close();
  }
}
