/**
 * Map region: where a process writes the payloads it sends by map (large
 * messages to kernel mailboxes and inboxes, protocol 3). The kernel passes
 * only a reference; receivers read the bytes in place.
 *
 * A region is a slab-only shared-memory mailbox segment: the layout, the
 * free-chunk ring and the chunk states are those of backends/shm
 * (mailbox-layout.ts, slab.ts), with a one-slot message ring nobody uses.
 * `slabChunks` chunks of `chunkBytes` each bound it: a sender whose chunks
 * are all in use waits for one (or copies, see connection.ts).
 *
 * Who writes what (the Slab's states, used this way):
 * - FREE -> sender pid: the sender takes a chunk from the free ring
 *   (`Slab.tryAcquire`/`acquire`) and fills it;
 * - sender pid -> QUEUED: just before it writes the SEND frame naming it
 *   (`markQueued`). From then on the chunk belongs to the kernel: the sender
 *   never touches it again, and no receiver ever writes a state;
 * - QUEUED -> FREE: only the kernel (`Slab.release`, from inside the
 *   free-ring write), once the message is finished (consumed, acknowledged or
 *   dropped) and every receiver it lent the chunk to has handed it back (UNMAP,
 *   RELEASE) or died. So a chunk is never reused under a live view, and a
 *   receiver that dies holding one costs nothing: its lends go with its session.
 * - A sender that dies while filling leaves its pid there; nobody needs that
 *   chunk, and the region goes once no message refers to it (the kernel keeps
 *   the segment, mapped and named, until then, so queued messages stay readable).
 *
 * Names are `ipcbox-map-<os pid>-<random>`, mode 0600 (receivers of the
 * sender's uid only: the kernel copies for others).
 *
 * Every mapping of a region is guarded (Segment `guard`): a sender that
 * truncates its region cannot kill the kernel or a receiver with SIGBUS; the
 * region reads zeros from then on (`damaged`), which costs that sender its
 * payloads, as overwriting its own queued chunks would, and nobody else anything.
 */
import { randomBytes } from 'node:crypto';
import { initMailbox, layoutFor, type MailboxLayout, readLayout } from '../backends/shm/mailbox-layout.js';
import { Slab } from '../backends/shm/slab.js';
import { native } from '../shm/native.js';
import { Segment } from '../shm/segment.js';

/** Map-by-reference settings of a connection (`connect({ map })`). */
export interface MapOptions {
  /** Payloads of at least this many bytes go by map. Default DEFAULT_MAP_THRESHOLD. */
  threshold?: number;
  /**
   * Chunks in the region: payloads in flight or held by receivers at once. Given (or with
   * `chunkBytes`), one region of `chunks` (default 16) × `chunkBytes` (default 4 MiB); with
   * neither, the default size classes (DEFAULT_MAP_CLASSES).
   */
  chunks?: number;
  /** Bytes per chunk: larger payloads are copied. */
  chunkBytes?: number;
}

/** One region of a connection: `chunks` × `chunkBytes`. */
export interface MapClass {
  chunks: number;
  chunkBytes: number;
}

/**
 * Payloads from this size up go by map. Measured (docs/protocol.md, "Map
 * instead of copy"): below it the kernel's copy through its socket is as fast.
 */
export const DEFAULT_MAP_THRESHOLD = 16 * 1024;
/**
 * Two regions by default, a payload going to the first whose chunks fit it: many small chunks
 * keep a stream of medium payloads flowing (a chunk is busy for a whole trip: sender, kernel,
 * receiver, UNMAP back), a few large ones take payloads up to 4 MiB. 16 + 128 MiB of address
 * space; memory only as far as payloads touch it. Larger payloads are copied.
 */
export const DEFAULT_MAP_CLASSES: readonly MapClass[] = [
  { chunks: 64, chunkBytes: 256 * 1024 },
  { chunks: 32, chunkBytes: 4 * 1024 * 1024 },
];
export const DEFAULT_MAP_CHUNKS = 16;
export const DEFAULT_MAP_CHUNK_BYTES = 4 * 1024 * 1024;
/** Most chunks and bytes per chunk a region may have (the kernel refuses larger ones). */
export const MAX_MAP_CHUNKS = 1024;
export const MAX_MAP_CHUNK_BYTES = 256 * 1024 * 1024;

/** Resolved and checked map settings (RangeError naming the option). */
export function resolveMapOptions(o: MapOptions): { threshold: number; classes: MapClass[] } {
  const int = (v: number | undefined, d: number, lo: number, hi: number, key: string) => {
    const x = v ?? d;
    if (!Number.isInteger(x) || x < lo || x > hi)
      throw new RangeError(`map.${key} must be an integer from ${lo} to ${hi}`);
    return x;
  };
  const threshold = int(o.threshold, DEFAULT_MAP_THRESHOLD, 1, MAX_MAP_CHUNK_BYTES, 'threshold');
  if (o.chunks === undefined && o.chunkBytes === undefined)
    return { threshold, classes: [...DEFAULT_MAP_CLASSES] };
  return {
    threshold,
    classes: [
      {
        chunks: int(o.chunks, DEFAULT_MAP_CHUNKS, 1, MAX_MAP_CHUNKS, 'chunks'),
        chunkBytes: int(o.chunkBytes, DEFAULT_MAP_CHUNK_BYTES, 64, MAX_MAP_CHUNK_BYTES, 'chunkBytes'),
      },
    ],
  };
}

/** The layout of a region of `chunks` × `chunkBytes`. */
export function regionLayout(chunks: number, chunkBytes: number): MailboxLayout {
  return layoutFor({
    kind: 'ring',
    capacity: 1,
    broadcast: false,
    queueSlots: 0,
    maxMessageSize: chunkBytes,
    mapThreshold: 0,
    fixedMessageSize: undefined,
    slabChunks: chunks,
  });
}

/** Is the addon there (segments, futex waits)? Map needs it on every side; without it, copy. */
export function mapAvailable(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}

export class MapRegion {
  readonly slab: Slab;
  /** The chunk states (see mailbox-layout.ts), read by the kernel to check a reference. */
  readonly states: Int32Array;

  private constructor(
    readonly name: string,
    private readonly segment: Segment,
    readonly layout: MailboxLayout,
  ) {
    this.slab = new Slab(segment.buffer, layout);
    this.states = new Int32Array(segment.buffer, layout.statesOffset, layout.slabChunks);
  }

  /** A new region of this process (exclusive create, 0600), every chunk free. */
  static create(chunks: number, chunkBytes: number): MapRegion {
    const layout = regionLayout(chunks, chunkBytes);
    const name = `ipcbox-map-${process.pid}-${randomBytes(6).toString('hex')}`;
    const segment = Segment.create(name, {
      size: layout.totalBytes,
      mode: 0o600,
      exclusive: true,
      guard: true,
    });
    initMailbox(segment.buffer, layout);
    return new MapRegion(name, segment, layout);
  }

  /**
   * Attach to an existing region (the kernel; a receiver). Guarded: its owner cutting it short
   * makes it read zeros (`damaged`), it does not kill the kernel or a receiver with SIGBUS.
   */
  static open(name: string): MapRegion {
    const segment = Segment.open(name, { guard: true });
    try {
      return new MapRegion(name, segment, readLayout(segment.buffer, name));
    } catch (e) {
      segment.close();
      throw e;
    }
  }

  /**
   * Someone cut the segment short (its owner, or another process of that user): it now reads
   * zeros. Its chunk states and free ring mean nothing any more; its payloads are gone.
   */
  get damaged(): boolean {
    return this.segment.damaged;
  }

  get chunks(): number {
    return this.layout.slabChunks;
  }

  get chunkBytes(): number {
    return this.layout.chunkBytes;
  }

  /** Bytes of chunk `i` as a view of the segment (the sender filling it; the kernel copying it). */
  view(i: number, length: number): Buffer {
    return this.slab.view(i, length);
  }

  /** Bytes of chunk `i` on a SharedArrayBuffer of their own, for a lease tied to that buffer (Slab.lend). */
  lend(i: number, length: number): Buffer {
    return this.slab.lend(i, length);
  }

  /** Drop this handle (the memory stays mapped while views of it are reachable). */
  close(): void {
    this.segment.close();
  }

  /** Remove the name (whoever removes the region: the kernel, once nothing refers to it). */
  unlink(): void {
    try {
      Segment.unlink(this.name);
    } catch {
      // Already gone (its owner unlinked it on a lost connection): nothing else to do.
    }
  }
}
