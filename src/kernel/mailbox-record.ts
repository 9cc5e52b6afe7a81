import {
  type CoreMessage,
  type Ledger,
  MailboxCore,
  type MailboxHooks,
  type ReceiveRequest,
  type SendWaiter,
} from '../core/mailbox-core.js';
import type { ResolvedMailboxOptions } from '../core/mailbox-options.js';
import { MailboxRights } from '../core/rights.js';
import type { MailboxCounters, MailboxInfo } from '../wire/info-types.js';
import type { Session } from './session.js';

/**
 * A message as the kernel holds it. The payload is bytes `offset..offset+size`
 * of `bytes`, the chunk it arrived in (received chunks are never overwritten),
 * so forwarding it needs no view of its own.
 */
export interface KernelMessage extends CoreMessage {
  readonly priority: number;
  readonly sender: number;
  readonly size: number;
  readonly codec: number;
  readonly bytes: Buffer;
  readonly offset: number;
  /** Set while a sender waits for a receiver to take this message (synchronous send, rendezvous). */
  completion: Completion | undefined;
}

export interface Completion {
  readonly session: Session;
  readonly reqId: number;
  readonly nonblock: boolean;
  readonly record: MailboxRecord;
}

/** A request send that could not enter yet, parked in the core's FIFO. */
export interface PendingSend extends SendWaiter<KernelMessage> {
  /** Undefined for a redelivered rendezvous message whose sender already completed. */
  readonly session: Session | undefined;
  readonly reqId: number;
  readonly nonblock: boolean;
  readonly record: MailboxRecord;
  timer: NodeJS.Timeout | undefined;
}

/** A specific receive parked in the core. */
export interface PendingReceive extends ReceiveRequest {
  readonly session: Session;
  readonly reqId: number;
  readonly ack: boolean;
  readonly record: MailboxRecord;
  timer: NodeJS.Timeout | undefined;
}

/** What one sender may still send without a round trip. */
export interface Credit {
  slots: number;
  bytes: number;
}

/** A mailbox (or a process's inbox) as the kernel keeps it: core semantics plus names, rights, owner, credits. */
export class MailboxRecord {
  readonly core: MailboxCore<KernelMessage>;
  readonly rights: MailboxRights;
  /** Sessions holding a handle (notified when it closes). */
  readonly openers = new Set<Session>();
  /** Unspent send credits per session: promised slots, and bytes reserved from the memory budget. */
  readonly holders = new Map<Session, Credit>();
  /** REVOKE frames not yet answered by CREDIT_RETURN. */
  revoking = 0;
  closed = false;
  readonly counters: MailboxCounters = { sent: 0, received: 0, blockedSends: 0, redelivered: 0 };
  /** Most credits one sender may hold here: half the capacity, at most the kernel's window. */
  readonly creditWindow: number;
  /** A sender's credits are topped up when they fall to this. */
  readonly creditLowWater: number;
  readonly createdAt = Date.now();

  constructor(
    readonly id: number,
    readonly name: string,
    readonly kind: 'mailbox' | 'inbox',
    readonly options: ResolvedMailboxOptions,
    owner: string,
    /** Set for process-owned mailboxes and inboxes: the mailbox closes when this session ends. */
    public ownerSession: Session | undefined,
    ledger: Ledger,
    hooks: (self: MailboxRecord) => MailboxHooks<KernelMessage>,
    kernelCreditWindow: number,
  ) {
    const cap = options.capacity;
    this.creditWindow =
      cap === Number.POSITIVE_INFINITY
        ? kernelCreditWindow
        : Math.min(kernelCreditWindow, Math.floor(cap / 2));
    this.creditLowWater = this.creditWindow / 2;
    this.rights = new MailboxRights(owner, options.senders, options.receivers);
    this.core = new MailboxCore<KernelMessage>(
      { capacity: options.capacity, delivery: options.delivery, ledger },
      hooks(this),
    );
  }

  describe(): MailboxInfo {
    const o = this.options;
    return {
      id: this.id,
      name: this.name,
      capacity: o.capacity === Number.POSITIVE_INFINITY ? 'unbounded' : o.capacity,
      delivery: o.delivery,
      ownership: o.owner,
      owner: this.rights.owner,
      maxMessageSize: o.maxMessageSize,
      fixedMessageSize: o.fixedMessageSize ?? null,
      senders: this.rights.describe('send'),
      receivers: this.rights.describe('receive'),
      depth: this.core.depth(),
      bytes: this.core.bytes,
      attached: this.core.receiverIds().length,
      waitingSenders: this.core.waitingSenders,
      waitingReceivers: this.core.waitingReceivers,
      promised: this.core.promised,
      counters: { ...this.counters },
    };
  }
}
