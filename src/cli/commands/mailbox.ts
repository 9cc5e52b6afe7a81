import type { DeliveryPolicy } from '../../core/mailbox-core.js';
import type { MailboxOptions } from '../../core/mailbox-options.js';
import { connectFromCli, type GlobalOptions } from './common.js';

export interface CreateOptions {
  capacity?: string;
  delivery?: DeliveryPolicy;
  owner?: 'system' | 'process';
  maxSize?: number;
  fixedSize?: number;
}

/** Create a mailbox. The CLI's default owner is 'system': a process-owned mailbox would vanish with the CLI. */
export async function createMailbox(g: GlobalOptions, name: string, o: CreateOptions): Promise<void> {
  const options: MailboxOptions = { owner: o.owner ?? 'system' };
  if (o.capacity !== undefined) {
    options.capacity = o.capacity === 'unbounded' ? 'unbounded' : Number(o.capacity);
  }
  if (o.delivery !== undefined) options.delivery = o.delivery;
  if (o.maxSize !== undefined) options.maxMessageSize = o.maxSize;
  if (o.fixedSize !== undefined) options.fixedMessageSize = o.fixedSize;
  const p = await connectFromCli(g);
  try {
    const mb = await p.createMailbox(name, options);
    process.stdout.write(
      `created mailbox ${mb.name} (capacity ${mb.info.capacity}, ${mb.info.delivery}, owner ${mb.info.owner})\n`,
    );
  } finally {
    await p.close();
  }
}

/** Remove a mailbox whoever owns it (like ipcrm): pending operations on it fail with MAILBOX_CLOSED. */
export async function removeMailbox(g: GlobalOptions, name: string): Promise<void> {
  const p = await connectFromCli(g);
  try {
    await p.deleteMailbox(name, { force: true });
    process.stdout.write(`removed mailbox ${name}\n`);
  } finally {
    await p.close();
  }
}
