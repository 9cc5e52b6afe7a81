import type { Grantees, RightKind } from '../core/rights.js';
import { IpcError } from '../errors.js';
import type { MailboxInfo } from '../wire/info-types.js';
import { peekCount } from '../wire/protocol.js';
import type {
  Connection,
  PeekOptions,
  PeekResult,
  PrefetchConsumer,
  ReceiveOptions,
  SendOptions,
  Target,
} from './connection.js';
import type { Message } from './message.js';
import { type IterateOptions, MessageStream, rendezvousStream } from './message-stream.js';
import type { ShmPath } from './shm-mailbox-path.js';

/**
 * A handle on a mailbox (indirect naming). Many processes may hold handles on
 * one mailbox; its capacity, delivery policy, ownership and rights were fixed
 * when it was created (see MailboxOptions).
 */
export class Mailbox implements AsyncIterable<Message> {
  /** Set when this handle was closed: its own operations fail, other handles on the mailbox are unaffected. */
  private closedByUs: IpcError | undefined;
  /** The iteration this handle started, if it runs (closing the handle ends it). */
  private stream: PrefetchConsumer | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly target: Target,
    /** What the kernel said about the mailbox when this handle was opened. */
    readonly info: MailboxInfo,
    /** Set for a mailbox on the shared-memory path: every operation goes there instead. */
    private readonly shm?: ShmPath,
  ) {}

  /** The path its messages take: 'kernel', or 'shm' (a shared-memory segment; README "Which path"). */
  get transport(): 'kernel' | 'shm' {
    return this.shm === undefined ? 'kernel' : 'shm';
  }

  get name(): string {
    return this.target.name;
  }

  get id(): number {
    return this.target.id;
  }

  /** Send a message. Blocks while the mailbox is full unless `nonblock` or `timeout` say otherwise. */
  send(value: unknown, options?: SendOptions): Promise<void> {
    if (this.closedByUs) return Promise.reject(this.closedByUs);
    if (this.shm !== undefined) return this.shm.send(value, options);
    return this.conn.send(this.target, value, options);
  }

  /** Send only if it can complete now; WOULD_BLOCK otherwise. */
  trySend(value: unknown, options: Omit<SendOptions, 'nonblock' | 'timeout'> = {}): Promise<void> {
    if (this.closedByUs) return Promise.reject(this.closedByUs);
    if (this.shm !== undefined) return this.shm.send(value, { ...options, nonblock: true });
    return this.conn.send(this.target, value, { ...options, nonblock: true });
  }

  /** Receive one message (highest priority first, FIFO within a priority). */
  receive(options?: ReceiveOptions): Promise<Message> {
    if (this.closedByUs) return Promise.reject(this.closedByUs);
    if (this.shm !== undefined) return this.shm.receive(options);
    return this.conn.receive(this.target, options);
  }

  /** Receive only if a message is there now; WOULD_BLOCK otherwise. */
  tryReceive(options: Omit<ReceiveOptions, 'nonblock' | 'timeout'> = {}): Promise<Message> {
    if (this.closedByUs) return Promise.reject(this.closedByUs);
    if (this.shm !== undefined) return this.shm.receive({ ...options, nonblock: true });
    return this.conn.receive(this.target, { ...options, nonblock: true });
  }

  /**
   * Copies of the first `count` (default 1, at most 100) queued messages, in
   * the order they would be delivered (priority, then FIFO), left in the
   * mailbox: no order, redelivery count or counter changes. Needs the receive
   * right (PERMISSION_DENIED). Only queued messages: ones delivered and not yet
   * acknowledged are in flight, not shown; a rendezvous mailbox (capacity 0)
   * never queues. One answer carries at most the kernel's maxMessageSize of
   * payload (always the first message): `more` says whether the queue holds
   * more than was returned. Peeked messages cannot be acked (INVALID_ARGUMENT).
   */
  peek(options: PeekOptions = {}): Promise<PeekResult> {
    try {
      if (this.closedByUs) throw this.closedByUs;
      if (this.shm !== undefined) return this.shm.peek();
      return this.conn.peek(this.target, peekCount(options.count));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Iterate over messages as they arrive; `break` ends it and hands unread prefetched messages back. */
  messages(options: IterateOptions = {}): AsyncIterableIterator<Message> {
    if (this.closedByUs) throw this.closedByUs;
    if (this.shm !== undefined) return this.shm.messages(options);
    if (this.target.consumer !== undefined) {
      throw new TypeError(`${this.name} is already being iterated by this process`);
    }
    if (this.target.capacity === 0) return rendezvousStream((o) => this.receive(o), options);
    const stream = new MessageStream(this.conn, this.target, options);
    this.stream = stream;
    return stream;
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return this.messages();
  }

  /** Current state as the kernel sees it (depth, receivers, counters...). */
  stat(): Promise<MailboxInfo> {
    if (this.shm !== undefined) return this.shm.stat();
    return this.conn.call<MailboxInfo>('mailbox.info', { name: this.name });
  }

  /** Owner only: let `who` (process names, or 'everyone') send or receive. */
  async grant(right: RightKind, who: Grantees | string): Promise<void> {
    await this.conn.call('mailbox.grant', { name: this.name, right, who });
  }

  /** Owner only: take a right away; receivers that lose it are detached. */
  async revoke(right: RightKind, who: Grantees | string): Promise<void> {
    await this.conn.call('mailbox.revoke', { name: this.name, right, who });
  }

  /** Owner only: pass ownership (and with it deletion and rights management) to another process. */
  async transferOwnership(to: string): Promise<void> {
    await this.conn.call('mailbox.transfer', { name: this.name, to });
  }

  /** Owner only: delete the mailbox for everyone. */
  async delete(): Promise<void> {
    await this.conn.call('mailbox.delete', { name: this.name });
  }

  /** Drop this handle: stop receiving (unread deliveries go back) and return unspent credits. */
  async close(): Promise<void> {
    if (this.closedByUs) return;
    this.closedByUs = new IpcError('MAILBOX_CLOSED', `this handle on ${this.name} is closed`);
    if (this.shm !== undefined) return this.shm.close();
    if (this.stream !== undefined && this.target.consumer === this.stream) this.stream.close();
    this.stream = undefined;
    // Other handles of this process on the mailbox keep the link; the last one ends it.
    if (!this.conn.releaseTarget(this.target) || this.target.closed !== undefined) return;
    await this.conn.call('mailbox.close', { id: this.id });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
