import type { SendOptions } from '../../client/connection.js';
import { connectFromCli, type GlobalOptions } from './common.js';

export interface SendCliOptions {
  priority?: number;
  timeout?: number;
  nonblock?: boolean;
  json?: boolean;
  sync?: boolean;
}

/** Send MESSAGE to a mailbox, or to a process named as @name. */
export async function send(
  g: GlobalOptions,
  target: string,
  message: string,
  o: SendCliOptions,
): Promise<void> {
  const options: SendOptions = {};
  if (o.priority !== undefined) options.priority = o.priority;
  if (o.timeout !== undefined) options.timeout = o.timeout;
  if (o.nonblock) options.nonblock = true;
  if (o.sync) options.sync = true;
  const value: unknown = o.json ? JSON.parse(message) : message;
  if (o.json) options.codec = 'json';
  const p = await connectFromCli(g);
  try {
    if (target.startsWith('@')) await p.send(target.slice(1), value, options);
    else {
      const mb = await p.openMailbox(target);
      await mb.send(value, options);
    }
  } finally {
    await p.close();
  }
}
