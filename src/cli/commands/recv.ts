import type { ReceiveOptions } from '../../client/connection.js';
import type { Message } from '../../client/message.js';
import { IpcError } from '../../errors.js';
import { formatMessage } from '../message-format.js';
import { writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions, untilInterrupted } from './common.js';

export interface RecvCliOptions {
  timeout?: number;
  nonblock?: boolean;
  count?: number;
  follow?: boolean;
  /** false with --no-ack: take the message outright. Default (and --ack): acknowledge once printed. */
  ack?: boolean;
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
 * Receive from a mailbox, or with @name act as process `name` and receive its
 * direct messages (the name must be free). --follow receives until SIGINT or
 * SIGTERM (exit 0); with --timeout or --nonblock it also ends, with 0, once
 * no message comes in time.
 */
export async function recv(g: GlobalOptions, target: string, o: RecvCliOptions): Promise<void> {
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
