/**
 * ShmMailbox: the mailbox contract (core/mailbox-core.ts) on shared memory,
 * for processes on one host. The kernel keeps the name, rights, ownership
 * and cleanup of the segment (its segment registry); message data goes
 * through the segment only, never through the kernel process.
 *
 * Contract:
 * - Capacity N (1 .. 2^24): at most N messages are queued; a sender waits
 *   for room (blocking, `nonblock` → WOULD_BLOCK, `timeout` → TIMEOUT,
 *   `signal` → ABORTED; nothing is sent then). Receives wait the same way.
 * - FIFO per sender; across senders, the order in which their writes claimed
 *   a place in the ring. Priority 0 only.
 * - Competing receivers (`round-robin` and `arbitrary` both mean this): each
 *   message goes to exactly one receiver, whichever takes it next; there is
 *   no rotation. `exclusive`: the kernel lets one receiver attach.
 * - Payloads up to `mapThreshold` bytes are copied through the ring (the
 *   receiver gets a private copy). Larger ones are written once into a slab
 *   chunk and the receiver gets a view of shared memory (`message.mapped`):
 *   read-only by contract, valid until `message.release()` (or dispose, or
 *   the message is garbage-collected); `message.copy()` makes a private one.
 * - Closing: when the kernel removes the segment (owner removed it or the
 *   owning process exited), every attached process sets CLOSED in the header
 *   and wakes all futex waiters; pending and later operations reject with
 *   MAILBOX_CLOSED.
 * - Not supported (NOT_SUPPORTED): capacity 0 (rendezvous) and unbounded,
 *   broadcast delivery, priorities other than 0, ack/redelivery, sync send.
 */

import { EventEmitter } from 'node:events';
import type { RegisterSegmentOptions } from '../../client/process.js';
import type { Grantees } from '../../core/rights.js';
import {
  AbortError,
  IpcError,
  MailboxClosedError,
  MessageTooLargeError,
  NoSuchMailboxError,
  TimeoutError,
  WouldBlockError,
} from '../../errors.js';
import type { SegmentRole } from '../../wire/info-types.js';
import { deadlineAfter, remaining } from '../../shm/futex.js';
import { MpmcRing } from '../../shm/mpmc-ring.js';
import { Segment } from '../../shm/segment.js';
import { Semaphore } from '../../shm/semaphore.js';
import { codecId, codecName, decodePayload, encodePayload, inferCodec } from '../../wire/payload-codec.js';
import type { CodecName } from '../../wire/protocol.js';
import {
  CREDITS_OFFSET,
  FLAG_CLOSED,
  H_FLAGS,
  HEADER_BYTES,
  initMailbox,
  layoutFor,
  type MailboxLayout,
  RECORD_HEADER,
  RECORD_SLAB,
  readLayout,
  SLAB_REF_BYTES,
} from './mailbox-layout.js';
import { Slab } from './slab.js';

export type { SegmentRole };

/** What the kernel says about a registered segment (the fields this backend reads). */
export interface SegmentInfoLike {
  name: string;
  size: number;
  kind: 'segment' | 'mailbox';
  ownership: 'process' | 'system';
  owner: string;
  meta: unknown;
}

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

export type ShmDelivery = 'round-robin' | 'arbitrary' | 'exclusive';

export interface ShmMailboxOptions {
  /** Messages the mailbox holds, 1 .. 2^24. Default 256. 0 and 'unbounded' are NOT_SUPPORTED. */
  capacity?: number | 'unbounded';
  /** 'round-robin' / 'arbitrary' (competing receivers; identical here) or 'exclusive'. Default 'round-robin'. */
  delivery?: ShmDelivery | 'broadcast';
  /** 'process': removed when the creating process exits; 'system': lives until removed. Default 'process'. */
  owner?: 'process' | 'system';
  /** Largest payload, bytes (up to 1 GiB). Default 1 MiB. */
  maxMessageSize?: number;
  /** When set, every payload must be exactly this many bytes (WRONG_MESSAGE_SIZE). */
  fixedMessageSize?: number;
  /** Payloads up to this size are copied through the ring; larger ones go to the slab. Default 4096 (measured crossover, docs/shm-mailbox.md). */
  mapThreshold?: number;
  /** Slab chunks (large messages in flight or held by receivers). Default min(capacity, 8); 0 when no payload can exceed mapThreshold. */
  slabChunks?: number;
  senders?: Grantees;
  receivers?: Grantees;
  /** Permission bits of the POSIX segment. Default 0o600. */
  mode?: number;
  /** The creator's own role. Default 'both'. */
  role?: 'send' | 'receive' | 'both';
}

export interface ShmSendOptions {
  timeout?: number;
  nonblock?: boolean;
  signal?: AbortSignal;
  /** Only 0 is supported. */
  priority?: number;
  codec?: CodecName;
  /** Not supported. */
  sync?: boolean;
}

export interface ShmReceiveOptions {
  timeout?: number;
  nonblock?: boolean;
  signal?: AbortSignal;
  /** Not supported. */
  ack?: boolean;
  /** Copy a slab message into private memory and release its chunk at once. */
  copy?: boolean;
}

export const DEFAULT_SHM_CAPACITY = 256;
export const DEFAULT_SHM_MAX_MESSAGE = 1024 * 1024;
export const DEFAULT_MAP_THRESHOLD = 4096;
const MAX_SHM_CAPACITY = 2 ** 24;
const MAX_SHM_MESSAGE = 2 ** 30;

/** A snapshot of a shared-memory mailbox (see `ShmMailbox.stat()`). */
export interface ShmMailboxStat {
  /** Messages queued (ring cells claimed by senders and not yet taken). */
  depth: number;
  /** Senders parked for a credit, a ring cell or a slab chunk, in every attached process. */
  waitingSenders: number;
  /** Receivers parked for a message, in every attached process. */
  waitingReceivers: number;
}

function notSupported(what: string): IpcError {
  return new IpcError('NOT_SUPPORTED', `shared-memory mailboxes do not support ${what}`);
}

function intIn(v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(`${what} must be an integer from ${lo} to ${hi}, got ${String(v)}`);
  }
  return v;
}

interface Resolved {
  layout: MailboxLayout;
  delivery: ShmDelivery;
  owner: 'process' | 'system';
  senders: Grantees;
  receivers: Grantees;
  mode: number;
  role: 'send' | 'receive' | 'both';
}

function resolve(o: ShmMailboxOptions): Resolved {
  if (o.capacity === 0) throw notSupported('capacity 0 (rendezvous)');
  if (o.capacity === 'unbounded') throw notSupported('unbounded capacity');
  if (o.delivery === 'broadcast') throw notSupported('broadcast delivery');
  const capacity = intIn(o.capacity ?? DEFAULT_SHM_CAPACITY, 1, MAX_SHM_CAPACITY, 'capacity');
  const delivery = o.delivery ?? 'round-robin';
  if (delivery !== 'round-robin' && delivery !== 'arbitrary' && delivery !== 'exclusive') {
    throw new RangeError("delivery must be 'round-robin', 'arbitrary' or 'exclusive'");
  }
  const owner = o.owner ?? 'process';
  if (owner !== 'process' && owner !== 'system') throw new RangeError("owner must be 'process' or 'system'");
  const maxMessageSize = intIn(
    o.maxMessageSize ?? DEFAULT_SHM_MAX_MESSAGE,
    0,
    MAX_SHM_MESSAGE,
    'maxMessageSize',
  );
  const fixed =
    o.fixedMessageSize === undefined
      ? undefined
      : intIn(o.fixedMessageSize, 0, maxMessageSize, 'fixedMessageSize');
  const mapThreshold = Math.min(
    intIn(o.mapThreshold ?? DEFAULT_MAP_THRESHOLD, 0, 2 ** 20, 'mapThreshold'),
    maxMessageSize,
  );
  const needSlab = maxMessageSize > mapThreshold;
  const slabChunks = needSlab
    ? intIn(o.slabChunks ?? Math.min(capacity, 8), 1, MAX_SHM_CAPACITY, 'slabChunks')
    : 0;
  const mode = o.mode ?? 0o600;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777)
    throw new RangeError('mode must be permission bits (0..0o777)');
  const role = o.role ?? 'both';
  if (role !== 'send' && role !== 'receive' && role !== 'both')
    throw new RangeError("role must be 'send', 'receive' or 'both'");
  return {
    layout: layoutFor({ capacity, maxMessageSize, mapThreshold, fixedMessageSize: fixed, slabChunks }),
    delivery,
    owner,
    senders: o.senders ?? 'everyone',
    receivers: o.receivers ?? 'everyone',
    mode,
    role,
  };
}

/** Releases slab chunks of messages dropped without release(). */
const leases = new FinalizationRegistry<() => void>((release) => release());

/**
 * A message received from a shared-memory mailbox. `bytes` is a private copy
 * for small payloads; for slab payloads (`mapped`) it is a view of shared
 * memory that is valid until `release()`: treat it as read-only and `copy()`
 * it before writing (copy-on-write by hand).
 */
export class ShmMessage<T = unknown> {
  #decoded = false;
  #value: unknown;
  #release: (() => void) | undefined;
  #bytes: Buffer | undefined;

  constructor(
    bytes: Buffer,
    readonly codec: CodecName,
    /** The kernel's process number of the sender. */
    readonly senderPid: number,
    readonly mailbox: string,
    /** True if `bytes` is a view of the mailbox's shared memory (zero copy). */
    readonly mapped: boolean,
    release: (() => void) | undefined,
  ) {
    this.#bytes = bytes;
    this.#release = release;
    if (release !== undefined) leases.register(this, release, this);
  }

  /** Always 0: shared-memory mailboxes have no priorities. */
  get priority(): number {
    return 0;
  }

  /** The payload. For a mapped message: a read-only view, invalid after release(). */
  get bytes(): Buffer {
    if (this.#bytes === undefined) throw new IpcError('INVALID_ARGUMENT', 'message already released');
    return this.#bytes;
  }

  /** The payload decoded with the sender's codec (once, on first access). */
  get data(): T {
    if (!this.#decoded) {
      this.#value = decodePayload(this.bytes, codecId(this.codec));
      this.#decoded = true;
    }
    return this.#value as T;
  }

  /** A private, writable copy of the payload. */
  copy(): Buffer {
    return Buffer.from(this.bytes);
  }

  /** Give a slab chunk back (no-op for copied messages). `bytes` is invalid afterwards. Idempotent. */
  release(): void {
    const r = this.#release;
    if (r === undefined) return;
    this.#release = undefined;
    this.#bytes = undefined;
    leases.unregister(this);
    r();
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

interface MailboxEvents {
  closed: [MailboxClosedError];
}

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
  readonly #ring: MpmcRing;
  readonly #credits: Semaphore;
  readonly #slab: Slab | undefined;
  readonly #onRemoved: (e: { name: string; reason: string }) => void;
  #closedError: MailboxClosedError | undefined;
  #detached = false;
  /** Aborted when this handle closes, to end its own pending waits. */
  readonly #local = new AbortController();

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
    this.#ring = new MpmcRing(buffer, this.layout.ringOffset);
    this.#credits = new Semaphore(buffer, CREDITS_OFFSET);
    this.#slab = this.layout.slabChunks > 0 ? new Slab(buffer, this.layout) : undefined;
    this.#onRemoved = (e) => {
      if (e.name === name || e.name === `/${name}`) this.#markClosed(`mailbox ${name} closed: ${e.reason}`);
    };
    proc.on('segment-removed', this.#onRemoved);
  }

  /** Create a mailbox: a new POSIX segment, registered with the kernel. */
  static async create(
    proc: SegmentRegistry,
    name: string,
    options: ShmMailboxOptions = {},
  ): Promise<ShmMailbox> {
    const r = resolve(options);
    // The POSIX name is taken first (exclusively), so a failure can never
    // unlink a segment that is not ours; then the kernel records it.
    const segment = Segment.create(name, { size: r.layout.totalBytes, mode: r.mode });
    try {
      initMailbox(segment.buffer, r.layout);
      await proc.registerSegment(name, {
        size: r.layout.totalBytes,
        kind: 'mailbox',
        ownership: r.owner,
        meta: { backend: 'shm', delivery: r.delivery, capacity: r.layout.capacity },
        senders: r.senders,
        receivers: r.receivers,
        role: r.role,
        created: true,
      });
    } catch (err) {
      segment.close();
      Segment.unlink(name);
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

  /** Messages queued now (a snapshot). */
  get depth(): number {
    return this.#ring.size;
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
    return {
      depth: this.#ring.size,
      waitingSenders:
        this.#credits.waiters + this.#ring.waitingProducers + (this.#slab?.waitingForChunk ?? 0),
      waitingReceivers: this.#ring.waitingConsumers,
    };
  }

  // ------------------------------------------------------------------ sending

  async send(value: unknown, options: ShmSendOptions = {}): Promise<void> {
    if (options.priority !== undefined && options.priority !== 0) throw notSupported('priorities');
    if (options.sync === true) throw notSupported('sync send');
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
    await this.#takeCredit(options, deadline);
    let ok = false;
    try {
      const sender = this.#proc.pid;
      if (len <= l.mapThreshold) {
        const fill = (bytes: Uint8Array, off: number): void => {
          writeRecordHeader(bytes, off, codec, 0, sender);
          bytes.set(payload, off + RECORD_HEADER);
        };
        // A credit guarantees a free cell except while a slow receiver still
        // holds an older cell at the claim position; then wait for it.
        if (!this.#ring.tryWriteWith(RECORD_HEADER + len, fill)) {
          await this.#ring.writeWith(RECORD_HEADER + len, fill, this.#waitOptions(options, deadline));
        }
      } else {
        const slab = this.#slab as Slab;
        let chunk = slab.tryAcquire();
        if (chunk < 0) {
          if (options.nonblock === true) throw new WouldBlockError(`${this.name}: no free slab chunk`);
          chunk = await slab.acquire(this.#waitOptions(options, deadline));
        }
        slab.view(chunk, len).set(payload);
        slab.markQueued(chunk);
        const fill = (bytes: Uint8Array, off: number): void => {
          writeRecordHeader(bytes, off, codec, RECORD_SLAB, sender);
          writeU32(bytes, off + RECORD_HEADER, chunk);
          writeU32(bytes, off + RECORD_HEADER + 4, len);
        };
        try {
          if (!this.#ring.tryWriteWith(RECORD_HEADER + SLAB_REF_BYTES, fill)) {
            await this.#ring.writeWith(
              RECORD_HEADER + SLAB_REF_BYTES,
              fill,
              this.#waitOptions(options, deadline),
            );
          }
        } catch (err) {
          slab.release(chunk);
          throw err;
        }
      }
      ok = true;
    } catch (err) {
      throw this.#mapError(err, options.signal);
    } finally {
      if (!ok) this.#credits.post(1);
    }
  }

  /** Send only if it can complete now; WOULD_BLOCK otherwise. */
  trySend(value: unknown, options: Omit<ShmSendOptions, 'nonblock' | 'timeout'> = {}): Promise<void> {
    return this.send(value, { ...options, nonblock: true });
  }

  // ------------------------------------------------------------------ receiving

  async receive(options: ShmReceiveOptions = {}): Promise<ShmMessage> {
    if (options.ack === true) throw notSupported('acknowledged receive (ack/redelivery)');
    this.#checkRole('receive');
    this.#throwIfClosed();
    if (options.signal?.aborted) throw new AbortError('receive aborted', { cause: options.signal.reason });
    const copy = options.copy === true;
    const take = (view: Uint8Array): ShmMessage => this.#take(view, copy);
    let msg: ShmMessage | null;
    try {
      msg = this.#ring.tryReadWith(take);
      if (msg === null) {
        if (options.nonblock === true) throw new WouldBlockError(`${this.name} is empty`);
        const deadline = deadlineAfter(options.timeout);
        msg = await this.#ring.readWith(take, this.#waitOptions(options, deadline));
      }
    } catch (err) {
      throw this.#mapError(err, options.signal);
    }
    this.#credits.post(1);
    return msg;
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
  async *messages(
    options: { signal?: AbortSignal; copy?: boolean } = {},
  ): AsyncGenerator<ShmMessage, void, undefined> {
    for (;;) {
      let m: ShmMessage;
      try {
        const o: ShmReceiveOptions = {};
        if (options.signal !== undefined) o.signal = options.signal;
        if (options.copy !== undefined) o.copy = options.copy;
        m = await this.receive(o);
      } catch (err) {
        if (err instanceof IpcError && err.code === 'MAILBOX_CLOSED') return;
        throw err;
      }
      yield m;
    }
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

  #take(view: Uint8Array, copy: boolean): ShmMessage {
    // A record taken after removal is dropped: the mailbox and its queue are gone.
    if (this.closed) throw new MailboxClosedError(`mailbox ${this.name} is closed`);
    const codec = codecName(view[0] as number);
    const flags = view[1] as number;
    const sender = readU32(view, 4);
    if ((flags & RECORD_SLAB) === 0) {
      return new ShmMessage(
        Buffer.from(view.subarray(RECORD_HEADER)),
        codec,
        sender,
        this.name,
        false,
        undefined,
      );
    }
    const slab = this.#slab as Slab;
    const chunk = readU32(view, RECORD_HEADER);
    const len = readU32(view, RECORD_HEADER + 4);
    slab.lease(chunk);
    const shared = slab.view(chunk, len);
    if (copy) {
      const own = Buffer.from(shared);
      slab.release(chunk);
      return new ShmMessage(own, codec, sender, this.name, false, undefined);
    }
    return new ShmMessage(shared, codec, sender, this.name, true, () => slab.release(chunk));
  }

  async #takeCredit(options: ShmSendOptions, deadline: number): Promise<void> {
    if (this.#credits.tryWait()) return;
    if (options.nonblock === true) throw new WouldBlockError(`${this.name} is full`);
    try {
      await this.#credits.wait(this.#waitOptions(options, deadline));
    } catch (err) {
      throw this.#mapError(err, options.signal);
    }
    if (this.closed || this.#closedError !== undefined) {
      this.#credits.post(1);
      this.#throwIfClosed();
    }
  }

  #waitOptions(
    options: { signal?: AbortSignal },
    deadline: number,
  ): { timeout: number; signal: AbortSignal } {
    const local = this.#local.signal;
    return {
      timeout: remaining(deadline),
      signal: options.signal === undefined ? local : AbortSignal.any([options.signal, local]),
    };
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

  /** Set CLOSED in the shared header and wake every waiter in every process. */
  #markClosed(reason: string): void {
    this.#closedError ??= new MailboxClosedError(reason);
    Atomics.or(this.#flags, H_FLAGS, FLAG_CLOSED);
    this.#ring.close();
    this.#slab?.close();
    // Wake senders parked for a credit; they see CLOSED and give up.
    this.#credits.post(0x3fffffff);
    this.emit('closed', this.#closedError);
    this.#detach();
  }

  #detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#proc.off('segment-removed', this.#onRemoved);
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
