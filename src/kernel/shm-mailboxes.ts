import { type ResolvedMailboxOptions, validateName } from '../core/mailbox-options.js';
import type { Grantees, RightKind } from '../core/rights.js';
import { IpcError } from '../errors.js';
import type { MailboxInfo } from '../wire/info-types.js';
import type { Kernel } from './kernel.js';
import type { SegmentRecord } from './segment-record.js';
import type { Session } from './session.js';

/**
 * Mailboxes on the shared-memory path (`createMailbox(name, { transport: 'shm' })`, or chosen by
 * 'auto'): in the one mailbox namespace, so `openMailbox(name)` finds them and a name is taken
 * once whichever path holds it. The data never passes through the kernel: the record is the
 * segment the creating process registered (kind 'mailbox', with `mailbox` naming it). The
 * kernel keeps name, rights, ownership and cleanup; depth and counters live in the segment,
 * which the kernel deliberately never maps (a client could truncate it under the kernel and
 * kill it with SIGBUS), so `status` shows them as unknown and the handle's `stat()` reads them.
 */

/** Throws MAILBOX_EXISTS if `name` is held on either path here, KERNEL_FULL if no more mailboxes may be made. */
export function checkMailboxNameFree(k: Kernel, name: string): void {
  if (k.mailboxByName.has(name) || k.shmMailboxes.has(name) || k.cluster?.isPending('mailbox', name))
    throw new IpcError('MAILBOX_EXISTS', `mailbox already exists: ${name}`);
  checkMailboxRoom(k);
}

/**
 * A mailbox's record is kernel memory the message budget does not count, so their number is
 * bounded (maxMailboxes): without it one client could grow the kernel without end.
 */
export function checkMailboxRoom(k: Kernel): void {
  const most = k.options.maxMailboxes;
  if (k.mailboxByName.size + k.shmMailboxes.size >= most)
    throw new IpcError('KERNEL_FULL', `this kernel holds its most mailboxes (${most}): delete some first`);
}

/**
 * A segment registration that names a mailbox: the name must be free and valid, and the
 * kernel must be host-local (a cluster's processes on other nodes could not map it, and the
 * name would not be unique across the cluster).
 */
export function claimShmMailboxName(k: Kernel, s: Session, mailbox: unknown): string {
  const name = validateName('mailbox', mailbox);
  requireOnThisHost(s, name, 'made');
  if (k.options.cluster !== undefined)
    throw new IpcError(
      'NOT_SUPPORTED',
      `a shared-memory mailbox is reachable only on its host: in a cluster create ${name} with transport 'kernel'`,
    );
  checkMailboxNameFree(k, name);
  return name;
}

/**
 * Without peer credentials the process may be on another host (TLS) or another node (a proxy),
 * where this host's memory is not: there the segment name would find nothing, or another
 * kernel's mailbox of that name. The link broker draws the same line.
 */
export function requireOnThisHost(s: Session, name: string, what: 'made' | 'opened'): void {
  if (s.credentials === undefined || s.remoteNode !== undefined)
    throw new IpcError(
      'NOT_SUPPORTED',
      `${name}: a shared-memory mailbox is ${what} only by a process the kernel sees on this host (peer credentials)`,
    );
}

/** A mailbox the kernel makes is on its own path: 'shm' is made by the creating process, never here. */
export function kernelPathOnly(o: ResolvedMailboxOptions): ResolvedMailboxOptions {
  if (o.transport === 'shm')
    throw new IpcError(
      'INVALID_ARGUMENT',
      "transport 'shm': the creating process makes the segment and registers it (createMailbox does); the kernel makes only 'kernel' mailboxes",
    );
  return o;
}

const DELIVERIES = new Set(['round-robin', 'arbitrary', 'exclusive', 'broadcast']);

function nonNegativeInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/**
 * The record as a MailboxInfo. `meta` is the registrant's word (the layout in the segment is
 * the truth every attaching process reads), so each field is checked and a wrong one shown
 * as unknown rather than passed on.
 */
export function describeShmMailbox(rec: SegmentRecord): MailboxInfo {
  const meta = (rec.meta ?? {}) as Record<string, unknown>;
  const capacity = meta.capacity === 'unbounded' ? 'unbounded' : (nonNegativeInt(meta.capacity) ?? 0);
  const delivery =
    typeof meta.delivery === 'string' && DELIVERIES.has(meta.delivery) ? meta.delivery : 'unknown';
  const fixed = nonNegativeInt(meta.fixedMessageSize);
  return {
    id: 0,
    name: rec.mailbox ?? rec.name,
    transport: 'shm',
    segment: rec.name,
    capacity,
    delivery,
    ownership: rec.ownership,
    owner: rec.rights.owner,
    maxMessageSize: nonNegativeInt(meta.maxMessageSize) ?? 0,
    fixedMessageSize: fixed ?? null,
    senders: rec.rights.describe('send'),
    receivers: rec.rights.describe('receive'),
    depth: 0,
    bytes: 0,
    attached: rec.receivers(),
    waitingSenders: 0,
    waitingReceivers: 0,
    promised: 0,
    counters: { sent: 0, received: 0, blockedSends: 0, redelivered: 0, acked: 0 },
  };
}

/** `mailbox.grant` / `mailbox.revoke` on a shared-memory mailbox (its owner's call: control.ts checks). */
export function changeShmRights(
  k: Kernel,
  rec: SegmentRecord,
  grant: boolean,
  kind: RightKind,
  who: Grantees,
): MailboxInfo {
  if (grant) {
    rec.rights.grant(kind, who);
    k.bindConnected(rec.rights, who);
    return describeShmMailbox(rec);
  }
  rec.rights.revoke(kind, who);
  // Attached handles that lost the right are detached and told; their library closes that
  // side of the handle. The mapping itself cannot be taken back from a process of the same
  // user (docs/shm-mailbox.md): that is why 'auto' picks this path only for a single-user kernel.
  for (const [holder, roles] of [...rec.attached]) {
    if (rec.rights.may(kind, holder)) continue;
    const lost = roles.filter((r) => r === 'both' || r === kind);
    if (lost.length === 0) continue;
    for (const r of lost) rec.detach(holder, r);
    holder.sendNotice({ kind: 'segment-rights', name: rec.name, mailbox: rec.mailbox, right: kind });
  }
  return describeShmMailbox(rec);
}

/** `mailbox.transfer` on a shared-memory mailbox (its owner's call: control.ts checks). */
export function transferShmMailbox(rec: SegmentRecord, s: Session, to: Session): MailboxInfo {
  rec.rights.setOwner(to);
  if (rec.ownerSession !== undefined) rec.ownerSession = to;
  to.sendNotice({ kind: 'ownership', mailbox: rec.mailbox, from: s.name });
  return describeShmMailbox(rec);
}
