import type { ReceiveOptions } from '../../client/connection.js';
import type { Message } from '../../client/message.js';
import { connectFromCli, type GlobalOptions } from './common.js';

export interface RecvCliOptions {
  timeout?: number;
  nonblock?: boolean;
  count?: number;
  json?: boolean;
}

function render(m: Message, json: boolean): string {
  if (json) {
    const data = m.codec === 'bytes' ? m.bytes.toString('base64') : m.data;
    return `${JSON.stringify({ sender: m.sender, priority: m.priority, codec: m.codec, data })}\n`;
  }
  if (m.codec === 'json' || m.codec === 'v8') return `${JSON.stringify(m.data)}\n`;
  return `${m.bytes.toString('utf8')}\n`;
}

/**
 * Receive from a mailbox, or with @name act as process `name` and receive its
 * direct messages (the name must be free).
 */
export async function recv(g: GlobalOptions, target: string, o: RecvCliOptions): Promise<void> {
  const options: ReceiveOptions = {};
  if (o.timeout !== undefined) options.timeout = o.timeout;
  if (o.nonblock) options.nonblock = true;
  const count = o.count ?? 1;
  const direct = target.startsWith('@');
  const p = await connectFromCli(g, direct ? target.slice(1) : undefined);
  try {
    const mb = direct ? undefined : await p.openMailbox(target);
    for (let i = 0; i < count; i++) {
      const m = mb !== undefined ? await mb.receive(options) : await p.receive(options);
      process.stdout.write(render(m, o.json === true));
    }
  } finally {
    await p.close();
  }
}
