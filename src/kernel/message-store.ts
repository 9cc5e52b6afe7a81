import { Chunk } from '../wire/frame-codec.js';
import type { KernelMessage } from './mailbox-record.js';
import type { MappedPayload } from './map-regions.js';

/**
 * What the kernel's memory budget counts, and how a kept message holds its
 * payload.
 *
 * A message arrives as a view of the socket chunk it came in. While it is
 * only in flight (handed straight to a receiver, waiting for CONSUMED) it
 * keeps pointing into that chunk, and the chunk is charged once, whole, while
 * any kept message points into it: the budget counts the memory really held,
 * not the payload sizes. A message that will wait (queued, parked) and is
 * small next to its chunk is copied out into a buffer of its own, so a 1-byte
 * message never pins 64 KiB. Each kept message is also charged a fixed
 * overhead for its record.
 *
 * Invariants: `held` is the sum of the charges of chunks with refs > 0;
 * every message holds exactly one ref on `message.store` from acceptance
 * until `finish` drops its last copy.
 */

/** Bookkeeping a kept message costs besides its payload (record, buffer header), charged with it. */
export const MESSAGE_OVERHEAD = 128;
/** A waiting message is copied out when its chunk is more than this many times its size. */
const COMPACT_RATIO = 2;

/** The one empty buffer: zero-length payloads, and mapped ones (their bytes are in a map region), share it. */
const EMPTY = new Chunk(Buffer.alloc(0));

/** The store of a payload the kernel does not hold (a mapped one): charged nothing but the record. */
export function emptyStore(): Chunk {
  return EMPTY;
}
/** Chunks that are one message's own copy (nothing else points into them). */
const ownBuffers = new WeakSet<Chunk>([EMPTY]);

/** Above this share of the limit, messages still pointing into shared read chunks are copied out. */
const RELIEVE_AT = 0.5;

export class MemoryBudget {
  /**
   * Messages pointing into a read chunk shared with other frames. Usually
   * short-lived (in flight until CONSUMED); when memory runs high they are
   * copied out, so chunks held by a few long-lived ones (unacknowledged, or
   * sitting in a busy receiver's prefetch) can go.
   */
  private readonly sharing = new Set<KernelMessage>();
  /** Bytes of payload storage held by kept messages (chunks and own copies). */
  held = 0;
  /** Bytes promised to senders as credits, not yet spent. */
  reserved = 0;
  /** Bytes written to sockets that the peers have not read yet. */
  backlog = 0;
  /** Bytes of frames still arriving (partly read large frames). */
  incoming = 0;
  /** A finished message's map-region chunk is let go here (map-regions.ts; set by the kernel). */
  dropMapped: (p: MappedPayload) => void = () => {};

  constructor(readonly limit: number) {}

  get used(): number {
    return this.held + this.reserved + this.backlog + this.incoming;
  }

  /** Would `bytes` more fit? */
  fits(bytes: number): boolean {
    return this.used + bytes <= this.limit;
  }

  /** Take a ref on the chunk a message points into (the message is now kept). */
  retain(m: KernelMessage): void {
    this.held += MESSAGE_OVERHEAD;
    this.ref(m.store);
    if (!ownBuffers.has(m.store)) this.sharing.add(m);
  }

  /**
   * If held memory is high, copy every small message out of the chunks it
   * shares. Each message is copied at most once, so this is amortised O(1)
   * per message; chunks then go as soon as nothing else points into them.
   */
  relieve(): void {
    if (this.held <= this.limit * RELIEVE_AT || this.sharing.size === 0) return;
    for (const m of this.sharing) this.compact(m);
    this.sharing.clear();
  }

  /**
   * The message will wait: if it is small next to its chunk, give it a
   * buffer of its own so the chunk can go.
   */
  compact(m: KernelMessage): void {
    const store = m.store;
    this.sharing.delete(m);
    if (store === EMPTY || store.buf.length <= COMPACT_RATIO * (m.size + MESSAGE_OVERHEAD)) return;
    if (store.buf.length === m.size && m.offset === 0) return;
    const own = m.size === 0 ? EMPTY : new Chunk(Buffer.allocUnsafeSlow(m.size));
    ownBuffers.add(own);
    if (m.size > 0) m.bytes.copy(own.buf, 0, m.offset, m.offset + m.size);
    this.ref(own);
    this.unref(store);
    m.store = own;
    m.bytes = own.buf;
    m.offset = 0;
  }

  /** One copy of the message is done with; the last one frees its storage. */
  finish(m: KernelMessage): void {
    if (m.pending <= 0) return;
    m.pending--;
    if (m.pending === 0) {
      this.held -= MESSAGE_OVERHEAD;
      this.unref(m.store);
      this.sharing.delete(m);
      // A synchronous sender still waiting may have it offered again (refan): its chunk stays.
      if (m.completion === undefined) this.letGoMapped(m);
      // A durable mailbox's message is finished for good: it leaves the disk too.
      if (m.durable !== undefined) void m.durable.store.remove(m.durable.seq);
    }
  }

  /** A finished message's map-region chunk goes (no-op if it has none, or still has copies). */
  letGoMapped(m: KernelMessage): void {
    const p = m.mapped;
    if (p === undefined || m.pending > 0) return;
    m.mapped = undefined;
    this.dropMapped(p);
  }

  private ref(c: Chunk): void {
    if (c.refs++ === 0) this.held += charge(c);
  }

  private unref(c: Chunk): void {
    if (--c.refs === 0) this.held -= charge(c);
  }
}

function charge(c: Chunk): number {
  return c.buf.length;
}
