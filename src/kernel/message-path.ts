import { type Receiver, ReceiverBusyError } from '../core/mailbox-core.js';
import { MAX_PRIORITY } from '../core/priority-queue.js';
import type { IpcErrorCode } from '../errors.js';
import { Chunk, type Frame } from '../wire/frame-codec.js';
import { DeliverFlag, MAP_REF_BYTES, Op, RecvFlag, SendFlag, UnmapFlag } from '../wire/protocol.js';
import { shapeViolation } from './frame-rules.js';
import type { Kernel } from './kernel.js';
import type { KernelMessage, MailboxRecord, PendingReceive, SendRequest } from './mailbox-record.js';
import { now } from './mailbox-stats.js';
import type { MappedPayload } from './map-regions.js';
import { emptyStore } from './message-store.js';
import { type Inflight, PUSH_BYTES_MAX, type Session } from './session.js';
import { startTimer } from './timer.js';

/** Most budget bytes one sender holds as credit on one mailbox, and when it is topped up. */
const CREDIT_BYTES = 4 * 1024 * 1024;
const CREDIT_BYTES_LOW = 1024 * 1024;
/**
 * What a push counts against the receiver's prefetch bound (PUSH_BYTES_MAX): its payload's
 * bytes, or for a mapped one only its reference (the region bounds what mapped pushes pin).
 */
function pushCost(m: KernelMessage): number {
  // Mapped (now, or until it was finished): a payload with no bytes of the kernel's own.
  return m.size > 0 && m.store === emptyStore() ? 64 : m.size;
}

/** Most unanswered operations (parked sends and receives) one session may have. */
const MAX_PENDING_PER_SESSION = 65536;

/**
 * The life of a message in the kernel, from the SEND frame that brings it to
 * the CONSUMED (or ACK) that lets it go: admission (rights, sizes, budget,
 * credits), waiting (parked senders, queued sync sends, their timers),
 * delivery (every one tracked), and redelivery (RELEASE, a receiver that
 * leaves or dies: back in accept order). Connections, names and mailbox
 * lifecycle are the kernel's (kernel.ts); this file only moves messages.
 *
 * Invariants:
 * - A request SEND is answered exactly once (SENT or ERROR) while its session
 *   lives; `session.pendingSends` holds it until then.
 * - A kept message holds one budget ref from acceptance until its last copy
 *   is finished (consumed, acknowledged, withdrawn or dropped).
 * - A delivery stays in `session.inflight` until CONSUMED (and ACK in ack
 *   mode) or RELEASE; nothing else removes a message from the kernel.
 */
export class MessagePath {
  private nextSeq = 1;
  /** The mapped payload of the SEND being handled, until it becomes a message's (accept_). */
  private taking: MappedPayload | undefined;

  constructor(private readonly k: Kernel) {}

  /** The next accept-order number (restored durable messages take theirs here too). */
  nextMessageSeq(): number {
    return this.nextSeq++;
  }

  // ---------------------------------------------------------------- sending

  onSend(s: Session, f: Frame): void {
    const reqId = f.reqId;
    const off = (f.flags & SendFlag.TIMED) !== 0 && reqId !== 0 ? 4 : 0;
    const mapped = (f.flags & SendFlag.MAPPED) !== 0 ? this.mappedPayload(s, f, off) : undefined;
    if (mapped === null) return;
    this.taking = mapped;
    try {
      if (reqId === 0) this.onCreditedSend(s, f);
      else this.onRequestSend(s, f);
    } finally {
      // Refused before it became a message: the chunk goes back now.
      if (this.taking !== undefined) this.k.maps.drop(this.taking);
      this.taking = undefined;
    }
  }

  /**
   * A MAPPED SEND's reference, taken from the sender's region; null if it broke the protocol
   * (the session is ending then).
   */
  private mappedPayload(s: Session, f: Frame, off: number): MappedPayload | null {
    if (f.bodyLength - off !== MAP_REF_BYTES) {
      this.k.protocolError(s, `a MAPPED SEND carries a ${MAP_REF_BYTES}-byte reference`);
      return null;
    }
    const p = this.k.maps.take(s, f.u32(off), f.u32(off + 4), f.u32(off + 8));
    if (typeof p === 'string') {
      this.k.protocolError(s, `MAPPED SEND: ${p}`);
      return null;
    }
    return p;
  }

  private onRequestSend(s: Session, f: Frame): void {
    const reqId = f.reqId;
    const rec = this.k.mailboxes.get(f.target);
    const nonblock = (f.flags & SendFlag.NONBLOCK) !== 0;
    let off = 0;
    let timeout = -1;
    if ((f.flags & SendFlag.TIMED) !== 0) {
      if (f.bodyLength < 4) return s.sendError(reqId, 'PROTOCOL', 'SEND: TIMED without a timeout');
      timeout = f.u32(0);
      off = 4;
    }
    if (s.pendingSends.has(reqId)) {
      return this.k.protocolError(s, `SEND reuses request id ${reqId} of a send still pending`);
    }
    if (rec === undefined) return s.sendError(reqId, 'NO_SUCH_MAILBOX', `no such mailbox (id ${f.target})`);
    if (f.priority > MAX_PRIORITY)
      return s.sendError(reqId, 'INVALID_ARGUMENT', `priority ${f.priority} is out of range 0..31`);
    if (f.codec > 3) return s.sendError(reqId, 'INVALID_ARGUMENT', `unknown payload codec ${f.codec}`);
    const size = this.taking?.length ?? f.bodyLength - off;
    if (!rec.rights.may('send', s)) {
      return s.sendError(reqId, 'PERMISSION_DENIED', `${s.name} may not send to ${rec.name}`);
    }
    const refusal = this.sizeRefusal(rec, size);
    if (refusal !== undefined) return s.sendError(reqId, refusal[0], refusal[1]);
    // A mapped payload costs the kernel only its record (unless it must be copied in, durable).
    const held = this.taking === undefined || rec.durable !== undefined ? size : 0;
    if (!this.k.budget.fits(held + 128)) {
      return s.sendError(
        reqId,
        'KERNEL_FULL',
        `kernel memory budget of ${this.k.options.memoryBudget} bytes is exhausted`,
      );
    }
    if (s.pendingSends.size + s.pendingReceives.size >= MAX_PENDING_PER_SESSION) {
      return s.sendError(reqId, 'KERNEL_FULL', `${s.name} has ${MAX_PENDING_PER_SESSION} operations pending`);
    }
    const message = this.accept_(s, f, off, size, rec);
    const req: SendRequest = {
      message,
      session: s,
      reqId,
      nonblock,
      record: rec,
      timer: undefined,
      expired: undefined,
    };
    s.sent++;
    const sync = (f.flags & SendFlag.SYNC) !== 0 || rec.options.capacity === 0;
    if (sync) message.completion = req;
    if (rec.durable !== undefined) return this.persistThenAdmit(rec, req, sync, timeout);
    this.admitSend(rec, req, sync, timeout);
  }

  /**
   * A durable mailbox's send is stored on disk first (JetStream), and only then goes through the
   * core, so the SENT it earns means the message survives a crash. Stores complete in the order
   * sends came; sends are admitted in that order too, whatever order the acks arrive in.
   */
  private persistThenAdmit(rec: MailboxRecord, req: SendRequest, sync: boolean, timeout: number): void {
    const store = rec.durable!;
    const m = req.message;
    const entry: { req: SendRequest; sync: boolean; timeout: number; done: boolean; error?: unknown } = {
      req,
      sync,
      timeout,
      done: false,
    };
    rec.persisting.push(entry);
    store
      .append(m.bytes.subarray(m.offset, m.offset + m.size), m.priority, m.codec, m.senderName)
      .then(
        (seq) => {
          m.durable = { store, seq };
        },
        (e: unknown) => {
          entry.error = e;
        },
      )
      .finally(() => {
        entry.done = true;
        while (rec.persisting.length > 0 && rec.persisting[0]!.done) {
          const next = rec.persisting.shift()!;
          const w = next.req;
          const s = w.session!;
          if (next.error !== undefined || rec.closed || s.closed) {
            w.message.completion = undefined;
            this.k.budget.finish(w.message);
            if (next.error !== undefined && !s.closed)
              s.sendError(
                w.reqId,
                'CLUSTER_UNAVAILABLE',
                `${rec.name} could not store the message: ${String(next.error)}`,
              );
            else if (rec.closed && !s.closed)
              s.sendError(w.reqId, 'MAILBOX_CLOSED', `${rec.name} was closed`);
            continue;
          }
          this.admitSend(rec, w, next.sync, next.timeout);
        }
        this.k.flushLater();
      });
  }

  private admitSend(rec: MailboxRecord, req: SendRequest, sync: boolean, timeout: number): void {
    const s = req.session!;
    const message = req.message;
    const reqId = req.reqId;
    const nonblock = req.nonblock;
    const outcome = rec.core.send(message, !nonblock);
    switch (outcome) {
      case 'queued':
      case 'handed':
        rec.counters.sent++;
        if (!sync) {
          s.sendSent(reqId);
          this.grantCredits(rec, s);
        } else {
          this.pendSend(req, timeout);
        }
        break;
      case 'blocked':
        rec.counters.blockedSends++;
        this.pendSend(req, timeout);
        rec.core.park(req);
        rec.credits.revoke();
        break;
      case 'would-block':
        if (rec.core.promised > 0 && rec.core.waitingSenders === 0 && rec.options.capacity > 0) {
          // Room exists but is promised to other senders as credits: take it back, then decide.
          this.pendSend(req, -1);
          rec.deferred.add(req);
          rec.core.park(req);
          if (s.pendingSends.has(reqId)) rec.credits.revoke();
          break;
        }
        message.completion = undefined;
        this.k.budget.finish(message);
        s.sendError(
          reqId,
          'WOULD_BLOCK',
          rec.options.capacity === 0 ? `no receiver is waiting on ${rec.name}` : `${rec.name} is full`,
        );
        return;
    }
    // Waiting (queued or parked) rather than on its way to a receiver: a small one gets its own buffer.
    if (message.pending > 0 && !message.handed) this.k.budget.compact(message);
  }

  /** A send within credit: no answer, no rights check (the credit was the right), never refused. */
  private onCreditedSend(s: Session, f: Frame): void {
    const rec = this.k.mailboxes.get(f.target);
    // A credited send can race with the mailbox's deletion (the sender is told by NOTICE), or
    // with the sender's own handle close; a mailbox it never had credit on is a violation.
    if (rec === undefined) return;
    const bad = shapeViolation(f);
    if (bad !== undefined) return this.k.protocolError(s, bad);
    const size = this.taking?.length ?? f.bodyLength;
    if (this.sizeRefusal(rec, size) !== undefined) {
      return this.k.protocolError(s, `credited SEND of ${size} bytes breaks ${rec.name}'s size rules`);
    }
    // Credit is spent by what crosses the socket: a mapped send spends its reference's bytes.
    const how = rec.credits.spend(s, f.bodyLength);
    if (how === 'none') {
      if (rec.credits.barred.has(s) || !rec.credits.holders.has(s)) {
        // Its credit was dropped (handle closed, rights revoked and returned): only a client
        // that ignores the protocol sends on after returning its credit.
        return this.k.protocolError(s, `SEND without reply id and without credit for ${rec.name}`);
      }
      return this.k.protocolError(s, `SEND without reply id beyond the credit for ${rec.name}`);
    }
    const message = this.accept_(s, f, 0, size, rec);
    s.sent++;
    rec.counters.sent++;
    if (how === 'credit') rec.core.send(message, true, true);
    else rec.core.sendForced(message);
    if (message.pending > 0 && !message.handed) this.k.budget.compact(message);
    // Top up before the sender runs dry, so a steady stream never stops for a round trip.
    this.grantCredits(rec, s);
  }

  private sizeRefusal(rec: MailboxRecord, size: number): [IpcErrorCode, string] | undefined {
    if (size > rec.options.maxMessageSize) {
      return [
        'MESSAGE_TOO_LARGE',
        `message of ${size} bytes exceeds ${rec.name}'s limit of ${rec.options.maxMessageSize}`,
      ];
    }
    const fixed = rec.options.fixedMessageSize;
    if (fixed !== undefined && size !== fixed) {
      return ['WRONG_MESSAGE_SIZE', `${rec.name} takes messages of exactly ${fixed} bytes, got ${size}`];
    }
    return undefined;
  }

  /**
   * The kernel keeps a message from here until its last copy is consumed, acknowledged or
   * dropped. A mapped payload stays in its region (the message owns the chunk), except for a
   * durable mailbox, whose store needs the bytes: those are copied in and the chunk goes now.
   */
  private accept_(s: Session, f: Frame, off: number, size: number, rec: MailboxRecord): KernelMessage {
    const mapped = this.taking;
    this.taking = undefined;
    let bytes = f.buf;
    let offset = f.start + off;
    let store = f.chunk;
    if (mapped !== undefined) {
      if (rec.durable !== undefined) {
        bytes = Buffer.from(mapped.view());
        store = new Chunk(bytes);
        this.k.maps.drop(mapped);
      } else {
        store = emptyStore();
        bytes = store.buf;
      }
      offset = 0;
    }
    const m: KernelMessage = {
      priority: f.priority,
      sender: s.pid,
      senderName: s.name,
      size,
      codec: f.codec,
      seq: this.nextSeq++,
      queuedAt: now(),
      bytes,
      offset,
      store,
      pending: 1,
      handed: false,
      completion: undefined,
    };
    if (mapped !== undefined && rec.durable === undefined) m.mapped = mapped;
    this.k.budget.retain(m);
    return m;
  }

  /** Track an unanswered send; its timer runs whatever state the send is in. */
  private pendSend(req: SendRequest, timeout: number): void {
    const s = req.session!;
    s.pendingSends.set(req.reqId, req);
    if (timeout >= 0) {
      req.timer = startTimer(timeout, () =>
        this.expire(req, 'TIMEOUT', `send to ${req.record.name} timed out after ${timeout} ms`),
      );
    }
  }

  /** Answer a request send: done. */
  private answerSent(req: SendRequest): void {
    req.timer?.clear();
    req.timer = undefined;
    const s = req.session;
    if (s === undefined || s.pendingSends.get(req.reqId) !== req) return;
    s.pendingSends.delete(req.reqId);
    req.record.deferred.delete(req);
    s.sendSent(req.reqId);
    if (!req.record.closed && req.record.options.capacity > 0) this.grantCredits(req.record, s);
  }

  /** Answer a request send with an error; its message is not (or no longer) in the mailbox. */
  answerError(req: SendRequest, code: IpcErrorCode, text: string): void {
    req.timer?.clear();
    req.timer = undefined;
    req.record.deferred.delete(req);
    const s = req.session;
    if (s === undefined || s.pendingSends.get(req.reqId) !== req) return;
    s.pendingSends.delete(req.reqId);
    s.sendError(req.reqId, code, text);
  }

  /**
   * A send's timeout or abort: withdraw it from wherever it is. Parked or
   * still queued: it fails now and its message goes. Held by a receiver that
   * has not taken it yet: the answer waits for that receiver (taken: SENT;
   * given back: the error), so a send is never both delivered and failed.
   */
  private expire(req: SendRequest, code: 'TIMEOUT' | 'ABORTED', text: string): void {
    const rec = req.record;
    const m = req.message;
    if (rec.core.cancelSend(req)) {
      if (m.completion === req) m.completion = undefined;
      this.k.budget.finish(m);
      this.answerError(req, code, text);
      return;
    }
    if (m.completion !== req) return;
    const removed = rec.closed ? 0 : rec.core.withdraw(m);
    for (let i = 0; i < removed; i++) this.k.budget.finish(m);
    if (m.pending === 0) {
      m.completion = undefined;
      this.k.budget.letGoMapped(m);
      this.answerError(req, code, text);
      return;
    }
    req.timer?.clear();
    req.timer = undefined;
    req.expired = { code, text };
    // Ask the receivers holding it to hand it back if their application has not taken it yet; the
    // answer (RELEASE: the send fails; CONSUMED: it completed) takes one turn of their event loop.
    for (const { session, deliveryId } of m.outAt ?? []) {
      const e = session.inflight.get(deliveryId);
      if (e !== undefined && e.message === m && !e.consumed && session.version >= 2)
        session.sendWithdraw(deliveryId);
    }
    // A receiver that does not answer (its event loop stuck, or it ignores WITHDRAW) must not hold
    // the sender's wait open for good: past the deadline the send fails anyway and the message is
    // dropped when it comes back. The one case where a failed sync send may still be received.
    req.timer = startTimer(this.k.options.revokeTimeout, () => {
      if (m.completion !== req) return;
      m.completion = undefined;
      m.dropOnReturn = true;
      this.answerError(req, code, text);
    });
  }

  /** A parked sender's message entered the mailbox (or, at capacity 0, reached a receiver). */
  admitted(w: SendRequest): void {
    w.record.counters.sent++;
    w.record.deferred.delete(w);
    // A synchronous or rendezvous send is answered when the receiver takes the message.
    if (w.message.completion === undefined) this.answerSent(w);
  }

  /** A revocation round ended: non-blocking sends that waited for it and found no room fail now. */
  roundEnded(rec: MailboxRecord): void {
    for (const w of [...rec.deferred]) {
      if (rec.core.cancelSend(w)) {
        if (w.message.completion === w) w.message.completion = undefined;
        this.k.budget.finish(w.message);
        this.answerError(w, 'WOULD_BLOCK', `${rec.name} is full`);
      }
    }
    rec.deferred.clear();
  }

  /**
   * Promise free slots, and bytes of the memory budget, to a sender so its next
   * sends need no round trip. Bytes make the budget hold even for credited
   * sends: all credit grants together stay within half of it.
   */
  private grantCredits(rec: MailboxRecord, s: Session): void {
    // A durable mailbox answers each send after storing it: a credited send has no answer to wait for.
    if (rec.closed || s.closed || rec.durable !== undefined || !rec.rights.may('send', s)) return;
    const room = this.k.options.memoryBudget / 2 - this.k.budget.used;
    rec.credits.grant(s, rec.creditWindow, rec.creditLowWater, CREDIT_BYTES, CREDIT_BYTES_LOW, room / 4);
  }

  onCreditReturn(s: Session, f: Frame): void {
    const rec = this.k.mailboxes.get(f.target);
    if (rec === undefined) return;
    // Credited sends written before the return were processed first, so the kernel's count is what came back.
    rec.credits.returned(s, f.bodyLength >= 12 ? f.u32(8) : 0);
  }

  // ---------------------------------------------------------------- receiving

  private attachReceiver(s: Session, rec: MailboxRecord, reqId: number, ack: boolean): boolean {
    if (rec.core.isAttached(s.pid)) return true;
    // A refusal answers the request; a version 1 DEMAND has no request id, so, as in version 1,
    // its refusal ends the connection.
    const refuse = (code: IpcErrorCode, text: string) => {
      if (reqId === 0) this.k.protocolError(s, `${code}: ${text}`);
      else s.sendError(reqId, code, text);
      return false;
    };
    if (rec.kind === 'inbox' || !rec.rights.may('receive', s)) {
      return refuse('PERMISSION_DENIED', `${s.name} may not receive from ${rec.name}`);
    }
    try {
      rec.core.attach(s.pid);
    } catch (e) {
      if (e instanceof ReceiverBusyError) {
        return refuse('RECEIVER_BUSY', `${rec.name} is exclusive and already has a receiver`);
      }
      throw e;
    }
    s.attached.set(rec, { ack, stream: reqId, draining: 0, deferred: [] });
    rec.openers.add(s);
    return true;
  }

  onRecv(s: Session, f: Frame): void {
    const bad = shapeViolation(f);
    if (bad !== undefined) return this.k.protocolError(s, bad);
    if (s.pendingReceives.has(f.reqId)) {
      return this.k.protocolError(s, `RECV reuses request id ${f.reqId} of a receive still pending`);
    }
    const rec = this.k.mailboxes.get(f.target);
    if (rec === undefined) return s.sendError(f.reqId, 'NO_SUCH_MAILBOX', `no such mailbox (id ${f.target})`);
    let off = 0;
    let timeout = -1;
    if ((f.flags & RecvFlag.TIMED) !== 0) {
      if (f.bodyLength < 4) return s.sendError(f.reqId, 'PROTOCOL', 'RECV: TIMED without a timeout');
      timeout = f.u32(0);
      off = 4;
    }
    let from: number | undefined;
    if ((f.flags & RecvFlag.FROM) !== 0) {
      if (f.bodyLength < off + 4) return s.sendError(f.reqId, 'PROTOCOL', 'RECV: FROM without a process id');
      from = f.u32(off);
    }
    if (s.pendingSends.size + s.pendingReceives.size >= MAX_PENDING_PER_SESSION) {
      return s.sendError(
        f.reqId,
        'KERNEL_FULL',
        `${s.name} has ${MAX_PENDING_PER_SESSION} operations pending`,
      );
    }
    const ack = (f.flags & RecvFlag.ACK) !== 0;
    if (!this.attachReceiver(s, rec, f.reqId, ack)) return;
    const nonblock = (f.flags & RecvFlag.NONBLOCK) !== 0;
    const req: PendingReceive = { from, session: s, reqId: f.reqId, ack, record: rec, timer: undefined };
    const att = s.attached.get(rec);
    if (att !== undefined && att.draining > 0) {
      // Pushes of an ended iteration are still coming back: the next message in order may be
      // one of them, so this receive waits its turn (a non-blocking one is answered then).
      rec.core.parkReceive(s.pid, req);
      s.pendingReceives.set(f.reqId, req);
      if (nonblock) {
        att.deferred.push(req);
        // Bounded: a receiver that never hands its messages back gets its answer anyway.
        req.timer = startTimer(this.k.options.revokeTimeout, () => {
          if (rec.core.cancelReceive(s.pid, req))
            this.failReceive(req, 'WOULD_BLOCK', `no message in ${rec.name}`);
        });
        return;
      }
    } else {
      const m = rec.core.receive(s.pid, req, !nonblock);
      if (m !== undefined) return this.deliver(rec, s, req, m);
      if (nonblock) return s.sendError(f.reqId, 'WOULD_BLOCK', `no message in ${rec.name}`);
      s.pendingReceives.set(f.reqId, req);
    }
    if (timeout >= 0) {
      req.timer = startTimer(timeout, () => {
        if (rec.core.cancelReceive(s.pid, req)) {
          this.failReceive(req, 'TIMEOUT', `receive from ${rec.name} timed out after ${timeout} ms`);
        }
      });
    }
  }

  /**
   * DEMAND: standing prefetch demand (async iteration). The request id names
   * the iteration, so a refusal (no receive right, exclusive mailbox taken)
   * answers it instead of reading as a protocol violation.
   */
  onDemand(s: Session, f: Frame): void {
    const bad = shapeViolation(f);
    if (bad !== undefined) return this.k.protocolError(s, bad);
    const rec = this.k.mailboxes.get(f.target);
    if (rec === undefined) {
      if (f.reqId !== 0) s.sendError(f.reqId, 'NO_SUCH_MAILBOX', `no such mailbox (id ${f.target})`);
      return;
    }
    const delta = f.i32(0);
    const ack = (f.flags & RecvFlag.ACK) !== 0;
    if (!rec.core.isAttached(s.pid)) {
      if (delta <= 0) return;
      if (f.reqId === 0 && s.version >= 2)
        return this.k.protocolError(s, 'DEMAND that attaches needs a request id');
      if (!this.attachReceiver(s, rec, f.reqId, ack)) return;
    } else {
      const att = s.attached.get(rec);
      if (att !== undefined) {
        att.ack = ack;
        // A new iteration (its pushes will carry its id), or the current one ending (its demand
        // withdrawn): pushes already on their way for an iteration no longer running come back
        // (RELEASE) or are taken first. Until they have, this receiver gets nothing, neither
        // pushes nor answers to RECV, so a message given back is never overtaken by a later one.
        const starts = f.reqId !== 0 && delta > 0 && att.stream !== f.reqId;
        const ends = f.reqId !== 0 && delta < 0 && att.stream === f.reqId;
        if (starts || ends) {
          att.stream = starts ? f.reqId : 0;
          att.draining = 0;
          att.deferred.length = 0;
          for (const e of s.inflight.values()) {
            if (e.record !== rec || e.consumed) continue;
            if (e.blocking || (e.stream !== 0 && e.stream !== att.stream)) {
              e.blocking = true;
              att.draining++;
            }
          }
        }
      }
    }
    rec.core.addPrefetch(s.pid, delta);
  }

  deliverFromCore(
    rec: MailboxRecord,
    receiver: Receiver<KernelMessage>,
    request: PendingReceive | undefined,
    m: KernelMessage,
  ): void {
    const s = this.k.sessions.get(receiver.id);
    if (s !== undefined) this.deliver(rec, s, request, m);
    else {
      this.k.budget.finish(m);
      this.k.budget.letGoMapped(m);
    }
  }

  /**
   * Hand a message to a receiver. Every delivery is tracked: the kernel keeps
   * the message until the receiver says CONSUMED (and ACK in ack mode), so a
   * receiver that dies or gives it back never loses it.
   */
  private deliver(rec: MailboxRecord, s: Session, req: PendingReceive | undefined, m: KernelMessage): void {
    let ack: boolean;
    let reqId: number;
    if (req !== undefined) {
      req.timer?.clear();
      s.pendingReceives.delete(req.reqId);
      ack = req.ack;
      reqId = req.reqId;
    } else {
      // A push for the iteration whose demand it answers, named by that iteration's request id.
      const att = s.attached.get(rec);
      ack = att?.ack ?? false;
      reqId = att?.stream ?? 0;
    }
    let deliveryId = s.nextDelivery++;
    if (s.nextDelivery > 0xffffffff) s.nextDelivery = 1;
    while (s.inflight.has(deliveryId) || s.remoteDeliveries.has(deliveryId) || s.lends.has(deliveryId))
      deliveryId = s.nextDelivery++;
    s.inflight.set(deliveryId, {
      record: rec,
      message: m,
      ack,
      consumed: false,
      stream: req === undefined ? reqId : 0,
      recv: req === undefined ? 0 : reqId,
      blocking: false,
      pushed: req === undefined,
    });
    if (req === undefined) s.pushedBytes += pushCost(m);
    m.handed = true;
    if (m.completion !== undefined) {
      m.outAt ??= [];
      m.outAt.push({ session: s, deliveryId });
    }
    const flags = DeliverFlag.TRACKED | (ack ? DeliverFlag.ACK : 0);
    rec.counters.received++;
    rec.stats.wait.record(now() - m.queuedAt);
    s.received++;
    s.introduce(m.sender, m.senderName);
    const p = m.mapped;
    if (p !== undefined) {
      if (this.mayLend(s, p)) {
        // Lent in place: the receiver reads the sender's chunk and hands it back with UNMAP.
        this.k.maps.lend(s, deliveryId, p);
        const r = p.region;
        const ref = Buffer.allocUnsafe(12 + r.nameBytes.length);
        ref.writeUInt32LE(r.id, 0);
        ref.writeUInt32LE(p.chunk, 4);
        ref.writeUInt32LE(p.length, 8);
        r.nameBytes.copy(ref, 12);
        s.writer.frame(
          Op.DELIVER,
          flags | DeliverFlag.MAPPED,
          m.priority,
          m.codec,
          reqId,
          rec.id,
          2,
          deliveryId,
          m.sender,
          ref,
        );
      } else {
        // A receiver that cannot map (another uid, no addon, protocol 2, TLS, a proxy for
        // another node): the kernel copies the bytes out of the region into its frame, charged
        // to the budget as unread output like any delivery.
        s.writer.frame(
          Op.DELIVER,
          flags,
          m.priority,
          m.codec,
          reqId,
          rec.id,
          2,
          deliveryId,
          m.sender,
          p.view(),
        );
        p.region.check();
      }
      this.k.markDirty(s);
      return;
    }
    s.writer.frameFrom(
      Op.DELIVER,
      flags,
      m.priority,
      m.codec,
      reqId,
      rec.id,
      2,
      deliveryId,
      m.sender,
      m.bytes,
      m.offset,
      m.offset + m.size,
    );
    this.k.markDirty(s);
  }

  /** May `s` read `p` in place? Same host and protocol (canMap), and the region owner's uid. */
  private mayLend(s: Session, p: MappedPayload): boolean {
    return s.canMap && s.uid !== undefined && s.uid === p.region.owner.uid && !p.region.refusedBy.has(s);
  }

  /** UNMAP: lent payloads the receiver is done with; with REFUSE, ones it could not map (handed back). */
  onUnmap(s: Session, f: Frame): void {
    const n = f.bodyLength >>> 2;
    if ((f.flags & UnmapFlag.REFUSE) !== 0) {
      // It cannot open these regions: copies from them from now on, and these come back as copies.
      for (let i = 0; i < n; i++) this.k.maps.refused(s, f.u32(i * 4));
      return this.onDeliveryIds(s, f, true);
    }
    for (let i = 0; i < n; i++) this.k.maps.unlend(s, f.u32(i * 4));
  }

  /** A push left the receiver's prefetch (taken, or given back): below the bound, pushes resume. */
  private taken(s: Session, e: Inflight): void {
    if (!e.pushed) return;
    e.pushed = false;
    const before = s.pushedBytes;
    s.pushedBytes -= pushCost(e.message);
    if (before >= PUSH_BYTES_MAX && s.pushedBytes < PUSH_BYTES_MAX && !s.closed) this.k.unchoked(s);
  }

  onDeliveryIds(s: Session, f: Frame, release = f.op === Op.RELEASE): void {
    const n = f.bodyLength >>> 2;
    if (release) {
      // Given back in delivery order; requeued by accept order, so the order survives.
      const back: Inflight[] = [];
      for (let i = 0; i < n; i++) {
        const id = f.u32(i * 4);
        // A mapped delivery handed back is done with its view too.
        if (s.lends.size > 0) this.k.maps.unlend(s, id);
        const e = s.inflight.get(id);
        if (e === undefined) continue;
        s.inflight.delete(id);
        back.push(e);
      }
      // Back in the queue first, then the drain may end: the next receive must find them there.
      this.requeueAll(s, back);
      for (const e of back) {
        if (e.consumed) continue;
        this.settledPush(s, e);
        this.taken(s, e);
      }
      return;
    }
    for (let i = 0; i < n; i++) {
      const id = f.u32(i * 4);
      const e = s.inflight.get(id);
      if (e === undefined) continue;
      if (!e.consumed) {
        this.settledPush(s, e);
        this.taken(s, e);
        this.complete(e.message);
      }
      if (f.op === Op.ACK || !e.ack) {
        if (e.ack) e.record.counters.acked++;
        s.inflight.delete(id);
        this.k.budget.finish(e.message);
      } else {
        e.consumed = true;
      }
    }
  }

  /**
   * A delivery answered (taken or given back). If it was one the receiver is
   * waiting to get back (a push of an iteration that has ended, or the answer
   * to a receive the client abandoned), one fewer is outstanding; when none is,
   * deliveries to this receiver resume.
   */
  private settledPush(s: Session, e: Inflight): void {
    if (!e.blocking) return;
    e.blocking = false;
    const att = s.attached.get(e.record);
    if (att === undefined || att.draining === 0) return;
    if (--att.draining > 0 || e.record.closed) return;
    e.record.core.pumpNow();
    // Non-blocking receives that waited for the drain: answered now, with a message if one was there.
    for (const r of att.deferred.splice(0)) {
      if (e.record.core.cancelReceive(s.pid, r))
        this.failReceive(r, 'WOULD_BLOCK', `no message in ${e.record.name}`);
    }
  }

  /** A receiver took the message: a sender waiting on it (sync or rendezvous) is done. */
  private complete(m: KernelMessage): void {
    const c = m.completion;
    if (c === undefined) return;
    m.completion = undefined;
    m.outAt = undefined;
    // Other copies of a broadcast message no longer hold anyone up.
    this.answerSent(c);
  }

  /** Put a delivered but unconsumed (or unacknowledged) message back for another receiver. */
  private requeue(rec: MailboxRecord, m: KernelMessage, from: Session): void {
    const c = m.completion;
    if (rec.closed || m.dropOnReturn === true) {
      if (c !== undefined) {
        m.completion = undefined;
        this.answerError(c, 'MAILBOX_CLOSED', `${rec.name} was closed`);
      }
      this.k.budget.finish(m);
      return;
    }
    if (c !== undefined && c.expired !== undefined) {
      // Its sender gave up while this receiver held it: the send fails and the message goes.
      m.completion = undefined;
      this.answerError(c, c.expired.code, c.expired.text);
      this.k.budget.finish(m);
      return;
    }
    rec.counters.redelivered++;
    m.queuedAt = now();
    this.k.budget.compact(m);
    if (rec.options.capacity === 0) {
      if (c === undefined) {
        // Taken once already (its sender is done) but never acknowledged: with no queue at
        // capacity 0 it waits as a sender with no process behind it, first in line.
        const orphan: SendRequest = {
          message: m,
          session: undefined,
          reqId: 0,
          nonblock: false,
          record: rec,
          timer: undefined,
          expired: undefined,
        };
        rec.core.park(orphan, true);
        return;
      }
      // Not yet taken and its sender is gone: it was never accepted, so it goes with its sender.
      if (c.session === undefined || c.session.closed) {
        m.completion = undefined;
        this.k.budget.finish(m);
        return;
      }
      if (c.nonblock) {
        m.completion = undefined;
        this.k.budget.finish(m);
        this.answerError(c, 'WOULD_BLOCK', `the receiver of ${rec.name} gave the message back`);
        return;
      }
      // The same request waits again, first in line, with its timer still running.
      rec.core.park(c, true);
      return;
    }
    if (rec.core.requeue(m, from.pid)) return;
    // A broadcast copy whose receiver left while others stay: that copy is simply gone, unless a
    // synchronous sender still waits for someone to take the message.
    this.k.budget.finish(m);
    if (c !== undefined && m.pending === 0) this.refan(rec, m);
  }

  /**
   * Every copy of a synchronously sent broadcast message went with receivers
   * that left before taking it: it is offered again to the receivers attached
   * now (or waits in the backlog), and its sender keeps waiting, its timer running.
   */
  private refan(rec: MailboxRecord, m: KernelMessage): void {
    m.pending = 1;
    this.k.budget.retain(m);
    rec.core.sendForced(m);
  }

  /** Requeue entries handed back together; accept order puts them back in their original order. */
  requeueAll(s: Session, entries: { record: MailboxRecord; message: KernelMessage }[]): void {
    for (const e of entries) this.requeue(e.record, e.message, s);
  }

  onCancel(s: Session, reqId: number): void {
    const w = s.pendingSends.get(reqId);
    if (w !== undefined) {
      this.expire(w, 'ABORTED', 'send aborted');
      return;
    }
    const r = s.pendingReceives.get(reqId);
    if (r !== undefined) {
      if (r.record.core.cancelReceive(s.pid, r)) this.failReceive(r, 'ABORTED', 'receive aborted');
      return;
    }
    // Too late: the answer is on its way, and the client, which gave up, will hand it back. Until
    // it has, that receiver gets nothing else from the mailbox, so the message keeps its place.
    for (const e of s.inflight.values()) {
      if (e.recv === reqId && !e.consumed && !e.blocking) {
        const att = s.attached.get(e.record);
        if (att === undefined) return;
        e.blocking = true;
        att.draining++;
        return;
      }
    }
  }

  /** Answer a receive that has left the core's parked requests with an error. */
  failReceive(r: PendingReceive, code: IpcErrorCode, text: string): void {
    r.timer?.clear();
    r.session.pendingReceives.delete(r.reqId);
    r.session.sendError(r.reqId, code, text);
  }

  /** Broadcast copies a leaving receiver never got: gone, unless a synchronous sender still waits on the message. */
  dropCopies(rec: MailboxRecord, dropped: KernelMessage[]): void {
    for (const m of dropped) {
      this.k.budget.finish(m);
      if (m.completion !== undefined && m.pending === 0 && !rec.closed) this.refan(rec, m);
      else this.k.budget.letGoMapped(m);
    }
  }
}
