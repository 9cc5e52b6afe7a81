/**
 * ShmMailbox: the mailbox contract (core/mailbox-core.ts) on shared memory,
 * for processes on one host. The kernel keeps the name, rights, ownership
 * and cleanup of the segment (its segment registry); message data goes
 * through the segment only, never through the kernel process.
 *
 * Two message stores, chosen per mailbox at creation (`queue`):
 * - 'priority' (default): the whole contract, over a priority queue of
 *   message slots under one robust process-shared mutex (shared-queue.ts,
 *   driven by queue-engine.ts, where its contract is written out):
 *   capacity N, 0 (rendezvous) or 'unbounded' (within `budget` slots, then
 *   KERNEL_FULL at once); priorities 0..31, highest first, FIFO within one;
 *   round-robin = the longest-waiting receive gets the next message
 *   (rotation, as the kernel does); broadcast (every handle that may
 *   receive reads every message); `receive({ack})` with redelivery when the
 *   receiving handle closes or its process dies; `send({sync})`, which
 *   resolves once a receiver took the message (withdrawn on timeout/abort).
 * - 'ring': the lock-free MPMC ring (shm/mpmc-ring.ts), the fast path:
 *   capacity 1 .. 2^24, priority 0, competing receivers with no rotation
 *   (`round-robin` and `arbitrary` both mean this), no ack, no sync send
 *   (those fail NOT_SUPPORTED).
 *
 * Common to both:
 * - Waits: blocking, `nonblock` → WOULD_BLOCK, `timeout` → TIMEOUT, `signal`
 *   → ABORTED; nothing is sent or taken when they reject.
 * - FIFO per sender handle: sends from one handle complete, and are
 *   delivered (within one priority), in call order, whatever each waits for
 *   (room, a slab chunk): while one of them waits the later ones queue
 *   behind it in the handle (send-queue.ts), and a non-blocking send finds
 *   WOULD_BLOCK.
 * - `exclusive`: the kernel lets one receiver attach.
 * - Payloads up to `mapThreshold` bytes are copied (the receiver gets a
 *   private copy). Larger ones are written once into a slab chunk and the
 *   receiver gets a view of shared memory (`message.mapped`): read-only by
 *   contract, lent until `message.release()` (or dispose) or until no view
 *   of it is reachable (shm-message.ts); `message.copy()` makes a private
 *   one, and `message.data` is always private. (Received with `ack`, or
 *   from a broadcast, a payload is always copied: the slot keeps it.)
 * - Processes that die: a sender that dies while it waits holds no place,
 *   and chunks held by dead processes are reclaimed (slab.ts). On the ring,
 *   only a death inside a ring operation's few instructions between
 *   claiming a cell and publishing or freeing it stops the mailbox. On the
 *   priority queue, a death while holding the lock is taken over by the
 *   next locker, which rebuilds the lists from the slot states: at most the
 *   message being sent then is lost (its send never resolved).
 * - Closing: when the kernel removes the segment (owner removed it or the
 *   owning process exited), every attached process sets CLOSED in the
 *   header (the closed word, idempotent) and wakes every waiter of the
 *   store in every process; pending and later operations reject with
 *   MAILBOX_CLOSED.
 */

import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import type { RegisterSegmentOptions } from '../../client/process.js';
import {
  AbortError,
  IpcError,
  MailboxClosedError,
  MessageTooLargeError,
  NoSuchMailboxError,
  TimeoutError,
  WouldBlockError,
} from '../../errors.js';
import { deadlineAfter, remaining } from '../../shm/futex.js';
import { MpmcRing, type RecordFiller } from '../../shm/mpmc-ring.js';
import { Segment } from '../../shm/segment.js';
import type { SegmentInfo, SegmentRole } from '../../wire/info-types.js';
import { codecId, codecName, encodePayload, inferCodec } from '../../wire/payload-codec.js';
import {
  FLAG_CLOSED,
  H_FLAGS,
  HEADER_BYTES,
  initMailbox,
  type MailboxLayout,
  RECORD_HEADER,
  RECORD_SLAB,
  readLayout,
  SLAB_REF_BYTES,
} from './mailbox-layout.js';
import { QueueEngine, type QueueSendJob } from './queue-engine.js';
import { SendQueue } from './send-queue.js';
import { ShmMessage } from './shm-message.js';
import {
  DEFAULT_MAP_THRESHOLD,
  DEFAULT_SHM_CAPACITY,
  DEFAULT_SHM_MAX_MESSAGE,
  intIn,
  MAX_PRIORITY,
  notSupported,
  resolve,
  type ShmDelivery,
  type ShmMailboxOptions,
  type ShmQueueKind,
  type ShmReceiveOptions,
  type ShmSendOptions,
} from './shm-options.js';
import { Slab } from './slab.js';

export type { SegmentRole, ShmDelivery, ShmMailboxOptions, ShmQueueKind, ShmReceiveOptions, ShmSendOptions };
export { DEFAULT_MAP_THRESHOLD, DEFAULT_SHM_CAPACITY, DEFAULT_SHM_MAX_MESSAGE, ShmMessage };

/** What the kernel says about a registered segment (the fields this backend reads). */
export type SegmentInfoLike = Pick<SegmentInfo, 'name' | 'size' | 'kind' | 'ownership' | 'owner' | 'meta'>;

/**
 * The kernel's segment registry as the backend uses it. `IpcProcess` (from
 * `connect()`) implements it; tests may pass anything with the same shape.
 */
export interface SegmentRegistry {
  readonly name: string;
  readonly pid: number;
  registerSegment(name: string, options: RegisterSegmentOptions): Promise<SegmentInfoLike>;
  attachSegment(name: string, role?: SegmentRole): Promise<SegmentInfoLike>;
  detachSegment(name: string, role?: SegmentRole): Promise<void>;
  removeSegment(name: string, options?: { force?: boolean }): Promise<void>;
  on(event: 'segment-removed', listener: (e: { name: string; reason: string }) => void): unknown;
  off(event: 'segment-removed', listener: (e: { name: string; reason: string }) => void): unknown;
}

/** How long a non-blocking send on the priority queue may wait for its lock before WOULD_BLOCK (ms). */
const NONBLOCK_LOCK_MS = 50;

/** A snapshot of a shared-memory mailbox (see `ShmMailbox.stat()`). */
export interface ShmMailboxStat {
  /** Messages queued (ring cells claimed by senders and not yet taken). */
  depth: number;
  /**
   * Senders parked for room or a slab chunk, in every attached process, plus
   * the sends queued behind them on this handle.
   */
  waitingSenders: number;
  /** Receivers parked for a message, in every attached process. */
  waitingReceivers: number;
}

const NO_PAYLOAD = new Uint8Array(0);

interface MailboxEvents {
  closed: [MailboxClosedError];
}

/** A send waiting its turn in this handle's queue: the payload, already encoded and checked. */
type PendingSend = QueueSendJob;

/**
 * A handle on a shared-memory mailbox. Any number of sends and receives may
 * be pending at once on one handle.
 */
export class ShmMailbox extends EventEmitter<MailboxEvents> implements AsyncIterable<ShmMessage> {
  readonly name: string;
  readonly role: 'send' | 'receive' | 'both';
  readonly layout: MailboxLayout;
  readonly #proc: SegmentRegistry;
  readonly #segment: Segment;
  readonly #flags: Int32Array;
  /** The ring kind's message ring (undefined for the queue kind). */
  readonly #ringOrNone: MpmcRing | undefined;
  /** The queue kind's engine (undefined for the ring kind). */
  readonly #engine: QueueEngine | undefined;
  readonly #slab: Slab | undefined;
  readonly #sends: SendQueue<PendingSend>;
  readonly #onRemoved: (e: { name: string; reason: string }) => void;
  #closedError: MailboxClosedError | undefined;
  #markedClosed = false;
  #detached = false;
  // The record #sendNow writes, read by #fillInline / #fillSlab during its tryWriteWith.
  #out: Uint8Array = NO_PAYLOAD;
  #outCodec = 0;
  #outChunk = 0;
  #outLength = 0;
  readonly #fillInline: RecordFiller = (bytes, off) => {
    writeRecordHeader(bytes, off, this.#outCodec, 0, this.#proc.pid);
    bytes.set(this.#out, off + RECORD_HEADER);
  };
  readonly #fillSlab: RecordFiller = (bytes, off) => {
    writeRecordHeader(bytes, off, this.#outCodec, RECORD_SLAB, this.#proc.pid);
    writeU32(bytes, off + RECORD_HEADER, this.#outChunk);
    writeU32(bytes, off + RECORD_HEADER + 4, this.#outLength);
    (this.#slab as Slab).markQueued(this.#outChunk);
  };
  readonly #takeCopy = (view: Uint8Array): ShmMessage => this.#take(view, true);
  readonly #takeView = (view: Uint8Array): ShmMessage => this.#take(view, false);
  /** Aborted when this handle closes, to end its own pending waits. */
  readonly #local = new AbortController();
  /** Caller signals joined with #local (see #waitSignal). */
  readonly #joined = new WeakMap<AbortSignal, AbortSignal>();

  private constructor(
    proc: SegmentRegistry,
    name: string,
    segment: Segment,
    role: 'send' | 'receive' | 'both',
  ) {
    super();
    this.#proc = proc;
    this.name = name;
    this.role = role;
    this.#segment = segment;
    const buffer = segment.buffer;
    this.layout = readLayout(buffer, name);
    this.#flags = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.#slab = this.layout.slabChunks > 0 ? new Slab(buffer, this.layout) : undefined;
    if (this.layout.kind === 'ring') {
      this.#ringOrNone = new MpmcRing(buffer, this.layout.ringOffset);
      this.#engine = undefined;
    } else {
      this.#ringOrNone = undefined;
      this.#engine = new QueueEngine(
        name,
        buffer,
        this.layout,
        this.#slab,
        proc.pid,
        () => this.closed,
        role !== 'send',
      );
    }
    this.#sends = new SendQueue<PendingSend>({
      run: (job, deadline, signal) =>
        this.#engine === undefined
          ? this.#sendWaiting(job, deadline, signal)
          : this.#queueSendWaiting(this.#engine, job, deadline, signal),
      timedOut: () => new TimeoutError(`${this.name}: operation timed out`),
      aborted: (signal) => new AbortError(`${this.name}: operation aborted`, { cause: signal.reason }),
    });
    this.#onRemoved = (e) => {
      if (e.name === name || e.name === `/${name}`) this.#markClosed(`mailbox ${name} closed: ${e.reason}`);
    };
    // One listener per handle, and a process may hold any number: not a leak to warn about.
    listenerRoom(proc, 1);
    proc.on('segment-removed', this.#onRemoved);
  }

  /** Create a mailbox: a new POSIX segment, registered with the kernel. */
  static async create(
    proc: SegmentRegistry,
    name: string,
    options: ShmMailboxOptions = {},
    /** Put it in the mailbox namespace under this name (the `transport: 'shm'` path of createMailbox). */
    mailbox?: string,
  ): Promise<ShmMailbox> {
    const r = resolve(options);
    // The POSIX name is taken first (exclusively), so a failure can never
    // unlink a segment that is not ours; then the kernel records it.
    const segment = Segment.create(name, { size: r.layout.totalBytes, mode: r.mode });
    const ours = inodeOf(segment.name);
    try {
      initMailbox(segment.buffer, r.layout);
      await proc.registerSegment(name, {
        size: r.layout.totalBytes,
        kind: 'mailbox',
        ownership: r.owner,
        meta: {
          backend: 'shm',
          queue: r.layout.kind === 'ring' ? 'ring' : 'priority',
          delivery: r.delivery,
          capacity: r.layout.capacity === Number.POSITIVE_INFINITY ? 'unbounded' : r.layout.capacity,
          maxMessageSize: r.layout.maxMessageSize,
          fixedMessageSize: r.layout.fixedMessageSize ?? null,
        },
        ...(mailbox === undefined ? {} : { mailbox }),
        senders: r.senders,
        receivers: r.receivers,
        role: r.role,
        created: true,
      });
    } catch (err) {
      segment.close();
      // Only the segment made here: the name may be another creator's by now (the mailbox path
      // replaces a segment the kernel does not know, shm-mailbox-path.ts).
      if (ours === undefined || inodeOf(segment.name) === ours) {
        try {
          Segment.unlink(name);
        } catch {
          // Gone already.
        }
      }
      throw err;
    }
    return new ShmMailbox(proc, name, segment, r.role);
  }

  /** Open an existing mailbox in a role its rights allow (NO_SUCH_MAILBOX, PERMISSION_DENIED, RECEIVER_BUSY). */
  static async open(
    proc: SegmentRegistry,
    name: string,
    role: 'send' | 'receive' | 'both' = 'both',
  ): Promise<ShmMailbox> {
    let info: SegmentInfoLike;
    try {
      info = await proc.attachSegment(name, role);
    } catch (err) {
      if (err instanceof IpcError && err.code === 'NO_SUCH_SEGMENT') throw new NoSuchMailboxError(name);
      throw err;
    }
    try {
      if (info.kind !== 'mailbox') throw new NoSuchMailboxError(name);
      let segment: Segment;
      try {
        segment = Segment.open(name);
      } catch (err) {
        if (err instanceof IpcError && err.code === 'NO_SUCH_SEGMENT') throw new NoSuchMailboxError(name);
        throw err;
      }
      return new ShmMailbox(proc, name, segment, role);
    } catch (err) {
      await proc.detachSegment(name, role).catch(() => undefined);
      throw err;
    }
  }

  get capacity(): number {
    return this.layout.capacity;
  }

  get maxMessageSize(): number {
    return this.layout.maxMessageSize;
  }

  /** 'priority' or 'ring' (the message store chosen at creation). */
  get queue(): ShmQueueKind {
    return this.layout.kind === 'ring' ? 'ring' : 'priority';
  }

  /** Messages queued now (a snapshot). */
  get depth(): number {
    return this.#engine?.depth ?? this.#ring.size;
  }

  get closed(): boolean {
    return (Atomics.load(this.#flags, H_FLAGS) & FLAG_CLOSED) !== 0;
  }

  /**
   * Depth and waiters across all attached processes, from the shared
   * counters the futex waits keep. A snapshot: a waiter counts once it has
   * finished its brief spin and is about to park; a process that died while
   * parked leaves the count one too high.
   */
  stat(): ShmMailboxStat {
    const e = this.#engine;
    if (e !== undefined) {
      return {
        depth: e.depth,
        waitingSenders: e.waitingSenders + (this.#slab?.waitingForChunk ?? 0) + this.#sends.waiting,
        waitingReceivers: e.waitingReceivers,
      };
    }
    return {
      depth: this.#ring.size,
      waitingSenders: this.#ring.waitingProducers + (this.#slab?.waitingForChunk ?? 0) + this.#sends.waiting,
      waitingReceivers: this.#ring.waitingConsumers,
    };
  }

  // ------------------------------------------------------------------ sending

  async send(value: unknown, options: ShmSendOptions = {}): Promise<void> {
    const priority = options.priority ?? 0;
    const sync = options.sync === true;
    if (this.#engine === undefined) {
      if (priority !== 0) throw notSupported("priorities with queue 'ring'");
      if (sync) throw notSupported("sync send with queue 'ring'");
    } else {
      intIn(priority, 0, MAX_PRIORITY, 'priority');
    }
    this.#checkRole('send');
    this.#throwIfClosed();
    if (options.signal?.aborted) throw new AbortError('send aborted', { cause: options.signal.reason });
    const codec = options.codec === undefined ? inferCodec(value) : codecId(options.codec);
    const payload = encodePayload(value, codec);
    const len = payload.byteLength;
    const l = this.layout;
    if (len > l.maxMessageSize) throw new MessageTooLargeError(len, l.maxMessageSize);
    if (l.fixedMessageSize !== undefined && len !== l.fixedMessageSize) {
      throw new IpcError(
        'WRONG_MESSAGE_SIZE',
        `${this.name} takes messages of exactly ${l.fixedMessageSize} bytes, got ${len}`,
      );
    }
    const deadline = options.nonblock === true ? 0 : deadlineAfter(options.timeout);
    if (this.#engine !== undefined) {
      const waiting = this.#queueSend(this.#engine, { payload, codec, priority, sync }, options, deadline);
      if (waiting !== undefined) await waiting;
      return;
    }
    if (this.#sends.idle) {
      let sent: boolean;
      try {
        sent = this.#sendNow(payload, codec);
      } catch (err) {
        throw this.#mapError(err, options.signal);
      }
      if (sent) return;
    }
    if (options.nonblock === true) {
      throw new WouldBlockError(
        this.#sends.idle
          ? `${this.name} has no room (or no free slab chunk)`
          : `${this.name}: earlier sends of this handle are waiting`,
      );
    }
    await this.#sends.push({ payload, codec, priority: 0, sync: false }, deadline, options.signal);
  }

  /** Send only if it can complete now; WOULD_BLOCK otherwise. */
  trySend(value: unknown, options: Omit<ShmSendOptions, 'nonblock' | 'timeout'> = {}): Promise<void> {
    return this.send(value, { ...options, nonblock: true });
  }

  // ------------------------------------------------------------------ receiving

  receive(options: ShmReceiveOptions = {}): Promise<ShmMessage> {
    let got: ShmMessage | Promise<ShmMessage>;
    try {
      got = this.#receive(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return got instanceof ShmMessage ? Promise.resolve(got) : got;
  }

  /** Receive only if a message is there now; WOULD_BLOCK otherwise. */
  tryReceive(options: Omit<ShmReceiveOptions, 'nonblock' | 'timeout'> = {}): Promise<ShmMessage> {
    return this.receive({ ...options, nonblock: true });
  }

  /**
   * Iterate over messages as they arrive; ends (without error) when the
   * mailbox is closed, rejects with ABORTED when `signal` fires. Each
   * iteration is a receive, so several iterators compete like receivers.
   */
  messages(
    options: { signal?: AbortSignal; copy?: boolean } = {},
  ): AsyncGenerator<ShmMessage, void, undefined> {
    const o: ShmReceiveOptions = {};
    if (options.signal !== undefined) o.signal = options.signal;
    if (options.copy !== undefined) o.copy = options.copy;
    return new MessageIterator(() => this.#receive(o));
  }

  [Symbol.asyncIterator](): AsyncIterator<ShmMessage> {
    return this.messages();
  }

  // ------------------------------------------------------------------ lifecycle

  /** Owner only (unless `force`): remove the mailbox for everyone. */
  async delete(options: { force?: boolean } = {}): Promise<void> {
    await this.#proc.removeSegment(this.name, options);
    this.#markClosed(`mailbox ${this.name} deleted`);
    this.#detach();
  }

  /** Drop this handle: pending operations on it reject with MAILBOX_CLOSED; the mailbox stays. */
  async close(): Promise<void> {
    if (this.#detached) return;
    this.#detach();
    this.#closedError ??= new MailboxClosedError(`handle on ${this.name} closed`);
    // Unacknowledged and handed-over messages go back before the handle's waits end.
    if (!this.closed) this.#engine?.close();
    this.#sends.fail(this.#closedError);
    this.#local.abort(this.#closedError);
    this.#segment.close();
    await this.#proc.detachSegment(this.name, this.role).catch((err: unknown) => {
      if (!(err instanceof IpcError && (err.code === 'NO_SUCH_SEGMENT' || err.code === 'DISCONNECTED')))
        throw err;
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------ internals

  /**
   * A receive: the message itself when it is taken at once (no promise, no
   * turn of the microtask queue), else a promise for it. Throws what fails
   * at once.
   */
  #receive(options: ShmReceiveOptions): ShmMessage | Promise<ShmMessage> {
    if (options.ack === true && this.#engine === undefined) {
      throw notSupported("acknowledged receive (ack/redelivery) with queue 'ring'");
    }
    this.#checkRole('receive');
    this.#throwIfClosed();
    if (options.signal?.aborted) throw new AbortError('receive aborted', { cause: options.signal.reason });
    const copy = options.copy === true;
    const signal = options.signal;
    // The deadline first: a bad timeout fails even when a message is there.
    const deadline = options.nonblock === true ? 0 : deadlineAfter(options.timeout);
    const engine = this.#engine;
    let got: ShmMessage | Promise<ShmMessage> | null;
    try {
      if (engine !== undefined) {
        got = engine.takeNow(options.ack === true, copy);
        if (got !== null) return got;
        got = engine.receive({
          ack: options.ack === true,
          copy,
          nonblock: options.nonblock === true,
          deadline,
          signal: this.#waitSignal(signal),
        });
        if (got instanceof ShmMessage) return got;
      } else {
        const take = copy ? this.#takeCopy : this.#takeView;
        got = this.#ring.tryReadWith(take);
        if (got !== null) return got;
        if (options.nonblock === true) throw new WouldBlockError(`${this.name} is empty`);
        got = this.#ring.readWith(take, this.#waitOptions(signal, deadline));
      }
    } catch (err) {
      throw this.#mapError(err, signal);
    }
    return got.catch((err: unknown) => {
      throw this.#mapError(err, signal);
    });
  }

  /** The ring (ring kind only: every caller has checked #engine first). */
  get #ring(): MpmcRing {
    return this.#ringOrNone as MpmcRing;
  }

  /**
   * A send on the priority queue: now if this handle has nothing queued and
   * the lock, room (and a chunk, for a slab payload) are there; else behind
   * the handle's earlier sends. A synchronous (or rendezvous) send then
   * waits until a receiver takes its message.
   */
  #queueSend(
    engine: QueueEngine,
    job: PendingSend,
    options: ShmSendOptions,
    deadline: number,
  ): Promise<void> | undefined {
    const nonblock = options.nonblock === true;
    let sent = false;
    try {
      if (this.#sends.idle) {
        let chunk = -1;
        const len = job.payload.byteLength;
        const slab = len > this.layout.mapThreshold;
        if (slab) {
          chunk = (this.#slab as Slab).tryAcquire();
          if (chunk >= 0) (this.#slab as Slab).view(chunk, len).set(job.payload);
        }
        try {
          if (!slab || chunk >= 0)
            sent = engine.trySend(job, chunk, nonblock, nonblock ? NONBLOCK_LOCK_MS : 0);
        } finally {
          if (!sent && chunk >= 0) (this.#slab as Slab).release(chunk);
        }
      }
      if (!sent && nonblock) {
        throw new WouldBlockError(
          this.#sends.idle
            ? `${this.name} has no room (or no free slab chunk)`
            : `${this.name}: earlier sends of this handle are waiting`,
        );
      }
    } catch (err) {
      throw this.#mapError(err, options.signal);
    }
    // Queued now and nothing to wait for: no promise (the common case).
    if (sent && !job.sync && this.layout.capacity !== 0) return undefined;
    return this.#queueSendWait(engine, job, options, deadline, sent);
  }

  /** The rest of a send #queueSend could not finish: its turn in the handle's queue, then its taker. */
  async #queueSendWait(
    engine: QueueEngine,
    job: PendingSend,
    options: ShmSendOptions,
    deadline: number,
    sent: boolean,
  ): Promise<void> {
    try {
      if (!sent) await this.#sends.push(job, deadline, options.signal);
      if (job.sync || this.layout.capacity === 0) {
        await engine.awaitTaken(job, deadline, this.#waitOptions(options.signal, deadline).signal);
      }
    } catch (err) {
      throw this.#mapError(err, options.signal);
    }
  }

  #queueSendWaiting(
    engine: QueueEngine,
    job: PendingSend,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    return engine
      .sendWaiting(job, deadline, this.#waitOptions(signal, deadline).signal)
      .catch((err: unknown) => {
        throw this.#mapError(err, signal);
      });
  }

  #take(view: Uint8Array, copy: boolean): ShmMessage {
    // A record taken after removal is dropped: the mailbox and its queue are gone.
    if (this.closed) throw new MailboxClosedError(`mailbox ${this.name} is closed`);
    const codec = codecName(view[0] as number);
    const flags = view[1] as number;
    const sender = readU32(view, 4);
    if ((flags & RECORD_SLAB) === 0) {
      // allocUnsafe + set: ~20 % cheaper than Buffer.from(view) for small records.
      const own = Buffer.allocUnsafe(view.byteLength - RECORD_HEADER);
      own.set(view.subarray(RECORD_HEADER));
      return new ShmMessage(own, codec, sender, this.name, false, undefined);
    }
    const slab = this.#slab as Slab;
    const chunk = readU32(view, RECORD_HEADER);
    const len = readU32(view, RECORD_HEADER + 4);
    slab.lease(chunk);
    if (copy) {
      const own = Buffer.from(slab.view(chunk, len));
      slab.release(chunk);
      return new ShmMessage(own, codec, sender, this.name, false, undefined);
    }
    return new ShmMessage(slab.lend(chunk, len), codec, sender, this.name, true, () => slab.release(chunk));
  }

  /**
   * Write the record now if there is room (and, for a slab payload, a free
   * chunk): true if it was sent. Never waits. Uses the shared fillers, which
   * read the #out… fields: only ever inside this synchronous call.
   */
  #sendNow(payload: Uint8Array, codec: number): boolean {
    const len = payload.byteLength;
    this.#outCodec = codec;
    if (len <= this.layout.mapThreshold) {
      this.#out = payload;
      try {
        return this.#ring.tryWriteWith(RECORD_HEADER + len, this.#fillInline);
      } finally {
        this.#out = NO_PAYLOAD;
      }
    }
    // Full now: do not take (and fill) a chunk only to give it back.
    if (this.#ring.size >= this.layout.capacity) return false;
    const slab = this.#slab as Slab;
    const chunk = slab.tryAcquire();
    if (chunk < 0) return false;
    let sent = false;
    try {
      slab.view(chunk, len).set(payload);
      this.#outChunk = chunk;
      this.#outLength = len;
      sent = this.#ring.tryWriteWith(RECORD_HEADER + SLAB_REF_BYTES, this.#fillSlab);
    } finally {
      if (!sent) slab.release(chunk);
    }
    return sent;
  }

  /**
   * Send the head of this handle's queue, waiting as long as `deadline` and
   * `signal` allow: for a slab payload first for a chunk (held by this
   * process's pid, so reclaimable if it dies), then for room in the ring.
   */
  async #sendWaiting(job: PendingSend, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const { payload, codec } = job;
    const len = payload.byteLength;
    const sender = this.#proc.pid;
    try {
      this.#throwIfClosed();
      if (len <= this.layout.mapThreshold) {
        const fill: RecordFiller = (bytes, off) => {
          writeRecordHeader(bytes, off, codec, 0, sender);
          bytes.set(payload, off + RECORD_HEADER);
        };
        await this.#ring.writeWith(RECORD_HEADER + len, fill, this.#waitOptions(signal, deadline));
        return;
      }
      const slab = this.#slab as Slab;
      const chunk = await slab.acquire(this.#waitOptions(signal, deadline));
      try {
        slab.view(chunk, len).set(payload);
        const fill: RecordFiller = (bytes, off) => {
          writeRecordHeader(bytes, off, codec, RECORD_SLAB, sender);
          writeU32(bytes, off + RECORD_HEADER, chunk);
          writeU32(bytes, off + RECORD_HEADER + 4, len);
          slab.markQueued(chunk);
        };
        await this.#ring.writeWith(RECORD_HEADER + SLAB_REF_BYTES, fill, this.#waitOptions(signal, deadline));
      } catch (err) {
        // The filler never ran: the chunk is still this process's.
        slab.release(chunk);
        throw err;
      }
    } catch (err) {
      throw this.#mapError(err, signal);
    }
  }

  #waitOptions(signal: AbortSignal | undefined, deadline: number): { timeout: number; signal: AbortSignal } {
    return { timeout: remaining(deadline), signal: this.#waitSignal(signal) };
  }

  /**
   * The caller's signal joined with this handle's own. One joined signal per
   * caller signal: AbortSignal.any costs microseconds and registers with both
   * sources until collected, so making one per receive (messages({signal})
   * passes the same signal every time) cost more than the receive itself.
   */
  #waitSignal(signal: AbortSignal | undefined): AbortSignal {
    const local = this.#local.signal;
    if (signal === undefined) return local;
    let joined = this.#joined.get(signal);
    if (joined === undefined) {
      joined = AbortSignal.any([signal, local]);
      this.#joined.set(signal, joined);
    }
    return joined;
  }

  #checkRole(kind: 'send' | 'receive'): void {
    if (this.role !== kind && this.role !== 'both') {
      throw new IpcError(
        'PERMISSION_DENIED',
        `this handle on ${this.name} was opened to ${this.role}, not to ${kind}`,
      );
    }
  }

  #throwIfClosed(): void {
    if (this.#closedError !== undefined) throw this.#closedError;
    if (this.closed) {
      this.#closedError = new MailboxClosedError(`mailbox ${this.name} is closed`);
      throw this.#closedError;
    }
  }

  /**
   * Errors from the primitives: a closed ring, or an abort caused by closing
   * this handle, become MAILBOX_CLOSED; the caller's own abort stays ABORTED.
   */
  #mapError(err: unknown, signal: AbortSignal | undefined): unknown {
    if (!(err instanceof IpcError)) return err;
    if (err.code === 'MAILBOX_CLOSED')
      return this.#closedError ?? new MailboxClosedError(`mailbox ${this.name} is closed`);
    if (err.code === 'ABORTED' && signal?.aborted !== true && this.#local.signal.aborted) {
      return this.#closedError ?? new MailboxClosedError(`handle on ${this.name} closed`);
    }
    if (err.code === 'ABORTED' && signal?.aborted === true) {
      return new AbortError(`${this.name}: operation aborted`, { cause: signal.reason });
    }
    if (err instanceof TimeoutError) return new TimeoutError(`${this.name}: operation timed out`);
    return err;
  }

  /**
   * Set CLOSED in the shared header and close the rings, which wakes every
   * waiter in every process (they see the closed state and give up). Every
   * step is idempotent, so each attached process may do it, the deleter
   * twice (the removal notice, then delete()); this handle reports it once.
   */
  #markClosed(reason: string): void {
    if (this.#markedClosed) return;
    this.#markedClosed = true;
    this.#closedError ??= new MailboxClosedError(reason);
    Atomics.or(this.#flags, H_FLAGS, FLAG_CLOSED);
    this.#ringOrNone?.close();
    this.#engine?.wakeAll();
    this.#slab?.close();
    this.#sends.fail(this.#closedError);
    this.emit('closed', this.#closedError);
    this.#detach();
  }

  #detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#proc.off('segment-removed', this.#onRemoved);
    listenerRoom(this.#proc, -1);
  }
}

/** Raise (or lower) an EventEmitter registry's listener limit by `n` (0 means no limit: left alone). */
function listenerRoom(proc: SegmentRegistry, n: number): void {
  if (!(proc instanceof EventEmitter)) return;
  const max = proc.getMaxListeners();
  if (max !== 0) proc.setMaxListeners(Math.max(1, max + n));
}

const ITERATION_DONE: IteratorReturnResult<void> = Object.freeze({ value: undefined, done: true });

/**
 * What messages() returns: the async generator contract (next() calls are
 * served in call order; MAILBOX_CLOSED ends the iteration, any other error
 * rejects and ends it; return() and throw() end it) without an async
 * generator's cost, which was about a third of a receive: a message taken
 * at once resolves next() in one step.
 */
class MessageIterator implements AsyncGenerator<ShmMessage, void, undefined> {
  readonly #receive: () => ShmMessage | Promise<ShmMessage>;
  #done = false;
  /** The last next() that had to wait, until it settles: later calls queue behind it. */
  #waiting: Promise<IteratorResult<ShmMessage, void>> | undefined;

  constructor(receive: () => ShmMessage | Promise<ShmMessage>) {
    this.#receive = receive;
  }

  next(): Promise<IteratorResult<ShmMessage, void>> {
    if (this.#waiting !== undefined) {
      const step = (): Promise<IteratorResult<ShmMessage, void>> => this.next();
      return this.#waiting.then(step, step);
    }
    if (this.#done) return Promise.resolve(ITERATION_DONE);
    let got: ShmMessage | Promise<ShmMessage>;
    try {
      got = this.#receive();
    } catch (err) {
      return this.#end(err);
    }
    if (got instanceof ShmMessage) return Promise.resolve({ value: got, done: false });
    const waiting = got.then(
      (value): IteratorResult<ShmMessage, void> => ({ value, done: false }),
      (err: unknown) => this.#end(err),
    );
    this.#waiting = waiting;
    const settled = (): void => {
      if (this.#waiting === waiting) this.#waiting = undefined;
    };
    waiting.then(settled, settled);
    return waiting;
  }

  return(): Promise<IteratorResult<ShmMessage, void>> {
    this.#done = true;
    return Promise.resolve(ITERATION_DONE);
  }

  throw(err: unknown): Promise<IteratorResult<ShmMessage, void>> {
    this.#done = true;
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): AsyncGenerator<ShmMessage, void, undefined> {
    return this;
  }

  #end(err: unknown): Promise<IteratorResult<ShmMessage, void>> {
    this.#done = true;
    if (err instanceof IpcError && err.code === 'MAILBOX_CLOSED') return Promise.resolve(ITERATION_DONE);
    return Promise.reject(err);
  }
}

function writeRecordHeader(
  bytes: Uint8Array,
  off: number,
  codec: number,
  flags: number,
  sender: number,
): void {
  bytes[off] = codec;
  bytes[off + 1] = flags;
  bytes[off + 2] = 0;
  bytes[off + 3] = 0;
  writeU32(bytes, off + 4, sender);
}

function writeU32(bytes: Uint8Array, off: number, v: number): void {
  bytes[off] = v & 0xff;
  bytes[off + 1] = (v >>> 8) & 0xff;
  bytes[off + 2] = (v >>> 16) & 0xff;
  bytes[off + 3] = (v >>> 24) & 0xff;
}

function readU32(bytes: Uint8Array, off: number): number {
  return (
    ((bytes[off] as number) |
      ((bytes[off + 1] as number) << 8) |
      ((bytes[off + 2] as number) << 16) |
      ((bytes[off + 3] as number) << 24)) >>>
    0
  );
}

/** The inode behind a POSIX shared-memory name (Linux keeps them in /dev/shm); undefined if unknown. */
function inodeOf(posix: string): number | undefined {
  try {
    return statSync(`/dev/shm${posix}`, { throwIfNoEntry: false })?.ino;
  } catch {
    return undefined;
  }
}
