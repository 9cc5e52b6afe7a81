import { Deque } from './deque.js';
import { type Prioritized, PriorityQueue } from './priority-queue.js';

/**
 * The semantics of one mailbox, with no I/O: the queue, its capacity, the
 * senders waiting for room, the receivers waiting for messages, and which
 * receiver a message goes to. The kernel drives it and supplies the hooks;
 * every shared-memory or network backend must reproduce what it decides.
 *
 * Contract:
 * - Capacity 0 is a rendezvous: a message never waits in the queue; it goes
 *   straight from a blocked sender to a receiver that asked for it.
 * - Capacity N: at most N messages are queued or promised (credits); further
 *   blocking senders wait in FIFO order and are admitted as slots free.
 * - Capacity Infinity never makes a sender wait (the kernel's memory budget,
 *   tracked in `ledger`, is enforced by the kernel, not here).
 * - Delivery order: highest priority first, FIFO within one priority.
 * - `exclusive`: one receiver may be attached; `round-robin`: ready receivers
 *   in rotation; `arbitrary`: a ready receiver chosen by `random`;
 *   `broadcast`: every attached receiver gets its own copy (capacity applies
 *   to each receiver's copy queue; capacity 0 is not supported).
 * - A message sent to a broadcast mailbox with no receiver attached waits in a
 *   backlog that goes to the first receiver that attaches.
 */

export type DeliveryPolicy = 'exclusive' | 'round-robin' | 'arbitrary' | 'broadcast';

export interface CoreMessage extends Prioritized {
  /** Process id of the sender. */
  readonly sender: number;
  /** Payload size in bytes, charged to the ledger while queued. */
  readonly size: number;
  /**
   * Accept order, if the owner numbers messages: a message given back is
   * requeued ahead of every later-accepted one, so redelivery keeps the
   * original order whatever order the give-backs arrive in.
   */
  readonly seq?: number;
}

/** Most standing prefetch demand one receiver may hold: a client cannot make the kernel push without bound. */
export const MAX_PREFETCH = 65536;

/** A specific receive waiting in the kernel (as opposed to standing prefetch demand). */
export interface ReceiveRequest {
  /** Only a message from this sender satisfies it (symmetric direct naming). */
  readonly from?: number | undefined;
}

/** A sender whose message could not enter the mailbox yet. */
export interface SendWaiter<M extends CoreMessage> {
  readonly message: M;
}

export interface Receiver<M extends CoreMessage> {
  readonly id: number;
  /** Specific receives, served in FIFO order. */
  readonly requests: Deque<ReceiveRequest>;
  /** How many more messages may be pushed without a specific request. */
  prefetch: number;
  /** Broadcast only: this receiver's copies. */
  readonly copies: PriorityQueue<M> | undefined;
}

export interface MailboxHooks<M extends CoreMessage> {
  /** A message leaves the mailbox for `receiver`, answering `request` (or prefetch demand when undefined). */
  deliver(receiver: Receiver<M>, request: ReceiveRequest | undefined, message: M): void;
  /** A blocked sender's message entered the mailbox (capacity > 0) or went to a receiver (capacity 0). */
  admitted(waiter: SendWaiter<M>): void;
  /**
   * Whether `receiver` can take deliveries now (its transport is not backed
   * up). A receiver that cannot is skipped as if it had no demand; the owner
   * calls `pumpNow()` when it can again.
   */
  writable?(receiver: Receiver<M>): boolean;
  /** A broadcast message was queued as `copies` copies, one per attached receiver (not called for 1). */
  copied?(message: M, copies: number): void;
}

/** Bytes queued across mailboxes; the kernel compares it with its budget. */
export interface Ledger {
  used: number;
}

export type SendOutcome = 'queued' | 'handed' | 'blocked' | 'would-block';

export class ReceiverBusyError extends Error {}

export interface MailboxCoreOptions {
  capacity: number;
  delivery: DeliveryPolicy;
  ledger?: Ledger;
  random?: () => number;
}

export class MailboxCore<M extends CoreMessage> {
  readonly capacity: number;
  readonly delivery: DeliveryPolicy;
  private readonly hooks: MailboxHooks<M>;
  private readonly ledger: Ledger;
  private readonly random: () => number;
  /** Shared queue; for broadcast, the backlog kept while no receiver is attached. */
  private readonly queue = new PriorityQueue<M>();
  /**
   * Blocked senders in FIFO order. Withdrawals (timeouts, aborts) only drop a
   * waiter from `live`; the deque skips dead entries lazily, so withdrawing
   * any of N parked senders is O(1), never a scan.
   */
  private readonly senders = new Deque<SendWaiter<M>>();
  private readonly live = new Set<SendWaiter<M>>();
  private readonly receivers = new Map<number, Receiver<M>>();
  /** Attached receivers in attach order; round-robin rotates over it. */
  private order: Receiver<M>[] = [];
  private rotation = 0;
  /** Number of parked requests that carry a `from` filter (skips a scan when 0). */
  private filtered = 0;
  /** Slots promised to senders as credits; they count as taken. */
  private promisedSlots = 0;
  /** Bytes queued in this mailbox (all copies). */
  bytes = 0;

  constructor(options: MailboxCoreOptions, hooks: MailboxHooks<M>) {
    if (options.delivery === 'broadcast' && options.capacity === 0) {
      throw new RangeError('capacity 0 (rendezvous) is not supported with broadcast delivery');
    }
    this.capacity = options.capacity;
    this.delivery = options.delivery;
    this.hooks = hooks;
    this.ledger = options.ledger ?? { used: 0 };
    this.random = options.random ?? Math.random;
  }

  /** Messages waiting (for broadcast: the longest receiver copy queue, or the backlog). */
  depth(): number {
    if (this.delivery !== 'broadcast' || this.order.length === 0) return this.queue.length;
    let max = 0;
    for (const r of this.order) if (r.copies!.length > max) max = r.copies!.length;
    return max;
  }

  /**
   * The queued messages receiver `id` would be given next, in delivery order,
   * left in place (a peek). For broadcast: its own copies if it is attached,
   * else the backlog (empty while any receiver is attached). Parked senders'
   * messages are not queued yet (at capacity 0 nothing ever is).
   */
  queued(id: number): Iterable<M> {
    return this.receivers.get(id)?.copies ?? this.queue;
  }

  get promised(): number {
    return this.promisedSlots;
  }

  get waitingSenders(): number {
    return this.live.size;
  }

  get waitingReceivers(): number {
    let n = 0;
    for (const r of this.order) n += r.requests.length;
    return n;
  }

  receiverIds(): number[] {
    return this.order.map((r) => r.id);
  }

  /** Free slots not yet promised. Infinity for an unbounded mailbox. */
  free(): number {
    if (this.capacity === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
    return Math.max(0, this.capacity - this.depth() - this.promisedSlots);
  }

  /** Promise up to `wanted` slots to a sender; returns how many were promised. */
  reserve(wanted: number): number {
    if (this.capacity === 0 || this.live.size > 0) return 0;
    const granted = Math.min(wanted, this.free());
    this.promisedSlots += granted;
    return granted;
  }

  /** Take back promised slots that a sender returned unused. */
  unreserve(count: number): void {
    this.promisedSlots = Math.max(0, this.promisedSlots - count);
    this.pump();
  }

  /**
   * Send. `credited` means the sender spends a slot promised earlier, so the
   * message enters without a capacity check. Otherwise a full mailbox blocks
   * (`waiter` parked FIFO) or, when `mayBlock` is false, reports would-block.
   */
  send(message: M, mayBlock: boolean, credited = false): SendOutcome {
    if (credited) {
      this.promisedSlots = Math.max(0, this.promisedSlots - 1);
      if (this.handDirect(message)) return 'queued';
      this.enqueue(message);
      this.pump();
      return 'queued';
    }
    if (this.capacity === 0) {
      const r = this.pick(message);
      if (r !== undefined) {
        this.give(r.receiver, r.request, message);
        return 'handed';
      }
      return mayBlock ? 'blocked' : 'would-block';
    }
    if (this.live.size === 0 && this.free() > 0) {
      if (this.handDirect(message)) return 'queued';
      this.enqueue(message);
      this.pump();
      return 'queued';
    }
    return mayBlock ? 'blocked' : 'would-block';
  }

  /**
   * Enter a message past the capacity check without spending a promised slot:
   * a credited send whose slot was taken back from an unresponsive holder
   * (the kernel bounds how often that can happen).
   */
  sendForced(message: M): void {
    if (this.handDirect(message)) return;
    this.enqueue(message);
    this.pump();
  }

  /**
   * Take a queued message back out (a synchronous send that timed out or was
   * aborted before any receiver took it). Returns how many copies were still
   * queued and are now removed (for broadcast, every queued copy; else 0 or 1).
   */
  withdraw(message: M): number {
    let found = 0;
    if (this.queue.remove(message)) {
      this.charge(-message.size);
      found++;
    }
    if (this.delivery === 'broadcast') {
      for (const r of this.order) {
        if (r.copies!.remove(message)) {
          this.charge(-message.size);
          found++;
        }
      }
    }
    if (found > 0) this.pump();
    return found;
  }

  /** Move what can move now (a receiver's transport became writable again). */
  pumpNow(): void {
    this.pump();
  }

  /**
   * The streaming fast path: with nothing queued, a message goes straight to
   * the receiver the policy picks, skipping the queue. Same outcome as
   * enqueue + pump, which would take it right back out.
   */
  private handDirect(message: M): boolean {
    if (this.queue.length !== 0 || this.delivery === 'broadcast' || this.live.size !== 0) return false;
    const r = this.pick(message);
    if (r === undefined) return false;
    this.give(r.receiver, r.request, message);
    return true;
  }

  /**
   * Park a sender that `send` reported as blocked. `front` puts it ahead of the
   * others (a rendezvous message a receiver gave back keeps its turn).
   */
  park(waiter: SendWaiter<M>, front = false): void {
    if (this.live.has(waiter)) return;
    if (front) this.senders.unshift(waiter);
    else this.senders.push(waiter);
    this.live.add(waiter);
    this.pump();
  }

  /** Withdraw a parked sender (timeout, abort); false if it was already admitted. O(1). */
  cancelSend(waiter: SendWaiter<M>): boolean {
    if (!this.live.delete(waiter)) return false;
    // Drop dead entries at the head now so `senders` never grows past the live ones for long.
    this.trimSenders();
    return true;
  }

  private trimSenders(): void {
    while (this.senders.length > 0 && !this.live.has(this.senders.peek()!)) this.senders.shift();
    if (this.senders.length > 2 * this.live.size + 64) {
      // Many withdrawn behind the head: compact once (amortised O(1) per withdrawal).
      const keep = this.senders.clear().filter((w) => this.live.has(w));
      for (const w of keep) this.senders.push(w);
    }
  }

  /** Remove an admitted waiter from the FIFO (it is at or near the head). */
  private admitWaiter(w: SendWaiter<M>): void {
    this.live.delete(w);
    this.trimSenders();
    this.hooks.admitted(w);
  }

  attach(id: number, prefetch = 0): Receiver<M> {
    const existing = this.receivers.get(id);
    if (existing !== undefined) return existing;
    if (this.delivery === 'exclusive' && this.receivers.size > 0) {
      throw new ReceiverBusyError('mailbox has an exclusive receiver already');
    }
    const r: Receiver<M> = {
      id,
      requests: new Deque<ReceiveRequest>(),
      prefetch,
      copies: this.delivery === 'broadcast' ? new PriorityQueue<M>() : undefined,
    };
    this.receivers.set(id, r);
    this.order.push(r);
    if (r.copies !== undefined && this.queue.length > 0) {
      for (const m of this.queue.clear()) r.copies.push(m);
    }
    this.pump();
    return r;
  }

  isAttached(id: number): boolean {
    return this.receivers.has(id);
  }

  /** Detach a receiver; returns its parked requests (to fail) and, for broadcast, its undelivered copies. */
  detach(id: number): { requests: ReceiveRequest[]; dropped: M[] } {
    const r = this.receivers.get(id);
    if (r === undefined) return { requests: [], dropped: [] };
    this.receivers.delete(id);
    const index = this.order.indexOf(r);
    this.order.splice(index, 1);
    if (this.rotation > index) this.rotation--;
    if (this.rotation >= this.order.length) this.rotation = 0;
    const requests = r.requests.clear();
    for (const q of requests) if (q.from !== undefined) this.filtered--;
    const dropped = r.copies !== undefined ? r.copies.clear() : [];
    for (const m of dropped) this.charge(-m.size);
    this.pump();
    return { requests, dropped };
  }

  /**
   * A specific receive. Returns the message when one can be taken now;
   * otherwise parks `request` (if `mayBlock`) and returns undefined.
   */
  receive(id: number, request: ReceiveRequest, mayBlock: boolean): M | undefined {
    const r = this.receivers.get(id);
    if (r === undefined) throw new Error(`receiver ${id} is not attached`);
    const taken = this.takeFor(r, request.from);
    if (taken !== undefined) {
      this.pump();
      return taken;
    }
    if (mayBlock) {
      r.requests.push(request);
      if (request.from !== undefined) this.filtered++;
    }
    return undefined;
  }

  /**
   * Park a specific receive without taking anything now, even if a message is
   * queued: the owner holds deliveries to this receiver back for a moment
   * (its `writable` hook says no) and the request must wait its turn.
   */
  parkReceive(id: number, request: ReceiveRequest): void {
    const r = this.receivers.get(id);
    if (r === undefined) throw new Error(`receiver ${id} is not attached`);
    r.requests.push(request);
    if (request.from !== undefined) this.filtered++;
    this.pump();
  }

  /** Withdraw a parked receive (timeout, abort); false if it was already answered. */
  cancelReceive(id: number, request: ReceiveRequest): boolean {
    const r = this.receivers.get(id);
    if (r === undefined || !r.requests.remove(request)) return false;
    if (request.from !== undefined) this.filtered--;
    return true;
  }

  /** Change a receiver's standing prefetch demand by `delta` (never below 0). */
  addPrefetch(id: number, delta: number): void {
    const r = this.receivers.get(id);
    if (r === undefined) return;
    r.prefetch = Math.min(MAX_PREFETCH, Math.max(0, r.prefetch + delta));
    if (delta > 0) this.pump();
  }

  /**
   * Put a delivered but unconsumed message back ahead of everything accepted
   * after it. False if there is nowhere to put it (a broadcast copy whose
   * receiver has left while others remain attached).
   */
  requeue(message: M, receiverId?: number): boolean {
    let target = this.queue;
    if (this.delivery === 'broadcast' && this.order.length > 0) {
      // A broadcast copy goes back to its own receiver; with no receiver attached
      // at all it waits in the backlog for the next one, like any message sent then.
      const r = receiverId === undefined ? undefined : this.receivers.get(receiverId);
      if (r === undefined) return false;
      target = r.copies!;
    }
    if (message.seq === undefined) target.unshift(message);
    else target.insertBy(message, acceptedBefore);
    this.charge(message.size);
    this.pump();
    return true;
  }

  /** Empty the mailbox for deletion: everything waiting is returned for the kernel to fail. */
  close(): { senders: SendWaiter<M>[]; requests: Array<[number, ReceiveRequest]>; dropped: M[] } {
    const senders = this.senders.clear().filter((w) => this.live.has(w));
    this.live.clear();
    const requests: Array<[number, ReceiveRequest]> = [];
    const dropped = this.queue.clear();
    for (const r of this.order) {
      for (const q of r.requests.clear()) requests.push([r.id, q]);
      if (r.copies !== undefined) dropped.push(...r.copies.clear());
    }
    this.receivers.clear();
    this.order = [];
    this.filtered = 0;
    for (const m of dropped) this.charge(-m.size);
    return { senders, requests, dropped };
  }

  private charge(delta: number): void {
    this.bytes += delta;
    this.ledger.used += delta;
  }

  private enqueue(message: M): void {
    if (this.delivery !== 'broadcast' || this.order.length === 0) {
      this.queue.push(message);
      this.charge(message.size);
      return;
    }
    for (const r of this.order) {
      r.copies!.push(message);
      this.charge(message.size);
    }
    if (this.order.length !== 1) this.hooks.copied?.(message, this.order.length);
  }

  /** Take a message that receiver `r` may have now, honouring `from`; admits senders for freed slots. */
  private takeFor(r: Receiver<M>, from: number | undefined): M | undefined {
    const source = r.copies ?? this.queue;
    let m: M | undefined;
    if (from === undefined) m = source.shift();
    else m = source.takeFirst((x) => x.sender === from);
    if (m !== undefined) {
      this.charge(-m.size);
      return m;
    }
    if (this.capacity === 0) {
      for (const w of this.sendersByPriority()) {
        if (from === undefined || w.message.sender === from) {
          this.admitWaiter(w);
          return w.message;
        }
      }
    }
    return undefined;
  }

  /** Parked senders in delivery order: highest priority first, FIFO within one (rendezvous). */
  private sendersByPriority(): SendWaiter<M>[] {
    const all = [...this.senders].filter((w) => this.live.has(w));
    for (let i = 1; i < all.length; i++) {
      if (all[i]!.message.priority > all[i - 1]!.message.priority) {
        return all
          .map((w, index) => ({ w, index }))
          .sort((a, b) => b.w.message.priority - a.w.message.priority || a.index - b.index)
          .map((x) => x.w);
      }
    }
    return all;
  }

  private ready(r: Receiver<M>, message: M): ReceiveRequest | null | undefined {
    if (this.hooks.writable !== undefined && !this.hooks.writable(r)) return undefined;
    const requests = r.requests;
    for (let i = 0; i < requests.length; i++) {
      const q = requests.at(i)!;
      if (q.from === undefined || q.from === message.sender) return q;
    }
    return r.prefetch > 0 ? null : undefined;
  }

  /** The receiver the delivery policy gives `message` to, among those ready for it. */
  private pick(message: M): { receiver: Receiver<M>; request: ReceiveRequest | undefined } | undefined {
    const n = this.order.length;
    if (n === 0) return undefined;
    if (this.delivery === 'arbitrary') {
      const ready: Array<{ receiver: Receiver<M>; request: ReceiveRequest | undefined }> = [];
      for (const r of this.order) {
        const q = this.ready(r, message);
        if (q !== undefined) ready.push({ receiver: r, request: q ?? undefined });
      }
      if (ready.length === 0) return undefined;
      return ready[Math.floor(this.random() * ready.length)];
    }
    for (let i = 0; i < n; i++) {
      const r = this.order[(this.rotation + i) % n]!;
      const q = this.ready(r, message);
      if (q !== undefined) {
        if (this.delivery === 'round-robin') this.rotation = (this.rotation + i + 1) % n;
        return { receiver: r, request: q ?? undefined };
      }
    }
    return undefined;
  }

  private give(r: Receiver<M>, request: ReceiveRequest | undefined, message: M): void {
    if (request !== undefined) {
      r.requests.remove(request);
      if (request.from !== undefined) this.filtered--;
    } else {
      r.prefetch--;
    }
    this.hooks.deliver(r, request, message);
  }

  /** Move messages to ready receivers and admit waiting senders until nothing moves. */
  private pump(): void {
    let progress = true;
    while (progress) {
      progress = false;
      if (this.capacity === 0) {
        // Nothing can move without a receiver that wants a message: no scan of the parked senders.
        if (this.live.size === 0 || !this.anyReceiverWaiting()) break;
        for (const w of this.sendersByPriority()) {
          const r = this.pick(w.message);
          if (r !== undefined) {
            this.admitWaiter(w);
            this.give(r.receiver, r.request, w.message);
            progress = true;
            break;
          }
        }
        continue;
      }
      if (this.delivery === 'broadcast') {
        for (const r of this.order) {
          while (r.copies!.length > 0) {
            const q = this.ready(r, r.copies!.peek()!);
            if (q === undefined) break;
            const m = r.copies!.shift()!;
            this.charge(-m.size);
            this.give(r, q ?? undefined, m);
            progress = true;
          }
          if (this.filtered > 0 && this.serveFilteredFrom(r, r.copies!)) progress = true;
        }
      } else {
        const head = this.queue.peek();
        if (head !== undefined) {
          const r = this.pick(head);
          if (r !== undefined) {
            this.queue.shift();
            this.charge(-head.size);
            this.give(r.receiver, r.request, head);
            progress = true;
          } else if (this.filtered > 0) {
            progress = this.serveFiltered();
          }
        }
      }
      if (this.admit()) progress = true;
    }
  }

  /** Requests waiting for a particular sender may take a message behind the head. */
  private serveFiltered(): boolean {
    for (const r of this.order) if (this.serveFilteredFrom(r, this.queue)) return true;
    return false;
  }

  private serveFilteredFrom(r: Receiver<M>, source: PriorityQueue<M>): boolean {
    if (this.hooks.writable !== undefined && !this.hooks.writable(r)) return false;
    for (const q of r.requests) {
      if (q.from === undefined) continue;
      const m = source.takeFirst((x) => x.sender === q.from);
      if (m !== undefined) {
        this.charge(-m.size);
        this.give(r, q, m);
        return true;
      }
    }
    return false;
  }

  private anyReceiverWaiting(): boolean {
    for (const r of this.order) {
      if (this.hooks.writable !== undefined && !this.hooks.writable(r)) continue;
      if (r.requests.length > 0 || r.prefetch > 0) return true;
    }
    return false;
  }

  private admit(): boolean {
    let admitted = false;
    while (this.live.size > 0 && this.capacity - this.depth() - this.promisedSlots > 0) {
      const w = this.senders.shift()!;
      if (!this.live.delete(w)) continue;
      this.enqueue(w.message);
      this.hooks.admitted(w);
      admitted = true;
    }
    return admitted;
  }
}

/** Requeue order: `a` goes ahead of `b` if it was accepted first (messages without a number go first). */
function acceptedBefore(a: CoreMessage, b: CoreMessage): boolean {
  return b.seq === undefined || (a.seq as number) < b.seq;
}
