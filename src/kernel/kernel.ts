import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Ledger, MailboxHooks, Receiver } from '../core/mailbox-core.js';
import { ReceiverBusyError } from '../core/mailbox-core.js';
import { type MailboxOptions, resolveMailboxOptions, validateName } from '../core/mailbox-options.js';
import { MAX_PRIORITY } from '../core/priority-queue.js';
import { IpcError, type IpcErrorCode } from '../errors.js';
import { Segment } from '../shm/segment.js';
import type { Frame } from '../wire/frame-codec.js';
import {
  DEFAULT_MAX_MESSAGE,
  DeliverFlag,
  HEADER_REST,
  MAGIC,
  MAX_CONTROL_BODY,
  Op,
  PROTOCOL_VERSION,
  RecvFlag,
  SendFlag,
} from '../wire/protocol.js';
import { handleCall } from './control.js';
import type { KernelMessage, MailboxRecord, PendingReceive, PendingSend } from './mailbox-record.js';
import { MailboxRecord as Record_ } from './mailbox-record.js';
import type { SegmentRecord } from './segment-record.js';
import { type ExitReason, Session } from './session.js';
import { defaultSocketPath } from '../wire/socket-path.js';
import { claimSocketPath } from './socket-path.js';

/** Most budget bytes one sender holds as credit on one mailbox, and when it is topped up. */
const CREDIT_BYTES = 4 * 1024 * 1024;
const CREDIT_BYTES_LOW = 1024 * 1024;

export interface KernelOptions {
  /** Unix socket path. Default: see defaultSocketPath(). */
  socketPath?: string;
  /** Largest message payload in bytes. Default 16 MiB. */
  maxMessageSize?: number;
  /** Bytes of queued messages the kernel holds before refusing sends with KERNEL_FULL. Default 256 MiB. */
  memoryBudget?: number;
  /** Most send credits one process holds for one mailbox. Default 1024. */
  creditWindow?: number;
}

interface ResolvedKernelOptions {
  socketPath: string;
  maxMessageSize: number;
  memoryBudget: number;
  creditWindow: number;
}

function resolveKernelOptions(o: KernelOptions): ResolvedKernelOptions {
  const maxMessageSize = o.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
  if (!Number.isInteger(maxMessageSize) || maxMessageSize < 1 || maxMessageSize > 1024 * 1024 * 1024) {
    throw new RangeError('maxMessageSize must be an integer from 1 to 1 GiB');
  }
  const memoryBudget = o.memoryBudget ?? 256 * 1024 * 1024;
  if (!Number.isInteger(memoryBudget) || memoryBudget < 1)
    throw new RangeError('memoryBudget must be a positive integer');
  const creditWindow = o.creditWindow ?? 1024;
  if (!Number.isInteger(creditWindow) || creditWindow < 0)
    throw new RangeError('creditWindow must be a non-negative integer');
  const socketPath = o.socketPath ?? defaultSocketPath();
  if (typeof socketPath !== 'string' || socketPath.length === 0)
    throw new TypeError('socketPath must be a non-empty string');
  return { socketPath, maxMessageSize, memoryBudget, creditWindow };
}

/**
 * The kernel: owns process names, mailboxes, links and the memory budget.
 * It listens on a Unix socket; each connection is a Session. Message frames
 * are handled here; control calls (JSON) in control.ts.
 */
export class Kernel {
  readonly options: ResolvedKernelOptions;
  readonly sessions = new Map<number, Session>();
  readonly byName = new Map<string, Session>();
  readonly mailboxes = new Map<number, MailboxRecord>();
  readonly mailboxByName = new Map<string, MailboxRecord>();
  /** Shared-memory segments registered with the kernel, by name. */
  readonly segments = new Map<string, SegmentRecord>();
  readonly ledger: Ledger = { used: 0 };
  /** Bytes of the budget promised to senders as credits (not yet queued). */
  reservedBytes = 0;
  /** Every process name by pid, kept after exit so late deliveries still name their sender. */
  readonly names = new Map<number, string>();
  readonly startedAt = Date.now();
  private server: Server | undefined;
  private readonly dirty = new Set<Session>();
  private flushScheduled = false;
  private nextPid = 1;
  private nextMailboxId = 1;
  private closing: Promise<void> | undefined;
  private readonly maxFrame: number;
  private readonly hooks: (rec: MailboxRecord) => MailboxHooks<KernelMessage>;

  constructor(options: KernelOptions = {}) {
    this.options = resolveKernelOptions(options);
    this.maxFrame = HEADER_REST + Math.max(this.options.maxMessageSize + 8, MAX_CONTROL_BODY);
    this.hooks = (rec) => ({
      deliver: (receiver, request, message) =>
        this.deliverFromCore(rec, receiver, request as PendingReceive | undefined, message),
      admitted: (waiter) => this.admitted(waiter as PendingSend),
    });
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  async listen(): Promise<void> {
    await claimSocketPath(this.options.socketPath);
    const server = createServer({ allowHalfOpen: false }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.options.socketPath, 0o600);
  }

  /** Stop: every client is told and disconnected, the socket file removed. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const server = this.server;
      const sessions = [...this.sessions.values()];
      for (const s of sessions) {
        s.sendNotice({ kind: 'kernel-shutdown' });
        s.flush();
        s.socket.end();
        // A client that does not close its side must not hold the shutdown up.
        setTimeout(() => s.socket.destroy(), 500).unref();
      }
      // Nothing more is written: ending one session must not tell the others
      // MAILBOX_CLOSED (for the mailboxes it owned); every client sees only
      // its connection close, so its pending operations reject KERNEL_UNAVAILABLE.
      for (const s of sessions) s.closed = true;
      for (const s of sessions) this.endSession(s, 'kernel-shutdown');
      if (server) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        try {
          unlinkSync(this.options.socketPath);
        } catch {
          // already gone (server.close removes it on some platforms)
        }
      }
    })();
    return this.closing;
  }

  // ---------------------------------------------------------------- connections

  private accept(socket: Socket): void {
    socket.setNoDelay?.(true);
    let session!: Session;
    session = new Session(
      socket,
      this.maxFrame,
      (frame) => this.onFrame(session, frame),
      (err) => this.protocolError(session, err.message),
      (s) => this.markDirty(s),
    );
    socket.on('data', (chunk: Buffer) => {
      session.decoder.push(chunk);
      this.flushDirty();
    });
    socket.on('error', () => {
      // 'close' follows; the session ends there.
    });
    socket.on('close', () => {
      this.endSession(session, 'lost');
      this.flushDirty();
    });
  }

  markDirty(s: Session): void {
    this.dirty.add(s);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushDirty());
    }
  }

  private flushDirty(): void {
    this.flushScheduled = false;
    for (const s of this.dirty) s.flush();
    this.dirty.clear();
  }

  protocolError(s: Session, message: string): void {
    if (s.closed) return;
    s.decoder.fail(message);
    s.sendError(0, 'PROTOCOL', message);
    s.flush();
    s.socket.end();
    this.endSession(s, 'protocol-error');
    setTimeout(() => s.socket.destroy(), 1000).unref();
  }

  // ---------------------------------------------------------------- frames

  private onFrame(s: Session, f: Frame): void {
    if (s.closed) return;
    if (!s.ready) {
      if (f.op !== Op.HELLO) return this.protocolError(s, `expected HELLO, got op ${f.op}`);
      return this.hello(s, f);
    }
    switch (f.op) {
      case Op.SEND:
        return this.onSend(s, f);
      case Op.RECV:
        return this.onRecv(s, f);
      case Op.DEMAND:
        return this.onDemand(s, f);
      case Op.CONSUMED:
      case Op.ACK:
      case Op.RELEASE:
        return this.onDeliveryIds(s, f);
      case Op.CANCEL:
        return this.onCancel(s, f.reqId);
      case Op.REQUEUE:
        return this.onRequeue(s, f);
      case Op.CREDIT_RETURN:
        return this.onCreditReturn(s, f);
      case Op.CALL:
        return this.onCall(s, f);
      case Op.BYE:
        s.socket.end();
        return this.endSession(s, 'normal');
      default:
        return this.protocolError(s, `unknown op ${f.op}`);
    }
  }

  private hello(s: Session, f: Frame): void {
    const b = f.body;
    if (b.length < 16 || b.readUInt32LE(0) !== MAGIC) return this.protocolError(s, 'bad HELLO (magic)');
    const version = b.readUInt16LE(4);
    if (version !== PROTOCOL_VERSION) {
      return this.protocolError(
        s,
        `unsupported protocol version ${version}; this kernel speaks ${PROTOCOL_VERSION}`,
      );
    }
    s.osPid = b.readUInt32LE(8);
    const inboxCap = b.readUInt32LE(12);
    let name = b.toString('utf8', 16);
    const pid = this.nextPid++;
    if (name === '') name = `proc-${pid}`;
    try {
      validateName('process', name);
    } catch (e) {
      s.sendError(f.reqId, 'INVALID_ARGUMENT', (e as Error).message);
      s.flush();
      s.socket.end();
      s.closed = true;
      return;
    }
    if (this.byName.has(name)) {
      s.sendError(f.reqId, 'NAME_TAKEN', `process name already taken: ${name}`);
      s.flush();
      s.socket.end();
      s.closed = true;
      return;
    }
    s.pid = pid;
    s.name = name;
    s.ready = true;
    this.sessions.set(pid, s);
    this.byName.set(name, s);
    this.names.set(pid, name);
    const inbox = new Record_(
      this.nextMailboxId++,
      `@${name}`,
      'inbox',
      {
        capacity: inboxCap === 0xffffffff ? Number.POSITIVE_INFINITY : inboxCap,
        delivery: 'exclusive',
        owner: 'process',
        maxMessageSize: this.options.maxMessageSize,
        fixedMessageSize: undefined,
        senders: 'everyone',
        receivers: [],
      },
      name,
      s,
      this.ledger,
      this.hooks,
      this.options.creditWindow,
    );
    this.mailboxes.set(inbox.id, inbox);
    s.inbox = inbox;
    inbox.core.attach(pid);
    s.attached.set(inbox, { ack: false });
    const body = Buffer.allocUnsafe(16 + Buffer.byteLength(name));
    body.writeUInt16LE(PROTOCOL_VERSION, 0);
    body.writeUInt16LE(0, 2);
    body.writeUInt32LE(this.options.maxMessageSize, 4);
    body.writeUInt32LE(pid, 8);
    body.writeUInt32LE(inbox.id, 12);
    body.write(name, 16, 'utf8');
    s.writer.frame(Op.WELCOME, 0, 0, 0, f.reqId, 0, 0, 0, 0, body);
    this.markDirty(s);
  }

  /** Reply with an error to a request, or (for frames that expected no reply) treat it as a protocol violation. */
  private refuse(s: Session, reqId: number, code: IpcErrorCode, message: string): void {
    if (reqId === 0) return this.protocolError(s, `${code}: ${message}`);
    s.sendError(reqId, code, message);
  }

  private onSend(s: Session, f: Frame): void {
    const rec = this.mailboxes.get(f.target);
    const reqId = f.reqId;
    const nonblock = (f.flags & SendFlag.NONBLOCK) !== 0;
    let off = 0;
    let timeout = -1;
    if ((f.flags & SendFlag.TIMED) !== 0) {
      if (f.bodyLength < 4) return this.protocolError(s, 'SEND: TIMED without timeout');
      timeout = f.u32(0);
      off = 4;
    }
    if (rec === undefined) {
      // A credited send can race with the mailbox's deletion; the sender was told by NOTICE.
      if (reqId === 0) return;
      return s.sendError(reqId, 'NO_SUCH_MAILBOX', `no such mailbox (id ${f.target})`);
    }
    if (f.priority > MAX_PRIORITY)
      return this.refuse(s, reqId, 'INVALID_ARGUMENT', `priority ${f.priority} is out of range 0..31`);
    if (f.codec > 3) return this.refuse(s, reqId, 'PROTOCOL', `unknown payload codec ${f.codec}`);
    const size = f.bodyLength - off;
    // A credit is a send right granted earlier, so credited sends skip the rights check.
    if (reqId !== 0 && !rec.rights.may('send', s.name)) {
      return this.refuse(s, reqId, 'PERMISSION_DENIED', `${s.name} may not send to ${rec.name}`);
    }
    if (size > rec.options.maxMessageSize) {
      return this.refuse(
        s,
        reqId,
        'MESSAGE_TOO_LARGE',
        `message of ${size} bytes exceeds ${rec.name}'s limit of ${rec.options.maxMessageSize}`,
      );
    }
    const fixed = rec.options.fixedMessageSize;
    if (fixed !== undefined && size !== fixed) {
      return this.refuse(
        s,
        reqId,
        'WRONG_MESSAGE_SIZE',
        `${rec.name} takes messages of exactly ${fixed} bytes, got ${size}`,
      );
    }
    const message: KernelMessage = {
      priority: f.priority,
      sender: s.pid,
      size,
      codec: f.codec,
      bytes: f.buf,
      offset: f.start + off,
      completion: undefined,
    };
    s.sent++;
    if (reqId === 0) {
      const c = rec.holders.get(s);
      if (c === undefined || c.slots <= 0 || c.bytes < size) {
        return this.protocolError(s, `SEND without reply id and without credit for ${rec.name}`);
      }
      c.slots--;
      c.bytes -= size;
      this.reservedBytes -= size;
      rec.counters.sent++;
      rec.core.send(message, true, true);
      // Top up before the sender runs dry, so a steady stream never stops for a round trip.
      if (c.slots <= rec.creditLowWater || c.bytes < CREDIT_BYTES_LOW) this.grantCredits(rec, s);
      return;
    }
    if (this.ledger.used + this.reservedBytes + size > this.options.memoryBudget) {
      return s.sendError(
        reqId,
        'KERNEL_FULL',
        `kernel memory budget of ${this.options.memoryBudget} bytes is exhausted`,
      );
    }
    const sync = (f.flags & SendFlag.SYNC) !== 0 || rec.options.capacity === 0;
    if (sync) message.completion = { session: s, reqId, nonblock, record: rec };
    const outcome = rec.core.send(message, !nonblock);
    switch (outcome) {
      case 'queued':
        rec.counters.sent++;
        if (!sync) {
          s.sendSent(reqId);
          this.grantCredits(rec, s);
        }
        return;
      case 'handed':
        rec.counters.sent++;
        return;
      case 'blocked': {
        const w = { message, session: s, reqId, nonblock: false, record: rec, timer: undefined };
        this.parkSend(w, timeout);
        return;
      }
      case 'would-block':
        if (rec.core.promised > 0 && rec.core.waitingSenders === 0 && rec.options.capacity > 0) {
          // Room exists but is promised to other senders as credits: take it back, then decide.
          const w = { message, session: s, reqId, nonblock: true, record: rec, timer: undefined };
          this.parkSend(w, -1);
          return;
        }
        return s.sendError(reqId, 'WOULD_BLOCK', `${rec.name} is full`);
    }
  }

  private parkSend(w: PendingSend & { session: Session }, timeout: number): void {
    const rec = w.record;
    const s = w.session;
    rec.core.park(w);
    rec.counters.blockedSends++;
    s.pendingSends.set(w.reqId, w);
    if (timeout >= 0) {
      w.timer = setTimeout(() => {
        if (rec.core.cancelSend(w))
          this.failSend(w, 'TIMEOUT', `send to ${rec.name} timed out after ${timeout} ms`);
      }, timeout);
    }
    this.revokeCredits(rec);
  }

  /** A parked sender's message entered the mailbox (or, at capacity 0, reached a receiver). */
  private admitted(w: PendingSend): void {
    if (w.timer) clearTimeout(w.timer);
    w.timer = undefined;
    w.record.counters.sent++;
    if (w.session === undefined) return;
    w.session.pendingSends.delete(w.reqId);
    if (w.message.completion === undefined) w.session.sendSent(w.reqId);
  }

  /** Ask every credit holder of `rec` to hand unspent credits back (a sender is waiting for room). */
  private revokeCredits(rec: MailboxRecord): void {
    if (rec.revoking > 0) return;
    for (const [holder, credit] of rec.holders) {
      if (credit.slots > 0) {
        holder.sendRevoke(rec.id);
        rec.revoking++;
      }
    }
    if (rec.revoking === 0) this.failDeferredNonblocking(rec);
  }

  private failDeferredNonblocking(rec: MailboxRecord): void {
    for (const s of this.sessions.values()) {
      for (const w of s.pendingSends.values()) {
        if (w.record === rec && w.nonblock && rec.core.cancelSend(w))
          this.failSend(w, 'WOULD_BLOCK', `${rec.name} is full`);
      }
    }
  }

  /**
   * Promise free slots, and bytes of the memory budget, to a sender so its next
   * sends need no round trip. Bytes make the budget hold even for credited
   * sends: all credit grants together stay within half of it.
   */
  private grantCredits(rec: MailboxRecord, s: Session): void {
    if (rec.revoking > 0 || rec.closed) return;
    const window = rec.creditWindow;
    if (window <= 0) return;
    const c = rec.holders.get(s) ?? { slots: 0, bytes: 0 };
    if (c.slots > rec.creditLowWater && c.bytes >= CREDIT_BYTES_LOW) return;
    const room = this.options.memoryBudget / 2 - this.ledger.used - this.reservedBytes;
    if (room <= 0) return;
    const bytes = Math.max(0, Math.min(CREDIT_BYTES - c.bytes, Math.floor(room / 4)));
    const slots = rec.core.reserve(window - c.slots);
    if (slots === 0 && bytes === 0) return;
    c.slots += slots;
    c.bytes += bytes;
    this.reservedBytes += bytes;
    rec.holders.set(s, c);
    s.sendCredit(rec.id, slots, bytes);
  }

  /** Take back everything `s` holds on `rec` (returned, revoked, or `s` is gone). */
  dropCredits(rec: MailboxRecord, s: Session): void {
    const c = rec.holders.get(s);
    if (c === undefined) return;
    rec.holders.delete(s);
    this.reservedBytes -= c.bytes;
    rec.core.unreserve(c.slots);
  }

  private onCreditReturn(s: Session, f: Frame): void {
    const rec = this.mailboxes.get(f.target);
    if (rec === undefined) return;
    // Credited sends written before the return were processed first, so the kernel's count is what came back.
    this.dropCredits(rec, s);
    if (rec.revoking > 0) rec.revoking--;
    if (rec.revoking === 0) this.failDeferredNonblocking(rec);
  }

  private attachReceiver(s: Session, rec: MailboxRecord, reqId: number, ack: boolean): boolean {
    if (rec.core.isAttached(s.pid)) return true;
    if (rec.kind === 'inbox' || !rec.rights.may('receive', s.name)) {
      this.refuse(s, reqId, 'PERMISSION_DENIED', `${s.name} may not receive from ${rec.name}`);
      return false;
    }
    try {
      rec.core.attach(s.pid);
    } catch (e) {
      if (e instanceof ReceiverBusyError) {
        this.refuse(s, reqId, 'RECEIVER_BUSY', `${rec.name} is exclusive and already has a receiver`);
        return false;
      }
      throw e;
    }
    s.attached.set(rec, { ack });
    rec.openers.add(s);
    return true;
  }

  private onRecv(s: Session, f: Frame): void {
    const rec = this.mailboxes.get(f.target);
    if (rec === undefined)
      return this.refuse(s, f.reqId, 'NO_SUCH_MAILBOX', `no such mailbox (id ${f.target})`);
    if (f.reqId === 0) return this.protocolError(s, 'RECV needs a request id');
    let off = 0;
    let timeout = -1;
    if ((f.flags & RecvFlag.TIMED) !== 0) {
      timeout = f.body.readUInt32LE(off);
      off += 4;
    }
    let from: number | undefined;
    if ((f.flags & RecvFlag.FROM) !== 0) {
      if (f.body.length < off + 4) return this.protocolError(s, 'RECV: FROM without a process id');
      from = f.body.readUInt32LE(off);
    }
    const ack = (f.flags & RecvFlag.ACK) !== 0;
    if (!this.attachReceiver(s, rec, f.reqId, ack)) return;
    const nonblock = (f.flags & RecvFlag.NONBLOCK) !== 0;
    const req: PendingReceive = { from, session: s, reqId: f.reqId, ack, record: rec, timer: undefined };
    const m = rec.core.receive(s.pid, req, !nonblock);
    if (m !== undefined) return this.deliver(rec, s, req, m);
    if (nonblock) return s.sendError(f.reqId, 'WOULD_BLOCK', `no message in ${rec.name}`);
    s.pendingReceives.set(f.reqId, req);
    if (timeout >= 0) {
      req.timer = setTimeout(() => {
        if (rec.core.cancelReceive(s.pid, req)) {
          this.failReceive(req, 'TIMEOUT', `receive from ${rec.name} timed out after ${timeout} ms`);
        }
      }, timeout);
    }
  }

  private onDemand(s: Session, f: Frame): void {
    const rec = this.mailboxes.get(f.target);
    if (rec === undefined) return;
    if (f.body.length < 4) return this.protocolError(s, 'DEMAND without a count');
    const delta = f.body.readInt32LE(0);
    const ack = (f.flags & RecvFlag.ACK) !== 0;
    if (!rec.core.isAttached(s.pid)) {
      if (!this.attachReceiver(s, rec, 0, ack)) return;
    } else {
      s.attached.set(rec, { ack });
    }
    rec.core.addPrefetch(s.pid, delta);
  }

  private deliverFromCore(
    rec: MailboxRecord,
    receiver: Receiver<KernelMessage>,
    request: PendingReceive | undefined,
    m: KernelMessage,
  ): void {
    const s = this.sessions.get(receiver.id);
    if (s !== undefined) this.deliver(rec, s, request, m);
  }

  private deliver(rec: MailboxRecord, s: Session, req: PendingReceive | undefined, m: KernelMessage): void {
    let ack: boolean;
    if (req !== undefined) {
      if (req.timer) clearTimeout(req.timer);
      s.pendingReceives.delete(req.reqId);
      ack = req.ack;
    } else {
      ack = s.attached.get(rec)?.ack ?? false;
    }
    const tracked = req !== undefined || ack || m.completion !== undefined;
    let deliveryId = 0;
    let flags = 0;
    if (tracked) {
      deliveryId = s.nextDelivery++;
      if (s.nextDelivery > 0xffffffff) s.nextDelivery = 1;
      s.inflight.set(deliveryId, { record: rec, message: m, ack, consumed: false });
      flags |= DeliverFlag.TRACKED;
      if (ack) flags |= DeliverFlag.ACK;
    }
    rec.counters.received++;
    s.received++;
    if (!s.knownPeers.has(m.sender)) {
      // Tell the receiver the sender's name once; DELIVER frames then carry only its pid.
      s.knownPeers.add(m.sender);
      s.sendNotice({ kind: 'peer', pid: m.sender, name: this.names.get(m.sender) ?? `pid-${m.sender}` });
    }
    s.writer.frameFrom(
      Op.DELIVER,
      flags,
      m.priority,
      m.codec,
      req?.reqId ?? 0,
      rec.id,
      2,
      deliveryId,
      m.sender,
      m.bytes,
      m.offset,
      m.offset + m.size,
    );
    this.markDirty(s);
  }

  private onDeliveryIds(s: Session, f: Frame): void {
    const b = f.body;
    for (let off = 0; off + 4 <= b.length; off += 4) {
      const id = b.readUInt32LE(off);
      const e = s.inflight.get(id);
      if (e === undefined) continue;
      if (f.op === Op.RELEASE) {
        s.inflight.delete(id);
        this.requeue(e.record, e.message, s);
        continue;
      }
      this.complete(e.message);
      if (f.op === Op.ACK || !e.ack) s.inflight.delete(id);
      else e.consumed = true;
    }
  }

  /** A receiver took the message: a sender waiting on it (sync or rendezvous) is done. */
  private complete(m: KernelMessage): void {
    const c = m.completion;
    if (c === undefined) return;
    m.completion = undefined;
    c.session.sendSent(c.reqId);
    if (!c.record.closed && c.record.options.capacity > 0) this.grantCredits(c.record, c.session);
  }

  /** Put a delivered but unconsumed (or unacknowledged) message back for another receiver. */
  private requeue(rec: MailboxRecord, m: KernelMessage, from: Session): void {
    const c = m.completion;
    if (rec.closed) {
      if (c !== undefined) {
        m.completion = undefined;
        c.session.sendError(c.reqId, 'MAILBOX_CLOSED', `${rec.name} was closed`);
      }
      return;
    }
    rec.counters.redelivered++;
    if (rec.options.capacity === 0) {
      if (c === undefined) {
        // Taken once already (its sender is done) but never acknowledged: with no queue at
        // capacity 0 it waits as a sender with no process behind it, first in line.
        const orphan: PendingSend = {
          message: m,
          session: undefined,
          reqId: 0,
          nonblock: false,
          record: rec,
          timer: undefined,
        };
        rec.core.park(orphan, true);
        return;
      }
      // Not yet taken and its sender is gone: it was never accepted, so it goes with its sender.
      if (c.session.closed) return;
      if (c.nonblock) {
        m.completion = undefined;
        c.session.sendError(c.reqId, 'WOULD_BLOCK', `the receiver of ${rec.name} gave the message back`);
        return;
      }
      const w: PendingSend = {
        message: m,
        session: c.session,
        reqId: c.reqId,
        nonblock: false,
        record: rec,
        timer: undefined,
      };
      c.session.pendingSends.set(c.reqId, w);
      rec.core.park(w, true);
      return;
    }
    rec.core.requeue(m, from.pid);
  }

  private onRequeue(s: Session, f: Frame): void {
    const rec = this.mailboxes.get(f.target);
    if (rec === undefined || f.body.length < 4) return;
    const sender = f.body.readUInt32LE(0);
    const m: KernelMessage = {
      priority: f.priority,
      sender,
      size: f.bodyLength - 4,
      codec: f.codec,
      bytes: f.buf,
      offset: f.start + 4,
      completion: undefined,
    };
    this.requeue(rec, m, s);
  }

  private onCancel(s: Session, reqId: number): void {
    const w = s.pendingSends.get(reqId);
    if (w !== undefined) {
      if (w.record.core.cancelSend(w)) this.failSend(w, 'ABORTED', 'send aborted');
      return;
    }
    const r = s.pendingReceives.get(reqId);
    if (r?.record.core.cancelReceive(s.pid, r)) this.failReceive(r, 'ABORTED', 'receive aborted');
  }

  /** Answer a send that has left the core's queue of senders with an error. */
  private failSend(w: PendingSend, code: IpcErrorCode, text: string): void {
    if (w.timer) clearTimeout(w.timer);
    if (w.session === undefined) return;
    w.session.pendingSends.delete(w.reqId);
    w.session.sendError(w.reqId, code, text);
  }

  /** Answer a receive that has left the core's parked requests with an error. */
  private failReceive(r: PendingReceive, code: IpcErrorCode, text: string): void {
    if (r.timer) clearTimeout(r.timer);
    r.session.pendingReceives.delete(r.reqId);
    r.session.sendError(r.reqId, code, text);
  }

  private onCall(s: Session, f: Frame): void {
    if (f.body.length > MAX_CONTROL_BODY) return this.protocolError(s, 'CALL body too large');
    let call: { m?: unknown; a?: unknown };
    try {
      call = JSON.parse(f.body.toString('utf8'));
    } catch {
      return this.protocolError(s, 'CALL body is not valid JSON');
    }
    if (typeof call !== 'object' || call === null || typeof call.m !== 'string') {
      return this.protocolError(s, 'CALL body must be {"m": method, "a": args}');
    }
    try {
      const result = handleCall(this, s, call.m, (call.a ?? {}) as Record<string, unknown>);
      s.sendResult(f.reqId, result);
    } catch (e) {
      if (e instanceof IpcError) s.sendError(f.reqId, e.code, e.message);
      else if (e instanceof TypeError || e instanceof RangeError)
        s.sendError(f.reqId, 'INVALID_ARGUMENT', e.message);
      else throw e;
    }
  }

  // ---------------------------------------------------------------- mailboxes

  createMailbox(s: Session, name: string, options: MailboxOptions): MailboxRecord {
    validateName('mailbox', name);
    if (this.mailboxByName.has(name)) throw new IpcError('MAILBOX_EXISTS', `mailbox already exists: ${name}`);
    const resolved = resolveMailboxOptions(options, this.options.maxMessageSize);
    const rec = new Record_(
      this.nextMailboxId++,
      name,
      'mailbox',
      resolved,
      s.name,
      resolved.owner === 'process' ? s : undefined,
      this.ledger,
      this.hooks,
      this.options.creditWindow,
    );
    this.mailboxes.set(rec.id, rec);
    this.mailboxByName.set(name, rec);
    rec.openers.add(s);
    return rec;
  }

  /** Delete a mailbox: pending sends and receives fail with MAILBOX_CLOSED; everyone attached is told. */
  deleteMailbox(rec: MailboxRecord, reason: string): void {
    if (rec.closed) return;
    rec.closed = true;
    this.mailboxes.delete(rec.id);
    if (rec.kind === 'mailbox') this.mailboxByName.delete(rec.name);
    const { senders, requests, dropped } = rec.core.close();
    const code: IpcErrorCode = 'MAILBOX_CLOSED';
    const text = `${rec.name} was closed: ${reason}`;
    for (const w of senders) {
      w.message.completion = undefined;
      this.failSend(w as PendingSend, code, text);
    }
    for (const [, req] of requests) this.failReceive(req as PendingReceive, code, text);
    for (const m of dropped) {
      const c = m.completion;
      if (c !== undefined) {
        m.completion = undefined;
        c.session.sendError(c.reqId, code, text);
      }
    }
    const told = new Set<Session>([...rec.openers, ...rec.holders.keys()]);
    for (const s of this.sessions.values()) if (s.attached.has(rec)) told.add(s);
    for (const s of told) {
      s.attached.delete(rec);
      if (s !== rec.ownerSession || rec.kind === 'mailbox') {
        s.sendNotice({ kind: 'mailbox-closed', mailbox: rec.name, id: rec.id, reason });
      }
    }
    for (const c of rec.holders.values()) this.reservedBytes -= c.bytes;
    rec.holders.clear();
    rec.openers.clear();
  }

  /** Detach a session's receive side from a mailbox and hand its unconsumed deliveries back. */
  detach(s: Session, rec: MailboxRecord, code: IpcErrorCode = 'MAILBOX_CLOSED'): void {
    const returned = [...s.inflight.entries()].filter(([, e]) => e.record === rec && !e.consumed);
    for (const [id] of returned) s.inflight.delete(id);
    this.requeueAll(
      s,
      returned.map(([, e]) => e),
    );
    const { requests } = rec.core.detach(s.pid);
    for (const req of requests)
      this.failReceive(req as PendingReceive, code, `receiver detached from ${rec.name}`);
    s.attached.delete(rec);
  }

  /** Requeue in reverse delivery order so the messages keep their original order at the front. */
  private requeueAll(s: Session, entries: { record: MailboxRecord; message: KernelMessage }[]): void {
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i]!;
      this.requeue(e.record, e.message, s);
    }
  }

  // ---------------------------------------------------------------- segments

  /**
   * Remove a registered segment: unlink its POSIX name (attached mappings stay
   * valid until unmapped, as with shm_unlink) and tell every attached process.
   */
  removeSegment(rec: SegmentRecord, reason: string): void {
    if (this.segments.get(rec.name) !== rec) return;
    this.segments.delete(rec.name);
    try {
      Segment.unlink(rec.name);
    } catch (e) {
      // Already unlinked by a process, or no native addon here: the name is gone from the registry either way.
      if (!(e instanceof IpcError)) throw e;
    }
    for (const s of rec.attached.keys()) s.sendNotice({ kind: 'segment-removed', name: rec.name, reason });
    rec.attached.clear();
  }

  private endSessionSegments(s: Session): void {
    for (const rec of [...this.segments.values()]) {
      const role = rec.roleOf(s);
      if (role !== undefined) {
        rec.attached.delete(s);
        for (const other of rec.attached.keys()) {
          other.sendNotice({
            kind: 'segment-peer-exit',
            name: rec.name,
            process: s.name,
            pid: s.pid,
            osPid: s.osPid,
            role,
          });
        }
      }
      if (rec.ownerSession === s) this.removeSegment(rec, `owner ${s.name} exited`);
    }
  }

  // ---------------------------------------------------------------- session end

  endSession(s: Session, reason: ExitReason): void {
    if (s.closed && !s.ready) return;
    const wasReady = s.ready;
    s.ready = false;
    s.closed = true;
    if (!wasReady) return;
    this.sessions.delete(s.pid);
    this.byName.delete(s.name);
    for (const w of s.pendingSends.values()) {
      if (w.timer) clearTimeout(w.timer);
      w.record.core.cancelSend(w);
    }
    s.pendingSends.clear();
    for (const r of s.pendingReceives.values()) {
      if (r.timer) clearTimeout(r.timer);
      r.record.core.cancelReceive(s.pid, r);
    }
    s.pendingReceives.clear();
    // Unacknowledged and unconsumed deliveries go back to their mailboxes: nothing accepted is lost.
    const entries = [...s.inflight.values()];
    s.inflight.clear();
    for (const rec of this.mailboxes.values()) this.dropCredits(rec, s);
    for (const rec of [...s.attached.keys()]) {
      if (rec.kind === 'mailbox' && !rec.closed) rec.core.detach(s.pid);
    }
    this.requeueAll(s, entries);
    for (const rec of [...this.mailboxes.values()]) {
      rec.openers.delete(s);
      if (rec.ownerSession === s) {
        this.deleteMailbox(rec, rec.kind === 'inbox' ? `process ${s.name} exited` : `owner ${s.name} exited`);
      } else if (rec.revoking > 0) {
        this.recountRevocations(rec);
      }
    }
    this.endSessionSegments(s);
    for (const w of s.watchers) w.sendNotice({ kind: 'exit', process: s.name, pid: s.pid, reason });
    for (const t of s.watching) t.watchers.delete(s);
    s.watchers.clear();
    s.watching.clear();
  }

  /** A holder died without answering REVOKE: recount, and settle deferred non-blocking sends. */
  private recountRevocations(rec: MailboxRecord): void {
    let outstanding = 0;
    for (const c of rec.holders.values()) if (c.slots > 0) outstanding++;
    rec.revoking = Math.min(rec.revoking, outstanding);
    if (rec.revoking === 0) this.failDeferredNonblocking(rec);
  }
}

/** Start a kernel listening on its socket (embedded in this process). */
export async function startKernel(options: KernelOptions = {}): Promise<Kernel> {
  const kernel = new Kernel(options);
  await kernel.listen();
  return kernel;
}
