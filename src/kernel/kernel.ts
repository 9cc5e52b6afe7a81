import { chmodSync, chownSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { MailboxHooks, Receiver } from '../core/mailbox-core.js';
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
  MAX_HELLO_FRAME,
  MIN_PROTOCOL_VERSION,
  Op,
  PROTOCOL_VERSION,
  RecvFlag,
  SendFlag,
} from '../wire/protocol.js';
import { defaultSocketPath } from '../wire/socket-path.js';
import { handleCall } from './control.js';
import type { KernelMessage, PendingReceive, SendRequest } from './mailbox-record.js';
import { MailboxRecord } from './mailbox-record.js';
import { MemoryBudget } from './message-store.js';
import { peerCredentialsOf, peerCredentialsSupported } from './peer-credentials.js';
import type { SegmentRecord } from './segment-record.js';
import { type ExitReason, type Inflight, Session } from './session.js';
import { claimSocketPath } from './socket-path.js';
import { startTimer } from './timer.js';

/** Most budget bytes one sender holds as credit on one mailbox, and when it is topped up. */
const CREDIT_BYTES = 4 * 1024 * 1024;
const CREDIT_BYTES_LOW = 1024 * 1024;
/** Most unanswered operations (parked sends and receives) one session may have. */
const MAX_PENDING_PER_SESSION = 65536;
/** Names of the form the kernel assigns; no client may claim one. */
const ASSIGNED_NAME = /^proc-\d+$/;

export interface KernelOptions {
  /** Unix socket path. Default: see defaultSocketPath(). */
  socketPath?: string;
  /** Largest message payload in bytes. Default 16 MiB. */
  maxMessageSize?: number;
  /**
   * Bytes the kernel may hold for messages (queued, parked, in flight),
   * credit reservations and unread output before refusing sends with
   * KERNEL_FULL. Default 256 MiB.
   */
  memoryBudget?: number;
  /** Most send credits one process holds for one mailbox. Default 1024. */
  creditWindow?: number;
  /** How long a credit holder may take to answer REVOKE before its credits are voided (ms). Default 1000. */
  revokeTimeout?: number;
  /** How long a new connection may take to send HELLO (ms). Default 5000. */
  helloTimeout?: number;
  /** Most connections at once (with or without HELLO). Default 1024. */
  maxConnections?: number;
  /** Most connections that have not sent HELLO yet; beyond it the oldest is closed. Default 64. */
  maxHandshakes?: number;
  /**
   * A multi-user daemon: members of this group (name or gid) may connect
   * (socket 0660, directory 0750, both of that group). Rights are then held
   * by uid, read from each connection's peer credentials, so it needs the
   * native addon. Default: only the kernel's own user (socket 0600).
   */
  group?: string | number;
}

interface ResolvedKernelOptions {
  socketPath: string;
  maxMessageSize: number;
  memoryBudget: number;
  creditWindow: number;
  revokeTimeout: number;
  helloTimeout: number;
  maxConnections: number;
  maxHandshakes: number;
  group: number | undefined;
}

/** A group name or gid as a gid, from /etc/group. */
function resolveGroup(g: string | number | undefined): number | undefined {
  if (g === undefined) return undefined;
  if (typeof g === 'number') return positiveInt(g, 'group', 0);
  if (/^\d+$/.test(g)) return Number(g);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === g && gid !== undefined) return Number(gid);
  }
  throw new IpcError('INVALID_ARGUMENT', `no such group: ${g}`);
}

function positiveInt(v: number, name: string, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}`);
  return v;
}

function resolveKernelOptions(o: KernelOptions): ResolvedKernelOptions {
  const maxMessageSize = o.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
  if (!Number.isInteger(maxMessageSize) || maxMessageSize < 1 || maxMessageSize > 1024 * 1024 * 1024) {
    throw new RangeError('maxMessageSize must be an integer from 1 to 1 GiB');
  }
  const socketPath = o.socketPath ?? defaultSocketPath();
  if (typeof socketPath !== 'string' || socketPath.length === 0)
    throw new TypeError('socketPath must be a non-empty string');
  return {
    socketPath,
    maxMessageSize,
    memoryBudget: positiveInt(o.memoryBudget ?? 256 * 1024 * 1024, 'memoryBudget'),
    creditWindow: positiveInt(o.creditWindow ?? 1024, 'creditWindow', 0),
    revokeTimeout: positiveInt(o.revokeTimeout ?? 1000, 'revokeTimeout'),
    helloTimeout: positiveInt(o.helloTimeout ?? 5000, 'helloTimeout'),
    maxConnections: positiveInt(o.maxConnections ?? 1024, 'maxConnections'),
    maxHandshakes: positiveInt(o.maxHandshakes ?? 64, 'maxHandshakes'),
    group: resolveGroup(o.group),
  };
}

/**
 * The kernel: owns process names, mailboxes, links and the memory budget.
 * It listens on a Unix socket; each connection is a Session. Message frames
 * are handled here; control calls (JSON) in control.ts; credits in
 * credits.ts; what a kept message costs in message-store.ts.
 *
 * No frame can take the kernel down: a frame the handlers cannot process
 * costs its sender the connection (protocol error), never another client
 * anything.
 */
export class Kernel {
  readonly options: ResolvedKernelOptions;
  readonly sessions = new Map<number, Session>();
  readonly byName = new Map<string, Session>();
  readonly mailboxes = new Map<number, MailboxRecord>();
  readonly mailboxByName = new Map<string, MailboxRecord>();
  /** Shared-memory segments registered with the kernel, by name. */
  readonly segments = new Map<string, SegmentRecord>();
  /** Bytes queued in mailboxes (the core's count; also part of `budget.held`). */
  readonly ledger = { used: 0 };
  readonly budget: MemoryBudget;
  readonly startedAt = Date.now();
  private server: Server | undefined;
  private readonly dirty = new Set<Session>();
  private flushScheduled = false;
  private nextPid = 1;
  private nextMailboxId = 1;
  private nextSeq = 1;
  private closing: Promise<void> | undefined;
  private readonly maxFrame: number;
  private readonly connections = new Set<Session>();
  /** Connections that have not sent HELLO, oldest first. */
  private readonly handshaking = new Set<Session>();
  private readonly hooks: (rec: MailboxRecord) => MailboxHooks<KernelMessage>;

  constructor(options: KernelOptions = {}) {
    this.options = resolveKernelOptions(options);
    this.budget = new MemoryBudget(this.options.memoryBudget);
    this.maxFrame = HEADER_REST + Math.max(this.options.maxMessageSize + 8, MAX_CONTROL_BODY);
    this.hooks = (rec) => ({
      deliver: (receiver, request, message) =>
        this.deliverFromCore(rec, receiver, request as PendingReceive | undefined, message),
      admitted: (waiter) => this.admitted(waiter as SendRequest),
      writable: (receiver) => {
        const s = this.sessions.get(receiver.id);
        return s !== undefined && !s.choked && (s.attached.get(rec)?.draining ?? 0) === 0;
      },
      copied: (message, copies) => {
        message.pending += copies - 1;
      },
    });
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  async listen(): Promise<void> {
    const group = this.options.group;
    if (group !== undefined && peerCredentialsSupported() === false) {
      throw new IpcError(
        'NATIVE_UNAVAILABLE',
        'a group daemon tells its users apart by peer credentials, which need the native addon (npm rebuild ipcbox)',
      );
    }
    await claimSocketPath(this.options.socketPath, group);
    const server = createServer({ allowHalfOpen: false }, (socket) => this.accept(socket));
    this.server = server;
    // The socket is created with no permission for anyone else: there is no window between
    // bind and chmod in which another user could connect.
    const umask = process.umask(group === undefined ? 0o177 : 0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.options.socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    if (group !== undefined) chownSync(this.options.socketPath, process.getuid?.() ?? -1, group);
    chmodSync(this.options.socketPath, group === undefined ? 0o600 : 0o660);
  }

  /** Stop: every client is told and disconnected, the socket file removed. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const server = this.server;
      const sessions = [...this.connections];
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
    if (this.closing !== undefined || this.connections.size >= this.options.maxConnections) {
      socket.destroy();
      return;
    }
    socket.setNoDelay?.(true);
    let session!: Session;
    session = new Session(
      socket,
      MAX_HELLO_FRAME,
      (frame) => this.onFrame(session, frame),
      (err) => this.protocolError(session, err.message),
      (s) => this.markDirty(s),
      this.budget,
      (s) => this.unchoked(s),
    );
    session.credentials = peerCredentialsOf(socket);
    session.uid = session.credentials?.uid ?? process.getuid?.();
    session.gid = session.credentials?.gid ?? process.getgid?.();
    this.connections.add(session);
    this.handshaking.add(session);
    if (this.handshaking.size > this.options.maxHandshakes) {
      // Idle strangers must not lock everyone out: the oldest handshake goes first.
      const oldest = this.handshaking.values().next().value as Session;
      this.dropHandshake(oldest);
    }
    session.helloTimer = setTimeout(() => this.dropHandshake(session), this.options.helloTimeout);
    session.helloTimer.unref();
    // A large request SEND that cannot fit the budget is refused without its bytes ever being kept.
    session.decoder.admit = (h, length) =>
      !(h.op === Op.SEND && h.reqId !== 0 && !this.budget.fits(length) && session.ready);
    session.decoder.onSkipped = (h, length) => {
      if (session.closed) return;
      session.sendError(
        h.reqId,
        'KERNEL_FULL',
        `a send of ${length - HEADER_REST} bytes does not fit the kernel memory budget of ${this.options.memoryBudget} bytes`,
      );
    };
    socket.on('data', (chunk: Buffer) => {
      session.read(chunk);
      this.budget.relieve();
      this.flushDirty();
    });
    socket.on('error', () => {
      // 'close' follows; the session ends there.
    });
    socket.on('close', () => {
      this.connections.delete(session);
      this.handshaking.delete(session);
      this.endSession(session, 'lost');
      session.release();
      this.flushDirty();
    });
  }

  private dropHandshake(s: Session): void {
    if (!this.handshaking.delete(s)) return;
    s.closed = true;
    s.socket.destroy();
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

  /** A slow reader caught up: deliveries may flow to it again. */
  private unchoked(s: Session): void {
    for (const rec of s.attached.keys()) if (!rec.closed) rec.core.pumpNow();
    this.flushDirty();
  }

  protocolError(s: Session, message: string): void {
    if (s.closed) return;
    s.decoder.fail(message);
    s.sendError(0, 'PROTOCOL', message);
    s.flush();
    s.socket.end();
    this.endSession(s, 'protocol-error');
    s.closed = true;
    setTimeout(() => s.socket.destroy(), 1000).unref();
  }

  // ---------------------------------------------------------------- frames

  private onFrame(s: Session, f: Frame): void {
    if (s.closed) return;
    try {
      this.dispatch(s, f);
    } catch (e) {
      // A frame no handler anticipated: it costs its sender the connection, and nobody else anything.
      process.emitWarning(
        `ipcbox kernel: frame op ${f.op} from ${s.name || 'a new connection'}: ${String(e)}`,
      );
      this.protocolError(s, `frame op ${f.op} could not be processed`);
    }
  }

  private dispatch(s: Session, f: Frame): void {
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
      case Op.CREDIT_RETURN:
        return this.onCreditReturn(s, f);
      case Op.CALL:
        return this.onCall(s, f);
      case Op.REQUEUE:
        // Version 1 clients hand back only what looks untracked to them, and every delivery is
        // tracked now, so theirs never carry a message the kernel lacks: nothing to do.
        if (s.version === 1) return;
        return this.protocolError(s, 'REQUEUE is retired: hand deliveries back with RELEASE');
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
    if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
      return this.protocolError(
        s,
        `unsupported protocol version ${version}; this kernel speaks ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`,
      );
    }
    s.version = version;
    this.handshaking.delete(s);
    if (s.helloTimer !== undefined) clearTimeout(s.helloTimer);
    // The OS pid from SO_PEERCRED where the platform gives it; the client's word only otherwise.
    s.osPid = s.credentials?.pid ?? b.readUInt32LE(8);
    const inboxCap = b.readUInt32LE(12);
    let name = b.toString('utf8', 16);
    const pid = this.nextPid++;
    const refuse = (code: IpcErrorCode, text: string) => {
      s.sendError(f.reqId, code, text);
      s.flush();
      s.socket.end();
      s.closed = true;
    };
    if (name === '') name = `proc-${pid}`;
    else if (ASSIGNED_NAME.test(name)) {
      return refuse(
        'INVALID_ARGUMENT',
        `process names of the form proc-<n> are assigned by the kernel: ${name}`,
      );
    }
    try {
      validateName('process', name);
    } catch (e) {
      return refuse('INVALID_ARGUMENT', (e as Error).message);
    }
    if (this.byName.has(name)) return refuse('NAME_TAKEN', `process name already taken: ${name}`);
    if (inboxCap !== 0xffffffff && inboxCap > 0x7fffffff) {
      return refuse('INVALID_ARGUMENT', `inbox capacity ${inboxCap} is out of range`);
    }
    s.pid = pid;
    s.name = name;
    s.ready = true;
    s.decoder.maxFrame = this.maxFrame;
    this.sessions.set(pid, s);
    this.byName.set(name, s);
    const inbox = this.newRecord(
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
      s,
      s,
    );
    s.inbox = inbox;
    inbox.core.attach(pid);
    s.attached.set(inbox, { ack: false, stream: 0, draining: 0 });
    const body = Buffer.allocUnsafe(16 + Buffer.byteLength(name));
    body.writeUInt16LE(version, 0);
    body.writeUInt16LE(0, 2);
    body.writeUInt32LE(this.options.maxMessageSize, 4);
    body.writeUInt32LE(pid, 8);
    body.writeUInt32LE(inbox.id, 12);
    body.write(name, 16, 'utf8');
    s.writer.frame(Op.WELCOME, 0, 0, 0, f.reqId, 0, 0, 0, 0, body);
    this.markDirty(s);
  }

  private newRecord(
    name: string,
    kind: 'mailbox' | 'inbox',
    options: ConstructorParameters<typeof MailboxRecord>[3],
    owner: Session,
    ownerSession: Session | undefined,
  ): MailboxRecord {
    const rec = new MailboxRecord(
      this.nextMailboxId++,
      name,
      kind,
      options,
      owner,
      ownerSession,
      this.ledger,
      this.hooks,
      this.options.creditWindow,
      (self) => ({
        budget: this.budget,
        revokeTimeout: this.options.revokeTimeout,
        roundEnded: () => this.roundEnded(self),
      }),
    );
    this.mailboxes.set(rec.id, rec);
    return rec;
  }

  // ---------------------------------------------------------------- sending

  private onSend(s: Session, f: Frame): void {
    const reqId = f.reqId;
    if (reqId === 0) return this.onCreditedSend(s, f);
    const rec = this.mailboxes.get(f.target);
    const nonblock = (f.flags & SendFlag.NONBLOCK) !== 0;
    let off = 0;
    let timeout = -1;
    if ((f.flags & SendFlag.TIMED) !== 0) {
      if (f.bodyLength < 4) return s.sendError(reqId, 'PROTOCOL', 'SEND: TIMED without a timeout');
      timeout = f.u32(0);
      off = 4;
    }
    if (s.pendingSends.has(reqId)) {
      return this.protocolError(s, `SEND reuses request id ${reqId} of a send still pending`);
    }
    if (rec === undefined) return s.sendError(reqId, 'NO_SUCH_MAILBOX', `no such mailbox (id ${f.target})`);
    if (f.priority > MAX_PRIORITY)
      return s.sendError(reqId, 'INVALID_ARGUMENT', `priority ${f.priority} is out of range 0..31`);
    if (f.codec > 3) return s.sendError(reqId, 'INVALID_ARGUMENT', `unknown payload codec ${f.codec}`);
    const size = f.bodyLength - off;
    if (!rec.rights.may('send', s)) {
      return s.sendError(reqId, 'PERMISSION_DENIED', `${s.name} may not send to ${rec.name}`);
    }
    const refusal = this.sizeRefusal(rec, size);
    if (refusal !== undefined) return s.sendError(reqId, refusal[0], refusal[1]);
    if (!this.budget.fits(size + 128)) {
      return s.sendError(
        reqId,
        'KERNEL_FULL',
        `kernel memory budget of ${this.options.memoryBudget} bytes is exhausted`,
      );
    }
    if (s.pendingSends.size + s.pendingReceives.size >= MAX_PENDING_PER_SESSION) {
      return s.sendError(reqId, 'KERNEL_FULL', `${s.name} has ${MAX_PENDING_PER_SESSION} operations pending`);
    }
    const message = this.accept_(s, f, off, size);
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
        this.budget.finish(message);
        s.sendError(
          reqId,
          'WOULD_BLOCK',
          rec.options.capacity === 0 ? `no receiver is waiting on ${rec.name}` : `${rec.name} is full`,
        );
        return;
    }
    // Waiting (queued or parked) rather than on its way to a receiver: a small one gets its own buffer.
    if (message.pending > 0 && !message.handed) this.budget.compact(message);
  }

  /** A send within credit: no answer, no rights check (the credit was the right), never refused. */
  private onCreditedSend(s: Session, f: Frame): void {
    const rec = this.mailboxes.get(f.target);
    // A credited send can race with the mailbox's deletion (the sender is told by NOTICE), or
    // with the sender's own handle close; a mailbox it never had credit on is a violation.
    if (rec === undefined) return;
    if ((f.flags & (SendFlag.TIMED | SendFlag.SYNC | SendFlag.NONBLOCK)) !== 0) {
      return this.protocolError(s, 'a credited SEND (request id 0) takes no flags');
    }
    if (f.priority > MAX_PRIORITY)
      return this.protocolError(s, `priority ${f.priority} is out of range 0..31`);
    if (f.codec > 3) return this.protocolError(s, `unknown payload codec ${f.codec}`);
    const size = f.bodyLength;
    if (this.sizeRefusal(rec, size) !== undefined) {
      return this.protocolError(s, `credited SEND of ${size} bytes breaks ${rec.name}'s size rules`);
    }
    const how = rec.credits.spend(s, size);
    if (how === 'none') {
      if (rec.credits.barred.has(s) || !rec.credits.holders.has(s)) {
        // Its credit was dropped (handle closed, rights revoked and returned): only a client
        // that ignores the protocol sends on after returning its credit.
        return this.protocolError(s, `SEND without reply id and without credit for ${rec.name}`);
      }
      return this.protocolError(s, `SEND without reply id beyond the credit for ${rec.name}`);
    }
    const message = this.accept_(s, f, 0, size);
    s.sent++;
    rec.counters.sent++;
    if (how === 'credit') rec.core.send(message, true, true);
    else rec.core.sendForced(message);
    if (message.pending > 0 && !message.handed) this.budget.compact(message);
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

  /** The kernel keeps a message from here until its last copy is consumed, acknowledged or dropped. */
  private accept_(s: Session, f: Frame, off: number, size: number): KernelMessage {
    const m: KernelMessage = {
      priority: f.priority,
      sender: s.pid,
      senderName: s.name,
      size,
      codec: f.codec,
      seq: this.nextSeq++,
      bytes: f.buf,
      offset: f.start + off,
      store: f.chunk,
      pending: 1,
      handed: false,
      completion: undefined,
    };
    this.budget.retain(m);
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
  private answerError(req: SendRequest, code: IpcErrorCode, text: string): void {
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
      this.budget.finish(m);
      this.answerError(req, code, text);
      return;
    }
    if (m.completion !== req) return;
    const removed = rec.closed ? 0 : rec.core.withdraw(m);
    for (let i = 0; i < removed; i++) this.budget.finish(m);
    if (m.pending === 0) {
      m.completion = undefined;
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
  }

  /** A parked sender's message entered the mailbox (or, at capacity 0, reached a receiver). */
  private admitted(w: SendRequest): void {
    w.record.counters.sent++;
    w.record.deferred.delete(w);
    // A synchronous or rendezvous send is answered when the receiver takes the message.
    if (w.message.completion === undefined) this.answerSent(w);
  }

  /** A revocation round ended: non-blocking sends that waited for it and found no room fail now. */
  private roundEnded(rec: MailboxRecord): void {
    for (const w of [...rec.deferred]) {
      if (rec.core.cancelSend(w)) {
        if (w.message.completion === w) w.message.completion = undefined;
        this.budget.finish(w.message);
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
    if (rec.closed || s.closed || !rec.rights.may('send', s)) return;
    const room = this.options.memoryBudget / 2 - this.budget.used;
    rec.credits.grant(s, rec.creditWindow, rec.creditLowWater, CREDIT_BYTES, CREDIT_BYTES_LOW, room / 4);
  }

  /** Take back everything `s` holds on `rec` (handle closed, or `s` is gone). */
  dropCredits(rec: MailboxRecord, s: Session): void {
    rec.credits.drop(s);
  }

  private onCreditReturn(s: Session, f: Frame): void {
    const rec = this.mailboxes.get(f.target);
    if (rec === undefined) return;
    // Credited sends written before the return were processed first, so the kernel's count is what came back.
    rec.credits.returned(s, f.bodyLength >= 12 ? f.u32(8) : 0);
  }

  // ---------------------------------------------------------------- receiving

  private attachReceiver(s: Session, rec: MailboxRecord, reqId: number, ack: boolean): boolean {
    if (rec.core.isAttached(s.pid)) return true;
    if (rec.kind === 'inbox' || !rec.rights.may('receive', s)) {
      s.sendError(reqId, 'PERMISSION_DENIED', `${s.name} may not receive from ${rec.name}`);
      return false;
    }
    try {
      rec.core.attach(s.pid);
    } catch (e) {
      if (e instanceof ReceiverBusyError) {
        s.sendError(reqId, 'RECEIVER_BUSY', `${rec.name} is exclusive and already has a receiver`);
        return false;
      }
      throw e;
    }
    s.attached.set(rec, { ack, stream: reqId, draining: 0 });
    rec.openers.add(s);
    return true;
  }

  private onRecv(s: Session, f: Frame): void {
    if (f.reqId === 0) return this.protocolError(s, 'RECV needs a request id');
    if (s.pendingReceives.has(f.reqId)) {
      return this.protocolError(s, `RECV reuses request id ${f.reqId} of a receive still pending`);
    }
    const rec = this.mailboxes.get(f.target);
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
    const m = rec.core.receive(s.pid, req, !nonblock);
    if (m !== undefined) return this.deliver(rec, s, req, m);
    if (nonblock) return s.sendError(f.reqId, 'WOULD_BLOCK', `no message in ${rec.name}`);
    s.pendingReceives.set(f.reqId, req);
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
  private onDemand(s: Session, f: Frame): void {
    if (f.bodyLength < 4) return this.protocolError(s, 'DEMAND without a count');
    const rec = this.mailboxes.get(f.target);
    if (rec === undefined) {
      if (f.reqId !== 0) s.sendError(f.reqId, 'NO_SUCH_MAILBOX', `no such mailbox (id ${f.target})`);
      return;
    }
    const delta = f.i32(0);
    const ack = (f.flags & RecvFlag.ACK) !== 0;
    if (!rec.core.isAttached(s.pid)) {
      if (delta <= 0) return;
      if (f.reqId === 0 && s.version >= 2)
        return this.protocolError(s, 'DEMAND that attaches needs a request id');
      if (!this.attachReceiver(s, rec, f.reqId, ack)) return;
    } else {
      const att = s.attached.get(rec);
      if (att !== undefined) {
        att.ack = ack;
        if (f.reqId !== 0 && delta > 0 && att.stream !== f.reqId) {
          // A new iteration: its pushes carry its id. The last one's pushes still on their way
          // come back (RELEASE) or are taken first; until they have, the new one gets nothing,
          // so a message given back is never overtaken by a later one (FIFO across iterations).
          att.stream = f.reqId;
          att.draining = 0;
          for (const e of s.inflight.values()) {
            if (e.record === rec && !e.consumed && e.stream !== 0 && e.stream !== f.reqId) att.draining++;
          }
        }
      }
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
    else this.budget.finish(m);
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
    while (s.inflight.has(deliveryId)) deliveryId = s.nextDelivery++;
    s.inflight.set(deliveryId, {
      record: rec,
      message: m,
      ack,
      consumed: false,
      stream: req === undefined ? reqId : 0,
    });
    m.handed = true;
    if (m.completion !== undefined) {
      m.outAt ??= [];
      m.outAt.push({ session: s, deliveryId });
    }
    const flags = DeliverFlag.TRACKED | (ack ? DeliverFlag.ACK : 0);
    rec.counters.received++;
    s.received++;
    if (!s.knownPeers.has(m.sender)) {
      // Tell the receiver the sender's name once; DELIVER frames then carry only its pid.
      s.knownPeers.add(m.sender);
      s.sendNotice({ kind: 'peer', pid: m.sender, name: m.senderName });
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
    this.markDirty(s);
  }

  private onDeliveryIds(s: Session, f: Frame): void {
    const n = f.bodyLength >>> 2;
    if (f.op === Op.RELEASE) {
      // Given back in delivery order; requeued by accept order, so the order survives.
      const back: { record: MailboxRecord; message: KernelMessage }[] = [];
      for (let i = 0; i < n; i++) {
        const id = f.u32(i * 4);
        const e = s.inflight.get(id);
        if (e === undefined) continue;
        s.inflight.delete(id);
        if (!e.consumed) this.settledPush(s, e);
        back.push(e);
      }
      this.requeueAll(s, back);
      return;
    }
    for (let i = 0; i < n; i++) {
      const id = f.u32(i * 4);
      const e = s.inflight.get(id);
      if (e === undefined) continue;
      if (!e.consumed) {
        this.settledPush(s, e);
        this.complete(e.message);
      }
      if (f.op === Op.ACK || !e.ack) {
        s.inflight.delete(id);
        this.budget.finish(e.message);
      } else {
        e.consumed = true;
      }
    }
  }

  /**
   * A push answered (taken or given back). If it was made for an iteration
   * that has since been replaced, one fewer is outstanding; when none is, the
   * new iteration's pushes may start.
   */
  private settledPush(s: Session, e: Inflight): void {
    if (e.stream === 0) return;
    const att = s.attached.get(e.record);
    if (att === undefined || att.stream === e.stream || att.draining === 0) return;
    if (--att.draining === 0 && !e.record.closed) e.record.core.pumpNow();
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
    if (rec.closed) {
      if (c !== undefined) {
        m.completion = undefined;
        this.answerError(c, 'MAILBOX_CLOSED', `${rec.name} was closed`);
      }
      this.budget.finish(m);
      return;
    }
    if (c !== undefined && c.expired !== undefined) {
      // Its sender gave up while this receiver held it: the send fails and the message goes.
      m.completion = undefined;
      this.answerError(c, c.expired.code, c.expired.text);
      this.budget.finish(m);
      return;
    }
    rec.counters.redelivered++;
    this.budget.compact(m);
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
        this.budget.finish(m);
        return;
      }
      if (c.nonblock) {
        m.completion = undefined;
        this.budget.finish(m);
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
    this.budget.finish(m);
    if (c !== undefined && m.pending === 0) this.refan(rec, m);
  }

  /**
   * Every copy of a synchronously sent broadcast message went with receivers
   * that left before taking it: it is offered again to the receivers attached
   * now (or waits in the backlog), and its sender keeps waiting, its timer running.
   */
  private refan(rec: MailboxRecord, m: KernelMessage): void {
    m.pending = 1;
    this.budget.retain(m);
    rec.core.sendForced(m);
  }

  /** Requeue entries handed back together; accept order puts them back in their original order. */
  private requeueAll(s: Session, entries: { record: MailboxRecord; message: KernelMessage }[]): void {
    for (const e of entries) this.requeue(e.record, e.message, s);
  }

  private onCancel(s: Session, reqId: number): void {
    const w = s.pendingSends.get(reqId);
    if (w !== undefined) {
      this.expire(w, 'ABORTED', 'send aborted');
      return;
    }
    const r = s.pendingReceives.get(reqId);
    if (r?.record.core.cancelReceive(s.pid, r)) this.failReceive(r, 'ABORTED', 'receive aborted');
  }

  /** Answer a receive that has left the core's parked requests with an error. */
  private failReceive(r: PendingReceive, code: IpcErrorCode, text: string): void {
    r.timer?.clear();
    r.session.pendingReceives.delete(r.reqId);
    r.session.sendError(r.reqId, code, text);
  }

  private onCall(s: Session, f: Frame): void {
    if (f.reqId === 0) return this.protocolError(s, 'CALL needs a request id');
    if (f.bodyLength > MAX_CONTROL_BODY)
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL body too large');
    let call: { m?: unknown; a?: unknown };
    try {
      call = JSON.parse(f.body.toString('utf8'));
    } catch {
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL body is not valid JSON');
    }
    if (typeof call !== 'object' || call === null || typeof call.m !== 'string') {
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL body must be {"m": method, "a": args}');
    }
    const args = call.a ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL args must be an object');
    }
    try {
      const result = handleCall(this, s, call.m, args as Record<string, unknown>);
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
    const rec = this.newRecord(name, 'mailbox', resolved, s, resolved.owner === 'process' ? s : undefined);
    this.bindConnected(rec.rights, resolved.senders);
    this.bindConnected(rec.rights, resolved.receivers);
    this.mailboxByName.set(name, rec);
    rec.openers.add(s);
    return rec;
  }

  /** Bind each named grantee that is connected now to its uid (see core/rights.ts). */
  bindConnected(rights: MailboxRecord['rights'], who: 'everyone' | readonly string[]): void {
    if (who === 'everyone') return;
    for (const name of who) {
      const holder = this.byName.get(name);
      if (holder !== undefined) rights.bind(name, holder.uid);
    }
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
      const req = w as SendRequest;
      req.message.completion = undefined;
      this.budget.finish(req.message);
      this.answerError(req, code, text);
    }
    for (const w of [...rec.deferred]) this.answerError(w, code, text);
    for (const [, req] of requests) this.failReceive(req as PendingReceive, code, text);
    for (const m of dropped) {
      const c = m.completion;
      if (c !== undefined) {
        m.completion = undefined;
        this.answerError(c, code, text);
      }
      this.budget.finish(m);
    }
    const told = new Set<Session>([...rec.openers, ...rec.credits.holders.keys()]);
    for (const s of this.sessions.values()) if (s.attached.has(rec)) told.add(s);
    for (const s of told) {
      s.attached.delete(rec);
      if (s !== rec.ownerSession || rec.kind === 'mailbox') {
        s.sendNotice({ kind: 'mailbox-closed', mailbox: rec.name, id: rec.id, reason });
      }
    }
    rec.credits.clear();
    rec.openers.clear();
  }

  /** Detach a session's receive side from a mailbox and hand its unconsumed deliveries back. */
  detach(s: Session, rec: MailboxRecord, code: IpcErrorCode = 'MAILBOX_CLOSED'): void {
    const back: { record: MailboxRecord; message: KernelMessage }[] = [];
    for (const [id, e] of s.inflight) {
      if (e.record === rec && !e.consumed) {
        s.inflight.delete(id);
        back.push(e);
      }
    }
    const { requests, dropped } = rec.core.detach(s.pid);
    for (const req of requests)
      this.failReceive(req as PendingReceive, code, `receiver detached from ${rec.name}`);
    s.attached.delete(rec);
    this.requeueAll(s, back);
    this.dropCopies(rec, dropped);
  }

  /** Broadcast copies a leaving receiver never got: gone, unless a synchronous sender still waits on the message. */
  private dropCopies(rec: MailboxRecord, dropped: KernelMessage[]): void {
    for (const m of dropped) {
      this.budget.finish(m);
      if (m.completion !== undefined && m.pending === 0 && !rec.closed) this.refan(rec, m);
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
      if (rec.unlinkOnRemove && (rec.rights.uid ?? process.getuid?.()) === Segment.stat(rec.name).uid) {
        Segment.unlink(rec.name);
      }
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
    // Its unanswered sends were never accepted (parked) or wait on a receiver; parked ones go.
    for (const w of s.pendingSends.values()) {
      w.timer?.clear();
      w.timer = undefined;
      w.record.deferred.delete(w);
      if (w.record.core.cancelSend(w)) {
        if (w.message.completion === w) w.message.completion = undefined;
        this.budget.finish(w.message);
      }
    }
    s.pendingSends.clear();
    for (const r of s.pendingReceives.values()) {
      r.timer?.clear();
      r.record.core.cancelReceive(s.pid, r);
    }
    s.pendingReceives.clear();
    for (const rec of this.mailboxes.values()) rec.credits.drop(s);
    // Unacknowledged and unconsumed deliveries go back to their mailboxes: nothing accepted is lost.
    const entries = [...s.inflight.values()];
    s.inflight.clear();
    for (const rec of [...s.attached.keys()]) {
      if (rec.kind === 'mailbox' && !rec.closed) this.dropCopies(rec, rec.core.detach(s.pid).dropped);
    }
    this.requeueAll(s, entries);
    for (const rec of [...this.mailboxes.values()]) {
      rec.openers.delete(s);
      if (rec.ownerSession === s) {
        this.deleteMailbox(rec, rec.kind === 'inbox' ? `process ${s.name} exited` : `owner ${s.name} exited`);
      }
    }
    this.endSessionSegments(s);
    for (const w of s.watchers) w.sendNotice({ kind: 'exit', process: s.name, pid: s.pid, reason });
    for (const t of s.watching) t.watchers.delete(s);
    s.watchers.clear();
    s.watching.clear();
  }
}

/** Start a kernel listening on its socket (embedded in this process). */
export async function startKernel(options: KernelOptions = {}): Promise<Kernel> {
  const kernel = new Kernel(options);
  await kernel.listen();
  return kernel;
}
