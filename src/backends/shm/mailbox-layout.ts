/**
 * The memory layout of a shared-memory mailbox segment. All offsets are
 * named here; all other modules take them from a `MailboxLayout`.
 *
 *   +0     header (HEADER_BYTES = 64), written once by the creator (init),
 *          then read-only except `flags`:
 *            +0   magic            i32  SHM_MAILBOX_MAGIC ('SMBX'), stored last
 *            +4   version          i32  LAYOUT_VERSION
 *            +8   capacity         i32  messages the mailbox holds (1 .. 2^24;
 *                                       queue kind also 0 = rendezvous and
 *                                       -1 = unbounded)
 *            +12  maxMessageSize   i32  largest payload, bytes
 *            +16  mapThreshold     i32  payloads larger than this go to the slab
 *            +20  fixedMessageSize i32  -1, or the one payload size allowed
 *            +24  slabChunks       i32  number of slab chunks (0: no slab)
 *            +28  chunkBytes       i32  bytes per chunk (maxMessageSize rounded to 64)
 *            +32  flags            i32  CLOSED (bit 0): the mailbox's closed
 *                                       word. Set (never cleared) by any
 *                                       attached process on the kernel's
 *                                       removal notice, before it closes the
 *                                       rings, which wakes every waiter.
 *            +36  kind             i32  KIND_RING (0) or KIND_QUEUE (1)
 *            +40  broadcast        i32  1: broadcast delivery (queue kind only)
 *            +44  queueSlots       i32  message slots (queue kind; else 0)
 *   +64    (queue kind) the message store instead of the ring: SharedQueue
 *          (shared-queue.ts, its own layout there) with `queueSlots` slots,
 *          each a 64-byte slot header and up to mapThreshold bytes of inline
 *          payload; the slab below, if any, follows it.
 *   +64    (ring kind) message ring: MpmcRing with slots = capacity rounded up to a power
 *          of two, ring capacity = `capacity`, slotSize = RECORD_HEADER +
 *          mapThreshold. The ring's own capacity check (part of a sender's
 *          claim of a cell) is the mailbox's capacity: there is no separate
 *          credit count, so no place can be held by a process that died.
 *   then   (slab only) free-chunk ring: MpmcRing of u32 chunk indices,
 *          slots = slabChunks rounded up to a power of two (never full).
 *   then   (slab only) chunk states: slabChunks × i32, 64-aligned (slab.ts):
 *            FREE (0)     its index is in the free ring (stored inside the
 *                         free-ring write, before it is published);
 *            QUEUED (-1)  named by a record in the message ring (stored by
 *                         the sender inside the record's write, before it is
 *                         published);
 *            pid > 0      held by that OS process: a sender filling it, or a
 *                         receiver holding a zero-copy view of it (stored
 *                         inside the ring read that took it). Reclaimed by
 *                         CAS once that process is dead.
 *   then   (slab only) chunks: slabChunks × chunkBytes, 64-aligned. Written
 *          by the sender holding the chunk, read by the receiver holding it.
 *
 * Record in a message-ring cell:
 *   +0 u8 codec (wire codec id), +1 u8 flags (SLAB bit 0), +2 u16 0,
 *   +4 u32 sender (the kernel's process number of the sender),
 *   +8 inline: the payload;  slab: u32 chunk index, u32 payload length.
 */
import { IpcError } from '../../errors.js';
import { MpmcRing } from '../../shm/mpmc-ring.js';
import { SharedQueue, sharedQueueBytes } from './shared-queue.js';

/** 'SMBX' */
export const SHM_MAILBOX_MAGIC = 0x534d4258;
/**
 * 3: a second kind (the priority queue of shared-queue.ts) next to the ring.
 * 4: MpmcRing waiters ask for wakes through a wanted word (the message ring
 *    and the slab's free ring): a process of version 3 would neither ask
 *    nor look, so the two must not share a mailbox.
 */
export const LAYOUT_VERSION = 4;

export const HEADER_BYTES = 64;
/** Word indices into the header. */
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_CAPACITY = 2;
export const H_MAX_MESSAGE = 3;
export const H_MAP_THRESHOLD = 4;
export const H_FIXED_SIZE = 5;
export const H_SLAB_CHUNKS = 6;
export const H_CHUNK_BYTES = 7;
export const H_FLAGS = 8;
export const H_KIND = 9;
export const H_BROADCAST = 10;
export const H_QUEUE_SLOTS = 11;

export const KIND_RING = 0;
export const KIND_QUEUE = 1;
/** The header's capacity word for 'unbounded' (queue kind). */
export const CAPACITY_UNBOUNDED = -1;

export const FLAG_CLOSED = 1;

export const RECORD_HEADER = 8;
export const RECORD_SLAB = 1;
export const SLAB_REF_BYTES = 8;

export const CHUNK_FREE = 0;
export const CHUNK_QUEUED = -1;

export interface MailboxGeometry {
  /** 'ring': the lock-free MPMC ring (fast path); 'queue': the priority queue under a lock (whole contract). */
  kind: 'ring' | 'queue';
  /** Messages held; 0 (rendezvous) and Infinity (unbounded) for the queue kind only. */
  capacity: number;
  /** Queue kind: broadcast delivery. */
  broadcast: boolean;
  /** Queue kind: message slots (capacity, or the budget of an unbounded or rendezvous mailbox). */
  queueSlots: number;
  maxMessageSize: number;
  mapThreshold: number;
  fixedMessageSize: number | undefined;
  slabChunks: number;
}

export interface MailboxLayout extends MailboxGeometry {
  chunkBytes: number;
  ringOffset: number;
  ringSlots: number;
  freeRingOffset: number;
  statesOffset: number;
  chunksOffset: number;
  totalBytes: number;
}

export function nextPowerOfTwo(n: number): number {
  let p = 2;
  while (p < n) p *= 2;
  return p;
}

function align64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** Where everything goes for `g` (already validated). */
export function layoutFor(g: MailboxGeometry): MailboxLayout {
  const ringOffset = HEADER_BYTES;
  let ringSlots = 0;
  let end: number;
  if (g.kind === 'queue') {
    end = ringOffset + sharedQueueBytes(g.queueSlots, g.mapThreshold);
  } else {
    ringSlots = nextPowerOfTwo(g.capacity);
    const slotSize = RECORD_HEADER + Math.max(g.mapThreshold, SLAB_REF_BYTES);
    end = ringOffset + MpmcRing.bytesFor({ slots: ringSlots, slotSize });
  }
  const chunkBytes = g.slabChunks > 0 ? align64(Math.max(g.maxMessageSize, 1)) : 0;
  const freeRingOffset = end;
  if (g.slabChunks > 0) end += MpmcRing.bytesFor({ slots: nextPowerOfTwo(g.slabChunks), slotSize: 4 });
  const statesOffset = end;
  end = align64(end + g.slabChunks * 4);
  const chunksOffset = end;
  end += g.slabChunks * chunkBytes;
  return {
    ...g,
    chunkBytes,
    ringOffset,
    ringSlots,
    freeRingOffset,
    statesOffset,
    chunksOffset,
    totalBytes: end,
  };
}

/** Write the header and initialise the rings (once, by the creator, before anyone attaches). */
export function initMailbox(buffer: SharedArrayBuffer, l: MailboxLayout): void {
  const h = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  h.fill(0);
  if (l.kind === 'queue') {
    SharedQueue.init(buffer, l.ringOffset, l.queueSlots, l.mapThreshold);
  } else {
    MpmcRing.init(buffer, l.ringOffset, {
      slots: l.ringSlots,
      slotSize: RECORD_HEADER + Math.max(l.mapThreshold, SLAB_REF_BYTES),
      capacity: l.capacity,
    });
  }
  if (l.slabChunks > 0) {
    const free = MpmcRing.init(buffer, l.freeRingOffset, {
      slots: nextPowerOfTwo(l.slabChunks),
      slotSize: 4,
    });
    const idx = new Uint8Array(4);
    for (let i = 0; i < l.slabChunks; i++) {
      new DataView(idx.buffer).setUint32(0, i, true);
      free.tryWrite(idx);
    }
  }
  h[H_VERSION] = LAYOUT_VERSION;
  h[H_CAPACITY] = l.capacity === Number.POSITIVE_INFINITY ? CAPACITY_UNBOUNDED : l.capacity;
  h[H_KIND] = l.kind === 'queue' ? KIND_QUEUE : KIND_RING;
  h[H_BROADCAST] = l.broadcast ? 1 : 0;
  h[H_QUEUE_SLOTS] = l.queueSlots;
  h[H_MAX_MESSAGE] = l.maxMessageSize;
  h[H_MAP_THRESHOLD] = l.mapThreshold;
  h[H_FIXED_SIZE] = l.fixedMessageSize ?? -1;
  h[H_SLAB_CHUNKS] = l.slabChunks;
  h[H_CHUNK_BYTES] = l.chunkBytes;
  Atomics.store(h, H_MAGIC, SHM_MAILBOX_MAGIC);
}

/** Read and check the layout of an initialised mailbox segment. */
export function readLayout(buffer: SharedArrayBuffer, name: string): MailboxLayout {
  if (buffer.byteLength < HEADER_BYTES)
    throw new IpcError('PROTOCOL', `segment ${name} is too small for a mailbox`);
  const h = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  if (Atomics.load(h, H_MAGIC) !== SHM_MAILBOX_MAGIC)
    throw new IpcError('PROTOCOL', `segment ${name} holds no shared-memory mailbox`);
  if (h[H_VERSION] !== LAYOUT_VERSION) {
    throw new IpcError(
      'PROTOCOL',
      `mailbox ${name} has layout version ${String(h[H_VERSION])}, want ${LAYOUT_VERSION}`,
    );
  }
  const fixed = h[H_FIXED_SIZE] as number;
  const capacity = h[H_CAPACITY] as number;
  const l = layoutFor({
    kind: h[H_KIND] === KIND_QUEUE ? 'queue' : 'ring',
    capacity: capacity === CAPACITY_UNBOUNDED ? Number.POSITIVE_INFINITY : capacity,
    broadcast: h[H_BROADCAST] === 1,
    queueSlots: h[H_QUEUE_SLOTS] as number,
    maxMessageSize: h[H_MAX_MESSAGE] as number,
    mapThreshold: h[H_MAP_THRESHOLD] as number,
    fixedMessageSize: fixed < 0 ? undefined : fixed,
    slabChunks: h[H_SLAB_CHUNKS] as number,
  });
  if (l.totalBytes > buffer.byteLength || l.chunkBytes !== h[H_CHUNK_BYTES]) {
    throw new IpcError('PROTOCOL', `mailbox ${name}: header does not match the segment size`);
  }
  return l;
}
