/**
 * Ring: a bounded single-producer/single-consumer queue of variable-size
 * records in shared memory (Agrona/Aeron style), for one producer thread and
 * one consumer thread, usually in different processes.
 *
 * Layout (byteOffset must be 8-aligned, 64-aligned recommended):
 *   +0    magic           i32  RING_MAGIC once initialised (init() only)
 *   +4    capacity        i32  data bytes, a power of two, 64 .. 2^30
 *   +64   tail            i32  producer position: bytes ever written, mod 2^32.
 *                              Written by the producer only (after the record
 *                              bytes), read by the consumer. Futex word the
 *                              consumer parks on.
 *   +68   consumerParked  i32  1 while the consumer is (about to be) parked;
 *                              written by the consumer, read by the producer
 *                              after each publish to decide on a wake.
 *   +128  head            i32  consumer position; written by the consumer only
 *                              (after it has read the records), read by the
 *                              producer. Futex word the producer parks on.
 *   +132  producerParked  i32  mirror of consumerParked for the producer.
 *   +256  data            capacity bytes of records.
 * tail and head sit on separate 64-byte cache lines so the two sides do not
 * false-share.
 *
 * Record at position p (offset p & (capacity-1), always 8-aligned):
 *   +0 length i32 (payload bytes, >= 0; PADDING = -1 marks "skip to the end
 *      of the data area", written when a record would not fit before the end)
 *   +4 reserved i32 (0)
 *   +8 payload, then zero or more pad bytes to the next multiple of 8.
 * A record never wraps, so the consumer can hand out zero-copy views. The
 * payload limit is capacity/2 - 8, which guarantees a record always fits
 * once the ring drains.
 *
 * Contract:
 * - Records arrive complete, once, in order. tryWrite → boolean; tryRead →
 *   Uint8Array copy | null; readBatch hands out views valid only during the
 *   callback; write/read wait without blocking the event loop (spin, then
 *   park on a futex); writeSync/readSync block the thread. Timeouts reject
 *   with TimeoutError, aborts with AbortError, oversize records with
 *   MessageTooLargeError.
 * - Exactly one RingProducer and one RingConsumer may be attached, and each
 *   handle allows one pending blocking call at a time (a second one throws
 *   RECEIVER_BUSY / INVALID_ARGUMENT): the single-writer fields and the
 *   parked flags rely on it. Nothing enforces the one-of-each rule across
 *   processes.
 * - Why no lost wakeups: a side publishes its position (seq-cst store) then
 *   reads the other's parked flag; a parking side sets its flag (seq-cst)
 *   then rechecks the position, and the kernel rechecks the futex word.
 */
import { IpcError, MessageTooLargeError, TimeoutError } from '../errors.js';
import {
  DEFAULT_SPIN,
  deadlineAfter,
  futexWaitAsync,
  futexWaitSync,
  futexWake,
  remaining,
  spinWhile,
  throwIfAborted,
  type WaitOptions,
} from './futex.js';
import { checkPlacement, checkPowerOfTwo } from './layout-checks.js';

/** 'RING' */
export const RING_MAGIC = 0x52494e47;
const MAGIC = 0;
const CAPACITY = 1;
const TAIL = 16;
const CONSUMER_PARKED = 17;
const HEAD = 32;
const PRODUCER_PARKED = 33;
const HEADER_BYTES = 256;
const RECORD_HEADER = 8;
const PADDING = -1;
const MIN_CAPACITY = 64;
const MAX_CAPACITY = 2 ** 30;

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Shared view plumbing for both ends. */
class RingView {
  readonly ctl: Int32Array;
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  readonly capacity: number;
  readonly mask: number;
  readonly maxPayload: number;

  constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    checkPlacement(buffer, byteOffset, HEADER_BYTES, 8, 'Ring');
    this.ctl = new Int32Array(buffer, byteOffset, HEADER_BYTES / 4);
    if (Atomics.load(this.ctl, MAGIC) !== RING_MAGIC)
      throw new IpcError('INVALID_ARGUMENT', `no initialised Ring at offset ${byteOffset}`);
    this.capacity = Atomics.load(this.ctl, CAPACITY);
    checkPlacement(buffer, byteOffset, HEADER_BYTES + this.capacity, 8, 'Ring');
    this.bytes = new Uint8Array(buffer, byteOffset + HEADER_BYTES, this.capacity);
    this.words = new Int32Array(buffer, byteOffset + HEADER_BYTES, this.capacity / 4);
    this.mask = this.capacity - 1;
    this.maxPayload = this.capacity / 2 - RECORD_HEADER;
  }
}

export const Ring = {
  HEADER_BYTES,
  /** Bytes a ring with `capacity` data bytes occupies. */
  bytesFor(capacity: number): number {
    return HEADER_BYTES + capacity;
  },
  /** Initialise a ring at `byteOffset` (once, before either end attaches). */
  init(buffer: SharedArrayBuffer, byteOffset: number, capacity: number): void {
    checkPowerOfTwo(capacity, MIN_CAPACITY, MAX_CAPACITY, 'ring capacity', `${MIN_CAPACITY}..2^30`);
    checkPlacement(buffer, byteOffset, HEADER_BYTES + capacity, 8, 'Ring');
    const ctl = new Int32Array(buffer, byteOffset, HEADER_BYTES / 4);
    ctl.fill(0);
    Atomics.store(ctl, CAPACITY, capacity);
    Atomics.store(ctl, MAGIC, RING_MAGIC);
  },
} as const;

export class RingProducer {
  readonly #r: RingView;
  #tail: number;
  #pending = false;

  constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    this.#r = new RingView(buffer, byteOffset);
    this.#tail = Atomics.load(this.#r.ctl, TAIL) >>> 0;
  }

  /** Largest payload a record may carry. */
  get maxPayload(): number {
    return this.#r.maxPayload;
  }

  /** Append one record if there is room now. */
  tryWrite(payload: Uint8Array): boolean {
    const r = this.#r;
    const len = payload.byteLength;
    if (len > r.maxPayload) throw new MessageTooLargeError(len, r.maxPayload);
    const need = RECORD_HEADER + align8(len);
    let tail = this.#tail;
    const free = r.capacity - ((tail - (Atomics.load(r.ctl, HEAD) >>> 0)) >>> 0);
    let off = tail & r.mask;
    const toEnd = r.capacity - off;
    if (need > toEnd) {
      if (free < toEnd + need) return false;
      r.words[off >> 2] = PADDING;
      tail = (tail + toEnd) >>> 0;
      off = 0;
    } else if (free < need) {
      return false;
    }
    r.words[off >> 2] = len;
    r.words[(off >> 2) + 1] = 0;
    r.bytes.set(payload, off + RECORD_HEADER);
    this.#tail = (tail + need) >>> 0;
    Atomics.store(r.ctl, TAIL, this.#tail | 0);
    if (Atomics.load(r.ctl, CONSUMER_PARKED) !== 0) futexWake(r.ctl, TAIL, 1);
    return true;
  }

  /** Append one record, waiting for room without blocking the event loop. */
  async write(payload: Uint8Array, options: WaitOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    if (this.tryWrite(payload)) return;
    const deadline = deadlineAfter(options.timeout);
    this.#enter();
    const ctl = this.#r.ctl;
    try {
      for (;;) {
        const head = Atomics.load(ctl, HEAD);
        if (spinWhile(ctl, HEAD, head, DEFAULT_SPIN) && this.tryWrite(payload)) return;
        Atomics.store(ctl, PRODUCER_PARKED, 1);
        // Park on the head seen before the last attempt: if the consumer has
        // moved it since, the kernel refuses to park and we retry.
        const seen = Atomics.load(ctl, HEAD);
        if (this.tryWrite(payload)) return;
        const left = remaining(deadline);
        if (left === 0) throw new TimeoutError('ring write timed out');
        await futexWaitAsync(ctl, HEAD, seen, { timeout: left, signal: options.signal });
        Atomics.store(ctl, PRODUCER_PARKED, 0);
        if (this.tryWrite(payload)) return;
      }
    } finally {
      Atomics.store(ctl, PRODUCER_PARKED, 0);
      this.#pending = false;
    }
  }

  /** Append one record, blocking this thread for room. */
  writeSync(payload: Uint8Array, timeoutMs: number = Number.POSITIVE_INFINITY): void {
    if (this.tryWrite(payload)) return;
    const deadline = deadlineAfter(timeoutMs);
    this.#enter();
    const ctl = this.#r.ctl;
    try {
      for (;;) {
        const head = Atomics.load(ctl, HEAD);
        if (spinWhile(ctl, HEAD, head, DEFAULT_SPIN) && this.tryWrite(payload)) return;
        Atomics.store(ctl, PRODUCER_PARKED, 1);
        // Park on the head seen before the last attempt: if the consumer has
        // moved it since, the kernel refuses to park and we retry.
        const seen = Atomics.load(ctl, HEAD);
        if (this.tryWrite(payload)) return;
        const left = remaining(deadline);
        if (left === 0) throw new TimeoutError('ring write timed out');
        futexWaitSync(ctl, HEAD, seen, left);
        Atomics.store(ctl, PRODUCER_PARKED, 0);
        if (this.tryWrite(payload)) return;
      }
    } finally {
      Atomics.store(ctl, PRODUCER_PARKED, 0);
      this.#pending = false;
    }
  }

  #enter(): void {
    if (this.#pending)
      throw new IpcError('INVALID_ARGUMENT', 'a blocking write is already pending on this RingProducer');
    this.#pending = true;
  }
}

export class RingConsumer {
  readonly #r: RingView;
  #head: number;
  #pending = false;

  constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    this.#r = new RingView(buffer, byteOffset);
    this.#head = Atomics.load(this.#r.ctl, HEAD) >>> 0;
  }

  /**
   * Hand up to `max` available records to `onRecord` as zero-copy views
   * (valid only during the call), then release their space at once.
   * Returns how many were delivered; 0 when the ring is empty.
   */
  readBatch(onRecord: (record: Uint8Array) => void, max: number = Number.POSITIVE_INFINITY): number {
    const r = this.#r;
    const tail = Atomics.load(r.ctl, TAIL) >>> 0;
    let head = this.#head;
    let n = 0;
    try {
      while (head !== tail && n < max) {
        const off = head & r.mask;
        const len = r.words[off >> 2] as number;
        if (len === PADDING) {
          head = (head + r.capacity - off) >>> 0;
          continue;
        }
        const start = off + RECORD_HEADER;
        head = (head + RECORD_HEADER + align8(len)) >>> 0;
        n++;
        onRecord(r.bytes.subarray(start, start + len));
      }
    } finally {
      if (head !== this.#head) this.#release(head);
    }
    return n;
  }

  /** Take one record (a copy) if available. */
  tryRead(): Uint8Array | null {
    let out: Uint8Array | null = null;
    this.readBatch((view) => {
      out = view.slice();
    }, 1);
    return out;
  }

  /** Take one record, waiting without blocking the event loop. */
  async read(options: WaitOptions = {}): Promise<Uint8Array> {
    throwIfAborted(options.signal);
    const first = this.tryRead();
    if (first !== null) return first;
    const deadline = deadlineAfter(options.timeout);
    this.#enter();
    const ctl = this.#r.ctl;
    try {
      for (;;) {
        const tail = this.#head | 0;
        if (spinWhile(ctl, TAIL, tail, DEFAULT_SPIN)) {
          const got = this.tryRead();
          if (got !== null) return got;
          continue;
        }
        Atomics.store(ctl, CONSUMER_PARKED, 1);
        if (Atomics.load(ctl, TAIL) === tail) {
          const left = remaining(deadline);
          if (left === 0) throw new TimeoutError('ring read timed out');
          await futexWaitAsync(ctl, TAIL, tail, { timeout: left, signal: options.signal });
        }
        Atomics.store(ctl, CONSUMER_PARKED, 0);
        const got = this.tryRead();
        if (got !== null) return got;
      }
    } finally {
      Atomics.store(ctl, CONSUMER_PARKED, 0);
      this.#pending = false;
    }
  }

  /** Take one record, blocking this thread. */
  readSync(timeoutMs: number = Number.POSITIVE_INFINITY): Uint8Array {
    const first = this.tryRead();
    if (first !== null) return first;
    const deadline = deadlineAfter(timeoutMs);
    this.#enter();
    const ctl = this.#r.ctl;
    try {
      for (;;) {
        const tail = this.#head | 0;
        if (spinWhile(ctl, TAIL, tail, DEFAULT_SPIN)) {
          const got = this.tryRead();
          if (got !== null) return got;
          continue;
        }
        Atomics.store(ctl, CONSUMER_PARKED, 1);
        if (Atomics.load(ctl, TAIL) === tail) {
          const left = remaining(deadline);
          if (left === 0) throw new TimeoutError('ring read timed out');
          futexWaitSync(ctl, TAIL, tail, left);
        }
        Atomics.store(ctl, CONSUMER_PARKED, 0);
        const got = this.tryRead();
        if (got !== null) return got;
      }
    } finally {
      Atomics.store(ctl, CONSUMER_PARKED, 0);
      this.#pending = false;
    }
  }

  #release(head: number): void {
    const ctl = this.#r.ctl;
    this.#head = head;
    Atomics.store(ctl, HEAD, head | 0);
    if (Atomics.load(ctl, PRODUCER_PARKED) !== 0) futexWake(ctl, HEAD, 1);
  }

  #enter(): void {
    if (this.#pending)
      throw new IpcError('RECEIVER_BUSY', 'a blocking read is already pending on this RingConsumer');
    this.#pending = true;
  }
}
