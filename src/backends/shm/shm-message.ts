/**
 * ShmMessage: a message received from a shared-memory mailbox, and the lease
 * on the slab chunk a mapped (zero-copy) message lends.
 *
 * Contract (zero copy is a lease):
 * - Inline messages (`mapped` false) own a private copy: nothing to lease.
 * - A mapped message's `bytes` is a view of a slab chunk, lent while the
 *   lease holds. The lease ends with `release()` (or dispose), or when no
 *   view of the chunk is reachable any more: the finalizer is registered on
 *   the chunk's own SharedArrayBuffer (Slab.lend), which every view of it
 *   (`bytes`, its subarrays, typed arrays over `bytes.buffer`) keeps alive,
 *   so it cannot fire while any view is in use. Dropping the message while
 *   keeping `bytes` is therefore safe; after `release()` the view is not.
 * - `data` is always the caller's to keep: decoded values are new objects,
 *   and for the bytes codec a mapped payload is copied on first access
 *   (`bytes` is the zero-copy way to read it).
 */
import { IpcError } from '../../errors.js';
import { codecId, decodePayload } from '../../wire/payload-codec.js';
import type { CodecName } from '../../wire/protocol.js';

/** Releases the slab chunks of mapped messages whose views all became unreachable. */
const leases = new FinalizationRegistry<() => void>((release) => release());

/**
 * A message received from a shared-memory mailbox. `bytes` is a private copy
 * for small payloads; for slab payloads (`mapped`) it is a view of shared
 * memory, valid until `release()`: treat it as read-only and `copy()` it
 * before writing (copy-on-write by hand).
 */
export class ShmMessage<T = unknown> {
  #decoded = false;
  #value: unknown;
  #release: (() => void) | undefined;
  #bytes: Buffer | undefined;
  #ack: (() => void) | undefined;
  #nack: (() => void) | undefined;

  /**
   * `release`, for a mapped message, gives the chunk back; it must not refer
   * to `bytes` or its buffer (it is held until that buffer is collected).
   */
  constructor(
    bytes: Buffer,
    readonly codec: CodecName,
    /** The kernel's process number of the sender. */
    readonly senderPid: number,
    readonly mailbox: string,
    /** True if `bytes` is a view of the mailbox's shared memory (zero copy). */
    readonly mapped: boolean,
    release: (() => void) | undefined,
    /** 0..31; always 0 from a ring mailbox. */
    readonly priority = 0,
    /** For a message received with `ack`: acknowledges it (once). */
    ack?: () => void,
    /** For a message received with `ack`: gives it back for redelivery (once). */
    nack?: () => void,
  ) {
    this.#bytes = bytes;
    this.#release = release;
    this.#ack = ack;
    this.#nack = nack;
    if (release !== undefined) leases.register(bytes.buffer, release, this);
  }

  /** True until a message received with `ack` is acknowledged. */
  get needsAck(): boolean {
    return this.#ack !== undefined;
  }

  /**
   * Acknowledge a message received with `ack`: the mailbox forgets it (until
   * then, it is delivered again if this receiver's handle closes or its
   * process dies). Idempotent; a no-op for messages received without `ack`.
   */
  ack(): void {
    const a = this.#ack;
    if (a === undefined) return;
    this.#ack = undefined;
    this.#nack = undefined;
    a();
  }

  /**
   * Give a message received with `ack` back: it is queued again ahead of every message accepted
   * after it (or handed to the longest-waiting receive) and delivered again, as when this handle
   * closes. INVALID_ARGUMENT for a message not received with `ack` or already settled;
   * NOT_SUPPORTED for a broadcast copy (each receiver's copy is its own: close the handle).
   */
  nack(): void {
    const n = this.#nack;
    if (n === undefined) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        this.#ack === undefined
          ? 'nack() needs a message received with { ack: true } and not yet acknowledged'
          : 'nack() is not supported on a broadcast copy (close the handle to have it delivered again)',
      );
    }
    this.#ack = undefined;
    this.#nack = undefined;
    n();
  }

  /** The payload. For a mapped message: a read-only view, invalid after release(). */
  get bytes(): Buffer {
    if (this.#bytes === undefined) throw new IpcError('INVALID_ARGUMENT', 'message already released');
    return this.#bytes;
  }

  /** The payload decoded with the sender's codec (once, on first access); yours to keep. */
  get data(): T {
    if (!this.#decoded) {
      const bytes = this.bytes;
      const value = decodePayload(bytes, codecId(this.codec));
      // The bytes codec hands the buffer back as it is: never let the lent view escape as data.
      this.#value = this.mapped && value === bytes ? Buffer.from(bytes) : value;
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
