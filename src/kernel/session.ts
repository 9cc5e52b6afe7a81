import type { Duplex } from 'node:stream';
import type { IpcErrorCode } from '../errors.js';
import { errorCodeToWire } from '../wire/error-codes.js';
import { FrameDecoder, FrameWriter, writeParts } from '../wire/frame-codec.js';
import { Op, PEER_NAMES } from '../wire/protocol.js';
import type { KernelMessage, MailboxRecord, PendingReceive, SendRequest } from './mailbox-record.js';
import type { MappedPayload } from './map-regions.js';
import type { MemoryBudget } from './message-store.js';

/** A message handed to this session that the kernel keeps until it is consumed (and acknowledged). */
export interface Inflight {
  readonly record: MailboxRecord;
  readonly message: KernelMessage;
  readonly ack: boolean;
  consumed: boolean;
  /** The iteration (DEMAND request id) a push answered; 0 for the answer to a RECV. */
  readonly stream: number;
  /** The RECV this answered (0 for a push). */
  readonly recv: number;
  /**
   * Counted in its attachment's `draining`: the receiver is expected to hand
   * it back (a push of an ended iteration, an abandoned receive's answer), and
   * gets nothing else from the mailbox until it has.
   */
  blocking: boolean;
  /** A prefetch push (not the answer to a RECV): counted in `Session.pushedBytes` until taken. */
  pushed: boolean;
}

/**
 * Most payload bytes pushed (prefetched) to one receiver and not yet taken by its application.
 * Prefetch is counted in messages by the client; without a byte bound a receiver asking for 512
 * messages of 1 MiB would have the kernel hold 512 MiB for it, and every sender would get
 * KERNEL_FULL. Past it, pushes wait (the messages stay queued) until the application catches up.
 */
export const PUSH_BYTES_MAX = 8 * 1024 * 1024;

/** How a session receives from one mailbox. */
export interface Attachment {
  /** Ack mode of its pushes. */
  ack: boolean;
  /** Request id of the iteration that pushes answer now (0: none yet). */
  stream: number;
  /** Pushes made for an earlier iteration not yet taken or given back; no delivery while any is. */
  draining: number;
  /** Non-blocking receives parked until the drain ends (answered WOULD_BLOCK then if still empty-handed). */
  deferred: PendingReceive[];
}

export type ExitReason = 'normal' | 'lost' | 'protocol-error' | 'kernel-shutdown';

/** Sender names one session is told before the kernel starts over (see wire PEER_NAMES). */
const KNOWN_PEERS = PEER_NAMES / 2;

/** Unread bytes queued to one peer above which no more deliveries are pushed to it (it is slow to read). */
const CHOKE_BYTES = 256 * 1024;
/** Unread bytes above which the kernel stops reading the peer's requests until it reads its answers. */
const PAUSE_BYTES = 4 * 1024 * 1024;

/** The OS identity of the peer process (SO_PEERCRED), when the platform gives it. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * One connected process. Holds its socket, its outgoing frame buffer and
 * everything the kernel must undo when it goes: pending sends and receives,
 * unconsumed deliveries, credits, attachments, monitors.
 *
 * Output is flow-controlled: when the peer stops reading, its unread bytes
 * are charged to the memory budget (`backlog`), deliveries stop at
 * CHOKE_BYTES (messages wait in their mailboxes, already counted), and the
 * kernel stops reading the peer's frames at PAUSE_BYTES, so a client that
 * never reads cannot make the kernel buffer without bound.
 */
export class Session {
  pid = 0;
  name = '';
  osPid = 0;
  /** Set after HELLO/WELCOME. */
  ready = false;
  /** The protocol version the client spoke in HELLO. */
  version = 0;
  closed = false;
  inbox: MailboxRecord | undefined;
  credentials: PeerCredentials | undefined;
  /** Its CALLs about names unknown here that wait for the cluster's answer (Kernel.onCall). */
  confirming = 0;
  /** A connection on the TLS listener that has not shown the token yet (only AUTH is accepted). */
  needsToken = false;
  /** Set on a proxy session: the node of the remote process it serves (kernel/proxy-socket.ts). */
  remoteNode: string | undefined;
  /** The peer's user id from SO_PEERCRED; without the addon, the kernel's own (only it can open a 0600 socket). */
  uid: number | undefined;
  gid: number | undefined;
  readonly writer = new FrameWriter();
  readonly decoder: FrameDecoder;
  /** Request SENDs not yet answered, by request id. */
  readonly pendingSends = new Map<number, SendRequest>();
  readonly pendingReceives = new Map<number, PendingReceive>();
  readonly inflight = new Map<number, Inflight>();
  /**
   * Mailboxes this session receives from, with ack mode for prefetch
   * deliveries and the request id of the iteration their pushes answer.
   */
  readonly attached = new Map<MailboxRecord, Attachment>();
  readonly watchers = new Set<Session>();
  readonly watching = new Set<Session>();
  /** Where this process listens for one-hop links (kernel/link-broker.ts), if it does. */
  linkAddress: string | undefined;
  /** Processes the kernel gave a link to this one, and those it gave this one a link to. */
  readonly linksTo = new Set<Session>();
  readonly linksFrom = new Set<Session>();
  nextDelivery = 1;
  /**
   * Deliveries from mailboxes on other nodes, by the id this session knows them by (the value is
   * remote-routes.ts's record). Local and remote deliveries share one id space.
   */
  readonly remoteDeliveries = new Map<number, unknown>();
  /**
   * Map-region chunks lent to this session by MAPPED deliveries, by delivery id, until it
   * hands them back (UNMAP, RELEASE) or ends (map-regions.ts). Delivery ids in use here are
   * not given out again.
   */
  readonly lends = new Map<number, MappedPayload>();
  /** It said in HELLO it reads MAPPED deliveries (protocol 3, same host). */
  canMap = false;
  /** What went over this process's one-hop links, as it reports it (`link.counts`; status only). */
  linkCounts: { sent: number; received: number; waiting: number } | undefined;
  /** Sender pids whose names this session has been told (NOTICE peer). */
  readonly knownPeers = new Set<number>();
  readonly connectedAt = Date.now();
  sent = 0;
  received = 0;
  /** Too many unread bytes queued to the peer: the core skips it as a receiver. */
  choked = false;
  /** Payload bytes of prefetch pushes its application has not taken yet (see PUSH_BYTES_MAX). */
  pushedBytes = 0;
  private paused = false;
  /** Unread bytes of this session counted in the budget's backlog. */
  private counted = 0;
  /** Bytes of its partly read frame counted in the budget's incoming. */
  private arriving = 0;
  helloTimer: NodeJS.Timeout | undefined;

  constructor(
    /** A Unix socket connection, or a channel from another node (kernel/proxy-socket.ts). */
    readonly socket: Duplex,
    maxFrame: number,
    onFrame: ConstructorParameters<typeof FrameDecoder>[1],
    onProtocolError: ConstructorParameters<typeof FrameDecoder>[2],
    private readonly markDirty: (s: Session) => void,
    private readonly budget: MemoryBudget,
    /** The peer read enough: deliveries may flow to it again. */
    private readonly onUnchoke: (s: Session) => void,
  ) {
    this.decoder = new FrameDecoder(maxFrame, onFrame, onProtocolError);
    socket.on('drain', () => this.drained());
  }

  sendError(reqId: number, code: IpcErrorCode, message: string): void {
    if (this.closed) return;
    this.writer.textFrame(Op.ERROR, reqId, 1, errorCodeToWire(code), 0, message);
    this.markDirty(this);
  }

  sendResult(reqId: number, value: unknown): void {
    if (this.closed) return;
    this.writer.textFrame(Op.RESULT, reqId, 0, 0, 0, JSON.stringify(value ?? null));
    this.markDirty(this);
  }

  sendNotice(notice: Record<string, unknown>): void {
    if (this.closed) return;
    this.writer.textFrame(Op.NOTICE, 0, 0, 0, 0, JSON.stringify(notice));
    this.markDirty(this);
  }

  /**
   * Tell the peer the name behind a sender pid before the first frame that
   * carries the pid; DELIVER frames then carry only the pid. Bounded: past the
   * cap the kernel forgets and names senders again (the client keeps twice as many).
   */
  introduce(pid: number, name: string): void {
    if (this.knownPeers.has(pid)) return;
    if (this.knownPeers.size >= KNOWN_PEERS) this.knownPeers.clear();
    this.knownPeers.add(pid);
    this.sendNotice({ kind: 'peer', pid, name });
  }

  /** Bytes written for the peer that it has not read yet: buffered here, or queued on the socket. */
  get unreadOutput(): number {
    return this.writer.pending + this.socket.writableLength;
  }

  sendSent(reqId: number): void {
    if (this.closed) return;
    this.writer.frame(Op.SENT, 0, 0, 0, reqId, 0, 0, 0, 0, undefined);
    this.markDirty(this);
  }

  sendCredit(mailboxId: number, slots: number, bytes: number): void {
    if (this.closed) return;
    this.writer.frame(Op.CREDIT, 0, 0, 0, 0, mailboxId, 2, slots, bytes, undefined);
    this.markDirty(this);
  }

  sendRevoke(mailboxId: number, epoch: number): void {
    if (this.closed) return;
    this.writer.frame(Op.REVOKE, 0, 0, 0, 0, mailboxId, 1, epoch, 0, undefined);
    this.markDirty(this);
  }

  sendWithdraw(deliveryId: number): void {
    if (this.closed) return;
    this.writer.frame(Op.WITHDRAW, 0, 0, 0, 0, 0, 1, deliveryId, 0, undefined);
    this.markDirty(this);
  }

  /** Write buffered frames to the socket in one (gathered) write. */
  flush(): void {
    const parts = this.writer.takeParts();
    if (parts === undefined || this.closed || this.socket.destroyed) return;
    writeParts(this.socket, parts);
    this.account();
  }

  /** Feed bytes read from the socket to the decoder, counting what it holds of a frame not yet whole. */
  read(chunk: Buffer): void {
    this.decoder.push(chunk);
    const now = this.decoder.buffered;
    this.budget.incoming += now - this.arriving;
    this.arriving = now;
  }

  /** Stop counting this session's unread and partly read bytes (it is gone). */
  release(): void {
    this.budget.backlog -= this.counted;
    this.counted = 0;
    this.budget.incoming -= this.arriving;
    this.arriving = 0;
    if (this.helloTimer !== undefined) clearTimeout(this.helloTimer);
    this.writer.discard();
    this.decoder.close();
  }

  /**
   * Let the frame buffers go (`release` does it for good once the socket is closed): a closed
   * session can stay referred to for a while (by a name claim or lookup awaiting NATS, by the grace
   * timer that destroys its socket), and under connection churn thousands of them must not each keep
   * a chunk.
   */
  dropBuffers(): void {
    this.writer.discard();
    this.decoder.discard();
  }

  private account(): void {
    const unread = this.socket.writableLength;
    this.budget.backlog += unread - this.counted;
    this.counted = unread;
    if (unread > CHOKE_BYTES) this.choked = true;
    if (unread > PAUSE_BYTES && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private drained(): void {
    this.budget.backlog -= this.counted;
    this.counted = this.socket.writableLength;
    this.budget.backlog += this.counted;
    if (this.paused && !this.closed) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.choked) {
      this.choked = false;
      if (!this.closed) this.onUnchoke(this);
    }
  }
}
