/**
 * MpmcRing: a bounded multi-producer/multi-consumer queue of variable-size
 * records in shared memory (Vyukov's bounded MPMC queue, one record per
 * cell), for any number of producer and consumer threads in any processes.
 *
 * Layout (byteOffset must be 64-aligned):
 *   +0    magic          i32  MPMC_MAGIC once initialised (init() only)
 *   +4    slots          i32  number of cells, a power of two, 2 .. 2^24
 *   +8    slotSize       i32  largest record payload, bytes
 *   +12   stride         i32  bytes per cell: 8 + slotSize rounded up to 64
 *   +16   flags          i32  CLOSED (bit 0), set once by close()
 *   +20   capacity       i32  most records queued at once, 1 .. slots (init()
 *                             only; 0 in rings from before it existed means
 *                             slots). A producer claims position p only while
 *                             p - dequeuePos < capacity.
 *   +64   enqueuePos     i32  next position to fill, mod 2^32. Producers
 *                             claim positions by CAS. Own cache line.
 *   +128  dequeuePos     i32  next position to take, mod 2^32. Consumers
 *                             claim positions by CAS. Own cache line.
 *   +192  dataEvent      i32  futex word consumers park on; producers add 1
 *                             after publishing when a consumer asked for it.
 *   +196  consumersWaiting i32 threads parked (or about to park) on dataEvent;
 *                             consumers add/sub around parking (a count for
 *                             stat(); wakes go by dataWanted).
 *   +200  dataWanted     i32  1 once a consumer is about to park on dataEvent
 *                             (it stores 1 before every park); the next
 *                             publish exchanges it to 0, adds 1 to dataEvent
 *                             and wakes every consumer parked there. One wake
 *                             syscall per parking, not one per record
 *                             published while a woken consumer is still on
 *                             its way out of the kernel.
 *   +256  spaceEvent     i32  futex word producers park on; consumers add 1
 *                             after freeing cells when a producer asked.
 *   +260  producersWaiting i32 mirror of consumersWaiting.
 *   +264  spaceWanted    i32  mirror of dataWanted.
 *   +320  cells          slots × stride bytes
 *
 * Cell i (at +320 + i × stride), for the position p with p mod slots = i:
 *   +0 seq     i32  p: free for the producer of p; p+1: holds p's record
 *                   (published); p+slots: freed by p's consumer, i.e. free
 *                   for position p+slots. Written only by the one thread
 *                   that claimed p (producer, then consumer), with a
 *                   sequentially consistent store after the data.
 *   +4 length  i32  payload bytes (written by the producer before seq)
 *   +8 payload      up to slotSize bytes
 *
 * Contract:
 * - At most `capacity` records are queued (claimed by producers and not yet
 *   claimed by consumers) at any time: a write finds the ring full at
 *   `capacity`, whatever the power-of-two cell count. The check is part of
 *   the producer's claim (dequeuePos only grows, so room seen before the CAS
 *   on enqueuePos is still there after it): no separate count to keep in
 *   step, nothing a dead process could leave taken.
 * - Every record written is read exactly once, by one consumer. Records of
 *   one producer thread are read in the order it wrote them; a consumer
 *   thread sees each producer's records in that order too (it claims
 *   positions in increasing order). Across producers there is no order.
 * - tryWrite/tryWriteBatch/tryWriteWith and tryRead/readBatch never wait.
 *   write/writeBatch/read wait without blocking the event loop (spin, then
 *   park on an addon thread); writeSync/readSync block the thread. Any
 *   number of calls may be pending at once on one handle. Timeouts reject
 *   with TimeoutError, aborts with AbortError; nothing is written or taken
 *   then. Records larger than slotSize: MessageTooLargeError.
 * - close() marks the ring closed and wakes every parked thread: writes
 *   then fail with MAILBOX_CLOSED; reads drain what is left and then fail
 *   with MAILBOX_CLOSED.
 * - Why no lost wakeups (an event count): a waiter stores 1 in the wanted
 *   word, reads the event word, and only then retries the operation; if
 *   that fails it parks on the event value it read. The other side publishes
 *   (seq store) and then exchanges the wanted word for 0; if it was 1 it
 *   increments the event word and wakes every waiter parked on it. All these
 *   are sequentially consistent Atomics, so either the publisher's exchange
 *   comes after the waiter's store (then the event changes after the waiter
 *   read it, so the kernel refuses to park or the wake finds it), or the
 *   waiter's retry sees the published cell; if another publisher took the
 *   flag in between, its own increment and wake come after it, and either
 *   the waiter read the event after that increment (and its retry sees that
 *   publisher's cell) or the increment/wake reach it. Every parked waiter
 *   is woken, because each stores the flag again before parking again; a
 *   waiter that leaves without taking anything (timeout, abort) still
 *   passes a wake on if one is asked for.
 * - If a thread dies between claiming a position and publishing or freeing
 *   its cell (a window of a few instructions), the ring stops at that cell:
 *   later positions are not reached. The shared-memory mailbox treats that
 *   as fatal for the mailbox (its owner removes it).
 */
import { IpcError, MessageTooLargeError, TimeoutError } from '../errors.js';
import {
  deadlineAfter,
  futexWaitAsync,
  futexWaitSync,
  futexWake,
  remaining,
  throwIfAborted,
  type WaitOptions,
} from './futex.js';
import { checkInteger, checkPlacement, checkPowerOfTwo } from './layout-checks.js';

/** 'MPMC' */
export const MPMC_MAGIC = 0x4d504d43;
const MAGIC = 0;
const SLOTS = 1;
const SLOT_SIZE = 2;
const STRIDE = 3;
const FLAGS = 4;
const CAPACITY = 5;
const ENQUEUE = 16;
const DEQUEUE = 32;
const DATA_EVENT = 48;
const CONSUMERS_WAITING = 49;
const DATA_WANTED = 50;
const SPACE_EVENT = 64;
const PRODUCERS_WAITING = 65;
const SPACE_WANTED = 66;

/** The wanted word of `event` (DATA_EVENT or SPACE_EVENT). */
function wantedOf(event: number): number {
  return event === DATA_EVENT ? DATA_WANTED : SPACE_WANTED;
}
const HEADER_BYTES = 320;
const CELL_HEADER = 8;
const CLOSED = 1;
const MAX_SLOTS = 2 ** 24;
const MAX_SLOT_SIZE = 2 ** 26;
/** Failed attempts before parking; a failed attempt is 2-3 Atomics loads. */
const SPIN_ATTEMPTS = 400;
/**
 * How long a producer finding the ring full keeps trying before it parks
 * (ms): a consumer that is reading frees a cell within microseconds, and a
 * parked producer costs it a wake syscall. Consumers park after
 * SPIN_ATTEMPTS: an empty ring may stay empty for long.
 */
const PRODUCER_SPIN_MS = 0.05;
/** futexWake count for every waiter. */
const WAKE_ALL = 0x7fffffff;

export interface MpmcRingOptions {
  /** Number of cells, a power of two in 2 .. 2^24. */
  slots: number;
  /** Largest record payload in bytes, 0 .. 2^26. */
  slotSize: number;
  /** Most records queued at once, 1 .. slots. Default: slots. */
  capacity?: number;
}

function strideFor(slotSize: number): number {
  return (CELL_HEADER + slotSize + 63) & ~63;
}

function checkOptions(options: MpmcRingOptions): void {
  const { slots, slotSize } = options;
  checkPowerOfTwo(slots, 2, MAX_SLOTS, 'slots', '2..2^24');
  checkInteger(slotSize, 0, MAX_SLOT_SIZE, 'slotSize', '0..2^26');
  if (options.capacity !== undefined) checkInteger(options.capacity, 1, slots, 'capacity', `1..${slots}`);
}

function closedError(): IpcError {
  return new IpcError('MAILBOX_CLOSED', 'the ring is closed');
}

/** Writes a record's payload into `bytes` at `offset` (exactly the length given to tryWriteWith). */
export type RecordFiller = (bytes: Uint8Array, offset: number) => void;

export class MpmcRing {
  static readonly HEADER_BYTES = HEADER_BYTES;

  readonly slots: number;
  /** Most records queued at once (<= slots). */
  readonly capacity: number;
  /** Largest record payload. */
  readonly slotSize: number;
  readonly #ctl: Int32Array;
  readonly #cells: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #mask: number;
  /** Stride in 32-bit words. */
  readonly #strideWords: number;

  /** Bytes a ring with these options occupies. */
  static bytesFor(options: MpmcRingOptions): number {
    checkOptions(options);
    return HEADER_BYTES + options.slots * strideFor(options.slotSize);
  }

  /** Initialise a ring at `byteOffset` (once, before anyone attaches) and attach. */
  static init(buffer: SharedArrayBuffer, byteOffset: number, options: MpmcRingOptions): MpmcRing {
    const bytes = MpmcRing.bytesFor(options);
    checkPlacement(buffer, byteOffset, bytes, 64, 'MpmcRing');
    const stride = strideFor(options.slotSize);
    const ctl = new Int32Array(buffer, byteOffset, HEADER_BYTES / 4);
    ctl.fill(0);
    const cells = new Int32Array(buffer, byteOffset + HEADER_BYTES, (options.slots * stride) / 4);
    for (let i = 0; i < options.slots; i++) cells[(i * stride) >> 2] = i;
    Atomics.store(ctl, SLOTS, options.slots);
    Atomics.store(ctl, SLOT_SIZE, options.slotSize);
    Atomics.store(ctl, STRIDE, stride);
    Atomics.store(ctl, CAPACITY, options.capacity ?? options.slots);
    Atomics.store(ctl, MAGIC, MPMC_MAGIC);
    return new MpmcRing(buffer, byteOffset);
  }

  /** Attach to a ring initialised at `byteOffset`. */
  constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    checkPlacement(buffer, byteOffset, HEADER_BYTES, 64, 'MpmcRing');
    const ctl = new Int32Array(buffer, byteOffset, HEADER_BYTES / 4);
    if (Atomics.load(ctl, MAGIC) !== MPMC_MAGIC)
      throw new IpcError('INVALID_ARGUMENT', `no initialised MpmcRing at offset ${byteOffset}`);
    this.slots = Atomics.load(ctl, SLOTS);
    this.slotSize = Atomics.load(ctl, SLOT_SIZE);
    const stride = Atomics.load(ctl, STRIDE);
    const capacity = Atomics.load(ctl, CAPACITY);
    this.capacity = capacity === 0 ? this.slots : capacity;
    if (
      stride !== strideFor(this.slotSize) ||
      (this.slots & (this.slots - 1)) !== 0 ||
      this.capacity < 1 ||
      this.capacity > this.slots
    )
      throw new IpcError('INVALID_ARGUMENT', `corrupt MpmcRing header at offset ${byteOffset}`);
    checkPlacement(buffer, byteOffset, HEADER_BYTES + this.slots * stride, 64, 'MpmcRing');
    this.#ctl = ctl;
    this.#cells = new Int32Array(buffer, byteOffset + HEADER_BYTES, (this.slots * stride) / 4);
    this.#bytes = new Uint8Array(buffer, byteOffset + HEADER_BYTES, this.slots * stride);
    this.#mask = this.slots - 1;
    this.#strideWords = stride >> 2;
  }

  get closed(): boolean {
    return (Atomics.load(this.#ctl, FLAGS) & CLOSED) !== 0;
  }

  /** Readers parked (or about to park) waiting for a record, in every attached process (a snapshot). */
  get waitingConsumers(): number {
    return Atomics.load(this.#ctl, CONSUMERS_WAITING);
  }

  /** Writers parked (or about to park) waiting for a free cell, in every attached process (a snapshot). */
  get waitingProducers(): number {
    return Atomics.load(this.#ctl, PRODUCERS_WAITING);
  }

  /** Records published and not yet taken (a snapshot; claimed cells count). */
  get size(): number {
    const ctl = this.#ctl;
    const n = (Atomics.load(ctl, ENQUEUE) - Atomics.load(ctl, DEQUEUE)) | 0;
    return Math.max(0, Math.min(this.slots, n));
  }

  /** Close the ring for everyone and wake every parked thread. Idempotent. */
  close(): void {
    const ctl = this.#ctl;
    Atomics.or(ctl, FLAGS, CLOSED);
    Atomics.add(ctl, DATA_EVENT, 1);
    Atomics.add(ctl, SPACE_EVENT, 1);
    futexWake(ctl, DATA_EVENT, 0x7fffffff);
    futexWake(ctl, SPACE_EVENT, 0x7fffffff);
  }

  // ------------------------------------------------------------------ producing

  /** Append one record if a cell is free now. */
  tryWrite(payload: Uint8Array): boolean {
    const len = payload.byteLength;
    if (len > this.slotSize) throw new MessageTooLargeError(len, this.slotSize);
    if ((Atomics.load(this.#ctl, FLAGS) & CLOSED) !== 0) throw closedError();
    const pos = this.#claim(ENQUEUE, 0, 1);
    if (pos === null) return false;
    const off = this.#cellWord(pos);
    this.#cells[off + 1] = len;
    this.#bytes.set(payload, (off << 2) + CELL_HEADER);
    this.#publish(pos, 1);
    return true;
  }

  /**
   * Append one record of `length` bytes written in place by `fill` (no
   * intermediate buffer). `fill` must not throw; the cell is published
   * whatever it wrote.
   */
  tryWriteWith(length: number, fill: RecordFiller): boolean {
    if (length > this.slotSize) throw new MessageTooLargeError(length, this.slotSize);
    if ((Atomics.load(this.#ctl, FLAGS) & CLOSED) !== 0) throw closedError();
    const pos = this.#claim(ENQUEUE, 0, 1);
    if (pos === null) return false;
    const off = this.#cellWord(pos);
    this.#cells[off + 1] = length;
    try {
      fill(this.#bytes, (off << 2) + CELL_HEADER);
    } finally {
      this.#publish(pos, 1);
    }
    return true;
  }

  /** tryWriteWith, waiting for a free cell without blocking the event loop. */
  async writeWith(length: number, fill: RecordFiller, options: WaitOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    if (this.tryWriteWith(length, fill)) return;
    await this.#waitAsync(
      () => (this.tryWriteWith(length, fill) ? true : null),
      SPACE_EVENT,
      PRODUCERS_WAITING,
      options,
    );
  }

  /**
   * Append as many of `records[from..]` as there are free cells for, in
   * order, with one claim; returns how many were written (0 when full).
   * All records are size-checked before any is written.
   */
  tryWriteBatch(records: readonly Uint8Array[], from = 0): number {
    for (let i = from; i < records.length; i++) {
      const len = (records[i] as Uint8Array).byteLength;
      if (len > this.slotSize) throw new MessageTooLargeError(len, this.slotSize);
    }
    return this.#writeBatch(records, from);
  }

  /** Append one record, waiting for a free cell without blocking the event loop. */
  async write(payload: Uint8Array, options: WaitOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    if (this.tryWrite(payload)) return;
    await this.#waitAsync(
      () => (this.tryWrite(payload) ? true : null),
      SPACE_EVENT,
      PRODUCERS_WAITING,
      options,
    );
  }

  /** Append one record, blocking this thread for a free cell. */
  writeSync(payload: Uint8Array, timeoutMs: number = Number.POSITIVE_INFINITY): void {
    if (this.tryWrite(payload)) return;
    this.#waitSync(() => (this.tryWrite(payload) ? true : null), SPACE_EVENT, PRODUCERS_WAITING, timeoutMs);
  }

  /**
   * Append all records in order, waiting for room as needed. On timeout or
   * abort the error's `written` property says how many went in.
   */
  async writeBatch(records: readonly Uint8Array[], options: WaitOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    let done = this.tryWriteBatch(records);
    const deadline = deadlineAfter(options.timeout);
    while (done < records.length) {
      const more = (): number | null => {
        const n = this.#writeBatch(records, done);
        return n === 0 ? null : n;
      };
      try {
        done += await this.#waitAsync(more, SPACE_EVENT, PRODUCERS_WAITING, {
          timeout: remaining(deadline),
          signal: options.signal,
        });
      } catch (err) {
        if (err instanceof IpcError) Object.assign(err, { written: done });
        throw err;
      }
    }
  }

  // ------------------------------------------------------------------ consuming

  /**
   * Take up to `max` published records with one claim and hand each to
   * `onRecord` as a zero-copy view (valid only during the call), then free
   * their cells. Returns how many were taken; 0 when none is ready. The
   * claim is all-or-nothing, so if a callback throws, the rest of the claimed
   * records are still delivered and the first error is rethrown afterwards.
   */
  readBatch(onRecord: (record: Uint8Array) => void, max: number = this.slots): number {
    const ctl = this.#ctl;
    if (max < 1) return 0;
    const pos = this.#claim(DEQUEUE, 1, Math.min(max, this.slots));
    if (pos === null) {
      if ((Atomics.load(ctl, FLAGS) & CLOSED) !== 0 && this.#claimable(DEQUEUE, 1) === 0) throw closedError();
      return 0;
    }
    const n = this.#claimed;
    const cells = this.#cells;
    let failure: { error: unknown } | undefined;
    for (let i = 0; i < n; i++) {
      const off = this.#cellWord(pos + i);
      const start = (off << 2) + CELL_HEADER;
      try {
        onRecord(this.#bytes.subarray(start, start + (cells[off + 1] as number)));
      } catch (error) {
        failure ??= { error };
      }
    }
    for (let i = 0; i < n; i++) {
      const p = (pos + i) | 0;
      Atomics.store(cells, this.#cellWord(p), (p + this.slots) | 0);
    }
    this.#notify(SPACE_EVENT);
    if (failure !== undefined) throw failure.error;
    return n;
  }

  /**
   * Take one record if one is ready and return what `take` makes of it (the
   * view is valid only during the call; `take` must not return null).
   */
  tryReadWith<T>(take: (record: Uint8Array) => T): T | null {
    // readBatch(…, 1) without the closure it would take: this is every
    // ring mailbox receive.
    const ctl = this.#ctl;
    const pos = this.#claim(DEQUEUE, 1, 1);
    if (pos === null) {
      if ((Atomics.load(ctl, FLAGS) & CLOSED) !== 0 && this.#claimable(DEQUEUE, 1) === 0) throw closedError();
      return null;
    }
    const cells = this.#cells;
    const off = this.#cellWord(pos);
    const start = (off << 2) + CELL_HEADER;
    try {
      return take(this.#bytes.subarray(start, start + (cells[off + 1] as number)));
    } finally {
      Atomics.store(cells, off, (pos + this.slots) | 0);
      this.#notify(SPACE_EVENT);
    }
  }

  /** tryReadWith, waiting without blocking the event loop. */
  async readWith<T>(take: (record: Uint8Array) => T, options: WaitOptions = {}): Promise<T> {
    throwIfAborted(options.signal);
    const attempt = (): T | null => this.tryReadWith(take);
    return attempt() ?? this.#waitAsync(attempt, DATA_EVENT, CONSUMERS_WAITING, options);
  }

  /** Take one record (a copy) if one is ready. */
  tryRead(): Uint8Array | null {
    let out: Uint8Array | null = null;
    this.readBatch((view) => {
      out = view.slice();
    }, 1);
    return out;
  }

  /** Take one record (a copy), waiting without blocking the event loop. */
  async read(options: WaitOptions = {}): Promise<Uint8Array> {
    throwIfAborted(options.signal);
    return this.tryRead() ?? this.#waitAsync(() => this.tryRead(), DATA_EVENT, CONSUMERS_WAITING, options);
  }

  /** Take one record (a copy), blocking this thread. */
  readSync(timeoutMs: number = Number.POSITIVE_INFINITY): Uint8Array {
    return this.tryRead() ?? this.#waitSync(() => this.tryRead(), DATA_EVENT, CONSUMERS_WAITING, timeoutMs);
  }

  /**
   * Wait until at least one record is ready (or the ring is closed), without
   * taking it. Used by callers that then take records with readBatch.
   */
  async waitReadable(options: WaitOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    const ready = (): true | null =>
      this.#claimable(DEQUEUE, 1) > 0 || (Atomics.load(this.#ctl, FLAGS) & CLOSED) !== 0 ? true : null;
    if (ready() === null) await this.#waitAsync(ready, DATA_EVENT, CONSUMERS_WAITING, options);
  }

  // ------------------------------------------------------------------ internals

  /** Word index of the cell for position `pos`. */
  #cellWord(pos: number): number {
    return (pos & this.#mask) * this.#strideWords;
  }

  /** How many cells the last successful #claim took. */
  #claimed = 0;

  /**
   * How many consecutive cells from the current position of `side` are
   * ready (seq = pos + lag), up to one lap; 0 if the position is stale.
   */
  #claimable(side: number, lag: number): number {
    const pos = Atomics.load(this.#ctl, side);
    let n = 0;
    while (n < this.slots && Atomics.load(this.#cells, this.#cellWord(pos + n)) === ((pos + n + lag) | 0))
      n++;
    return n;
  }

  /**
   * Claim up to `max` consecutive positions on `side` (ENQUEUE: cells with
   * seq = pos, DEQUEUE: cells with seq = pos + 1) with one CAS. Returns the
   * first position (and sets #claimed), or null when the first cell is not
   * ready (ring full / empty) or, for ENQUEUE, `capacity` records are queued.
   */
  #claim(side: number, lag: number, max: number): number | null {
    const ctl = this.#ctl;
    const cells = this.#cells;
    let pos = Atomics.load(ctl, side);
    for (;;) {
      let limit = max;
      if (side === ENQUEUE) {
        // Read after pos: dequeuePos can only have grown since, so the room
        // is at least this when the CAS below succeeds (a stale pos fails it).
        const room = this.capacity - ((pos - Atomics.load(ctl, DEQUEUE)) | 0);
        if (room <= 0) return null;
        if (room < limit) limit = room;
      }
      let n = 0;
      let diff = 0;
      while (n < limit) {
        const p = (pos + n) | 0;
        diff = (Atomics.load(cells, this.#cellWord(p)) - ((p + lag) | 0)) | 0;
        if (diff !== 0) break;
        n++;
      }
      if (n === 0) {
        // diff < 0: the cell still holds the previous lap (full / empty).
        if (diff < 0) return null;
        pos = Atomics.load(ctl, side);
        continue;
      }
      const seen = Atomics.compareExchange(ctl, side, pos, (pos + n) | 0);
      if (seen === pos) {
        this.#claimed = n;
        return pos;
      }
      pos = seen;
    }
  }

  #writeBatch(records: readonly Uint8Array[], from: number): number {
    if ((Atomics.load(this.#ctl, FLAGS) & CLOSED) !== 0) throw closedError();
    const want = records.length - from;
    if (want <= 0) return 0;
    const pos = this.#claim(ENQUEUE, 0, Math.min(want, this.slots));
    if (pos === null) return 0;
    const n = this.#claimed;
    for (let i = 0; i < n; i++) {
      const rec = records[from + i] as Uint8Array;
      const off = this.#cellWord(pos + i);
      this.#cells[off + 1] = rec.byteLength;
      this.#bytes.set(rec, (off << 2) + CELL_HEADER);
    }
    this.#publish(pos, n);
    return n;
  }

  /** Publish `n` claimed cells from `pos` (seq = p + 1) and wake consumers. */
  #publish(pos: number, n: number): void {
    const cells = this.#cells;
    for (let i = 0; i < n; i++) {
      const p = (pos + i) | 0;
      Atomics.store(cells, this.#cellWord(p), (p + 1) | 0);
    }
    this.#notify(DATA_EVENT);
  }

  /** Wake the waiters on `event` if one asked (see the layout: one wake per parking). */
  #notify(event: number): void {
    const ctl = this.#ctl;
    const wanted = wantedOf(event);
    if (Atomics.load(ctl, wanted) !== 0 && Atomics.exchange(ctl, wanted, 0) !== 0) {
      Atomics.add(ctl, event, 1);
      futexWake(ctl, event, WAKE_ALL);
    }
  }

  #checkOpen(event: number): void {
    // Writers fail at once when closed; readers drain first (attempt() throws then).
    if (event === SPACE_EVENT && (Atomics.load(this.#ctl, FLAGS) & CLOSED) !== 0) throw closedError();
  }

  async #waitAsync<T>(
    attempt: () => T | null,
    event: number,
    waiting: number,
    options: WaitOptions,
  ): Promise<T> {
    const deadline = deadlineAfter(options.timeout);
    const spun = this.#spin(attempt, event);
    if (spun !== null) return spun;
    const ctl = this.#ctl;
    Atomics.add(ctl, waiting, 1);
    let ok = false;
    try {
      for (;;) {
        this.#checkOpen(event);
        Atomics.store(ctl, wantedOf(event), 1);
        const seen = Atomics.load(ctl, event);
        const got = attempt();
        if (got !== null) {
          ok = true;
          return got;
        }
        const left = this.#timeLeft(deadline, event);
        await futexWaitAsync(ctl, event, seen, { timeout: left, signal: options.signal });
      }
    } finally {
      this.#leave(event, waiting, ok);
    }
  }

  #waitSync<T>(attempt: () => T | null, event: number, waiting: number, timeoutMs: number): T {
    const deadline = deadlineAfter(timeoutMs);
    const spun = this.#spin(attempt, event);
    if (spun !== null) return spun;
    const ctl = this.#ctl;
    Atomics.add(ctl, waiting, 1);
    let ok = false;
    try {
      for (;;) {
        this.#checkOpen(event);
        Atomics.store(ctl, wantedOf(event), 1);
        const seen = Atomics.load(ctl, event);
        const got = attempt();
        if (got !== null) {
          ok = true;
          return got;
        }
        futexWaitSync(ctl, event, seen, this.#timeLeft(deadline, event));
      }
    } finally {
      this.#leave(event, waiting, ok);
    }
  }

  // #waitAsync and #waitSync differ only in how they park; the pieces around
  // the park are shared below. (A shared loop taking the park as a callback
  // would allocate a closure per wait.)

  /**
   * Retry `attempt` before anyone counts as waiting: SPIN_ATTEMPTS times,
   * and a producer for PRODUCER_SPIN_MS; its result or null.
   */
  #spin<T>(attempt: () => T | null, event: number): T | null {
    for (let i = 0; i < SPIN_ATTEMPTS; i++) {
      this.#checkOpen(event);
      const got = attempt();
      if (got !== null) return got;
    }
    if (event !== SPACE_EVENT) return null;
    const end = performance.now() + PRODUCER_SPIN_MS;
    do {
      for (let i = 0; i < 64; i++) {
        this.#checkOpen(event);
        const got = attempt();
        if (got !== null) return got;
      }
    } while (performance.now() < end);
    return null;
  }

  /** Milliseconds left to park on `event`; TimeoutError when none are. */
  #timeLeft(deadline: number, event: number): number {
    const left = remaining(deadline);
    if (left === 0)
      throw new TimeoutError(event === DATA_EVENT ? 'ring read timed out' : 'ring write timed out');
    return left;
  }

  /** Stop counting as waiting on `event`; a waiter leaving empty-handed passes a possibly consumed wake on. */
  #leave(event: number, waiting: number, ok: boolean): void {
    Atomics.sub(this.#ctl, waiting, 1);
    if (!ok) this.#notify(event);
  }
}
