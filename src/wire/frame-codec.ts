import { ProtocolError } from '../errors.js';
import { HEADER_REST, HEADER_SIZE } from './protocol.js';

/**
 * Frame encoding and incremental decoding; no sockets here. The layout is in
 * protocol.ts and docs/protocol.md.
 */

/**
 * One buffer the decoder emitted frames from. Whoever keeps a view of it past
 * the callback counts itself in `refs` so the memory it pins can be accounted
 * (the kernel charges a chunk to its budget while any kept message points into it).
 */
export class Chunk {
  refs = 0;
  constructor(readonly buf: Buffer) {}
}

/**
 * One decoded frame. The decoder reuses a single instance: copy what you keep.
 * The body is bytes `start..end` of `buf`; received bytes are never
 * overwritten, so views of them stay valid after the callback.
 */
export class Frame {
  op = 0;
  flags = 0;
  priority = 0;
  codec = 0;
  reqId = 0;
  target = 0;
  buf: Buffer = Buffer.alloc(0);
  /** The buffer `buf` is, as a countable chunk. */
  chunk: Chunk = new Chunk(this.buf);
  start = 0;
  end = 0;

  /** The body as a view (allocates one; hot paths slice `buf` themselves from `start + n`). */
  get body(): Buffer {
    return this.buf.subarray(this.start, this.end);
  }

  /** Body bytes from `offset` on, as a view. */
  bodyFrom(offset: number): Buffer {
    return this.buf.subarray(this.start + offset, this.end);
  }

  get bodyLength(): number {
    return this.end - this.start;
  }

  u32(offset: number): number {
    return getU32(this.buf, this.start + offset);
  }

  i32(offset: number): number {
    return getU32(this.buf, this.start + offset) | 0;
  }
}

const EMPTY = Buffer.alloc(0);

/** Chunk sizes for the writer: small for quiet connections, up to MAX_CHUNK for busy ones. */
const MIN_CHUNK = 16 * 1024;
const MAX_CHUNK = 1024 * 1024;
/** Payloads up to this many bytes are copied byte by byte (see frameFrom). */
const SMALL_COPY = 256;
/** Forwarded payloads larger than this travel by reference, not copied (see frameFrom). */
const LARGE_PAYLOAD = 16 * 1024;

/**
 * Little-endian u32 store without Buffer#writeUInt32LE's argument checks
 * (a measurable share of the kernel's per-message cost); callers stay in bounds.
 */
function putU32(b: Buffer, p: number, v: number): void {
  b[p] = v;
  b[p + 1] = v >>> 8;
  b[p + 2] = v >>> 16;
  b[p + 3] = v >>> 24;
}

function getU32(b: Buffer, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16)) + b[p + 3]! * 0x1000000;
}

/**
 * Appends frames to an in-memory chunk so that many frames leave in one
 * socket write. What `takeParts()` hands over belongs to the socket until
 * written, so it is never written again: the writer only ever appends after
 * it, and starts a new chunk when the current one is full.
 *
 * Large payloads forwarded with `frameFrom` are not copied at all: the
 * frame's header goes into the chunk and the payload travels as its own part
 * (a view of bytes the caller guarantees never change, such as received
 * bytes), so one flush is a list of parts for a gathered write.
 */
export class FrameWriter {
  // Allocated at the first frame: a connection that never gets an answer (a stranger dropped in its
  // handshake) costs no chunk.
  private buf: Buffer = EMPTY;
  /** Size of the last batch taken: the next chunk holds several such batches, so most flushes are one part. */
  private lastBatch = 0;
  /** Bytes of `buf` before `mark` have been handed over (or moved to `parts`). */
  private mark = 0;
  private pos = 0;
  private parts: Buffer[] = [];
  private bytes = 0;

  /** Bytes written since the last take. */
  get pending(): number {
    return this.bytes;
  }

  /**
   * Write one frame: header, then `words` u32 values (0..2 of w0, w1), then
   * `payload` (copied). Call `takeParts()` to collect the bytes.
   */
  frame(
    op: number,
    flags: number,
    priority: number,
    codec: number,
    reqId: number,
    target: number,
    words: 0 | 1 | 2,
    w0: number,
    w1: number,
    payload: Uint8Array | undefined,
  ): void {
    const payloadLength = payload === undefined ? 0 : payload.byteLength;
    const p = this.header(
      op,
      flags,
      priority,
      codec,
      reqId,
      target,
      words,
      w0,
      w1,
      payloadLength,
      payloadLength,
    );
    if (payloadLength > 0) this.buf.set(payload as Uint8Array, p);
    this.pos = p + payloadLength;
  }

  /**
   * The same with the payload given as bytes `start..end` of `src`, which must
   * never change afterwards (the kernel forwards payloads straight from the
   * bytes it received): small payloads are copied, large ones passed by reference.
   */
  frameFrom(
    op: number,
    flags: number,
    priority: number,
    codec: number,
    reqId: number,
    target: number,
    words: 0 | 1 | 2,
    w0: number,
    w1: number,
    src: Buffer,
    start: number,
    end: number,
  ): void {
    const n = end - start;
    if (n > LARGE_PAYLOAD) {
      this.pos = this.header(op, flags, priority, codec, reqId, target, words, w0, w1, n, 0);
      this.cut();
      this.parts.push(src.subarray(start, end));
      return;
    }
    const p = this.header(op, flags, priority, codec, reqId, target, words, w0, w1, n, n);
    if (n > SMALL_COPY) src.copy(this.buf, p, start, end);
    else {
      // Buffer#copy makes a view of the source range before copying; for small payloads a loop is cheaper.
      const b = this.buf;
      for (let i = 0; i < n; i++) b[p + i] = src[start + i]!;
    }
    this.pos = p + n;
  }

  /** Frame whose body is a UTF-8 string after `words` u32 values (control frames). */
  textFrame(op: number, reqId: number, words: 0 | 1 | 2, w0: number, w1: number, text: string): void {
    this.frame(op, 0, 0, 0, reqId, 0, words, w0, w1, Buffer.from(text, 'utf8'));
  }

  /**
   * Forget everything not yet taken and let the chunk go (the connection is gone: what is still
   * referred to elsewhere, such as a closure awaiting a cluster answer, must not keep its buffer).
   * Frames written later start a new chunk.
   */
  discard(): void {
    this.buf = EMPTY;
    this.mark = 0;
    this.pos = 0;
    this.parts = [];
    this.bytes = 0;
    this.lastBatch = 0;
  }

  /** The bytes written since the last take, as parts for one gathered write; undefined if none. */
  takeParts(): Buffer[] | undefined {
    this.cut();
    if (this.parts.length === 0) return undefined;
    const out = this.parts;
    this.parts = [];
    this.lastBatch = this.bytes;
    this.bytes = 0;
    return out;
  }

  /** The bytes written since the last take in one buffer (joined if need be); undefined if none. */
  take(): Buffer | undefined {
    const parts = this.takeParts();
    if (parts === undefined) return undefined;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Move the written, not yet taken bytes of the current chunk to `parts`. */
  private cut(): void {
    if (this.pos > this.mark) {
      this.parts.push(this.buf.subarray(this.mark, this.pos));
      this.mark = this.pos;
    }
  }

  /**
   * Reserve room for a frame (`inline` payload bytes go into the chunk) and
   * write everything before its payload; returns where the payload goes.
   */
  private header(
    op: number,
    flags: number,
    priority: number,
    codec: number,
    reqId: number,
    target: number,
    words: 0 | 1 | 2,
    w0: number,
    w1: number,
    payloadLength: number,
    inline: number,
  ): number {
    const head = HEADER_SIZE + words * 4;
    if (this.pos + head + inline > this.buf.length) {
      this.cut();
      const size = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, this.lastBatch * 8));
      this.buf = Buffer.allocUnsafe(Math.max(size, head + inline));
      this.mark = 0;
      this.pos = 0;
    }
    this.bytes += head + payloadLength;
    const b = this.buf;
    let p = this.pos;
    putU32(b, p, head + payloadLength - 4);
    b[p + 4] = op;
    b[p + 5] = flags;
    b[p + 6] = priority;
    b[p + 7] = codec;
    putU32(b, p + 8, reqId);
    putU32(b, p + 12, target);
    p += HEADER_SIZE;
    if (words > 0) {
      putU32(b, p, w0);
      p += 4;
      if (words > 1) {
        putU32(b, p, w1);
        p += 4;
      }
    }
    return p;
  }
}

/** Anything frames can be written to as one gathered write (a net.Socket). */
export interface GatheringWriter {
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): unknown;
  cork(): void;
  uncork(): void;
}

/**
 * Write the parts `takeParts()` returned; several go out corked, as one
 * gathered (writev) write. `done` runs once all of them are written (or failed).
 */
export function writeParts(
  out: GatheringWriter,
  parts: readonly Buffer[],
  done?: (err?: Error | null) => void,
): void {
  if (parts.length === 1) {
    out.write(parts[0]!, done);
    return;
  }
  out.cork();
  for (let i = 0; i < parts.length; i++) out.write(parts[i]!, i === parts.length - 1 ? done : undefined);
  out.uncork();
}

/** Frames up to this size are assembled in one buffer allocated up front; larger ones grow as bytes arrive. */
const PREALLOCATE = 64 * 1024;

/**
 * Incremental decoder. The length field is checked against `maxFrame`
 * before any body byte is buffered, so an oversized frame costs nothing, and
 * a large frame's buffer holds only the bytes that have arrived: a header
 * announcing 16 MiB reserves nothing until the body comes. After the first
 * error it ignores further input.
 */
export class FrameDecoder {
  private readonly frame = new Frame();
  /** A frame that spans chunks: the bytes so far, and how many it needs. */
  private parts: Buffer[] = [];
  private partsFilled = 0;
  private partsTotal = 0;
  private assembly: Buffer | undefined;
  /** Set while the bytes of a refused large frame go by unkept: its header, for the answer. */
  private skipping: Buffer | undefined;
  private stub: Buffer | undefined;
  private failed = false;
  /**
   * Asked before a large frame (one that must be assembled across reads) is
   * buffered, with its header as a frame with an empty body: false lets its
   * bytes go by without keeping them, and `onSkipped` gets the header once
   * they have. The kernel refuses a send that cannot fit its budget this way
   * without ever holding its bytes.
   */
  admit: ((header: Frame, length: number) => boolean) | undefined;
  onSkipped: ((header: Frame, length: number) => void) | undefined;

  constructor(
    /** Largest frame (bytes after the length field) accepted; the owner may change it (after a handshake). */
    public maxFrame: number,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onError: (error: ProtocolError) => void,
  ) {}

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return (this.skipping === undefined ? this.partsFilled : HEADER_SIZE) + (this.stub?.length ?? 0);
  }

  push(input: Buffer): void {
    if (this.failed) return;
    let chunk = input;
    let off = 0;
    if (this.partsTotal > 0) {
      const need = this.partsTotal - this.partsFilled;
      const n = Math.min(need, chunk.length);
      if (this.assembly !== undefined) chunk.copy(this.assembly, this.partsFilled, 0, n);
      else if (this.skipping === undefined) this.parts.push(Buffer.from(chunk.subarray(0, n)));
      this.partsFilled += n;
      off = n;
      if (this.partsFilled < this.partsTotal) return;
      const total = this.partsTotal;
      this.partsFilled = 0;
      this.partsTotal = 0;
      const skipped = this.skipping;
      if (skipped !== undefined) {
        this.skipping = undefined;
        this.header(skipped, new Chunk(skipped), 0, HEADER_SIZE);
        this.onSkipped?.(this.frame, total - 4);
        if (this.failed) return;
      } else {
        const whole = this.assembly ?? Buffer.concat(this.parts, total);
        this.assembly = undefined;
        this.parts = [];
        if (!this.emit(whole, new Chunk(whole), 0, whole.length)) return;
      }
    }
    if (this.stub !== undefined) {
      chunk = Buffer.concat([this.stub, chunk.subarray(off)]);
      off = 0;
      this.stub = undefined;
    }
    const end = chunk.length;
    let ref: Chunk | undefined;
    while (off + 4 <= end) {
      const len = chunk.readUInt32LE(off);
      if (len < HEADER_REST)
        return this.fail(`frame length ${len} is shorter than the ${HEADER_REST}-byte header`);
      if (len > this.maxFrame) return this.fail(`frame length ${len} exceeds the limit of ${this.maxFrame}`);
      const total = 4 + len;
      if (off + total <= end) {
        ref ??= new Chunk(chunk);
        if (!this.emit(chunk, ref, off, total)) return;
        off += total;
        continue;
      }
      if (total > PREALLOCATE && this.admit !== undefined) {
        // The decision needs the header: wait for all of it.
        if (end - off < HEADER_SIZE) break;
        this.header(chunk, new Chunk(chunk), off, HEADER_SIZE);
        if (!this.admit(this.frame, len)) {
          this.skipping = Buffer.from(chunk.subarray(off, off + HEADER_SIZE));
          this.partsTotal = total;
          this.partsFilled = end - off;
          return;
        }
      }
      this.partsTotal = total;
      this.partsFilled = end - off;
      if (total <= PREALLOCATE) {
        this.assembly = Buffer.allocUnsafe(total);
        chunk.copy(this.assembly, 0, off, end);
      } else {
        this.parts.push(Buffer.from(chunk.subarray(off, end)));
      }
      return;
    }
    if (off < end) this.stub = Buffer.from(chunk.subarray(off, end));
  }

  /** Fill the shared frame's header fields (body `off+16..off+total`). */
  private header(buf: Buffer, chunk: Chunk, off: number, total: number): void {
    const f = this.frame;
    f.op = buf[off + 4]!;
    f.flags = buf[off + 5]!;
    f.priority = buf[off + 6]!;
    f.codec = buf[off + 7]!;
    f.reqId = getU32(buf, off + 8);
    f.target = getU32(buf, off + 12);
    f.buf = buf;
    f.chunk = chunk;
    f.start = off + HEADER_SIZE;
    f.end = off + total;
  }

  private emit(buf: Buffer, chunk: Chunk, off: number, total: number): boolean {
    this.header(buf, chunk, off, total);
    this.onFrame(this.frame);
    return !this.failed;
  }

  /** Stop decoding (the owner found a frame it cannot accept). */
  fail(message: string): void {
    if (this.failed) return;
    this.discard();
    this.onError(new ProtocolError(message));
  }

  /** Ignore all further input and drop what is held of a frame not yet whole (the connection is gone). */
  discard(): void {
    this.failed = true;
    this.assembly = undefined;
    this.parts = [];
    this.partsFilled = 0;
    this.partsTotal = 0;
    this.skipping = undefined;
    this.stub = undefined;
  }

  /**
   * `discard`, and let go of the buffer the last frame was read from too. Not while a frame is being
   * handled (its handler still reads it): for a connection that has closed.
   */
  close(): void {
    this.discard();
    this.frame.buf = EMPTY;
    this.frame.chunk = new Chunk(EMPTY);
    this.frame.start = 0;
    this.frame.end = 0;
  }
}
