/**
 * SendQueue: the per-handle FIFO behind a shared-memory mailbox's promise
 * that sends from one handle complete, and are delivered, in call order.
 *
 * Shared memory gives no order among waiters (a futex wakes whichever
 * thread it likes, a large send waits for a chunk that a small one does not
 * need), so a handle lets only one of its sends wait there at a time.
 *
 * Contract:
 * - `idle` is true while no send of this handle is queued or in flight; only
 *   then may a send go straight to shared memory (the caller's fast path).
 * - Queued sends start one at a time, in push order: the head runs (`run`
 *   waits on shared memory with the send's deadline and signal) and settles
 *   before the next one starts.
 * - A send that times out or is aborted while still queued rejects at that
 *   moment (its own timer and abort listener) and never starts. Timers are
 *   re-armed in steps of at most 2^31-1 ms (setTimeout's limit), so long
 *   deadlines stay long.
 * - `fail(err)` rejects every send not yet started (the handle or mailbox is
 *   closing; the head's own wait is ended by the same close).
 */
import { Deque } from '../../core/deque.js';
import { remaining } from '../../shm/futex.js';

/** setTimeout's largest delay; longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry<J> {
  readonly job: J;
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
  state: 'queued' | 'running' | 'settled';
  timer: ReturnType<typeof setTimeout> | undefined;
  onAbort: (() => void) | undefined;
}

export interface SendQueueHooks<J> {
  /** Send `job`, waiting on shared memory until `deadline` (performance.now() clock) or `signal`. */
  run(job: J, deadline: number, signal: AbortSignal | undefined): Promise<void>;
  /** The error for a send whose deadline passed while it was queued. */
  timedOut(): unknown;
  /** The error for a send whose signal fired while it was queued. */
  aborted(signal: AbortSignal): unknown;
}

export class SendQueue<J> {
  readonly #hooks: SendQueueHooks<J>;
  readonly #entries = new Deque<Entry<J>>();
  /** Entries queued or running (not settled). */
  #live = 0;
  /** Entries queued and not started. */
  #queued = 0;
  #pumping = false;

  constructor(hooks: SendQueueHooks<J>) {
    this.#hooks = hooks;
  }

  /** No send of this handle is queued or in flight. */
  get idle(): boolean {
    return this.#live === 0;
  }

  /** Sends queued behind the one in flight. */
  get waiting(): number {
    return this.#queued;
  }

  /** Queue `job`; settles when it was sent or failed. */
  push(job: J, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const e: Entry<J> = {
        job,
        deadline,
        signal,
        resolve,
        reject,
        state: 'queued',
        timer: undefined,
        onAbort: undefined,
      };
      if (signal !== undefined) {
        e.onAbort = () => this.#fail(e, this.#hooks.aborted(signal));
        signal.addEventListener('abort', e.onAbort, { once: true });
      }
      this.#entries.push(e);
      this.#live++;
      this.#queued++;
      if (!this.#pumping) void this.#pump();
      else this.#arm(e);
    });
  }

  /** Reject every send not yet started with `err`. */
  fail(err: unknown): void {
    for (let i = 0; i < this.#entries.length; i++) {
      const e = this.#entries.at(i) as Entry<J>;
      if (e.state === 'queued') this.#fail(e, err);
    }
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      for (;;) {
        const e = this.#entries.peek();
        if (e === undefined) return;
        if (e.state === 'queued') {
          this.#start(e);
          try {
            await this.#hooks.run(e.job, e.deadline, e.signal);
            e.state = 'settled';
            this.#live--;
            e.resolve();
          } catch (err) {
            e.state = 'settled';
            this.#live--;
            e.reject(err);
          }
        }
        this.#entries.shift();
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** The entry's turn: its own wait now watches the deadline and the signal. */
  #start(e: Entry<J>): void {
    this.#disarm(e);
    e.state = 'running';
    this.#queued--;
  }

  #fail(e: Entry<J>, err: unknown): void {
    if (e.state !== 'queued') return;
    this.#disarm(e);
    e.state = 'settled';
    this.#live--;
    this.#queued--;
    e.reject(err);
  }

  #arm(e: Entry<J>): void {
    const left = remaining(e.deadline);
    if (left === Number.POSITIVE_INFINITY) return;
    e.timer = setTimeout(
      () => {
        e.timer = undefined;
        if (remaining(e.deadline) > 0) this.#arm(e);
        else this.#fail(e, this.#hooks.timedOut());
      },
      Math.min(left, MAX_TIMER_MS),
    );
  }

  #disarm(e: Entry<J>): void {
    if (e.timer !== undefined) clearTimeout(e.timer);
    e.timer = undefined;
    if (e.onAbort !== undefined) e.signal?.removeEventListener('abort', e.onAbort);
    e.onAbort = undefined;
  }
}
