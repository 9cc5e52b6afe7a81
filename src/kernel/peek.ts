import { IpcError } from '../errors.js';
import type { PeekReply } from '../wire/info-types.js';
import { DeliverFlag, Op } from '../wire/protocol.js';
import type { KernelMessage, MailboxRecord } from './mailbox-record.js';
import type { Session } from './session.js';

/**
 * `mailbox.peek`: copies of the first queued messages of a mailbox (or of the
 * caller's own inbox), in delivery order, left where they are.
 *
 * The answer is `count` DELIVER frames flagged PEEK (delivery id 0, not
 * tracked: nothing to consume, acknowledge or hand back) carrying the CALL's
 * request id, then the RESULT `{count, more}`. Payloads travel as bytes, as
 * in any delivery, never through JSON.
 *
 * Bounds, because a peek copies without taking anything out of the kernel:
 * - one answer carries at most the kernel's `maxMessageSize` payload bytes
 *   (every message fits that limit, so the first queued one is always there);
 * - a peek is refused KERNEL_FULL while more than MAX_UNREAD_FOR_PEEK bytes
 *   of earlier answers to the caller are unread, so a client that pipelines
 *   peeks and never reads cannot make the kernel buffer copies without bound.
 *   What it has not read is charged to the memory budget like any output.
 *
 * Nothing here changes the mailbox: no order, counter or redelivery mark.
 */

/** Unread output to a session above which its peeks are refused (as the kernel stops reading it at 4 MiB). */
const MAX_UNREAD_FOR_PEEK = 4 * 1024 * 1024;

/** Rights first: only a process that may receive from a mailbox sees its contents; an inbox only its own process. */
export function checkMayPeek(rec: MailboxRecord, s: Session): void {
  const may = rec.kind === 'inbox' ? rec.ownerSession === s : rec.rights.may('receive', s);
  if (!may) throw new IpcError('PERMISSION_DENIED', `${s.name} may not peek at ${rec.name}`);
}

/** Write the whole answer to a peek of `rec` by `s` (request `reqId`). */
export function answerPeek(
  s: Session,
  reqId: number,
  rec: MailboxRecord,
  count: number,
  maxBytes: number,
): void {
  checkMayPeek(rec, s);
  if (s.unreadOutput > MAX_UNREAD_FOR_PEEK) {
    throw new IpcError('KERNEL_FULL', `${s.name} is not reading its answers: peek refused`);
  }
  const chosen: KernelMessage[] = [];
  let bytes = 0;
  let more = false;
  for (const m of rec.core.queued(s.pid)) {
    // A prefix of the delivery order: the first message that does not fit ends the answer.
    if (chosen.length === count || (chosen.length > 0 && bytes + m.size > maxBytes)) {
      more = true;
      break;
    }
    chosen.push(m);
    bytes += m.size;
  }
  for (const m of chosen) {
    s.introduce(m.sender, m.senderName);
    if (m.mapped !== undefined) {
      // A payload in a map region: a peek gets a copy (never a lend: nothing would hand it back).
      s.writer.frame(
        Op.DELIVER,
        DeliverFlag.PEEK,
        m.priority,
        m.codec,
        reqId,
        rec.id,
        2,
        0,
        m.sender,
        m.mapped.view(),
      );
      m.mapped.region.check();
      continue;
    }
    s.writer.frameFrom(
      Op.DELIVER,
      DeliverFlag.PEEK,
      m.priority,
      m.codec,
      reqId,
      rec.id,
      2,
      0,
      m.sender,
      m.bytes,
      m.offset,
      m.offset + m.size,
    );
  }
  const reply: PeekReply = { count: chosen.length, more };
  s.sendResult(reqId, reply);
}
