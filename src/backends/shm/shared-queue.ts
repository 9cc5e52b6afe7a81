/**
 * SharedQueue: the message store of a shared-memory mailbox created with
 * `queue: 'priority'` — a priority queue of message slots in shared memory
 * under one robust process-shared mutex (Boost.Interprocess's
 * message_queue, with the kernel mailbox's delivery rules). All access to
 * this region goes through this module.
 *
 * Layout of the region (at `base`, 64-aligned; byte offsets):
 *   +0     lock     i32  Mutex word (shm/mutex.ts), alone on its cache line
 *   +64    control  i32 × 16, read and written only under the lock:
 *            C_QUEUED     messages in the priority lists (QUEUED slots)
 *            C_SYNC       QUEUED slots whose sender waits for them to be taken
 *            C_SEQ        next accept number (wraps; compared as i32 difference)
 *            C_FREE       head of the free-slot list (-1: none)
 *            C_NONEMPTY   bit p set ⇔ the list of priority p is not empty
 *            C_TAKEN      slots GIVEN or HELD (what a sweep has to look at)
 *            C_WAITING    receiver entries WAITING (competing delivery)
 *            C_SUBS       bit i set ⇔ subscriber entry i is live (broadcast)
 *   +128   F_ROOM   i32  futex word, bumped (Atomics.add) whenever a slot is
 *                        freed; senders waiting for room park on it
 *   +132   ROOM_WAITERS i32 senders parked on F_ROOM (Atomics.add; a process
 *                        killed while parked leaves it one too high)
 *   +136   ROOM_WANTED i32 1 once a sender is about to park on F_ROOM (stored
 *                        under the lock); the next free() exchanges it to 0
 *                        and wakes them all — one wake syscall per parking,
 *                        not one per slot freed while they are waking up
 *   +192   F_ARRIVAL i32 futex word, bumped on every broadcast send
 *   +256   heads    i32 × 32   first slot of priority p's list (-1: empty)
 *   +384   tails    i32 × 32   last slot of priority p's list
 *   +512   receiver entries: RECEIVERS × 32 bytes (i32 words), under the lock
 *          except `wake`:
 *            +0 state  FREE / WAITING / GIVEN
 *            +4 pid    OS pid of the waiting receive
 *            +8 token  the handle's token (unique per handle within a pid)
 *            +12 order arrival number: the oldest WAITING entry is served first
 *            +16 slot  GIVEN: the slot handed over
 *            +20 wake  futex word: 0 while waiting, 1 once GIVEN (stored by the giver)
 *            +24 parked 1 once the receive is about to park on `wake` (stored
 *                      by it, no lock): the giver stores `wake` then reads
 *                      `parked` and makes the wake syscall only if it is set;
 *                      the receive stores `parked` then parks only while
 *                      `wake` is 0 — with sequentially consistent atomics one
 *                      of them sees the other's store, so no wake is lost
 *   then   subscriber entries (broadcast): 64 × 16 bytes, the first SUBSCRIBERS
 *          (31: the bits of a slot's mask) used, under the lock except `waiting`:
 *            +0 pid (0: free), +4 token, +8 waiting (receives parked on
 *            F_ARRIVAL, Atomics.add)
 *   then   slots: `slots` × stride (64 + inline bytes, 64-aligned). Header words:
 *            +0  state   FREE / QUEUED / GIVEN (handed to a waiting receive) /
 *                        HELD (received with ack, not yet acknowledged)
 *            +4  next, +8 prev   list links (free list: next only)
 *            +12 priority 0..31  +16 seq (accept number)
 *            +20 sender (kernel process number) +24 codec | flags << 8
 *            +28 length  +32 chunk (slab index, flags & SLOT_SLAB)
 *            +36 holder pid, +40 holder token (GIVEN / HELD)
 *            +44 gen     futex word: bumped when the message is taken by a
 *                        receiver (a synchronous sender parks on it)
 *            +48 mask    broadcast: subscriber bits still to read it
 *            +52 syncPid OS pid of the synchronous sender waiting for it (SYNC)
 *            +56 held    broadcast: subscriber bits that read it with ack and
 *                        have not acknowledged it (the message stays while
 *                        `mask | held` is not 0)
 *            +64 inline payload (flags & SLOT_SLAB clear)
 *          Written by the lock holder only, except `gen` (read by parked
 *          senders without the lock).
 *
 * Invariants (with the lock held):
 * - A slot is in exactly one place: the free list (FREE), one priority list
 *   in accept order (QUEUED), or nowhere (GIVEN / HELD: its holder's).
 * - A receiver entry is WAITING only while no message is QUEUED (competing
 *   delivery): a send or requeue hands its message to the oldest live
 *   WAITING entry instead of queueing it — the kernel's rotation over
 *   waiting receivers.
 * - Redelivery (a GIVEN/HELD slot whose holder died or closed) requeues the
 *   message ahead of every later-accepted one.
 * - If the lock's holder dies (the Mutex reports ownerDied), `repair()`
 *   rebuilds every list and count from the slot states, which each
 *   operation stores as its last step: a death mid-operation loses at most
 *   the message being sent (whose send never resolved), never the mailbox.
 */
import { IpcError } from '../../errors.js';
import { futexWake } from '../../shm/futex.js';
import { Mutex } from '../../shm/mutex.js';
import { native } from '../../shm/native.js';

export const PRIORITIES = 32;
export const RECEIVERS = 64;
/** Broadcast receivers per mailbox (bits of a slot's mask). */
export const SUBSCRIBERS = 31;

const CONTROL = 64;
const C_QUEUED = 0;
const C_SYNC = 1;
const C_SEQ = 2;
const C_FREE = 3;
const C_NONEMPTY = 4;
const C_TAKEN = 5;
const C_WAITING = 6;
const C_SUBS = 7;
const F_ROOM = 128 / 4;
const ROOM_WAITERS = 132 / 4;
const ROOM_WANTED = 136 / 4;
const F_ARRIVAL = 192 / 4;
const HEADS = 256 / 4;
const TAILS = 384 / 4;
const RECEIVERS_AT = 512;
const R_WORDS = 8;
const R_STATE = 0;
const R_PID = 1;
const R_TOKEN = 2;
const R_ORDER = 3;
const R_SLOT = 4;
const R_WAKE = 5;
const R_PARKED = 6;
const SUBS_AT = RECEIVERS_AT + RECEIVERS * R_WORDS * 4;
const U_WORDS = 4;
const U_PID = 0;
const U_TOKEN = 1;
const U_WAITING = 2;
const SLOTS_AT = SUBS_AT + 64 * U_WORDS * 4;
const SLOT_HEADER = 64;

const S_STATE = 0;
const S_NEXT = 1;
const S_PREV = 2;
const S_PRIO = 3;
const S_SEQ = 4;
const S_SENDER = 5;
const S_META = 6;
const S_LEN = 7;
const S_CHUNK = 8;
const S_HOLDER = 9;
const S_TOKEN = 10;
const S_GEN = 11;
const S_MASK = 12;
const S_SYNC_PID = 13;
const S_HELD = 14;

export const SLOT_FREE = 0;
export const SLOT_QUEUED = 1;
export const SLOT_GIVEN = 2;
export const SLOT_HELD = 3;

const ENTRY_FREE = 0;
const ENTRY_WAITING = 1;
const ENTRY_GIVEN = 2;

/** Slot flags (bits 8.. of the meta word). */
export const SLOT_SLAB = 1;
export const SLOT_SYNC = 2;

const NONE = -1;

/** Wake count meaning every waiter on the word. */
const WAKE_ALL = 0x7fffffff;

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** Bytes per slot for `inlineBytes` of inline payload. */
export function slotStride(inlineBytes: number): number {
  return align64(SLOT_HEADER + inlineBytes);
}

/** Bytes of the whole region. */
export function sharedQueueBytes(slots: number, inlineBytes: number): number {
  return SLOTS_AT + slots * slotStride(inlineBytes);
}

/** What a slot holds, as a receive reads it (under the lock). */
export interface SlotRecord {
  priority: number;
  sender: number;
  codec: number;
  flags: number;
  length: number;
  chunk: number;
}

/** Someone to look for: a process and one of its handles. */
export interface Holder {
  readonly pid: number;
  readonly token: number;
}

export class SharedQueue {
  readonly mutex: Mutex;
  readonly slots: number;
  readonly #w: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #stride: number;
  readonly #inline: number;

  /**
   * Wakes owed by the current critical section: futex words (indexes into
   * #w) and how many to wake on each, made by flushWakes() once the lock
   * is released. A wake syscall made while holding the lock kept the lock
   * held through it, and the woken thread was often scheduled onto the
   * waker's CPU, preempting the holder: the woken side (a sender woken for
   * room) then found the lock taken, spun in vain and parked on it.
   */
  readonly #wakeWords: number[] = [];
  readonly #wakeCounts: number[] = [];

  /** Gives a slab chunk back when the slot naming it is freed (set by the mailbox that has a slab). */
  releaseChunk: (chunk: number) => void = () => {};

  constructor(buffer: SharedArrayBuffer, base: number, slots: number, inlineBytes: number) {
    this.slots = slots;
    this.#inline = inlineBytes;
    this.#stride = slotStride(inlineBytes);
    const bytes = sharedQueueBytes(slots, inlineBytes);
    this.#w = new Int32Array(buffer, base, bytes / 4);
    this.#bytes = new Uint8Array(buffer, base, bytes);
    this.mutex = new Mutex(buffer, base);
  }

  /** Initialise the region (once, by the creator, before anyone attaches). */
  static init(buffer: SharedArrayBuffer, base: number, slots: number, inlineBytes: number): SharedQueue {
    const q = new SharedQueue(buffer, base, slots, inlineBytes);
    q.#w.fill(0);
    Mutex.init(buffer, base);
    q.repair();
    return q;
  }

  // ------------------------------------------------------------ counts (snapshots without the lock)

  get queued(): number {
    return Atomics.load(this.#w, CONTROL / 4 + C_QUEUED);
  }

  get syncPending(): number {
    return Atomics.load(this.#w, CONTROL / 4 + C_SYNC);
  }

  get waitingReceivers(): number {
    let n = Atomics.load(this.#w, CONTROL / 4 + C_WAITING);
    const subs = this.#c(C_SUBS);
    for (let i = 0; i < SUBSCRIBERS; i++) {
      if ((subs & (1 << i)) !== 0) n += Atomics.load(this.#w, this.#u(i) + U_WAITING);
    }
    return n;
  }

  get roomWaiters(): number {
    return Atomics.load(this.#w, ROOM_WAITERS);
  }

  get taken(): number {
    return this.#c(C_TAKEN);
  }

  // ------------------------------------------------------------ slots (lock held)

  /** A free slot, unlinked from the free list (still FREE until written), or -1. */
  alloc(): number {
    const i = this.#c(C_FREE);
    if (i === NONE) return NONE;
    this.#setC(C_FREE, this.#s(i, S_NEXT));
    return i;
  }

  /** The inline payload area of slot `i`. */
  inline(i: number, length: number): Uint8Array {
    return this.#bytes.subarray(this.#slotAt(i) + SLOT_HEADER, this.#slotAt(i) + SLOT_HEADER + length);
  }

  /** Copy `payload` into slot `i`'s inline area (no view of the slot made per message). */
  copyIn(i: number, payload: Uint8Array): void {
    this.#bytes.set(payload, this.#slotAt(i) + SLOT_HEADER);
  }

  /**
   * A private copy of the first `length` bytes of slot `i`'s inline area.
   * (Measured for 64 bytes: this ~85 ns, Buffer.from(view) ~105 ns, a byte
   * loop over shared memory ~150 ns.)
   */
  copyOut(i: number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    const from = this.#slotAt(i) + SLOT_HEADER;
    out.set(this.#bytes.subarray(from, from + length));
    return out;
  }

  get inlineBytes(): number {
    return this.#inline;
  }

  /**
   * Fill slot `i` (from alloc(), payload already in place) and store it
   * QUEUED as the newest message of its priority. Returns the slot's `gen`
   * (a synchronous sender waits for it to change).
   */
  write(i: number, r: SlotRecord, mask: number): number {
    const w = this.#w;
    const at = this.#slotWord(i);
    w[at + S_PRIO] = r.priority;
    w[at + S_SENDER] = r.sender;
    w[at + S_META] = r.codec | (r.flags << 8);
    w[at + S_LEN] = r.length;
    w[at + S_CHUNK] = r.chunk;
    w[at + S_MASK] = mask;
    w[at + S_HELD] = 0;
    w[at + S_SYNC_PID] = (r.flags & SLOT_SYNC) !== 0 ? process.pid : 0;
    w[at + S_HOLDER] = 0;
    w[at + S_TOKEN] = 0;
    const seq = this.#c(C_SEQ);
    this.#setC(C_SEQ, (seq + 1) | 0);
    w[at + S_SEQ] = seq;
    this.#link(i);
    if ((r.flags & SLOT_SYNC) !== 0) this.#addC(C_SYNC, 1);
    Atomics.store(w, at + S_STATE, SLOT_QUEUED);
    return Atomics.load(w, at + S_GEN);
  }

  /** What slot `i` holds, into `into` (a caller's scratch record: no allocation per message). */
  read(i: number, into: SlotRecord): SlotRecord {
    const w = this.#w;
    const at = this.#slotWord(i);
    const meta = w[at + S_META] as number;
    into.priority = w[at + S_PRIO] as number;
    into.sender = w[at + S_SENDER] as number;
    into.codec = meta & 0xff;
    into.flags = meta >>> 8;
    into.length = w[at + S_LEN] as number;
    into.chunk = w[at + S_CHUNK] as number;
    return into;
  }

  state(i: number): number {
    return Atomics.load(this.#w, this.#slotWord(i) + S_STATE);
  }

  /** The futex word a synchronous sender of slot `i` parks on, and its index. */
  genWord(i: number): [Int32Array, number] {
    return [this.#w, this.#slotWord(i) + S_GEN];
  }

  /** The highest-priority, oldest QUEUED slot, unlinked (its synchronous sender woken), or -1. */
  takeNext(): number {
    const nonEmpty = this.#c(C_NONEMPTY);
    if (nonEmpty === 0) return NONE;
    const p = 31 - Math.clz32(nonEmpty);
    const i = this.#w[HEADS + p] as number;
    this.#unlink(i);
    this.#taken(i);
    return i;
  }

  /** Mark slot `i` (just taken) HELD by `h` until ack, requeue or the holder's death. */
  hold(i: number, h: Holder): void {
    const at = this.#slotWord(i);
    this.#w[at + S_HOLDER] = h.pid;
    this.#w[at + S_TOKEN] = h.token;
    if (this.state(i) !== SLOT_GIVEN) this.#addC(C_TAKEN, 1);
    Atomics.store(this.#w, at + S_STATE, SLOT_HELD);
  }

  /** True if slot `i` is HELD by `h` (an ack checks this first). */
  heldBy(i: number, h: Holder): boolean {
    const at = this.#slotWord(i);
    return (
      this.state(i) === SLOT_HELD && this.#w[at + S_HOLDER] === h.pid && this.#w[at + S_TOKEN] === h.token
    );
  }

  /** Give slot `i` back to the free list (its message is done); wakes senders waiting for room. */
  free(i: number): void {
    const w = this.#w;
    const at = this.#slotWord(i);
    const s = this.state(i);
    if (s === SLOT_GIVEN || s === SLOT_HELD) this.#addC(C_TAKEN, -1);
    const meta = w[at + S_META] as number;
    if ((meta & (SLOT_SLAB << 8)) !== 0) {
      w[at + S_META] = meta & ~(SLOT_SLAB << 8);
      this.releaseChunk(w[at + S_CHUNK] as number);
    }
    Atomics.store(w, at + S_STATE, SLOT_FREE);
    w[at + S_NEXT] = this.#c(C_FREE);
    this.#setC(C_FREE, i);
    Atomics.add(w, F_ROOM, 1);
    if (Atomics.load(w, ROOM_WANTED) !== 0 && Atomics.exchange(w, ROOM_WANTED, 0) !== 0)
      this.#wakeLater(F_ROOM, WAKE_ALL);
  }

  /** The receiver of slot `i` takes its slab chunk over (it leases it): freeing the slot no longer releases it. */
  detachChunk(i: number): void {
    this.#s(i, S_META, this.#meta(i) & ~(SLOT_SLAB << 8));
  }

  /** A slot alloc() returned but that was never written goes back to the free list. */
  unalloc(i: number): void {
    this.#s(i, S_STATE, SLOT_FREE);
    this.#s(i, S_NEXT, this.#c(C_FREE));
    this.#setC(C_FREE, i);
  }

  /**
   * Withdraw slot `i` if it still holds the message its sender queued
   * (QUEUED, `gen` unchanged): true if withdrawn (and freed). False means a
   * receiver took it.
   */
  withdraw(i: number, gen: number): boolean {
    const at = this.#slotWord(i);
    if (this.state(i) !== SLOT_QUEUED || Atomics.load(this.#w, at + S_GEN) !== gen) return false;
    this.#unlink(i);
    if ((this.#meta(i) & (SLOT_SYNC << 8)) !== 0) this.#addC(C_SYNC, -1);
    this.free(i);
    return true;
  }

  /**
   * Put a GIVEN/HELD slot's message back: to the oldest live waiting
   * receiver if there is one (competing delivery), else into its priority
   * list ahead of every later-accepted message.
   */
  requeue(i: number, broadcast: boolean): void {
    const at = this.#slotWord(i);
    this.#addC(C_TAKEN, -1);
    this.#w[at + S_HOLDER] = 0;
    this.#w[at + S_TOKEN] = 0;
    Atomics.store(this.#w, at + S_STATE, SLOT_QUEUED);
    this.#insertBySeq(i);
    if (!broadcast) this.giveToWaiter(i);
  }

  // ------------------------------------------------------------ receivers waiting (competing delivery)

  /**
   * Hand QUEUED (linked) slot `i`, just written or requeued, to the oldest live
   * WAITING receive: true if it was given. Dead waiters found on the way
   * are dropped.
   */
  giveToWaiter(i: number): boolean {
    if (this.#c(C_WAITING) === 0) return false;
    const w = this.#w;
    for (;;) {
      let best = NONE;
      let bestOrder = 0;
      for (let e = 0; e < RECEIVERS; e++) {
        const at = this.#r(e);
        if (w[at + R_STATE] !== ENTRY_WAITING) continue;
        const order = w[at + R_ORDER] as number;
        if (best === NONE || ((order - bestOrder) | 0) < 0) {
          best = e;
          bestOrder = order;
        }
      }
      if (best === NONE) return false;
      const at = this.#r(best);
      if (!alive(w[at + R_PID] as number)) {
        this.#dropEntry(best);
        continue;
      }
      this.#unlink(i);
      this.#taken(i);
      const sa = this.#slotWord(i);
      w[sa + S_HOLDER] = w[at + R_PID] as number;
      w[sa + S_TOKEN] = w[at + R_TOKEN] as number;
      Atomics.store(w, sa + S_STATE, SLOT_GIVEN);
      this.#addC(C_TAKEN, 1);
      w[at + R_SLOT] = i;
      w[at + R_STATE] = ENTRY_GIVEN;
      this.#addC(C_WAITING, -1);
      Atomics.store(w, at + R_WAKE, 1);
      if (Atomics.load(w, at + R_PARKED) !== 0) this.#wakeLater(at + R_WAKE, 1);
      return true;
    }
  }

  /** Register a waiting receive for `h`: the entry index, or -1 if every entry is in use. */
  addWaiter(h: Holder): number {
    const w = this.#w;
    for (let e = 0; e < RECEIVERS; e++) {
      const at = this.#r(e);
      if (w[at + R_STATE] !== ENTRY_FREE) continue;
      w[at + R_PID] = h.pid;
      w[at + R_TOKEN] = h.token;
      const seq = this.#c(C_SEQ);
      this.#setC(C_SEQ, (seq + 1) | 0);
      w[at + R_ORDER] = seq;
      w[at + R_SLOT] = NONE;
      Atomics.store(w, at + R_PARKED, 0);
      Atomics.store(w, at + R_WAKE, 0);
      w[at + R_STATE] = ENTRY_WAITING;
      this.#addC(C_WAITING, 1);
      return e;
    }
    return NONE;
  }

  /** The futex word entry `e` parks on (and its index). */
  wakeWord(e: number): [Int32Array, number] {
    return [this.#w, this.#r(e) + R_WAKE];
  }

  /** Entry `e`'s receive is about to park on its wake word (no lock: see the layout). */
  parking(e: number): void {
    Atomics.store(this.#w, this.#r(e) + R_PARKED, 1);
  }

  /** Entry `e` if it is still `h`'s with arrival `order`: its slot when GIVEN, -1 when WAITING, -2 when gone. */
  entryOutcome(e: number, h: Holder, order: number): number {
    const w = this.#w;
    const at = this.#r(e);
    if (w[at + R_STATE] === ENTRY_FREE || w[at + R_PID] !== h.pid || w[at + R_TOKEN] !== h.token) return -2;
    if (w[at + R_ORDER] !== order) return -2;
    return w[at + R_STATE] === ENTRY_GIVEN ? (w[at + R_SLOT] as number) : NONE;
  }

  entryOrder(e: number): number {
    return this.#w[this.#r(e) + R_ORDER] as number;
  }

  /** Free entry `e` (its receive is over); a GIVEN slot must have been dealt with by the caller. */
  removeWaiter(e: number): void {
    const at = this.#r(e);
    if (this.#w[at + R_STATE] === ENTRY_WAITING) this.#addC(C_WAITING, -1);
    this.#w[at + R_STATE] = ENTRY_FREE;
  }

  // ------------------------------------------------------------ broadcast

  /** Subscribe `h` (its bit), claiming the backlog sent while nobody was subscribed; -1 if all bits are taken. */
  subscribe(h: Holder): number {
    const w = this.#w;
    const subs = this.#c(C_SUBS);
    for (let b = 0; b < SUBSCRIBERS; b++) {
      if ((subs & (1 << b)) !== 0) continue;
      const at = this.#u(b);
      w[at + U_PID] = h.pid;
      w[at + U_TOKEN] = h.token;
      Atomics.store(w, at + U_WAITING, 0);
      if (subs === 0) this.#eachQueued((i) => this.#s(i, S_MASK, 1 << b));
      this.#setC(C_SUBS, subs | (1 << b));
      return b;
    }
    return NONE;
  }

  /**
   * Drop subscriber `b`: its bits leave every message, and messages nobody
   * else still has to read are freed — except a copy it held unacknowledged
   * when no subscriber is left at all: that one stays, as backlog for the
   * next subscriber (the kernel's requeue of a broadcast copy).
   */
  unsubscribe(b: number): void {
    const bit = 1 << b;
    const left = this.#c(C_SUBS) & ~bit;
    this.#setC(C_SUBS, left);
    this.#w[this.#u(b) + U_PID] = 0;
    this.#eachQueued((i) => {
      const held = this.#s(i, S_HELD);
      if ((held & bit) !== 0) {
        this.#s(i, S_HELD, held & ~bit);
        if (left === 0) return;
        this.#freeIfRead(i);
      }
      if ((this.#s(i, S_MASK) & bit) !== 0) this.clearBit(i, b);
    });
  }

  subscriberIs(b: number, h: Holder): boolean {
    return this.#w[this.#u(b) + U_PID] === h.pid && this.#w[this.#u(b) + U_TOKEN] === h.token;
  }

  /** The highest-priority, oldest QUEUED slot subscriber `b` has not read, or -1. */
  findFor(b: number): number {
    const bit = 1 << b;
    let nonEmpty = this.#c(C_NONEMPTY);
    while (nonEmpty !== 0) {
      const p = 31 - Math.clz32(nonEmpty);
      for (let i = this.#w[HEADS + p] as number; i !== NONE; i = this.#s(i, S_NEXT)) {
        if ((this.#s(i, S_MASK) & bit) !== 0) return i;
      }
      nonEmpty &= ~(1 << p);
    }
    return NONE;
  }

  /**
   * Subscriber `b` has read slot `i` (with `ack`: holds it until ackCopy);
   * the message is freed once every subscriber has read and acknowledged it.
   */
  clearBit(i: number, b: number, ack = false): void {
    this.#s(i, S_MASK, this.#s(i, S_MASK) & ~(1 << b));
    if (ack) this.#s(i, S_HELD, this.#s(i, S_HELD) | (1 << b));
    this.#freeIfRead(i);
  }

  /** Subscriber `b` acknowledges the copy it holds of slot `i`, if the slot still holds message `seq`. */
  ackCopy(i: number, b: number, seq: number): void {
    if (this.state(i) !== SLOT_QUEUED || this.#s(i, S_SEQ) !== seq) return;
    const held = this.#s(i, S_HELD);
    if ((held & (1 << b)) === 0) return;
    this.#s(i, S_HELD, held & ~(1 << b));
    this.#freeIfRead(i);
  }

  /** The accept number of slot `i`'s message (its identity while the slot holds it). */
  seqOf(i: number): number {
    return this.#s(i, S_SEQ);
  }

  #freeIfRead(i: number): void {
    if ((this.#s(i, S_MASK) | this.#s(i, S_HELD)) !== 0) return;
    this.#unlink(i);
    this.free(i);
  }

  get subscribers(): number {
    return this.#c(C_SUBS);
  }

  /** Count a broadcast receive of subscriber `b` parking (+1) or waking (-1). */
  subscriberWaiting(b: number, delta: number): void {
    Atomics.add(this.#w, this.#u(b) + U_WAITING, delta);
  }

  arrivalWord(): [Int32Array, number] {
    return [this.#w, F_ARRIVAL];
  }

  /** A broadcast message arrived (lock held): wake every parked broadcast receive, at flushWakes(). */
  announceArrival(): void {
    Atomics.add(this.#w, F_ARRIVAL, 1);
    this.#wakeLater(F_ARRIVAL, WAKE_ALL);
  }

  // ------------------------------------------------------------ room

  roomWord(): [Int32Array, number] {
    return [this.#w, F_ROOM];
  }

  /**
   * Count a sender parking on F_ROOM (+1, under the lock, before it reads
   * the word it will park on: it also asks the next free() for a wake) or
   * leaving it (-1, no lock needed).
   */
  roomWaiting(delta: number): void {
    Atomics.add(this.#w, ROOM_WAITERS, delta);
    if (delta > 0) Atomics.store(this.#w, ROOM_WANTED, 1);
  }

  // ------------------------------------------------------------ owners leaving

  /**
   * Give back everything `h` holds: its HELD and GIVEN messages are requeued
   * (redelivered), its waiting entries and broadcast subscription dropped.
   * With `h.token` 0, everything of process `h.pid` (it died).
   */
  release(h: Holder, broadcast: boolean): void {
    const match = (pid: number, token: number) => pid === h.pid && (h.token === 0 || token === h.token);
    const w = this.#w;
    for (let e = 0; e < RECEIVERS; e++) {
      const at = this.#r(e);
      if (w[at + R_STATE] !== ENTRY_FREE && match(w[at + R_PID] as number, w[at + R_TOKEN] as number))
        this.#dropEntry(e);
    }
    if (this.#c(C_TAKEN) > 0) {
      for (let i = 0; i < this.slots; i++) {
        const s = this.state(i);
        if (s !== SLOT_GIVEN && s !== SLOT_HELD) continue;
        const at = this.#slotWord(i);
        if (match(w[at + S_HOLDER] as number, w[at + S_TOKEN] as number)) this.requeue(i, broadcast);
      }
    }
    const subs = this.#c(C_SUBS);
    for (let b = 0; b < SUBSCRIBERS; b++) {
      const at = this.#u(b);
      if ((subs & (1 << b)) !== 0 && match(w[at + U_PID] as number, w[at + U_TOKEN] as number))
        this.unsubscribe(b);
    }
  }

  /**
   * Find processes that died holding messages, waiting, or subscribed, and
   * release what they held (each distinct pid is checked once). A
   * synchronous sender that died waiting: its message stays queued (it was
   * accepted) but no longer counts as a waiting sender — except in a
   * rendezvous, where a message never waits without its sender: it is
   * dropped, as the kernel drops a dead process's blocked send.
   */
  sweep(broadcast: boolean, rendezvous: boolean): void {
    const w = this.#w;
    if (this.#c(C_SYNC) > 0) {
      for (let i = 0; i < this.slots; i++) {
        if (this.state(i) !== SLOT_QUEUED || (this.#meta(i) & (SLOT_SYNC << 8)) === 0) continue;
        const at = this.#slotWord(i);
        if (alive(w[at + S_SYNC_PID] as number)) continue;
        if (rendezvous) this.withdraw(i, Atomics.load(w, at + S_GEN));
        else {
          this.#s(i, S_META, this.#meta(i) & ~(SLOT_SYNC << 8));
          this.#addC(C_SYNC, -1);
        }
      }
    }
    const pids = new Set<number>();
    for (let e = 0; e < RECEIVERS; e++) {
      const at = this.#r(e);
      if (w[at + R_STATE] !== ENTRY_FREE) pids.add(w[at + R_PID] as number);
    }
    if (this.#c(C_TAKEN) > 0) {
      for (let i = 0; i < this.slots; i++) {
        const s = this.state(i);
        if (s === SLOT_GIVEN || s === SLOT_HELD) pids.add(w[this.#slotWord(i) + S_HOLDER] as number);
      }
    }
    const subs = this.#c(C_SUBS);
    for (let b = 0; b < SUBSCRIBERS; b++) {
      if ((subs & (1 << b)) !== 0) pids.add(w[this.#u(b) + U_PID] as number);
    }
    for (const pid of pids) if (!alive(pid)) this.release({ pid, token: 0 }, broadcast);
  }

  /** Wake every parked waiter of any kind (the mailbox is closing; they see CLOSED). */
  wakeAll(): void {
    const w = this.#w;
    Atomics.add(w, F_ROOM, 1);
    futexWake(w, F_ROOM, Number.MAX_SAFE_INTEGER);
    Atomics.add(w, F_ARRIVAL, 1);
    futexWake(w, F_ARRIVAL, Number.MAX_SAFE_INTEGER);
    for (let e = 0; e < RECEIVERS; e++) futexWake(w, this.#r(e) + R_WAKE, 1);
    for (let i = 0; i < this.slots; i++) {
      // A wake without a change of `gen`: the sender sees CLOSED, not "taken".
      if (this.state(i) === SLOT_QUEUED && (this.#meta(i) & (SLOT_SYNC << 8)) !== 0)
        futexWake(w, this.#slotWord(i) + S_GEN, 1);
    }
  }

  /**
   * Rebuild the free list, the priority lists and every count from the slot
   * and entry states (after init, and when the lock's holder died inside an
   * operation). A slot that alloc() took but that was never written is FREE
   * and goes back to the free list.
   */
  repair(): void {
    const w = this.#w;
    for (let p = 0; p < PRIORITIES; p++) {
      w[HEADS + p] = NONE;
      w[TAILS + p] = NONE;
    }
    this.#setC(C_NONEMPTY, 0);
    this.#setC(C_FREE, NONE);
    let queued: number[] = [];
    let taken = 0;
    let sync = 0;
    for (let i = this.slots - 1; i >= 0; i--) {
      const s = this.state(i);
      if (s === SLOT_QUEUED) queued.push(i);
      else if (s === SLOT_GIVEN || s === SLOT_HELD) taken++;
      else this.unalloc(i);
    }
    const seq = this.#c(C_SEQ);
    queued = queued.sort((x, y) => ((this.#s(x, S_SEQ) - seq) | 0) - ((this.#s(y, S_SEQ) - seq) | 0));
    this.#setC(C_QUEUED, 0);
    for (const i of queued) {
      this.#link(i);
      if ((this.#meta(i) & (SLOT_SYNC << 8)) !== 0) sync++;
    }
    this.#setC(C_SYNC, sync);
    this.#setC(C_TAKEN, taken);
    let waiting = 0;
    for (let e = 0; e < RECEIVERS; e++) if (w[this.#r(e) + R_STATE] === ENTRY_WAITING) waiting++;
    this.#setC(C_WAITING, waiting);
  }

  /**
   * Make the wakes the critical sections since the last call owe (call it
   * right after unlocking). Their words were changed under the lock, so a
   * waiter either saw the change before parking or is parked now; a waker
   * that dies before this leaves its waiters to their periodic
   * (LIVENESS_MS) timeouts. A wake that comes after its waiter moved on
   * (an entry or slot used again) is a spurious wake, which every waiter
   * tolerates.
   */
  flushWakes(): void {
    const words = this.#wakeWords;
    if (words.length === 0) return;
    const counts = this.#wakeCounts;
    for (let k = 0; k < words.length; k++) futexWake(this.#w, words[k] as number, counts[k] as number);
    words.length = 0;
    counts.length = 0;
  }

  // ------------------------------------------------------------ internals

  #wakeLater(word: number, count: number): void {
    const words = this.#wakeWords;
    for (let k = 0; k < words.length; k++) {
      if (words[k] === word) {
        this.#wakeCounts[k] = Math.min(WAKE_ALL, (this.#wakeCounts[k] as number) + count);
        return;
      }
    }
    words.push(word);
    this.#wakeCounts.push(count);
  }

  #dropEntry(e: number): void {
    const w = this.#w;
    const at = this.#r(e);
    if (w[at + R_STATE] === ENTRY_GIVEN) {
      w[at + R_STATE] = ENTRY_FREE;
      this.requeue(w[at + R_SLOT] as number, false);
      return;
    }
    this.removeWaiter(e);
  }

  /** A QUEUED slot was just unlinked for a receiver: wake its synchronous sender. */
  #taken(i: number): void {
    const at = this.#slotWord(i);
    if ((this.#meta(i) & (SLOT_SYNC << 8)) !== 0) {
      this.#addC(C_SYNC, -1);
      this.#s(i, S_META, this.#meta(i) & ~(SLOT_SYNC << 8));
      Atomics.add(this.#w, at + S_GEN, 1);
      this.#wakeLater(at + S_GEN, 1);
    } else {
      Atomics.add(this.#w, at + S_GEN, 1);
    }
  }

  /** Append slot `i` to the tail of its priority list. */
  #link(i: number): void {
    const w = this.#w;
    const p = this.#s(i, S_PRIO);
    const tail = w[TAILS + p] as number;
    this.#s(i, S_NEXT, NONE);
    this.#s(i, S_PREV, tail);
    if (tail === NONE) w[HEADS + p] = i;
    else this.#s(tail, S_NEXT, i);
    w[TAILS + p] = i;
    this.#setC(C_NONEMPTY, this.#c(C_NONEMPTY) | (1 << p));
    this.#addC(C_QUEUED, 1);
  }

  /** Insert slot `i` into its priority list before the first later-accepted message. */
  #insertBySeq(i: number): void {
    const w = this.#w;
    const p = this.#s(i, S_PRIO);
    const seq = this.#s(i, S_SEQ);
    let after = w[TAILS + p] as number;
    while (after !== NONE && ((this.#s(after, S_SEQ) - seq) | 0) > 0) after = this.#s(after, S_PREV);
    const before = after === NONE ? (w[HEADS + p] as number) : this.#s(after, S_NEXT);
    this.#s(i, S_PREV, after);
    this.#s(i, S_NEXT, before);
    if (after === NONE) w[HEADS + p] = i;
    else this.#s(after, S_NEXT, i);
    if (before === NONE) w[TAILS + p] = i;
    else this.#s(before, S_PREV, i);
    this.#setC(C_NONEMPTY, this.#c(C_NONEMPTY) | (1 << p));
    this.#addC(C_QUEUED, 1);
  }

  #unlink(i: number): void {
    const w = this.#w;
    const p = this.#s(i, S_PRIO);
    const prev = this.#s(i, S_PREV);
    const next = this.#s(i, S_NEXT);
    if (prev === NONE) w[HEADS + p] = next;
    else this.#s(prev, S_NEXT, next);
    if (next === NONE) w[TAILS + p] = prev;
    else this.#s(next, S_PREV, prev);
    if (w[HEADS + p] === NONE) this.#setC(C_NONEMPTY, this.#c(C_NONEMPTY) & ~(1 << p));
    this.#addC(C_QUEUED, -1);
  }

  #eachQueued(fn: (i: number) => void): void {
    const w = this.#w;
    const collected: number[] = [];
    for (let p = 0; p < PRIORITIES; p++) {
      for (let i = w[HEADS + p] as number; i !== NONE; i = this.#s(i, S_NEXT)) collected.push(i);
    }
    for (const i of collected) fn(i);
  }

  #meta(i: number): number {
    return this.#s(i, S_META);
  }

  #slotAt(i: number): number {
    return SLOTS_AT + i * this.#stride;
  }

  #slotWord(i: number): number {
    if (i < 0 || i >= this.slots) throw new IpcError('PROTOCOL', `slot ${i} out of range`);
    return (SLOTS_AT + i * this.#stride) / 4;
  }

  #s(i: number, word: number, value?: number): number {
    const at = this.#slotWord(i) + word;
    if (value !== undefined) this.#w[at] = value;
    return this.#w[at] as number;
  }

  #r(e: number): number {
    return (RECEIVERS_AT + e * R_WORDS * 4) / 4;
  }

  #u(b: number): number {
    return (SUBS_AT + b * U_WORDS * 4) / 4;
  }

  #c(word: number): number {
    return this.#w[CONTROL / 4 + word] as number;
  }

  // Control words are written only under the lock, whose release orders
  // them for the next holder; readers without it take snapshots. A plain
  // store suffices, and a sequentially consistent one (an xchg on x86)
  // cost ~10 ns each, several per message.
  #setC(word: number, v: number): void {
    this.#w[CONTROL / 4 + word] = v;
  }

  #addC(word: number, d: number): void {
    this.#setC(word, this.#c(word) + d);
  }
}

function alive(pid: number): boolean {
  return pid === process.pid || native().isAlive(pid);
}
