import type { DurableStore } from '../cluster/durable-store.js';
import {
  type CoreMessage,
  type Ledger,
  MailboxCore,
  type MailboxHooks,
  type ReceiveRequest,
  type SendWaiter,
} from '../core/mailbox-core.js';
import type { ResolvedMailboxOptions } from '../core/mailbox-options.js';
import { MailboxRights, type Principal } from '../core/rights.js';
import type { Chunk } from '../wire/frame-codec.js';
import type { MailboxCounters, MailboxInfo } from '../wire/info-types.js';
import { CreditBook, type CreditEnv } from './credits.js';
import { MailboxStats } from './mailbox-stats.js';
import type { MappedPayload } from './map-regions.js';
import type { Session } from './session.js';
import type { Timer } from './timer.js';

/**
 * A message as the kernel holds it. The payload is bytes `offset..offset+size`
 * of `bytes`, which is `store.buf`: the socket chunk it arrived in, or a
 * buffer of its own once it had to wait (see message-store.ts).
 */
export interface KernelMessage extends CoreMessage {
  readonly priority: number;
  readonly sender: number;
  /** The sender's name, kept with the message so a delivery after the sender exited still names it. */
  readonly senderName: string;
  readonly size: number;
  readonly codec: number;
  /** Accept order across the kernel: redelivery puts a message back ahead of later ones. */
  readonly seq: number;
  /** When it entered the queue (accepted, or put back for redelivery), on mailbox-stats' clock: its wait is measured from here. */
  queuedAt: number;
  bytes: Buffer;
  offset: number;
  store: Chunk;
  /** Copies not yet finished (broadcast fans out; 1 otherwise). The storage goes with the last. */
  pending: number;
  /** Delivered at least once: on its way to a receiver rather than waiting (see message-store.ts). */
  handed: boolean;
  /** Set while a sender waits for a receiver to take this message (synchronous send, rendezvous). */
  completion: SendRequest | undefined;
  /** Its synchronous sender was told it failed while a receiver still held it: if given back, it goes. */
  dropOnReturn?: boolean;
  /** While `completion` is set: the deliveries of this message, so an expiring send can ask for them back. */
  outAt?: Array<{ session: Session; deliveryId: number }>;
  /**
   * A payload sent by map: the bytes are in the sender's map region (`bytes` is empty, `size`
   * the payload's length); the chunk is the message's until it is finished (map-regions.ts).
   */
  mapped?: MappedPayload;
  /** A durable mailbox's message: where it is stored, removed from there once finished. */
  durable?: { store: DurableStore; seq: number };
}

/**
 * A request SEND from arrival until it is answered: parked in the core's
 * FIFO, or (synchronous, rendezvous) waiting for a receiver to take its
 * message. Its timer and its CANCEL apply in every state.
 */
export interface SendRequest extends SendWaiter<KernelMessage> {
  readonly message: KernelMessage;
  /** Undefined for a redelivered rendezvous message whose sender already completed. */
  readonly session: Session | undefined;
  readonly reqId: number;
  readonly nonblock: boolean;
  readonly record: MailboxRecord;
  timer: Timer | undefined;
  /**
   * The timeout or abort came while a receiver held the message: if that
   * receiver takes it the send completed after all; if it gives it back, the
   * send fails with this and the message goes.
   */
  expired: { code: 'TIMEOUT' | 'ABORTED'; text: string } | undefined;
}

/** A specific receive parked in the core. */
export interface PendingReceive extends ReceiveRequest {
  readonly session: Session;
  readonly reqId: number;
  readonly ack: boolean;
  readonly record: MailboxRecord;
  timer: Timer | undefined;
}

/** A mailbox (or a process's inbox) as the kernel keeps it: core semantics plus names, rights, owner, credits. */
export class MailboxRecord {
  /** Set for a durable mailbox (`durable: true`): its messages' store on JetStream. */
  durable: DurableStore | undefined;
  /** A durable mailbox's sends being stored, in arrival order (message-path.ts). */
  readonly persisting: {
    req: SendRequest;
    sync: boolean;
    timeout: number;
    done: boolean;
    error?: unknown;
  }[] = [];
  readonly core: MailboxCore<KernelMessage>;
  readonly rights: MailboxRights;
  /** Sessions holding a handle (notified when it closes). */
  readonly openers = new Set<Session>();
  readonly credits: CreditBook<Session>;
  /** Non-blocking sends waiting for a revocation round to decide (room may be coming back). */
  readonly deferred = new Set<SendRequest>();
  closed = false;
  readonly counters: MailboxCounters = { sent: 0, received: 0, blockedSends: 0, redelivered: 0, acked: 0 };
  /** Wait times and rates (mailbox-stats.ts). */
  readonly stats = new MailboxStats();
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
    owner: Principal,
    /** Set for process-owned mailboxes and inboxes: the mailbox closes when this session ends. */
    public ownerSession: Session | undefined,
    ledger: Ledger,
    hooks: (self: MailboxRecord) => MailboxHooks<KernelMessage>,
    kernelCreditWindow: number,
    creditEnv: (self: MailboxRecord) => Omit<CreditEnv<Session>, 'mailboxId' | 'reserve' | 'unreserve'>,
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
    const core = this.core;
    this.credits = new CreditBook<Session>({
      ...creditEnv(this),
      mailboxId: id,
      reserve: (n) => core.reserve(n),
      unreserve: (n) => core.unreserve(n),
    });
  }

  /** Lives until deleted (its owner exiting does not delete it). */
  get systemOwned(): boolean {
    return this.options.owner === 'system';
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
      stats: this.stats.describe(),
      durable: this.durable !== undefined,
      transport: 'kernel',
    };
  }
}
