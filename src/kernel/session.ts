import type { Socket } from 'node:net';
import type { IpcErrorCode } from '../errors.js';
import { errorCodeToWire } from '../wire/error-codes.js';
import { FrameDecoder, FrameWriter, writeParts } from '../wire/frame-codec.js';
import { Op } from '../wire/protocol.js';
import type { KernelMessage, MailboxRecord, PendingReceive, PendingSend } from './mailbox-record.js';

/** A message handed to this session that the kernel keeps until it is consumed (and acknowledged). */
export interface Inflight {
  readonly record: MailboxRecord;
  readonly message: KernelMessage;
  readonly ack: boolean;
  consumed: boolean;
}

export type ExitReason = 'normal' | 'lost' | 'protocol-error' | 'kernel-shutdown';

/**
 * One connected process. Holds its socket, its outgoing frame buffer and
 * everything the kernel must undo when it goes: parked sends and receives,
 * unconsumed deliveries, credits, attachments, monitors.
 */
export class Session {
  pid = 0;
  name = '';
  osPid = 0;
  /** Set after HELLO/WELCOME. */
  ready = false;
  closed = false;
  inbox: MailboxRecord | undefined;
  readonly writer = new FrameWriter();
  readonly decoder: FrameDecoder;
  readonly pendingSends = new Map<number, PendingSend>();
  readonly pendingReceives = new Map<number, PendingReceive>();
  readonly inflight = new Map<number, Inflight>();
  /** Mailboxes this session receives from, with ack mode for prefetch deliveries. */
  readonly attached = new Map<MailboxRecord, { ack: boolean }>();
  readonly watchers = new Set<Session>();
  readonly watching = new Set<Session>();
  nextDelivery = 1;
  /** Sender pids whose names this session has been told (NOTICE peer). */
  readonly knownPeers = new Set<number>();
  readonly connectedAt = Date.now();
  sent = 0;
  received = 0;

  constructor(
    readonly socket: Socket,
    maxFrame: number,
    onFrame: ConstructorParameters<typeof FrameDecoder>[1],
    onProtocolError: ConstructorParameters<typeof FrameDecoder>[2],
    private readonly markDirty: (s: Session) => void,
  ) {
    this.decoder = new FrameDecoder(maxFrame, onFrame, onProtocolError);
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

  sendRevoke(mailboxId: number): void {
    if (this.closed) return;
    this.writer.frame(Op.REVOKE, 0, 0, 0, 0, mailboxId, 0, 0, 0, undefined);
    this.markDirty(this);
  }

  /** Write buffered frames to the socket in one (gathered) write. */
  flush(): void {
    const parts = this.writer.takeParts();
    if (parts !== undefined && !this.closed && !this.socket.destroyed) writeParts(this.socket, parts);
  }
}
