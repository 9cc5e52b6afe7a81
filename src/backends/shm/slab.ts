/**
 * Slab: fixed-size chunks of a mailbox segment for payloads too large to
 * copy through the message ring (layout and chunk states in
 * mailbox-layout.ts).
 *
 * Contract:
 * - `tryAcquire()` takes a chunk for this process (state := own pid) or
 *   returns -1; `acquire()` waits for one. When no chunk is free, a chunk
 *   whose state names a dead process (a sender or receiver that died holding
 *   it) is taken over by CAS from the dead pid to ours, so nothing is lost
 *   if we die too. A waiting `acquire()` looks for dead holders again every
 *   `livenessCheckMs` (default 100 ms): a holder that dies while others wait
 *   frees its chunk for them.
 * - The sender fills the chunk and marks it QUEUED from inside the
 *   message-ring write that names it (`markQueued` in the record's filler,
 *   between claiming the cell and publishing it); until then the chunk is
 *   the sender's, reclaimable if it dies, e.g. while it waits for room.
 * - A receiver takes a record naming a chunk and marks the chunk its own
 *   (`lease`) from inside the ring read, before the cell is freed; it gives
 *   the chunk back with `release()`, which stores FREE from inside the
 *   free-ring write. `lend()` makes the view a receiver gets: a separate
 *   SharedArrayBuffer over the chunk (native alias), so a lease tied to that
 *   buffer lasts exactly as long as any view of the chunk is reachable.
 * - Every state change happens either by CAS from a dead holder or inside a
 *   ring operation's claim-to-publish window. A process killed inside such a
 *   window stops that ring (see mpmc-ring.ts), which is fatal for the
 *   mailbox anyway; outside them no chunk can be lost to a dead process.
 *   QUEUED chunks are never reclaimed: the record that names them is in the
 *   ring. Worker threads of one process share its pid, so a chunk held by a
 *   terminated worker is only reclaimed once the whole process is gone.
 */
import { IpcError, TimeoutError } from '../../errors.js';
import { deadlineAfter, remaining, type WaitOptions } from '../../shm/futex.js';
import { holderDied, livenessCheckMs } from '../../shm/holder-liveness.js';
import { MpmcRing } from '../../shm/mpmc-ring.js';
import { native } from '../../shm/native.js';
import { CHUNK_FREE, CHUNK_QUEUED, type MailboxLayout } from './mailbox-layout.js';

export class Slab {
  readonly #free: MpmcRing;
  readonly #states: Int32Array;
  readonly #buffer: SharedArrayBuffer;
  readonly #layout: MailboxLayout;
  readonly #pid = process.pid;
  readonly #livenessMs: number;
  /** Reads a chunk index out of a free-ring record and marks the chunk ours (inside the read). */
  readonly #take = (view: Uint8Array): number => {
    const i = readIndex(view);
    Atomics.store(this.#states, i, this.#pid);
    return i;
  };
  /** The chunk a release() is writing into the free ring (its filler reads it). */
  #releasing = 0;
  readonly #fillFree = (bytes: Uint8Array, off: number): void => {
    const i = this.#releasing;
    bytes[off] = i & 0xff;
    bytes[off + 1] = (i >>> 8) & 0xff;
    bytes[off + 2] = (i >>> 16) & 0xff;
    bytes[off + 3] = (i >>> 24) & 0xff;
    Atomics.store(this.#states, i, CHUNK_FREE);
  };

  /** Senders parked waiting for a free chunk, in every attached process (a snapshot). */
  get waitingForChunk(): number {
    return this.#free.waitingConsumers;
  }

  constructor(buffer: SharedArrayBuffer, layout: MailboxLayout, options: { livenessCheckMs?: number } = {}) {
    this.#buffer = buffer;
    this.#layout = layout;
    this.#livenessMs = livenessCheckMs(options);
    this.#free = new MpmcRing(buffer, layout.freeRingOffset);
    this.#states = new Int32Array(buffer, layout.statesOffset, layout.slabChunks);
  }

  /** Bytes of chunk `i` (length `length`) as a view on the segment, for the sender that holds it. */
  view(i: number, length: number): Buffer {
    return Buffer.from(this.#buffer, this.#chunkOffset(i), length);
  }

  /**
   * Bytes of chunk `i` as a view on a SharedArrayBuffer of its own (an alias
   * of the segment's memory): every view of the chunk a receiver can make
   * keeps that buffer, and so a lease registered on it, reachable.
   */
  lend(i: number, length: number): Buffer {
    return Buffer.from(native().alias(this.#buffer, this.#chunkOffset(i), length));
  }

  tryAcquire(): number {
    const got = this.#free.tryReadWith(this.#take);
    return got ?? this.#reclaimOne();
  }

  async acquire(options: WaitOptions): Promise<number> {
    const now = this.tryAcquire();
    if (now >= 0) return now;
    const deadline = deadlineAfter(options.timeout);
    for (;;) {
      const left = remaining(deadline);
      try {
        return await this.#free.readWith(this.#take, {
          timeout: Math.min(left, this.#livenessMs),
          signal: options.signal,
        });
      } catch (err) {
        if (!(err instanceof TimeoutError) || left <= this.#livenessMs) throw err;
      }
      const reclaimed = this.tryAcquire();
      if (reclaimed >= 0) return reclaimed;
    }
  }

  /** The sender is writing the record that names chunk `i` (call from its filler): the chunk belongs to the record. */
  markQueued(i: number): void {
    Atomics.store(this.#states, i, CHUNK_QUEUED);
  }

  /** A receiver is taking the record naming chunk `i` (call from its take callback): it holds the chunk now. */
  lease(i: number): void {
    Atomics.store(this.#states, i, this.#pid);
  }

  /** Give chunk `i` (held by this process) back to the free ring. */
  release(i: number): void {
    this.#releasing = i;
    // The free ring has a cell for every chunk, so this never finds it full;
    // once the mailbox is closed nobody needs the chunk back.
    try {
      this.#free.tryWriteWith(4, this.#fillFree);
    } catch (err) {
      if (!(err instanceof IpcError && err.code === 'MAILBOX_CLOSED')) throw err;
    }
  }

  /** Wake anyone waiting for a chunk (the mailbox is closing). */
  close(): void {
    this.#free.close();
  }

  #chunkOffset(i: number): number {
    return this.#layout.chunksOffset + i * this.#layout.chunkBytes;
  }

  /** Take over one chunk held by a dead process (CAS from its pid to ours); -1 if there is none. */
  #reclaimOne(): number {
    const states = this.#states;
    for (let i = 0; i < states.length; i++) {
      const holder = Atomics.load(states, i);
      if (holder > 0 && holderDied(holder, this.#pid)) {
        if (Atomics.compareExchange(states, i, holder, this.#pid) === holder) return i;
      }
    }
    return -1;
  }
}

function readIndex(view: Uint8Array): number {
  return (
    ((view[0] as number) |
      ((view[1] as number) << 8) |
      ((view[2] as number) << 16) |
      ((view[3] as number) << 24)) >>>
    0
  );
}
