import { Deque } from '../core/deque.js';
import { AbortError, type IpcError } from '../errors.js';
import type { Connection, PrefetchConsumer, ReceiveOptions, Target } from './connection.js';
import type { Message } from './message.js';

export interface IterateOptions {
  /** How many messages the kernel may push ahead of the loop. Default 64. Ignored at capacity 0. */
  prefetch?: number;
  /** Receive with acknowledgement: call `message.ack()` for each. */
  ack?: boolean;
  /** Ends the iteration (the loop throws ABORTED). */
  signal?: AbortSignal;
}

/**
 * Async iteration over a mailbox or inbox with prefetch: the kernel pushes up
 * to `prefetch` messages ahead of the consumer (standing demand), so a
 * `for await` loop costs no round trip per message. When the loop ends, any
 * message pushed but not yet read goes back to the kernel.
 */
export class MessageStream implements AsyncIterableIterator<Message>, PrefetchConsumer {
  private readonly buffer = new Deque<Message>();
  private waiter: { resolve(r: IteratorResult<Message>): void; reject(e: IpcError): void } | undefined;
  private outstanding = 0;
  private error: IpcError | undefined;
  private done = false;
  private readonly window: number;
  private readonly ack: boolean;
  private readonly onAbort: () => void;
  readonly reqId: number;

  constructor(
    private readonly conn: Connection,
    private readonly target: Target,
    private readonly options: IterateOptions,
  ) {
    const prefetch = options.prefetch ?? 64;
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65536) {
      throw new RangeError('prefetch must be an integer from 1 to 65536');
    }
    this.window = prefetch;
    this.ack = options.ack === true;
    this.reqId = conn.iterationId();
    this.onAbort = () => this.fail(new AbortError('iteration aborted'));
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (target.closed !== undefined) {
      this.error = target.closed;
      return;
    }
    target.consumer = this;
    this.outstanding = this.window;
    conn.demand(target, this.window, this.ack, this.reqId);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  push(message: Message): void {
    this.outstanding--;
    if (this.done) return;
    const m = message;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: this.take(m), done: false });
    } else {
      this.buffer.push(m);
    }
  }

  withdraw(deliveryId: number): Message | undefined {
    for (let i = 0; i < this.buffer.length; i++) {
      const m = this.buffer.at(i)!;
      if (m.deliveryId === deliveryId) {
        // Its demand slot was spent by the push; the next take asks for more as usual.
        this.buffer.removeAt(i);
        return m;
      }
    }
    return undefined;
  }

  fail(error: IpcError): void {
    if (this.error !== undefined) return;
    this.error = error;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      this.finish();
      w.reject(error);
    }
  }

  revoked(error: IpcError): void {
    // Already back in the mailbox (the kernel's detach): neither read them nor give them back.
    this.buffer.clear();
    this.outstanding = 0;
    if (this.target.consumer === this) this.target.consumer = undefined;
    this.fail(error);
  }

  next(): Promise<IteratorResult<Message>> {
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    const m = this.buffer.shift();
    if (m !== undefined) return Promise.resolve({ value: this.take(m), done: false });
    if (this.error !== undefined) {
      this.finish();
      return Promise.reject(this.error);
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Message>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    this.finish();
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: undefined, done: true });
    }
  }

  private take(m: Message): Message {
    if (m.tracked) this.conn.markConsumed(m.deliveryId);
    const want = this.window - this.outstanding - this.buffer.length;
    if (want >= this.window / 2 && this.error === undefined) {
      this.outstanding += want;
      this.conn.demand(this.target, want, this.ack, this.reqId);
    }
    return m;
  }

  /**
   * Stop: withdraw the standing demand and give back what was pushed but not
   * read, oldest first in one frame. If the connection is already closed the
   * kernel still holds every unread one (deliveries are tracked until
   * CONSUMED) and redelivers it: nothing is lost either way.
   */
  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    if (this.target.consumer === this) this.target.consumer = undefined;
    if (this.target.closed === undefined && this.outstanding > 0)
      this.conn.demand(this.target, -this.outstanding, this.ack, this.reqId);
    const unread = this.buffer.clear();
    if (this.target.closed === undefined) this.conn.giveBack(unread);
  }
}

/** Iteration at capacity 0: each step is one rendezvous receive (nothing may wait ahead of the receiver). */
export async function* rendezvousStream(
  receive: (o: ReceiveOptions) => Promise<Message>,
  options: IterateOptions,
): AsyncGenerator<Message, void, undefined> {
  const o: ReceiveOptions = {};
  if (options.ack !== undefined) o.ack = options.ack;
  if (options.signal !== undefined) o.signal = options.signal;
  for (;;) yield await receive(o);
}
