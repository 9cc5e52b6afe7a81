/**
 * Slab: fixed-size chunks of a mailbox segment for payloads too large to
 * copy through the message ring (layout in mailbox-layout.ts).
 *
 * Contract:
 * - `tryAcquire()` takes a free chunk for this process (state := own pid) or
 *   returns -1; `acquire()` waits for one. A chunk whose state names a dead
 *   process (a sender or receiver that died holding it) is reclaimed when no
 *   free chunk is left, so a SIGKILLed receiver does not leak chunks.
 * - The sender fills the chunk, marks it QUEUED and writes a record naming
 *   it; the receiver marks it with its own pid (a lease) and gives it back
 *   with `release()`. Only QUEUED chunks are never reclaimed: the record that
 *   names them is still in the ring.
 * - A process that dies between taking a record out of the ring and marking
 *   the chunk leaks that chunk (a window of one store).
 */
import { IpcError } from '../../errors.js';
import type { WaitOptions } from '../../shm/futex.js';
import { MpmcRing } from '../../shm/mpmc-ring.js';
import { native } from '../../shm/native.js';
import { CHUNK_FREE, CHUNK_QUEUED, type MailboxLayout } from './mailbox-layout.js';

export class Slab {
  readonly #free: MpmcRing;
  readonly #states: Int32Array;
  readonly #buffer: SharedArrayBuffer;
  readonly #layout: MailboxLayout;
  readonly #pid = process.pid;
  readonly #index = new Uint8Array(4);

  /** Senders parked waiting for a free chunk, in every attached process (a snapshot). */
  get waitingForChunk(): number {
    return this.#free.waitingConsumers;
  }

  constructor(buffer: SharedArrayBuffer, layout: MailboxLayout) {
    this.#buffer = buffer;
    this.#layout = layout;
    this.#free = new MpmcRing(buffer, layout.freeRingOffset);
    this.#states = new Int32Array(buffer, layout.statesOffset, layout.slabChunks);
  }

  /** Bytes of chunk `i` (length `length`) as a view on the shared memory. */
  view(i: number, length: number): Buffer {
    return Buffer.from(this.#buffer, this.#layout.chunksOffset + i * this.#layout.chunkBytes, length);
  }

  tryAcquire(): number {
    let got = this.#free.tryReadWith(readIndex);
    if (got === null && this.#reclaim() > 0) got = this.#free.tryReadWith(readIndex);
    if (got === null) return -1;
    Atomics.store(this.#states, got, this.#pid);
    return got;
  }

  async acquire(options: WaitOptions): Promise<number> {
    const now = this.tryAcquire();
    if (now >= 0) return now;
    const got = await this.#free.readWith(readIndex, options);
    Atomics.store(this.#states, got, this.#pid);
    return got;
  }

  /** The sender is done writing: the chunk now belongs to the record. */
  markQueued(i: number): void {
    Atomics.store(this.#states, i, CHUNK_QUEUED);
  }

  /** A receiver took the record naming chunk `i`: it holds the chunk now. */
  lease(i: number): void {
    Atomics.store(this.#states, i, this.#pid);
  }

  release(i: number): void {
    Atomics.store(this.#states, i, CHUNK_FREE);
    new DataView(this.#index.buffer).setUint32(0, i, true);
    // The free ring has a cell for every chunk, so this never finds it full;
    // once the mailbox is closed nobody needs the chunk back.
    try {
      this.#free.tryWrite(this.#index);
    } catch (err) {
      if (!(err instanceof IpcError && err.code === 'MAILBOX_CLOSED')) throw err;
    }
  }

  /** Wake anyone waiting for a chunk (the mailbox is closing). */
  close(): void {
    this.#free.close();
  }

  /** Give chunks held by dead processes back; returns how many. */
  #reclaim(): number {
    const states = this.#states;
    const shm = native();
    let n = 0;
    for (let i = 0; i < states.length; i++) {
      const holder = Atomics.load(states, i);
      if (holder > 0 && holder !== this.#pid && !shm.isAlive(holder)) {
        if (Atomics.compareExchange(states, i, holder, CHUNK_FREE) === holder) {
          this.release(i);
          n++;
        }
      }
    }
    return n;
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
