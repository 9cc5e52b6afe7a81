import { IpcError, ProtocolError } from '../errors.js';
import { decodePayload } from '../wire/payload-codec.js';
import type { CodecName } from '../wire/protocol.js';
import { CODEC_NAMES } from '../wire/protocol.js';

/** What a Message needs from its connection to acknowledge or give itself back. */
export interface DeliveryControl {
  ack(deliveryId: number): void;
  release(deliveryId: number): void;
}

/**
 * A received (or peeked) message. `bytes` is the payload as sent; `data` decodes it with
 * the codec the sender chose (decoded once, on first access).
 */
export class Message<T = unknown> {
  private decoded = false;
  /** @internal The one-hop link that brought it, while it waits in a LocalInbox (local-inbox.ts). */
  origin: object | undefined = undefined;
  /** @internal With `origin`: the sender's id of a synchronous send (0 if none). */
  syncId = 0;
  private value: unknown;
  private settled = false;

  constructor(
    /** The payload bytes, untouched. */
    readonly bytes: Buffer,
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
  ) {}

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
      this.value = decodePayload(this.bytes, this.codecId);
      this.decoded = true;
    }
    return this.value as T;
  }

  /** Acknowledge: the kernel forgets the message. Only for messages received with `ack: true`. */
  ack(): void {
    this.settle('ack');
    this.control.ack(this.deliveryId);
  }

  /** Give the message back: the kernel puts it at the front of its mailbox for redelivery. */
  nack(): void {
    this.settle('nack');
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
