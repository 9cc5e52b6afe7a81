/**
 * The one-hop link protocol: direct messages between two processes on one
 * host, over a Unix socket between them, with the kernel out of the data
 * path. docs/protocol.md ("One-hop links") is the full description.
 *
 * Setup (the kernel keeps names and identity; the link carries data only):
 * 1. The receiver listens on an abstract Unix socket and tells its kernel the
 *    address (CALL `link.listen`).
 * 2. A sender asks `process.lookup` with `link: true`. When both ends may use
 *    a link, the kernel gives the receiver a NOTICE `link` (a fresh token, the
 *    sender's pid, name and OS pid) and then answers the sender with the
 *    address, the same token and the receiver's OS pid.
 * 3. The sender connects, checks with SO_PEERCRED that the listener is the
 *    receiver's OS pid, and sends HELLO carrying the token. The receiver
 *    checks the token and that the connecting OS pid is the one the kernel
 *    named, and answers ACCEPT. No message goes over a link before ACCEPT; a
 *    refused link leaves the sender on the kernel path, with nothing sent.
 *
 * Frames use the kernel protocol's header (frame-codec.ts: length, op,
 * flags, priority, codec, reqId, target) with these ops; `target` is 0:
 * - HELLO (sender → receiver): body = the token (ASCII).
 * - ACCEPT (receiver → sender): empty.
 * - DATA (sender → receiver): body = the payload; priority and codec as in
 *   SEND. Flag SYNC: reqId is the sender's id for it, and the receiver
 *   answers TAKEN(reqId) when its application takes the message.
 * - TAKEN (receiver → sender): reqId names a SYNC message that was taken.
 * - WITHDRAW (sender → receiver): the SYNC message reqId gave up (timeout,
 *   abort); the receiver answers WITHDRAWN if it still held it untaken, else
 *   it has already sent TAKEN.
 * - WITHDRAWN (receiver → sender): reqId was removed untaken.
 *
 * Per link, messages arrive in the order they were sent (one stream socket);
 * within a priority the receiver keeps that order.
 */

export const LinkOp = {
  HELLO: 101,
  ACCEPT: 102,
  DATA: 103,
  TAKEN: 104,
  WITHDRAW: 105,
  WITHDRAWN: 106,
  /** Either way, empty: "look at the ring" (receiver: records came while you slept; sender: room). */
  DOORBELL: 107,
} as const;

/** DATA flags (and ring record flags). */
export const LinkFlag = {
  /** The sender waits for TAKEN (a synchronous send). */
  SYNC: 2,
  /** Ring record only: this message is the next DATA frame on the socket (too large for the ring). */
  ON_SOCKET: 8,
  /**
   * Ring record only: the payload is in a chunk of the link's map region (LinkMap), and the
   * record's payload is u32 chunk, u32 length. The receiver reads it in place and gives the
   * chunk back (FREE, into the region's free ring) when the message is released.
   */
  MAPPED: 16,
} as const;

/** ACCEPT flags. */
export const AcceptFlag = {
  /** The receiver mapped the sender's ring: small messages go through it. */
  RING: 1,
  /** The receiver mapped the sender's map region too: large messages go by reference (LinkFlag.MAPPED). */
  MAP: 2,
} as const;

/**
 * A link's map region (src/map/map-region.ts, the sender's, one per link): payloads from
 * THRESHOLD up to CHUNK_BYTES are written once into a chunk and read in place by the receiver,
 * where the ring copies twice more (into the ring, out of it). HELLO names it after the ring
 * (`<token> <ring> <region>`); the sender unlinks it once answered. The chunks bound what is in
 * flight: with all of them lent the sender copies through the ring (or the socket) as before,
 * so it never waits for a receiver to release. Chunks are given back by the receiver into the
 * region's free ring; one held by a receiver that died is taken back by the sender (slab.ts).
 */
export const LinkMap = {
  /** Bytes from which a payload goes by map (the ring copies it below: measured, docs/protocol.md). */
  THRESHOLD: 64 * 1024,
  CHUNKS: 8,
  CHUNK_BYTES: 4 << 20,
  NAME: /^\/?ipcbox-map-(\d+)-[0-9a-f]{12}$/,
} as const;

/**
 * The ring of a link: a shared-memory segment the sender creates, names in
 * HELLO (`<token> <segment>`) and unlinks once answered, so only the two
 * mappings keep it. Its name carries the sender's OS pid, which the receiver
 * checks against SO_PEERCRED: nobody can hand a receiver another link's ring.
 *
 *   +0    SLEEPING  i32  1: the receiver found the ring empty and waits for a DOORBELL
 *                        (set by the receiver, cleared by whoever rings)
 *   +4    WAITING   i32  1: the sender found the ring full and waits for a DOORBELL
 *   +256  a Ring (shm/ring.ts) of RING_BYTES data bytes, sender → receiver. Its
 *         futex words are not used: the doorbells go over the socket, so both
 *         ends wait in their event loops.
 * Record payload: +0 u8 flags (LinkFlag), +1 u8 priority, +2 u8 codec, +3 0,
 * +4 u32 sync id (SYNC), +8 the message payload (none for ON_SOCKET).
 * Why no lost wake-up: a side stores its position (seq-cst, in the Ring) and
 * then reads the other's flag; a side about to wait stores its flag and then
 * looks at the ring again.
 */
export const LinkRing = {
  SLEEPING: 0,
  WAITING: 1,
  HEADER_BYTES: 256,
  /**
   * 4 MiB: messages up to 2 MiB go through the ring (two copies, no system call), which carries
   * 1 MiB messages about 2.3x faster than the socket did (1.9 k against 0.85 k msgs/s in one
   * probe); the memory is touched only as far as messages fill it, at most this much per link.
   */
  RING_BYTES: 4 << 20,
  RECORD_HEADER: 8,
  /** Payloads up to this go through the ring (the Ring's own limit, capacity/2 less two headers); larger ones over the socket. */
  RING_PAYLOAD_MAX: (2 << 20) - 16,
  NAME: /^\/?ipcbox-link-(\d+)-[0-9a-f]{16}$/,
} as const;

/** A link token: 16 random bytes as hex. */
export const LINK_TOKEN = /^[0-9a-f]{32}$/;

/** Largest frame a receiver reads before ACCEPT: HELLO only. */
export const MAX_LINK_HELLO_FRAME = 256;

/** Abstract socket names this library listens on: NUL, then this prefix, then the rest. */
export const LINK_ADDRESS = /^\0ipcbox-link\/[0-9A-Za-z._-]{1,90}$/;

/** What the kernel answers a sender about a link it may open (in `process.lookup` with `link: true`). */
export interface LinkOffer {
  /** The receiver's listening address (an abstract Unix socket name, starting with NUL). */
  address: string;
  token: string;
  /** The receiver's OS pid, as the kernel saw it through SO_PEERCRED. */
  osPid: number;
}
