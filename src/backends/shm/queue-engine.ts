/**
 * QueueEngine: sending and receiving on a shared-memory mailbox of the
 * queue kind (`queue: 'priority'`), the whole mailbox contract of
 * core/mailbox-core.ts over SharedQueue (shared-queue.ts): every operation
 * is a short critical section under the queue's robust mutex, and every
 * wait is a futex wait off the event loop that honours the caller's
 * deadline and AbortSignal.
 *
 * Contract:
 * - Capacity N: N slots; a sender waits for a free one (room). Capacity 0
 *   (rendezvous): a send completes when a receive takes the message; a
 *   non-blocking one only if a receive is waiting already. 'unbounded':
 *   senders never wait; the segment's slots are the budget, and a send
 *   finding none free rejects at once with KERNEL_FULL.
 * - Priorities 0..31, highest first, FIFO within a priority (accept order).
 * - Competing delivery: a message goes to the receive that has waited
 *   longest (rotation over waiting receivers, as the kernel does), else it
 *   is queued and the next receive takes it. Broadcast: every subscribed
 *   handle (each handle that may receive subscribes when it opens) reads
 *   each message; it is freed when all have; capacity bounds the messages
 *   some subscriber has not read yet. Sent with nobody subscribed, a
 *   message waits for the first subscriber.
 * - `ack`: the message stays HELD by this handle until `message.ack()`;
 *   closing the handle or the death of its process (found by a sweep every
 *   LIVENESS_MS by any waiting party) redelivers it, ahead of messages
 *   accepted after it. A message handed to a receive that dies before it
 *   took it is redelivered the same way. Broadcast: a copy is its
 *   receiver's; an unacknowledged one is dropped when its receiver leaves,
 *   unless no subscriber is left, when it waits for the next one (the
 *   kernel's rule for broadcast copies).
 * - `sync`: the send resolves once a receive has taken the message (handed
 *   over counts); on timeout, abort or close it is withdrawn if still queued
 *   and the send rejects — if it was taken first, the send resolves.
 * - Races: a receive whose timeout or abort comes after a message was
 *   handed to it resolves with that message (nothing handed over is lost).
 */
import { IpcError, MailboxClosedError, TimeoutError, WouldBlockError } from '../../errors.js';
import { futexWaitAsync, remaining, spinWhile } from '../../shm/futex.js';
import { currentThreadId } from '../../shm/holder-liveness.js';
import { codecName } from '../../wire/payload-codec.js';
import type { MailboxLayout } from './mailbox-layout.js';
import { type Holder, SharedQueue, SLOT_SLAB, SLOT_SYNC, type SlotRecord } from './shared-queue.js';
import { ShmMessage } from './shm-message.js';
import type { Slab } from './slab.js';

/** How often waiting parties look for dead holders, waiters and subscribers (ms). */
export const LIVENESS_MS = 100;

/**
 * How long a sender finding no room watches for a slot to be freed before
 * it parks (ms). Between two processes at 64 B, most waits for room were
 * shorter than this.
 */
const ROOM_WATCH_MS = 0.05;

/** Loads of the lock word before an acquisition gives up spinning (each a few ns). */
const LOCK_SPIN = 2000;

let nextToken = 1;

export interface QueueSendJob {
  readonly payload: Uint8Array;
  readonly codec: number;
  readonly priority: number;
  readonly sync: boolean;
  /** Set once the message is in the queue: its slot and the slot's gen then. */
  slot?: number;
  gen?: number;
  /** True if it was handed to a waiting receive already (taken). */
  taken?: boolean;
}

/** A receive registered as waiting: its entry and the entry's arrival number. */
interface WaitingEntry {
  readonly entry: number;
  readonly order: number;
}

export interface QueueReceiveOptions {
  ack: boolean;
  copy: boolean;
  nonblock: boolean;
  deadline: number;
  signal: AbortSignal;
}

/** Spin while the word equals `expected`, for up to `ms`; true if it changed. */
function spinFor(view: Int32Array, index: number, expected: number, ms: number): boolean {
  const end = performance.now() + ms;
  do {
    if (spinWhile(view, index, expected, 256)) return true;
  } while (performance.now() < end);
  return false;
}

export class QueueEngine {
  readonly #name: string;
  readonly #layout: MailboxLayout;
  readonly #q: SharedQueue;
  readonly #slab: Slab | undefined;
  readonly #sender: number;
  readonly #isClosed: () => boolean;
  readonly #me: Holder;
  readonly #broadcast: boolean;
  #subscriber = -1;
  #lastSweep = 0;
  /** Scratch records for the slot being written / read (only inside one critical section). */
  readonly #out: SlotRecord = { priority: 0, sender: 0, codec: 0, flags: 0, length: 0, chunk: 0 };
  readonly #in: SlotRecord = { priority: 0, sender: 0, codec: 0, flags: 0, length: 0, chunk: 0 };

  constructor(
    name: string,
    buffer: SharedArrayBuffer,
    layout: MailboxLayout,
    slab: Slab | undefined,
    sender: number,
    isClosed: () => boolean,
    receives: boolean,
  ) {
    this.#name = name;
    this.#layout = layout;
    this.#slab = slab;
    this.#sender = sender;
    this.#isClosed = isClosed;
    this.#me = { pid: process.pid, token: nextToken++ };
    this.#broadcast = layout.broadcast;
    this.#q = new SharedQueue(buffer, layout.ringOffset, layout.queueSlots, layout.mapThreshold);
    if (slab !== undefined) this.#q.releaseChunk = (chunk) => slab.release(chunk);
    // Departed subscribers are swept first: a copy one of them left
    // unacknowledged, as the last subscriber, comes to this one.
    if (this.#broadcast && receives) {
      this.#withLock(() => {
        this.#q.sweep(true, false);
        this.#subscribe();
      });
    }
  }

  /** Messages queued (rendezvous: not counting those whose sender still waits). */
  get depth(): number {
    const q = this.#q;
    return this.#layout.capacity === 0 ? q.queued - q.syncPending : q.queued;
  }

  /** Senders parked for room plus synchronous senders waiting for a receiver, in every process. */
  get waitingSenders(): number {
    return this.#q.roomWaiters + this.#q.syncPending;
  }

  get waitingReceivers(): number {
    return this.#q.waitingReceivers;
  }

  // ------------------------------------------------------------------ sending

  /**
   * Queue `job` now if the lock is free and there is room (and, for a slab
   * payload, the chunk `chunk` holds it already): true if queued. False:
   * try again with sendWaiting. When the lock is held, wait up to
   * `lockWaitMs` for it, blocking the thread (critical sections are
   * short). Throws WOULD_BLOCK for a non-blocking rendezvous send nobody
   * waits for, KERNEL_FULL for an unbounded mailbox out of slots.
   */
  trySend(job: QueueSendJob, chunk: number, nonblock: boolean, lockWaitMs: number): boolean {
    const m = this.#q.mutex;
    let locked = this.#tryLock();
    if (!locked && lockWaitMs > 0 && m.owner !== this.#ownerTag()) {
      try {
        if (m.lockSync(lockWaitMs).ownerDied) this.#q.repair();
        locked = true;
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
      }
    }
    if (!locked) return false;
    try {
      this.#throwIfClosed();
      return this.#enqueueLocked(job, chunk, nonblock);
    } finally {
      this.#unlock();
    }
  }

  /** Queue `job`, waiting for the lock, a slab chunk and room as `deadline` and `signal` allow. */
  async sendWaiting(job: QueueSendJob, deadline: number, signal: AbortSignal): Promise<void> {
    let chunk = -1;
    const slab = this.#slab;
    try {
      if (job.payload.byteLength > this.#layout.mapThreshold) {
        const s = slab as Slab;
        chunk = await s.acquire({ timeout: remaining(deadline), signal });
        s.view(chunk, job.payload.byteLength).set(job.payload);
      }
      const [room, at] = this.#q.roomWord();
      let watch = true;
      for (;;) {
        if (!this.#tryLock()) await this.#lockSlow(deadline, signal);
        let seen: number;
        try {
          this.#throwIfClosed();
          this.#sweepIfDue();
          if (this.#enqueueLocked(job, chunk, false)) {
            chunk = -1;
            return;
          }
          if (!watch) this.#q.roomWaiting(1);
          seen = Atomics.load(room, at);
        } finally {
          this.#unlock();
        }
        if (watch) {
          // A receiver that is taking messages frees a slot within
          // microseconds: watch for it before asking for a wake, which costs
          // that receiver a syscall in its loop (and, on a busy machine, its
          // CPU to the woken thread). Then try again, asking this time.
          watch = false;
          spinFor(room, at, seen, Math.min(ROOM_WATCH_MS, remaining(deadline)));
          continue;
        }
        try {
          const left = remaining(deadline);
          if (left === 0) throw new TimeoutError(`${this.#name}: operation timed out`);
          await futexWaitAsync(room, at, seen, { timeout: Math.min(left, LIVENESS_MS), signal });
        } finally {
          this.#q.roomWaiting(-1);
        }
      }
    } finally {
      if (chunk >= 0) slab?.release(chunk);
    }
  }

  /**
   * A synchronous send's message is queued (job.slot): wait until a receive
   * takes it. On timeout, abort or close, withdraw it if it is still queued
   * and reject; if a receive took it first, resolve.
   */
  async awaitTaken(job: QueueSendJob, deadline: number, signal: AbortSignal): Promise<void> {
    if (job.taken === true) return;
    const slot = job.slot as number;
    const gen = job.gen as number;
    const [w, at] = this.#q.genWord(slot);
    for (;;) {
      if (Atomics.load(w, at) !== gen) return;
      let failure: unknown;
      if (this.#isClosed()) failure = new MailboxClosedError(`mailbox ${this.#name} is closed`);
      else {
        const left = remaining(deadline);
        if (left === 0) failure = new TimeoutError(`${this.#name}: operation timed out`);
        else {
          try {
            await futexWaitAsync(w, at, gen, { timeout: Math.min(left, LIVENESS_MS), signal });
            continue;
          } catch (err) {
            failure = err;
          }
        }
      }
      if (Atomics.load(w, at) !== gen) return;
      if (!this.#tryLock()) await this.#lockSlow(Number.POSITIVE_INFINITY, undefined);
      let withdrawn: boolean;
      try {
        withdrawn = this.#q.withdraw(slot, gen);
      } finally {
        this.#unlock();
      }
      if (withdrawn) throw failure;
      return;
    }
  }

  // ------------------------------------------------------------------ receiving

  /**
   * The next queued message if the lock is free at this instant (one
   * compare-and-swap) and one is queued; else null (then receive(), which
   * spins for the lock, waits, and finds a dead holder). Allocates nothing
   * but the message: the usual case for a receiver that keeps up.
   */
  takeNow(ack: boolean, copy: boolean): ShmMessage | null {
    const q = this.#q;
    if (this.#broadcast || !q.mutex.tryLockFree()) return null;
    try {
      this.#throwIfClosed();
      if (q.taken > 0 || q.syncPending > 0) this.#sweepIfDue();
      const i = q.takeNext();
      return i < 0 ? null : this.#consume(i, ack, copy);
    } finally {
      this.#unlock();
    }
  }

  /**
   * A receive. When the lock is free at once and a message is queued, the
   * message itself, taken without a promise or a yield; otherwise a
   * promise for it.
   */
  receive(o: QueueReceiveOptions): ShmMessage | Promise<ShmMessage> {
    if (this.#broadcast) return this.#receiveBroadcast(o);
    if (!this.#tryLock()) return this.#receiveAfterLock(o);
    const got = this.#receiveLocked(o);
    return got instanceof ShmMessage ? got : this.#awaitHandOver(got, o);
  }

  async #receiveAfterLock(o: QueueReceiveOptions): Promise<ShmMessage> {
    await this.#lockSlow(o.deadline, o.signal);
    const got = this.#receiveLocked(o);
    return got instanceof ShmMessage ? got : this.#awaitHandOver(got, o);
  }

  /**
   * With the lock held (released before returning): the next queued
   * message, or this receive's new waiting entry (a message is then handed
   * to it).
   */
  #receiveLocked(o: QueueReceiveOptions): ShmMessage | WaitingEntry {
    const q = this.#q;
    try {
      this.#throwIfClosed();
      if (q.taken > 0 || q.syncPending > 0) this.#sweepIfDue();
      const i = q.takeNext();
      if (i >= 0) return this.#consume(i, o.ack, o.copy);
      if (o.nonblock) throw new WouldBlockError(`${this.#name} is empty`);
      const entry = q.addWaiter(this.#me);
      if (entry < 0) throw new IpcError('KERNEL_FULL', `${this.#name}: too many receives waiting`);
      return { entry, order: q.entryOrder(entry) };
    } finally {
      this.#unlock();
    }
  }

  async #awaitHandOver({ entry, order }: WaitingEntry, o: QueueReceiveOptions): Promise<ShmMessage> {
    const q = this.#q;
    const [w, at] = q.wakeWord(entry);
    // A hand-over from a sender that is on a CPU comes within microseconds;
    // parking (a wake through the addon's waiter thread) costs ~100 µs.
    let spun = spinWhile(w, at, 0);
    for (;;) {
      let interrupted: unknown;
      const left = remaining(o.deadline);
      if (spun) spun = false;
      else if (left > 0 && !this.#isClosed()) {
        q.parking(entry);
        try {
          await futexWaitAsync(w, at, 0, { timeout: Math.min(left, LIVENESS_MS), signal: o.signal });
        } catch (err) {
          interrupted = err;
        }
      }
      if (!this.#tryLock()) await this.#lockSlow(Number.POSITIVE_INFINITY, undefined);
      try {
        const out = q.entryOutcome(entry, this.#me, order);
        if (out >= 0) {
          q.removeWaiter(entry);
          return this.#consume(out, o.ack, o.copy);
        }
        if (out === -2) throw new MailboxClosedError(`handle on ${this.#name} closed`);
        if (this.#isClosed() || interrupted !== undefined || remaining(o.deadline) === 0) {
          q.removeWaiter(entry);
          this.#throwIfClosed();
          throw interrupted ?? new TimeoutError(`${this.#name}: operation timed out`);
        }
        this.#sweepIfDue();
        // Messages queued while this receive waits were not handed over
        // (the queue was rebuilt after a lock holder died): take one.
        const i = q.entryOutcome(entry, this.#me, order) === -1 ? q.takeNext() : -1;
        if (i >= 0) {
          q.removeWaiter(entry);
          return this.#consume(i, o.ack, o.copy);
        }
      } finally {
        this.#unlock();
      }
    }
  }

  async #receiveBroadcast(o: QueueReceiveOptions): Promise<ShmMessage> {
    const q = this.#q;
    const [w, at] = q.arrivalWord();
    for (;;) {
      if (!this.#tryLock()) await this.#lockSlow(o.deadline, o.signal);
      let seen: number;
      let b: number;
      try {
        this.#throwIfClosed();
        this.#sweepIfDue();
        b = this.#subscribe();
        const i = q.findFor(b);
        if (i >= 0) {
          const r = q.read(i, this.#in);
          const bytes = this.#copyPayload(i, r);
          const seq = q.seqOf(i);
          q.clearBit(i, b, o.ack);
          const ack = o.ack ? () => this.#withLock(() => q.ackCopy(i, b, seq)) : undefined;
          return new ShmMessage(
            bytes,
            codecName(r.codec),
            r.sender,
            this.#name,
            false,
            undefined,
            r.priority,
            ack,
          );
        }
        if (o.nonblock) throw new WouldBlockError(`${this.#name} is empty`);
        seen = Atomics.load(w, at);
        q.subscriberWaiting(b, 1);
      } finally {
        this.#unlock();
      }
      try {
        const left = remaining(o.deadline);
        if (left === 0) throw new TimeoutError(`${this.#name}: operation timed out`);
        await futexWaitAsync(w, at, seen, { timeout: Math.min(left, LIVENESS_MS), signal: o.signal });
      } finally {
        q.subscriberWaiting(b, -1);
      }
    }
  }

  // ------------------------------------------------------------------ lifecycle

  /** This handle leaves: its unacknowledged and handed-over messages are redelivered, its subscription dropped. */
  close(): void {
    this.#withLock(() => this.#q.release(this.#me, this.#broadcast));
  }

  /** The mailbox closed (CLOSED is set): wake every waiter in every process. */
  wakeAll(): void {
    this.#q.wakeAll();
  }

  // ------------------------------------------------------------------ internals (lock held)

  #enqueueLocked(job: QueueSendJob, chunk: number, nonblock: boolean): boolean {
    const q = this.#q;
    const l = this.#layout;
    const i = q.alloc();
    if (i < 0) {
      if (l.capacity === Number.POSITIVE_INFINITY) {
        throw new IpcError(
          'KERNEL_FULL',
          `${this.#name}: the unbounded mailbox's budget of ${l.queueSlots} messages is full`,
        );
      }
      return false;
    }
    const len = job.payload.byteLength;
    const slab = chunk >= 0;
    if (slab) (this.#slab as Slab).markQueued(chunk);
    else q.copyIn(i, job.payload);
    const rendezvous = l.capacity === 0;
    const sync = job.sync || rendezvous;
    const mask = this.#broadcast ? q.subscribers : 0;
    const r = this.#out;
    r.priority = job.priority;
    r.sender = this.#sender;
    r.codec = job.codec;
    r.flags = (slab ? SLOT_SLAB : 0) | (sync ? SLOT_SYNC : 0);
    r.length = len;
    r.chunk = slab ? chunk : 0;
    const gen = q.write(i, r, mask);
    job.slot = i;
    job.gen = gen;
    if (this.#broadcast) {
      if (q.waitingReceivers > 0) q.announceArrival();
      return true;
    }
    job.taken = q.giveToWaiter(i);
    if (rendezvous && nonblock && !job.taken) {
      // Nobody was waiting: the message is withdrawn; a slab chunk stays the
      // caller's (it gives it back once, on the WOULD_BLOCK).
      if (slab) q.detachChunk(i);
      q.withdraw(i, gen);
      throw new WouldBlockError(`${this.#name}: no receiver is waiting (rendezvous)`);
    }
    return true;
  }

  /** Take slot `i` (unlinked or handed to us) for this receive. */
  #consume(i: number, ack: boolean, copy: boolean): ShmMessage {
    const q = this.#q;
    const r = q.read(i, this.#in);
    const codec = codecName(r.codec);
    if (ack) {
      q.hold(i, this.#me);
      const bytes = this.#copyPayload(i, r);
      return new ShmMessage(
        bytes,
        codec,
        r.sender,
        this.#name,
        false,
        undefined,
        r.priority,
        () => this.#ack(i),
        () => this.#nack(i),
      );
    }
    if ((r.flags & SLOT_SLAB) === 0 || copy) {
      const bytes = this.#copyPayload(i, r);
      q.free(i);
      return new ShmMessage(bytes, codec, r.sender, this.#name, false, undefined, r.priority);
    }
    const slab = this.#slab as Slab;
    slab.lease(r.chunk);
    q.detachChunk(i);
    q.free(i);
    const chunk = r.chunk;
    return new ShmMessage(
      slab.lend(chunk, r.length),
      codec,
      r.sender,
      this.#name,
      true,
      () => slab.release(chunk),
      r.priority,
    );
  }

  /** A private copy of slot `i`'s payload (record `r`). */
  #copyPayload(i: number, r: SlotRecord): Buffer {
    if ((r.flags & SLOT_SLAB) === 0) return this.#q.copyOut(i, r.length);
    return Buffer.from((this.#slab as Slab).view(r.chunk, r.length));
  }

  #ack(i: number): void {
    this.#withLock(() => {
      if (this.#q.heldBy(i, this.#me)) this.#q.free(i);
    });
  }

  /** Still ours (not redelivered since by a close or a sweep): back into the queue, as a close does. */
  #nack(i: number): void {
    this.#withLock(() => {
      if (this.#q.heldBy(i, this.#me)) this.#q.requeue(i, false);
    });
  }

  /** This handle's subscriber bit (subscribing again if a sweep dropped it). */
  #subscribe(): number {
    const q = this.#q;
    if (this.#subscriber >= 0 && q.subscriberIs(this.#subscriber, this.#me)) return this.#subscriber;
    const b = q.subscribe(this.#me);
    if (b < 0) throw new IpcError('KERNEL_FULL', `${this.#name}: every broadcast receiver place is taken`);
    this.#subscriber = b;
    return b;
  }

  #sweepIfDue(): void {
    const now = performance.now();
    if (now - this.#lastSweep < LIVENESS_MS) return;
    this.#lastSweep = now;
    this.#q.sweep(this.#broadcast, this.#layout.capacity === 0);
  }

  #throwIfClosed(): void {
    if (this.#isClosed()) throw new MailboxClosedError(`mailbox ${this.#name} is closed`);
  }

  // ------------------------------------------------------------------ the lock
  //
  // The lock is never held across an await: a critical section is
  // synchronous, and an async acquisition (lock()) resumes holding it with
  // the section following at once. tryLock first, so an uncontended
  // operation takes it without yielding.

  /**
   * Take the lock if it can be had within a short spin: a held lock is
   * watched with plain loads (a tryLock on a held lock checks the holder's
   * liveness, a syscall), and tried again once it reads free. Critical
   * sections last about a microsecond, so this mostly beats parking.
   */
  #tryLock(): boolean {
    const m = this.#q.mutex;
    if (m.tryLockFree()) return true;
    // Held by this thread (an async acquisition resuming): spinning cannot help.
    if (m.owner === this.#ownerTag()) return false;
    for (let k = 0; k < LOCK_SPIN; k++) {
      if (m.owner === 0 && m.tryLockFree()) return true;
    }
    // Only now the liveness check: a holder that died leaves the lock taken for good.
    const r = m.tryLock();
    if (r === null) return false;
    if (r.ownerDied) this.#q.repair();
    return true;
  }

  async #lockSlow(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const o: { timeout: number; signal?: AbortSignal } = { timeout: remaining(deadline) };
    if (signal !== undefined) o.signal = signal;
    const r = await this.#q.mutex.lock(o);
    if (r.ownerDied) this.#q.repair();
  }

  /**
   * Run `fn` under the lock: now if it can be had (waiting for another
   * process's short critical section, blocking the thread); later, if an
   * async acquisition of this same thread is just resuming with it.
   */
  #withLock(fn: () => void): void {
    const m = this.#q.mutex;
    if (!this.#tryLock()) {
      if (m.owner === this.#ownerTag()) {
        // Nobody awaits this: a failure (a broadcast mailbox with every
        // subscriber place taken) is reported as a process warning, and a
        // later receive subscribes again or fails itself.
        this.#lockSlow(Number.POSITIVE_INFINITY, undefined)
          .then(() => {
            try {
              fn();
            } finally {
              this.#unlock();
            }
          })
          .catch((err: unknown) => process.emitWarning(err instanceof Error ? err : String(err)));
        return;
      }
      const r = m.lockSync();
      if (r.ownerDied) this.#q.repair();
    }
    try {
      fn();
    } finally {
      this.#unlock();
    }
  }

  /** Release the lock, then make the wakes its critical section owes (see SharedQueue.flushWakes). */
  #unlock(): void {
    this.#q.mutex.unlock();
    this.#q.flushWakes();
  }

  #ownerTag(): number {
    return currentThreadId() & 0x3fffffff;
  }
}
