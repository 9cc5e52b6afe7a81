/**
 * FdReadiness: waits, without a thread and without blocking the event loop,
 * until a non-blocking descriptor (a FIFO, a message queue) is readable or
 * writable, through one libuv uv_poll_t per descriptor in the addon.
 *
 * Contract:
 * - `wait(events, deadline, signal)` resolves when the descriptor reported
 *   readiness for `events` (or an error condition, which the caller's next
 *   system call then reports), or rejects with TimeoutError at `deadline`
 *   (performance.now() clock, Infinity for none) / AbortError on `signal`.
 *   Readiness is a hint: another process (or another waiter here) may take
 *   the message first, so callers retry their non-blocking call in a loop.
 * - Any number of waits may be pending; the poller watches the union of their
 *   events and stops watching when none is pending (so an idle handle keeps
 *   no process alive, and a pending wait does, like a socket read).
 * - `close(err)` rejects every pending wait with `err` and frees the poller;
 *   it must run before the descriptor is closed (libuv must stop polling an fd
 *   before it is reused).
 */
import { AbortError, TimeoutError } from '../errors.js';
import { nativeUnix, type PollEvents } from './native-unix.js';

interface Waiter {
  events: PollEvents;
  resolve(): void;
  reject(err: unknown): void;
}

export class FdReadiness {
  readonly #fd: number;
  readonly #waiters = new Set<Waiter>();
  #poll: number | undefined;
  #mask = 0;
  #closed: unknown;

  constructor(fd: number) {
    this.#fd = fd;
  }

  wait(events: PollEvents, deadline: number, signal: AbortSignal | undefined, what: string): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(new AbortError(`${what} aborted`, { cause: signal.reason }));
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (): void => {
        this.#waiters.delete(waiter);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#watch();
      };
      const waiter: Waiter = {
        events,
        resolve: () => {
          settle();
          resolve();
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      };
      const onAbort = (): void => waiter.reject(new AbortError(`${what} aborted`, { cause: signal?.reason }));
      if (deadline !== Number.POSITIVE_INFINITY) {
        timer = setTimeout(
          () => waiter.reject(new TimeoutError(`${what} timed out`)),
          Math.max(0, deadline - performance.now()),
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      try {
        this.#watch();
      } catch (err) {
        waiter.reject(err);
      }
    });
  }

  close(err: unknown): void {
    if (this.#closed !== undefined) return;
    this.#closed = err;
    for (const w of [...this.#waiters]) w.reject(err);
    if (this.#poll !== undefined) nativeUnix().pollClose(this.#poll);
    this.#poll = undefined;
  }

  /** Points the poller at the union of the pending waits' events. */
  #watch(): void {
    if (this.#closed !== undefined) return;
    let mask = 0;
    for (const w of this.#waiters) mask |= w.events;
    if (mask === this.#mask) return;
    const unix = nativeUnix();
    if (this.#poll === undefined) {
      this.#poll = unix.pollStart(this.#fd, mask as PollEvents, (status, ready) =>
        this.#onReady(status, ready),
      );
    } else {
      unix.pollUpdate(this.#poll, mask as 0 | PollEvents);
    }
    this.#mask = mask;
  }

  #onReady(status: number, ready: number): void {
    // libuv stops a poller that reported an error; the next #watch restarts it.
    if (status < 0) this.#mask = 0;
    for (const w of [...this.#waiters]) {
      if (status < 0 || (w.events & ready) !== 0) w.resolve();
    }
  }
}
