import { Deque } from '../core/deque.js';
import { PriorityQueue } from '../core/priority-queue.js';
import { AbortError, IpcError, TimeoutError, WouldBlockError } from '../errors.js';
import type { Connection, PrefetchConsumer, ReceiveOptions, Target } from './connection.js';
import { type DeliveryControl, Message } from './message.js';

/**
 * A process's inbox served in the process itself, so that direct messages
 * from one-hop links (link-listener.ts) and from the kernel meet in one queue
 * and every receive is answered without a round trip.
 *
 * Contract (the kernel inbox's, kept):
 * - Highest priority first, FIFO within a priority for each sender: a link
 *   carries one sender's messages in order, and the kernel pushes its own in
 *   the order it queued them.
 * - `receive({ from })` takes only that sender's messages; receive-from-anyone
 *   takes the first by priority. Waiting receives are served in call order,
 *   each by the first arriving message it accepts.
 * - Every wait honours `nonblock` (WOULD_BLOCK), `timeout` (TIMEOUT; 0 = only
 *   what is here now) and `signal` (ABORTED); a receive that fails took nothing.
 * - Kernel messages come as prefetch pushes on the inbox (standing demand of
 *   KERNEL_WINDOW): a push is the kernel's until the application takes it
 *   (CONSUMED then, which is also when a synchronous sender completes), and a
 *   push withdrawn by its sender before that (WITHDRAW) leaves the queue.
 * - Bounded: link sockets are paused while LOCAL_BYTES_MAX bytes of link
 *   messages wait here (the senders then block: link-sender.ts), and the
 *   kernel pushes at most KERNEL_WINDOW messages ahead.
 * - A message received with `ack: true` comes back on `nack()` (at the front
 *   of its priority); `ack()` only settles it: the inbox dies with its process,
 *   so there is no one to redeliver to afterwards.
 */

/** Messages the kernel may push ahead of the application. */
const KERNEL_WINDOW = 256;
/** Link message bytes held here before the links are paused (backpressure to their senders). */
export const LOCAL_BYTES_MAX = 8 * 1024 * 1024;

interface Waiter {
  readonly from: number | undefined;
  readonly ack: boolean;
  resolve(m: Message): void;
  reject(e: IpcError): void;
  done: boolean;
  cleanup(): void;
}

/** What the inbox tells the link that brought a message (link-listener.ts). */
export interface LinkOrigin {
  /** The application took a synchronous message. */
  taken(syncId: number): void;
  /** Room again after pushLink said stop. */
  resume(): void;
}

export class LocalInbox implements PrefetchConsumer, DeliveryControl {
  readonly reqId: number;
  private readonly queue = new PriorityQueue<Message>();
  private readonly waiters = new Deque<Waiter>();
  private outstanding = 0;
  private linkBytes = 0;
  private readonly pausedLinks = new Set<LinkOrigin>();
  /** Messages handed out with `ack: true`, by the local id their nack names. */
  private readonly unacked = new Map<number, Message>();
  private nextLocal = 1;
  private error: IpcError | undefined;
  /**
   * Take in what the links' rings hold now (link-listener.ts). A message in a
   * ring was sent (its send resolved), so a receive or peek that finds nothing
   * here looks there first, as one through the kernel would see what it had.
   */
  pollLinks: () => void = () => {};

  constructor(
    private readonly conn: Connection,
    private readonly target: Target,
  ) {
    this.reqId = conn.iterationId();
    target.consumer = this;
    this.outstanding = KERNEL_WINDOW;
    conn.demand(target, KERNEL_WINDOW, false, this.reqId);
  }

  get closedWith(): IpcError | undefined {
    return this.error;
  }

  // ---------------------------------------------------------------- arrivals

  /** PrefetchConsumer: a kernel push. */
  push(message: Message): void {
    this.outstanding--;
    if (this.error !== undefined) return;
    this.arrive(message);
  }

  /**
   * A message from a link; `syncId` non-zero if its sender waits for TAKEN.
   * False: the link must stop reading until its `resume()` is called.
   */
  /** Messages that came over links, ever; and those of them not yet taken. */
  linkArrived = 0;
  get linkWaiting(): number {
    let n = 0;
    for (const m of this.queue) if (m.origin !== undefined) n++;
    return n;
  }

  pushLink(message: Message, origin: LinkOrigin, syncId: number): boolean {
    this.linkArrived++;
    if (this.error !== undefined) return true;
    message.origin = origin;
    message.syncId = syncId;
    this.linkBytes += message.bytes.length;
    this.arrive(message);
    if (this.linkBytes < LOCAL_BYTES_MAX) return true;
    this.pausedLinks.add(origin);
    return false;
  }

  /** To the first waiting receive that takes it, else into the queue (`front`: ahead of its priority, a nacked one). */
  private arrive(m: Message, front = false): void {
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters.at(i)!;
      if (w.from === undefined || w.from === m.senderPid) {
        this.waiters.removeAt(i);
        w.done = true;
        w.cleanup();
        w.resolve(this.take(m, w.ack));
        return;
      }
    }
    if (front) this.queue.unshift(m);
    else this.queue.push(m);
  }

  /** PrefetchConsumer: the sender of a kernel push gave up; remove it if nobody took it. */
  withdraw(deliveryId: number): Message | undefined {
    const m = this.queue.takeFirst((x) => x.deliveryId === deliveryId && x.origin === undefined);
    return m;
  }

  /**
   * A link's sender withdrew its synchronous message `syncId`: true if it was
   * still here (now removed, never to be received).
   */
  withdrawLink(origin: LinkOrigin, syncId: number): boolean {
    const m = this.queue.takeFirst((x) => x.origin === origin && x.syncId === syncId);
    if (m === undefined) return false;
    this.settleLink(m, false);
    return true;
  }

  fail(error: IpcError): void {
    if (this.error !== undefined) return;
    this.error = error;
    for (;;) {
      const w = this.waiters.shift();
      if (w === undefined) break;
      w.done = true;
      w.cleanup();
      w.reject(error);
    }
  }

  close(): void {
    this.fail(new IpcError('KERNEL_UNAVAILABLE', 'the process closed its connection'));
  }

  // ---------------------------------------------------------------- receiving

  receive(options: ReceiveOptions & { from?: number }): Promise<Message> {
    if (options.signal?.aborted) return Promise.reject(new AbortError('receive aborted'));
    const from = options.from;
    const ack = options.ack === true;
    let here = this.take1(from);
    if (here === undefined) {
      this.pollLinks();
      here = this.take1(from);
    }
    if (here !== undefined) return Promise.resolve(this.take(here, ack));
    if (this.error !== undefined) return Promise.reject(this.error);
    if (options.nonblock) return Promise.reject(new WouldBlockError('no message in the inbox'));
    if (options.timeout === 0) return Promise.reject(new TimeoutError('receive timed out'));
    return new Promise<Message>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const signal = options.signal;
      const onAbort = () => this.giveUp(w, new AbortError('receive aborted'));
      const w: Waiter = {
        from,
        ack,
        resolve,
        reject,
        done: false,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      // A timeout beyond what setTimeout holds (~24.8 days) is no deadline, as on the wire.
      if (options.timeout !== undefined && options.timeout <= 0x7fffffff)
        timer = setTimeout(() => this.giveUp(w, new TimeoutError('receive timed out')), options.timeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }

  private take1(from: number | undefined): Message | undefined {
    return from === undefined ? this.queue.shift() : this.queue.takeFirst((m) => m.senderPid === from);
  }

  private giveUp(w: Waiter, error: IpcError): void {
    if (w.done) return;
    w.done = true;
    w.cleanup();
    this.waiters.remove(w);
    w.reject(error);
  }

  /**
   * Copies of the first `count` messages here, in the order receive() takes them.
   */
  peekLocal(count: number): Message[] {
    this.pollLinks();
    const out: Message[] = [];
    for (const m of this.queue) {
      if (out.length >= count) break;
      out.push(this.copyOf(m, true, 0));
    }
    return out;
  }

  get depth(): number {
    return this.queue.length;
  }

  /** The application takes `m`: the kernel or the link hears of it, and demand is topped up. */
  private take(m: Message, ack: boolean): Message {
    if (m.origin !== undefined) this.settleLink(m, true);
    else {
      if (m.tracked) this.conn.markConsumed(m.deliveryId);
      const want = KERNEL_WINDOW - this.outstanding;
      if (want >= KERNEL_WINDOW / 2 && this.error === undefined && this.target.closed === undefined) {
        this.outstanding += want;
        this.conn.demand(this.target, want, false, this.reqId);
      }
    }
    if (!ack) return m;
    const id = this.nextLocal++;
    const copy = this.copyOf(m, false, id);
    // The copy holds the bytes now: the region's chunk goes back at once.
    m.release();
    this.unacked.set(id, copy);
    return copy;
  }

  /** A link message leaves: `taken` by the application (its sync sender hears so), or withdrawn. */
  private settleLink(m: Message, taken: boolean): void {
    const origin = m.origin as LinkOrigin;
    m.origin = undefined;
    this.linkBytes -= m.bytes.length;
    if (taken && m.syncId !== 0) origin.taken(m.syncId);
    if (this.linkBytes < LOCAL_BYTES_MAX / 2 && this.pausedLinks.size > 0) {
      const paused = [...this.pausedLinks];
      this.pausedLinks.clear();
      for (const o of paused) o.resume();
    }
  }

  /**
   * A message of our own for `m` (a peek's copy, or one to settle with ack/nack). A mapped
   * payload is copied out of the sender's region: the copy must not depend on `m`'s lease.
   */
  private copyOf(m: Message, peeked: boolean, id: number): Message {
    return new Message(
      m.mapped ? m.copy() : m.bytes,
      m.codecId,
      m.priority,
      m.sender,
      m.senderPid,
      m.mailbox,
      !peeked,
      id,
      false,
      this,
      peeked,
    );
  }

  // ---------------------------------------------------------------- DeliveryControl (ack: true)

  ack(id: number): void {
    this.unacked.delete(id);
  }

  release(id: number): void {
    const m = this.unacked.get(id);
    if (m === undefined) return;
    this.unacked.delete(id);
    if (this.error !== undefined) return;
    // Back where receive() finds it first: ahead of its priority's others, as the kernel does.
    const plain = new Message(
      m.bytes,
      m.codecId,
      m.priority,
      m.sender,
      m.senderPid,
      m.mailbox,
      false,
      0,
      false,
      this,
    );
    this.arrive(plain, true);
  }
}
