import { randomBytes } from 'node:crypto';
import { IpcError } from '../errors.js';
import { LINK_ADDRESS, type LinkOffer } from '../wire/link-protocol.js';
import type { Session } from './session.js';

/**
 * The kernel's part in one-hop links (wire/link-protocol.ts): it vouches for
 * who is at each end and keeps the record `status` shows; the messages go
 * over the link without it.
 *
 * A link is offered only when the kernel can keep every promise the kernel
 * path makes:
 * - both ends are local Unix-socket clients whose OS pid the kernel read with
 *   SO_PEERCRED (not a TLS client, not a process of another node), so each end
 *   can check the other's OS identity;
 * - the receiver listens (`link.listen`) and its inbox is unbounded: a
 *   bounded or rendezvous inbox is one queue with one capacity for all its
 *   senders, which only the kernel can count, so those stay on the kernel path;
 * - the receiver reads its kernel socket (not choked), or it would never see
 *   the token;
 * - at most MAX_LINKS_PER_PROCESS links per sender.
 * Otherwise the lookup answers without an offer and the sender uses the kernel.
 */

export const MAX_LINKS_PER_PROCESS = 4096;

/** `link.listen`: the session's listening address, checked for shape (it is only passed on). */
export function listenAt(s: Session, address: unknown): void {
  if (typeof address !== 'string' || !LINK_ADDRESS.test(address))
    throw new IpcError('INVALID_ARGUMENT', 'a link address is an abstract socket name \\0ipcbox-link/…');
  if (s.credentials === undefined || s.remoteNode !== undefined || s.needsToken)
    throw new IpcError('NOT_SUPPORTED', 'links need a local connection with peer credentials');
  s.linkAddress = address;
}

/** An offer for a link from `from` to `to`, told to `to` first; undefined: use the kernel path. */
export function offerLink(from: Session, to: Session): LinkOffer | undefined {
  if (from === to || to.linkAddress === undefined || to.choked || to.closed) return undefined;
  if (from.credentials === undefined || to.credentials === undefined) return undefined;
  if (from.remoteNode !== undefined || to.remoteNode !== undefined) return undefined;
  if (to.inbox === undefined || to.inbox.options.capacity !== Number.POSITIVE_INFINITY) return undefined;
  if (from.linksTo.size >= MAX_LINKS_PER_PROCESS && !from.linksTo.has(to)) return undefined;
  const token = randomBytes(16).toString('hex');
  // Before the answer: the notice reaches the receiver no later than the sender can knock.
  to.sendNotice({ kind: 'link', token, pid: from.pid, name: from.name, osPid: from.osPid });
  from.linksTo.add(to);
  to.linksFrom.add(from);
  return { address: to.linkAddress, token, osPid: to.osPid };
}

/** A session ends: its links go from both ends' records (the sockets close by themselves). */
export function forgetLinks(s: Session): void {
  for (const t of s.linksTo) t.linksFrom.delete(s);
  for (const t of s.linksFrom) t.linksTo.delete(s);
  s.linksTo.clear();
  s.linksFrom.clear();
}
