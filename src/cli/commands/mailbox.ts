import type { DeliveryPolicy } from '../../core/mailbox-core.js';
import type { MailboxOptions } from '../../core/mailbox-options.js';
import type { Grantees, GranteesInfo, RightKind } from '../../core/rights.js';
import type { MailboxInfo } from '../../wire/info-types.js';
import { reportFailure, UsageError } from '../failure.js';
import { writeJsonLine, writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions } from './common.js';

export interface CreateOptions {
  capacity?: string;
  delivery?: DeliveryPolicy;
  owner?: 'system' | 'process';
  maxSize?: number;
  fixedSize?: number;
  durable?: boolean;
  transport?: 'auto' | 'kernel' | 'shm';
  json?: boolean;
}

function capacityText(c: MailboxInfo['capacity']): string {
  return c === 0 ? '0 (rendezvous)' : String(c);
}

/**
 * Create a mailbox, owned by the system. `--owner process` is refused: the
 * owning process would be this command, and the kernel removes a
 * process-owned mailbox when its owner exits, so it would be gone before
 * anyone could use it and "created" would be a lie.
 */
export async function createMailbox(g: GlobalOptions, name: string, o: CreateOptions): Promise<void> {
  if (o.owner === 'process')
    throw new UsageError(
      '--owner process would make this ipcbox command the owner, and the mailbox would be removed as soon as it exits; create process-owned mailboxes from the owning program (connect().createMailbox), or use --owner system',
      'mailbox create',
    );
  const options: MailboxOptions = { owner: 'system' };
  if (o.capacity !== undefined) {
    options.capacity = o.capacity === 'unbounded' ? 'unbounded' : Number(o.capacity);
  }
  if (o.delivery !== undefined) options.delivery = o.delivery;
  if (o.maxSize !== undefined) options.maxMessageSize = o.maxSize;
  if (o.fixedSize !== undefined) options.fixedMessageSize = o.fixedSize;
  if (o.durable === true) options.durable = true;
  if (o.transport !== undefined) options.transport = o.transport;
  const p = await connectFromCli(g);
  try {
    const { info } = await p.createMailbox(name, options);
    if (o.json) await writeJsonLine(info);
    else
      await writeOut(
        `created mailbox ${info.name} (capacity ${capacityText(info.capacity)}, ${info.delivery}, max message ${info.maxMessageSize} bytes, ${info.ownership}-owned${info.durable === true ? ', durable' : ''}${info.transport === 'shm' ? ', shared memory' : ''})\n`,
      );
  } finally {
    await p.close();
  }
}

/**
 * Remove mailboxes whoever owns them (like ipcrm): pending operations on them
 * fail with MAILBOX_CLOSED. Like rm, every name is tried; each failure is
 * reported and the exit status is that of the first failure.
 */
export async function removeMailboxes(
  g: GlobalOptions,
  names: string[],
  o: { json?: boolean },
): Promise<number> {
  const p = await connectFromCli(g);
  let status = 0;
  try {
    for (const name of names) {
      try {
        await p.deleteMailbox(name, { force: true });
      } catch (e) {
        const code = reportFailure(e, o.json === true, 'mailbox rm');
        if (status === 0) status = code;
        continue;
      }
      if (o.json) await writeJsonLine({ removed: name });
      else await writeOut(`removed mailbox ${name}\n`);
    }
  } finally {
    await p.close();
  }
  return status;
}

function granteesArg(who: string[]): Grantees {
  if (who.includes('everyone')) {
    if (who.length > 1) throw new UsageError("'everyone' cannot be combined with process names");
    return 'everyone';
  }
  return who;
}

function rightsText(v: GranteesInfo): string {
  if (v === 'everyone') return 'everyone';
  if ('except' in v) return `everyone except ${v.except.join(', ')}`;
  return v.length === 0 ? 'the owner only' : v.join(', ');
}

async function printRights(info: MailboxInfo, json: boolean): Promise<void> {
  if (json) {
    await writeJsonLine({
      mailbox: info.name,
      owner: info.owner,
      senders: info.senders,
      receivers: info.receivers,
    });
    return;
  }
  await writeOut(
    `${info.name}: owner ${info.owner}; send: ${rightsText(info.senders)}; receive: ${rightsText(info.receivers)}\n`,
  );
}

/** Grant or revoke a right (owner, or a user administering a system mailbox of theirs); prints the rights after. */
export async function changeRights(
  g: GlobalOptions,
  change: 'grant' | 'revoke',
  name: string,
  right: RightKind,
  who: string[],
  o: { json?: boolean },
): Promise<void> {
  const grantees = granteesArg(who);
  const p = await connectFromCli(g);
  try {
    const mb = await p.openMailbox(name);
    if (change === 'grant') await mb.grant(right, grantees);
    else await mb.revoke(right, grantees);
    await printRights(await mb.stat(), o.json === true);
  } finally {
    await p.close();
  }
}

/** Pass ownership of a mailbox to a connected process; prints the rights after. */
export async function transferMailbox(
  g: GlobalOptions,
  name: string,
  to: string,
  o: { json?: boolean },
): Promise<void> {
  const p = await connectFromCli(g);
  try {
    const mb = await p.openMailbox(name);
    await mb.transferOwnership(to.startsWith('@') ? to.slice(1) : to);
    await printRights(await mb.stat(), o.json === true);
  } finally {
    await p.close();
  }
}
