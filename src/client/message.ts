import { IpcError, ProtocolError } from '../errors.js';
import { decodePayload } from '../wire/payload-codec.js';
import type { CodecName } from '../wire/protocol.js';
import { CODEC_NAMES } from '../wire/protocol.js';

/** What a Message needs from its connection to acknowledge or give itself back. */
export interface DeliveryControl {
  ack(deliveryId: number): void;
  release(deliveryId: number): void;
}

/** Hands back the map-region chunks of mapped messages whose views all became unreachable. */
const leases = new FinalizationRegistry<(tell: boolean) => void>((unmap) => unmap(true));

/**
 * A received (or peeked) message. `bytes` is the payload as sent; `data` decodes it with
 * the codec the sender chose (decoded once, on first access).
 *
 * Zero copy is a lease (as in the shared-memory mailbox's ShmMessage): a large message sent
 * by map (`mapped` true) lends `bytes` as a view of the sender's map region, valid until
 * `release()` (or dispose, or `nack()`); treat it as read-only and `copy()` it to keep or
 * write. Without a release the lease ends when no view of it is reachable any more: the
 * finalizer is registered on the view's own SharedArrayBuffer, which every view of it keeps
 * alive, so dropping the message while keeping `bytes` is safe. `data` is always yours: a
 * decoded value, or for the bytes codec a private copy of a mapped payload.
 */
export class Message<T = unknown> {
  private decoded = false;
  /** @internal The one-hop link that brought it, while it waits in a LocalInbox (local-inbox.ts). */
  origin: object | undefined = undefined;
  /** @internal With `origin`: the sender's id of a synchronous send (0 if none). */
  syncId = 0;
  private value: unknown;
  private settled = false;
  #bytes: Buffer | undefined;
  #unmap: ((tell: boolean) => void) | undefined;
  /** True if `bytes` is a view of the sender's map region (zero copy), lent until release(). */
  readonly mapped: boolean;

  constructor(
    /** The payload bytes, untouched. */
    bytes: Buffer,
    /** @internal The codec byte from the wire. */
    readonly codecId: number,
    readonly priority: number,
    /** Name of the sending process. */
    readonly sender: string,
    readonly senderPid: number,
    /** Mailbox name, or '@<own name>' for a direct message. */
    readonly mailbox: string,
    /** True if this message must be acknowledged (receive with `ack: true`). */
    readonly needsAck: boolean,
    /** @internal The kernel's id for this delivery (0 if untracked). */
    readonly deliveryId: number,
    /** @internal True if the kernel waits to hear that it was consumed. */
    readonly tracked: boolean,
    private readonly control: DeliveryControl,
    /**
     * A copy returned by `peek()`: the message itself is still queued, so this
     * one has no delivery to `ack()` or `nack()` (both throw INVALID_ARGUMENT).
     */
    readonly peeked = false,
    /**
     * For a mapped message: ends the lease, and with `tell` hands the lent chunk back (UNMAP;
     * without, it went back with the delivery). It must not refer to `bytes` or its buffer (it
     * is held until that buffer is collected).
     */
    unmap?: (tell: boolean) => void,
  ) {
    this.#bytes = bytes;
    this.#unmap = unmap;
    this.mapped = unmap !== undefined;
    if (unmap !== undefined) leases.register(bytes.buffer, unmap, this);
  }

  /** The payload. For a mapped message: a read-only view, invalid after release(). */
  get bytes(): Buffer {
    if (this.#bytes === undefined) throw new IpcError('INVALID_ARGUMENT', 'message already released');
    return this.#bytes;
  }

  /** A private, writable copy of the payload. */
  copy(): Buffer {
    return Buffer.from(this.bytes);
  }

  /** Hand a mapped payload back (no-op for copied messages). `bytes` is invalid afterwards. Idempotent. */
  release(): void {
    const unmap = this.#unmap;
    if (unmap === undefined) return;
    this.#unmap = undefined;
    this.#bytes = undefined;
    leases.unregister(this);
    unmap(true);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  /** @internal The lend went back with the delivery (RELEASE): drop the view, send nothing. */
  revoke(): void {
    const unmap = this.#unmap;
    if (unmap === undefined) return;
    this.#unmap = undefined;
    this.#bytes = undefined;
    leases.unregister(this);
    unmap(false);
  }

  /** How the sender encoded the payload. */
  get codec(): CodecName {
    return CODEC_NAMES[this.codecId] ?? 'bytes';
  }

  /** The decoded payload. Throws PROTOCOL for a codec this library does not know (`bytes` still has the payload). */
  get data(): T {
    if (!this.decoded) {
      if (CODEC_NAMES[this.codecId] === undefined) {
        throw new ProtocolError(`message encoded with unknown codec ${this.codecId}`);
      }
      const bytes = this.bytes;
      const value = decodePayload(bytes, this.codecId);
      // The bytes codec hands the buffer back as it is: never let a lent view escape as data.
      this.value = this.mapped && value === bytes ? Buffer.from(bytes) : value;
      this.decoded = true;
    }
    return this.value as T;
  }

  /** Acknowledge: the kernel forgets the message. Only for messages received with `ack: true`. */
  ack(): void {
    this.settle('ack');
    this.control.ack(this.deliveryId);
  }

  /** Give the message back: the kernel puts it at the front of its mailbox for redelivery (a mapped one's `bytes` goes with it). */
  nack(): void {
    this.settle('nack');
    // Handed back, the delivery's lend goes with it: `bytes` is invalid from here.
    this.revoke();
    this.control.release(this.deliveryId);
  }

  private settle(what: string): void {
    if (this.peeked) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `${what}() on a peeked message: it is a copy, the message itself is still queued`,
      );
    }
    if (!this.needsAck)
      throw new IpcError('INVALID_ARGUMENT', `${what}() needs a message received with { ack: true }`);
    if (this.settled) throw new IpcError('INVALID_ARGUMENT', `message already acknowledged or released`);
    this.settled = true;
  }
}
