/**
 * Wire protocol constants. The full description, enough to write a client in
 * another language, is docs/protocol.md; keep the two in step.
 *
 * Every frame, both directions, little-endian:
 *
 *   offset size field
 *   0      4    length   bytes that follow this field (12 + body length)
 *   4      1    op       one of Op
 *   5      1    flags    op-specific bits
 *   6      1    priority 0..31 (message frames), else 0
 *   7      1    codec    payload codec (message frames), else 0
 *   8      4    reqId    request id chosen by the client; 0 = no reply wanted
 *   12     4    target   mailbox id (message frames), else 0
 *   16     ...  body
 */
/**
 * 2: every delivery is tracked (REQUEUE retired: a client hands back only what
 * it was given, by delivery id); DEMAND carries a request id that refusals
 * answer; REVOKE and CREDIT_RETURN carry the revocation round's epoch.
 * 3: large payloads by map: HELLO and WELCOME carry capability flags (MAP),
 * SEND and DELIVER may carry a MAPPED reference instead of the payload, and
 * UNMAP hands a lent payload back. A version 2 client never sees a MAPPED frame.
 */
export const PROTOCOL_VERSION = 3;
/**
 * The oldest version the kernel still speaks. A version 1 client keeps
 * working (every delivery it gets is marked TRACKED, which it already
 * handles), but gets no WITHDRAW, its REQUEUE frames are ignored, and a
 * refused DEMAND closes its connection as in version 1.
 */
export const MIN_PROTOCOL_VERSION = 1;
export const MAGIC = 0x42435049; // "IPCB" read as little-endian u32
export const HEADER_SIZE = 16;
/** Bytes of header after the length field. */
export const HEADER_REST = 12;
/** Default largest payload the kernel accepts (bytes). */
export const DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024;
/** Longest timeout the wire carries (u32 ms, ~49.7 days); a client wanting longer sends none. */
export const MAX_TIMEOUT = 0xfffffffe;
/** Largest body of a non-message frame (JSON control calls, handshake). */
export const MAX_CONTROL_BODY = 1024 * 1024;
/**
 * Sender names (peer notices) a client keeps; the kernel re-sends a name after
 * telling a session half as many others, so the client always has every name
 * the kernel thinks it has, and neither side's table grows without bound.
 */
export const PEER_NAMES = 131072;
/** Process names of the form the kernel assigns (HELLO with an empty name: `proc-<n>`, in a cluster `proc-<n>.<node>`); no client may claim one. */
export const ASSIGNED_NAME = /^proc-\d+(?:\.[A-Za-z0-9_-]{1,64})?$/;
/** Largest frame the kernel reads before HELLO: a handshake is small, a stranger gets no more. */
export const MAX_HELLO_FRAME = 4096;

export const Op = {
  // client -> kernel
  HELLO: 1,
  CALL: 3,
  SEND: 6,
  RECV: 8,
  DEMAND: 10,
  CANCEL: 11,
  CONSUMED: 12,
  ACK: 13,
  RELEASE: 14,
  /** Retired (protocol 1 let a client inject messages with it): the kernel answers it as a protocol error. */
  REQUEUE: 15,
  CREDIT_RETURN: 18,
  BYE: 20,
  /** The first frame on a network (TLS) connection: the token, before HELLO. */
  AUTH: 22,
  /** Lent (MAPPED) payloads the receiver is done with, by delivery id (protocol 3). */
  UNMAP: 23,
  // kernel -> client
  WELCOME: 2,
  RESULT: 4,
  ERROR: 5,
  SENT: 7,
  DELIVER: 9,
  CREDIT: 16,
  REVOKE: 17,
  NOTICE: 19,
  /** A delivery's sender gave up (timeout, abort): hand it back if the application has not taken it. */
  WITHDRAW: 21,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** SEND flags. */
export const SendFlag = {
  NONBLOCK: 1,
  /** Complete only when a receiver has taken the message. */
  SYNC: 2,
  /** Body starts with a u32 timeout in milliseconds. */
  TIMED: 4,
  /**
   * The payload is in the sender's map region: after the timeout (if TIMED)
   * the body is a reference (MAP_REF_BYTES: u32 region id, u32 chunk, u32
   * length), not the bytes (protocol 3, only when WELCOME offered MAP).
   */
  MAPPED: 8,
} as const;

/** Bytes of a SEND's MAPPED reference: u32 region id, u32 chunk index, u32 payload length. */
export const MAP_REF_BYTES = 12;

/** HELLO (u16 at +6) and WELCOME (u16 at +2) capability flags (protocol 3). */
export const HelloFlag = {
  /** HELLO: this client can read MAPPED deliveries. WELCOME: this kernel takes MAPPED sends. */
  MAP: 1,
  /**
   * WELCOME: every process of this kernel is on this host and of its user (no cluster, no TLS
   * listener, no group), so a shared-memory mailbox reaches all of them ('auto' transport).
   */
  HOST_LOCAL: 2,
} as const;

/** CREDIT flags. */
export const CreditFlag = {
  /**
   * The target is a mailbox on another node (protocol 3): its credits count payload bytes
   * there, so credited sends to it carry their bytes, never a MAPPED reference.
   */
  COPY: 1,
} as const;

/** UNMAP flags. */
export const UnmapFlag = {
  /**
   * The receiver could not map these deliveries (it could not open their
   * regions): hand them back as RELEASE does, and deliver from those regions
   * to it by copy from now on.
   */
  REFUSE: 1,
} as const;

/** RECV flags. */
export const RecvFlag = {
  NONBLOCK: 1,
  TIMED: 4,
  /** Body holds a u32 sender process id (after the timeout if TIMED). */
  FROM: 8,
  /** Messages stay owned by the kernel until ACK; a dead receiver's go back. */
  ACK: 16,
} as const;

/** DELIVER flags. */
export const DeliverFlag = {
  /** The kernel waits for CONSUMED (and ACK if in ack mode) for this delivery id. */
  TRACKED: 1,
  /** The receiver must ACK this delivery. */
  ACK: 2,
  /**
   * A copy of a queued message answering a `mailbox.peek` CALL (the frame's
   * reqId): not a delivery (delivery id 0, never TRACKED), the message stays queued.
   */
  PEEK: 4,
  /**
   * The payload is lent from a sender's map region: after the delivery id and
   * sender pid the body is u32 region id, u32 chunk, u32 length, then the
   * region's segment name (UTF-8). The receiver reads it in place and sends
   * UNMAP with the delivery id when done (protocol 3).
   */
  MAPPED: 8,
} as const;

/** Most messages one `mailbox.peek` returns. */
export const MAX_PEEK_COUNT = 100;

/** A peek's `count`, checked the same on both sides: 1..MAX_PEEK_COUNT, default 1. */
export function peekCount(count: unknown): number {
  if (count === undefined) return 1;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_PEEK_COUNT) {
    throw new RangeError(`count must be an integer from 1 to ${MAX_PEEK_COUNT}`);
  }
  return count;
}

/** Payload codecs, carried in the header's codec byte. */
export const Codec = {
  BYTES: 0,
  STRING: 1,
  JSON: 2,
  V8: 3,
} as const;
export type CodecId = (typeof Codec)[keyof typeof Codec];
export type CodecName = 'bytes' | 'string' | 'json' | 'v8';
export const CODEC_NAMES: readonly CodecName[] = ['bytes', 'string', 'json', 'v8'];
