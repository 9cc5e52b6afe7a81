import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { Deque } from '../core/deque.js';
import { MAX_PRIORITY } from '../core/priority-queue.js';
import {
  AbortError,
  IpcError,
  MessageTooLargeError,
  NoSuchProcessError,
  TimeoutError,
  WouldBlockError,
} from '../errors.js';
import { MapRegion } from '../map/map-region.js';
import { peerCredentialsOf } from '../shm/peer-credentials.js';
import { Ring, RingProducer } from '../shm/ring.js';
import { Segment } from '../shm/segment.js';
import { type Frame, FrameDecoder, FrameWriter, writeParts } from '../wire/frame-codec.js';
import { AcceptFlag, LinkFlag, LinkMap, type LinkOffer, LinkOp, LinkRing } from '../wire/link-protocol.js';
import { codecId, encodePayload, inferCodec } from '../wire/payload-codec.js';
import { HEADER_REST } from '../wire/protocol.js';
import { type SendOptions, validateWait } from './connection.js';
import { type Batch, newBatch } from './write-batch.js';

/**
 * The sending end of a one-hop link (wire/link-protocol.ts): direct sends to
 * one process on this host, written into the link's ring (shared memory) or,
 * when too large for it or where there is no ring, to the Unix socket the
 * receiver reads.
 *
 * Contract (the kernel path's, kept):
 * - A send resolves once its bytes are in the ring or in the OS socket
 *   buffer: from then on the receiver gets it even if this process dies at
 *   once. It rejects (and was not delivered) if the link fails first.
 * - FIFO: sends complete, and arrive, in call order (a large message leaves a
 *   marker in the ring, so it keeps its place). While one waits for room the
 *   later ones wait behind it, and a non-blocking send finds WOULD_BLOCK.
 * - Room: the ring's free space, and at most SEND_BYTES_MAX bytes waiting in
 *   this process for the socket. The receiver stops reading while it holds
 *   LOCAL_BYTES_MAX unread, so a receiver that does not read makes its
 *   senders block, never grow. A blocking send waits for room, honouring
 *   `timeout` (TIMEOUT) and `signal` (ABORTED); nothing is sent if it gives up.
 * - `sync: true` resolves when the receiving application has taken the
 *   message; on timeout or abort the sender withdraws it and fails only once
 *   the receiver confirms it was removed untaken (else it resolves: taken).
 * - When the receiver exits, the link closes: waiting and later sends fail
 *   NO_SUCH_PROCESS, as they would through the kernel, and `onClose` lets the
 *   owner look the name up afresh.
 */

/** Messages this process sent over its links (its LocalInbox counts what came in). */
export interface LinkCounts {
  sent: number;
}

/** Bytes that may wait in this process for the link's socket before sends block. */
const SEND_BYTES_MAX = 4 * 1024 * 1024;
/** How long connecting and the receiver's ACCEPT may take before the sender keeps to the kernel path. */
const OPEN_TIMEOUT = 5000;
const RESOLVED = Promise.resolve();

interface Waiting {
  payload: Uint8Array;
  codec: number;
  priority: number;
  sync: boolean;
  resolve(): void;
  reject(e: IpcError): void;
  cleanup(): void;
  /** Settled: written, or given up (timer, signal) before it was. */
  done: boolean;
  /** Date.now() by which a sync send must be taken (its timeout runs from the call). */
  deadline: number | undefined;
  signal: AbortSignal | undefined;
}

interface SyncSend {
  resolve(): void;
  reject(e: IpcError): void;
  /** Set once the sender gave up and asked to withdraw: the error to fail with if WITHDRAWN. */
  giveUp: IpcError | undefined;
  cleanup(): void;
}

export class LinkSender {
  private readonly writer = new FrameWriter();
  private batch: Batch | undefined;
  private flushScheduled = false;
  private bellScheduled = false;
  private readonly waiting = new Deque<Waiting>();
  private readonly syncs = new Map<number, SyncSend>();
  private nextSync = 1;
  private closedWith: IpcError | undefined;
  /** Ring mode: the producer end, the link's flags, and the record being built. */
  private readonly ring: RingProducer | undefined;
  private readonly flags: Int32Array | undefined;
  /** Grown on demand up to RECORD_HEADER + RING_PAYLOAD_MAX: most links only ever carry small messages. */
  private record: Buffer | undefined;
  /** A MAPPED record's payload: u32 chunk, u32 length. */
  private readonly mapRef = Buffer.alloc(8);
  /** Runs once when the link ends. */
  onClose: (() => void) | undefined;
  /** The link's map region, if the receiver mapped it (AcceptFlag.MAP). */
  private region: MapRegion | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly peer: string,
    private readonly maxMessageSize: number,
    segment: Segment | undefined,
    region: MapRegion | undefined,
    /** This process's link counters (`status` shows them): messages written to this link count in `sent`. */
    private readonly counts: LinkCounts,
  ) {
    this.region = region;
    socket.on('drain', () => this.admitWaiting());
    if (segment !== undefined) {
      this.ring = new RingProducer(segment.buffer, LinkRing.HEADER_BYTES);
      this.flags = new Int32Array(segment.buffer, 0, 2);
      this.record = Buffer.allocUnsafe(LinkRing.RECORD_HEADER + 64 * 1024);
    }
  }

  /**
   * Connect to the receiver named by the kernel's offer and be accepted.
   * Rejects if the listener is not the OS process the kernel named, or does
   * not accept in time: the caller then sends through the kernel.
   */
  static open(
    offer: LinkOffer,
    peer: string,
    maxMessageSize: number,
    counts: LinkCounts,
  ): Promise<LinkSender> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(offer.address);
      let link: LinkSender | undefined;
      let segment: Segment | undefined;
      let region: MapRegion | undefined;
      // The names are needed only until the receiver has mapped the ring and region (or declined them).
      const unlink = () => {
        region?.unlink();
        if (segment === undefined) return;
        try {
          Segment.unlink(segment.name);
        } catch {
          // Already gone.
        }
      };
      const fail = (why: string) => {
        clearTimeout(timer);
        socket.destroy();
        unlink();
        segment?.close();
        region?.close();
        reject(new IpcError('KERNEL_UNAVAILABLE', `link to ${peer} not opened: ${why}`));
      };
      const timer = setTimeout(() => fail('no answer in time'), OPEN_TIMEOUT);
      socket.once('error', (e) => fail(String(e)));
      socket.once('connect', () => {
        socket.setNoDelay?.(true);
        const creds = peerCredentialsOf(socket);
        if (creds === undefined || creds.pid !== offer.osPid) return fail('the listener is not that process');
        segment = ringSegment();
        region = segment === undefined ? undefined : linkRegion();
        const body =
          segment === undefined
            ? offer.token
            : `${offer.token} ${segment.name.slice(1)}${region === undefined ? '' : ` ${region.name}`}`;
        const hello = new FrameWriter();
        hello.frame(LinkOp.HELLO, 0, 0, 0, 0, 0, 0, 0, 0, Buffer.from(body, 'latin1'));
        writeParts(socket, hello.takeParts()!);
      });
      const decoder = new FrameDecoder(
        HEADER_REST + 16,
        (f) => {
          if (link !== undefined) return link.onFrame(f);
          if (f.op !== LinkOp.ACCEPT) return fail(`unexpected op ${f.op}`);
          clearTimeout(timer);
          socket.removeAllListeners('error');
          unlink();
          const ring = segment !== undefined && (f.flags & AcceptFlag.RING) !== 0 ? segment : undefined;
          if (ring === undefined) segment?.close();
          const mapped = ring !== undefined && (f.flags & AcceptFlag.MAP) !== 0 ? region : undefined;
          if (mapped === undefined) region?.close();
          link = new LinkSender(socket, peer, maxMessageSize, ring, mapped, counts);
          socket.on('error', () => {});
          socket.on('close', () => link!.ended());
          resolve(link);
        },
        (e) => (link === undefined ? fail(e.message) : socket.destroy()),
      );
      socket.on('data', (chunk: Buffer) => decoder.push(chunk));
      socket.once('close', () => {
        if (link === undefined) fail('closed by the receiver');
      });
    });
  }

  get closed(): IpcError | undefined {
    return this.closedWith;
  }

  /** Whether small messages go through shared memory (else all go over the socket). */
  get usesRing(): boolean {
    return this.ring !== undefined;
  }

  send(value: unknown, options: SendOptions): Promise<void> {
    try {
      if (this.closedWith !== undefined) throw this.closedWith;
      const priority = options.priority ?? 0;
      if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
        throw new RangeError(`priority must be an integer from 0 to ${MAX_PRIORITY}`);
      }
      const codec = options.codec === undefined ? inferCodec(value) : codecId(options.codec);
      const payload = encodePayload(value, codec);
      if (payload.byteLength > this.maxMessageSize)
        throw new MessageTooLargeError(payload.byteLength, this.maxMessageSize);
      validateWait(options);
      if (options.signal?.aborted) throw new AbortError();
      const sync = options.sync === true;
      if (this.waiting.length === 0) {
        const now = this.tryNow(payload, codec, priority, sync, deadlineOf(options.timeout), options.signal);
        if (now !== undefined) {
          this.counts.sent++;
          return now;
        }
      }
      if (options.nonblock) throw new WouldBlockError(`the link to ${this.peer} is full`);
      return this.wait(payload, codec, priority, sync, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Close: what was sent is in the ring or the socket; what waits for room fails. */
  close(): void {
    this.socket.end();
    this.ended(new IpcError('KERNEL_UNAVAILABLE', 'the process closed its connection'));
  }

  // ---------------------------------------------------------------- writing

  /** Send now if there is room: the send's promise, or undefined (no room; nothing was written). */
  private tryNow(
    payload: Uint8Array,
    codec: number,
    priority: number,
    sync: boolean,
    deadline: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> | undefined {
    const flags = sync ? LinkFlag.SYNC : 0;
    if (this.ring !== undefined) {
      const len = payload.byteLength;
      const region = this.region;
      if (region !== undefined && len >= LinkMap.THRESHOLD && len <= region.chunkBytes) {
        const sent = this.mapWrite(region, payload, codec, priority, flags, sync);
        if (sent === false) return undefined;
        if (sent !== undefined)
          return sent === 0 ? RESOLVED : this.awaitTaken(sent, deadline, signal, undefined);
        // No free chunk (the receiver holds them all): copy, as without a region.
      }
      const small = payload.byteLength <= LinkRing.RING_PAYLOAD_MAX;
      if (!small && !this.socketHasRoom()) return undefined;
      const id = sync ? this.syncId() : 0;
      if (
        !this.ringWrite(
          small ? payload : undefined,
          codec,
          priority,
          small ? flags : flags | LinkFlag.ON_SOCKET,
          id,
        )
      )
        return undefined;
      if (small) return sync ? this.awaitTaken(id, deadline, signal, undefined) : RESOLVED;
      const written = this.write(payload, codec, priority, flags, id);
      return sync ? this.awaitTaken(id, deadline, signal, written) : written;
    }
    if (!this.socketHasRoom()) return undefined;
    const id = sync ? this.syncId() : 0;
    const written = this.write(payload, codec, priority, flags, id);
    return sync ? this.awaitTaken(id, deadline, signal, written) : written;
  }

  /**
   * A large payload by map: into a free chunk, then a MAPPED record naming it. The sync id
   * (0 without sync) once the record is in the ring; false if the ring is full (nothing sent,
   * the chunk is free again); undefined if no chunk is free.
   */
  private mapWrite(
    region: MapRegion,
    payload: Uint8Array,
    codec: number,
    priority: number,
    flags: number,
    sync: boolean,
  ): number | false | undefined {
    const chunk = region.slab.tryAcquire();
    if (chunk < 0) return undefined;
    region.view(chunk, payload.byteLength).set(payload);
    const ref = this.mapRef;
    ref.writeUInt32LE(chunk, 0);
    ref.writeUInt32LE(payload.byteLength, 4);
    // QUEUED before the record can be read: from then on only the receiver frees it. Dying here
    // strands the chunk, but the region is this link's and goes with it.
    region.slab.markQueued(chunk);
    const id = sync ? this.syncId() : 0;
    if (!this.ringWrite(ref, codec, priority, flags | LinkFlag.MAPPED, id)) {
      region.slab.release(chunk);
      return false;
    }
    return id;
  }

  /** Room on the socket: few enough bytes wait for it (an empty link always takes one, however large). */
  private socketHasRoom(): boolean {
    const queued = this.socket.writableLength + this.writer.pending;
    return queued === 0 || queued < SEND_BYTES_MAX;
  }

  /** One record into the ring; false if it is full (the receiver then rings once it has made room). */
  private ringWrite(
    payload: Uint8Array | undefined,
    codec: number,
    priority: number,
    flags: number,
    id: number,
  ): boolean {
    const len = payload?.byteLength ?? 0;
    if (this.record!.length < LinkRing.RECORD_HEADER + len) {
      const want = Math.min(
        LinkRing.RECORD_HEADER + LinkRing.RING_PAYLOAD_MAX,
        2 ** Math.ceil(Math.log2(LinkRing.RECORD_HEADER + len)),
      );
      this.record = Buffer.allocUnsafe(want);
    }
    const rec = this.record!;
    rec[0] = flags;
    rec[1] = priority;
    rec[2] = codec;
    rec[3] = 0;
    rec.writeUInt32LE(id, 4);
    if (payload !== undefined) rec.set(payload, LinkRing.RECORD_HEADER);
    const view = rec.subarray(0, LinkRing.RECORD_HEADER + len);
    const ring = this.ring!;
    const f = this.flags!;
    if (!ring.tryWrite(view)) {
      Atomics.store(f, LinkRing.WAITING, 1);
      // Room may have come between the try and the flag: the receiver rings only after seeing it.
      if (!ring.tryWrite(view)) return false;
    }
    if (Atomics.load(f, LinkRing.SLEEPING) !== 0 && Atomics.exchange(f, LinkRing.SLEEPING, 0) !== 0)
      this.ringBell();
    return true;
  }

  /** A DOORBELL for a receiver that fell asleep: one per burst, at the end of this job. */
  private ringBell(): void {
    if (this.bellScheduled) return;
    this.bellScheduled = true;
    queueMicrotask(() => {
      this.bellScheduled = false;
      if (this.closedWith !== undefined) return;
      this.writer.frame(LinkOp.DOORBELL, 0, 0, 0, 0, 0, 0, 0, 0, undefined);
      this.scheduleFlush();
    });
  }

  private syncId(): number {
    const id = this.nextSync++;
    if (this.nextSync > 0xffffffff) this.nextSync = 1;
    return id;
  }

  private write(
    payload: Uint8Array,
    codec: number,
    priority: number,
    flags: number,
    reqId: number,
  ): Promise<void> {
    this.writer.frame(LinkOp.DATA, flags, priority, codec, reqId, 0, 0, 0, 0, payload);
    this.batch ??= newBatch();
    const written = this.batch.promise;
    this.scheduleFlush();
    return written;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const parts = this.writer.takeParts();
    const batch = this.batch;
    this.batch = undefined;
    if (this.closedWith !== undefined || parts === undefined) {
      if (this.closedWith !== undefined) batch?.reject(this.closedWith);
      else batch?.resolve();
      return;
    }
    if (batch === undefined) {
      writeParts(this.socket, parts);
      return;
    }
    writeParts(this.socket, parts, (err) => {
      // Node calls back without an error for a write cut short by the socket's destruction.
      if (err || this.socket.destroyed) batch.reject(this.closedWith ?? new NoSuchProcessError(this.peer));
      else batch.resolve();
    });
    // Written through at once (the usual case): the bytes are the OS's now, no need to wait a tick.
    if (this.socket.writableLength === 0 && !this.socket.destroyed) batch.resolve();
  }

  // ---------------------------------------------------------------- synchronous sends

  /**
   * Synchronous send `id` is on its way (`written`: its socket write, if it
   * went that way): resolve when the receiver says TAKEN; on timeout or abort
   * ask it to withdraw, and fail only if it confirms (WITHDRAWN).
   */
  private awaitTaken(
    id: number,
    deadline: number | undefined,
    signal: AbortSignal | undefined,
    written: Promise<void> | undefined,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const giveUp = (e: IpcError) => {
        const s = this.syncs.get(id);
        if (s === undefined || s.giveUp !== undefined || this.closedWith !== undefined) return;
        s.giveUp = e;
        this.writer.frame(LinkOp.WITHDRAW, 0, 0, 0, id, 0, 0, 0, 0, undefined);
        this.scheduleFlush();
      };
      const onAbort = () => giveUp(new AbortError('send aborted'));
      this.syncs.set(id, {
        resolve,
        reject,
        giveUp: undefined,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      });
      if (deadline !== undefined)
        timer = setTimeout(
          () => giveUp(new TimeoutError('send timed out')),
          Math.max(0, deadline - Date.now()),
        );
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      written?.catch((e: IpcError) => this.settleSync(id, e));
    });
  }

  private settleSync(id: number, error: IpcError | undefined): void {
    const s = this.syncs.get(id);
    if (s === undefined) return;
    this.syncs.delete(id);
    s.cleanup();
    if (error === undefined) s.resolve();
    else s.reject(error);
  }

  // ---------------------------------------------------------------- waiting for room

  private wait(
    payload: Uint8Array,
    codec: number,
    priority: number,
    sync: boolean,
    options: SendOptions,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const signal = options.signal;
      const giveUp = (e: IpcError) => {
        if (w.done) return;
        w.done = true;
        w.cleanup();
        this.waiting.remove(w);
        reject(e);
        // It may have been the head that held back others.
        this.admitWaiting();
      };
      const onAbort = () => giveUp(new AbortError('send aborted'));
      const w: Waiting = {
        payload,
        codec,
        priority,
        sync,
        resolve,
        reject,
        done: false,
        deadline: deadlineOf(options.timeout),
        signal,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      if (w.deadline !== undefined)
        timer = setTimeout(() => giveUp(new TimeoutError('send timed out')), options.timeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  /** Room came back (socket drained, or the receiver rang): write waiting sends, oldest first, while it lasts. */
  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.closedWith === undefined) {
      const w = this.waiting.peek()!;
      // Its wait for room ends here; a sync send's wait for TAKEN keeps the deadline and the signal.
      const p = this.tryNow(w.payload, w.codec, w.priority, w.sync, w.deadline, w.signal);
      if (p === undefined) return;
      this.counts.sent++;
      this.waiting.shift();
      w.done = true;
      w.cleanup();
      p.then(w.resolve, w.reject);
    }
  }

  // ---------------------------------------------------------------- from the receiver

  private onFrame(f: Frame): void {
    if (f.op === LinkOp.DOORBELL) return this.admitWaiting();
    if (f.op === LinkOp.TAKEN) return this.settleSync(f.reqId, undefined);
    if (f.op === LinkOp.WITHDRAWN) {
      const s = this.syncs.get(f.reqId);
      return this.settleSync(f.reqId, s?.giveUp ?? new IpcError('PROTOCOL', 'withdrawn unasked'));
    }
    this.socket.destroy();
  }

  private ended(error: IpcError = new NoSuchProcessError(this.peer)): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = error;
    // The receiver keeps its own mapping for the views it holds; this side is done with the region.
    this.region?.close();
    this.region = undefined;
    this.batch?.reject(error);
    this.batch = undefined;
    for (;;) {
      const w = this.waiting.shift();
      if (w === undefined) break;
      w.done = true;
      w.cleanup();
      w.reject(error);
    }
    for (const id of [...this.syncs.keys()]) this.settleSync(id, error);
    this.onClose?.();
  }
}

/** A timeout as a Date.now() deadline; none past what a timer holds (~24.8 days), as on the wire. */
function deadlineOf(timeout: number | undefined): number | undefined {
  return timeout === undefined || timeout > 0x7fffffff ? undefined : Date.now() + timeout;
}

/** A fresh map region for a link (LinkMap); undefined where shared memory is not to be had. */
function linkRegion(): MapRegion | undefined {
  try {
    return MapRegion.create(LinkMap.CHUNKS, LinkMap.CHUNK_BYTES);
  } catch {
    return undefined;
  }
}

/** A fresh ring for a link, named with this OS pid; undefined where shared memory is not to be had. */
function ringSegment(): Segment | undefined {
  const name = `ipcbox-link-${process.pid}-${randomBytes(8).toString('hex')}`;
  try {
    const seg = Segment.create(name, { size: LinkRing.HEADER_BYTES + Ring.bytesFor(LinkRing.RING_BYTES) });
    Ring.init(seg.buffer, LinkRing.HEADER_BYTES, LinkRing.RING_BYTES);
    return seg;
  } catch {
    return undefined;
  }
}
