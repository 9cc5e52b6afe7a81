import type { SendOptions } from '../../client/connection.js';
import { codecId, encodePayload } from '../../wire/payload-codec.js';
import type { CodecName } from '../../wire/protocol.js';
import { type MessageSource, messageValue, readMessage } from '../message-input.js';
import { writeJsonLine } from '../output.js';
import { connectFromCli, type GlobalOptions } from './common.js';

export interface SendCliOptions {
  priority?: number;
  timeout?: number;
  nonblock?: boolean;
  sync?: boolean;
  codec?: CodecName;
  json?: boolean;
}

/**
 * Send a message to a mailbox, or to a process named as @name. Silent on
 * success; with --json one line {target, codec, bytes, priority, sync}.
 */
export async function send(
  g: GlobalOptions,
  target: string,
  src: MessageSource,
  o: SendCliOptions,
): Promise<void> {
  const options: SendOptions = {};
  if (o.priority !== undefined) options.priority = o.priority;
  if (o.timeout !== undefined) options.timeout = o.timeout;
  if (o.nonblock) options.nonblock = true;
  if (o.sync) options.sync = true;
  const codec = o.codec ?? 'string';
  options.codec = codec;
  const p = await connectFromCli(g);
  try {
    const direct = target.startsWith('@');
    // Resolve the target first: a missing mailbox fails before stdin is read.
    const mb = direct ? undefined : await p.openMailbox(target);
    const value = messageValue(await readMessage(src, p.maxMessageSize), src, codec);
    if (mb === undefined) await p.send(target.slice(1), value, options);
    else await mb.send(value, options);
    if (o.json) {
      await writeJsonLine({
        target,
        codec,
        bytes: encodePayload(value, codecId(codec)).byteLength,
        priority: options.priority ?? 0,
        sync: options.sync === true,
      });
    }
  } finally {
    await p.close();
  }
}
