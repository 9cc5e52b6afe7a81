import { ProtocolError } from '../errors.js';
import { HEADER_REST, HEADER_SIZE } from './protocol.js';

/**
 * Frame encoding and incremental decoding; no sockets here. The layout is in
 * protocol.ts and docs/protocol.md.
 */

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
}

const CHUNK = 64 * 1024;
/** Payloads up to this many bytes are copied byte by byte (see frameFrom). */
const SMALL_COPY = 256;

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
 * socket write. `take()` hands the filled part over and starts a new chunk
 * (the old one belongs to the socket until written, so it is never reused).
 */
export class FrameWriter {
  private buf: Buffer = Buffer.allocUnsafe(CHUNK);
  private pos = 0;

  get pending(): number {
    return this.pos;
  }

  /**
   * Write one frame: header, then `words` u32 values (0..2 of w0, w1), then
   * `payload`. Returns nothing; call `take()` to collect the bytes.
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
    const p = this.header(op, flags, priority, codec, reqId, target, words, w0, w1, payloadLength);
    if (payloadLength > 0) this.buf.set(payload as Uint8Array, p);
    this.pos = p + payloadLength;
  }

  /**
   * The same with the payload given as bytes `start..end` of `src`: the
   * kernel forwards a payload straight from the bytes it received, without
   * making a view of it first.
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
    const p = this.header(op, flags, priority, codec, reqId, target, words, w0, w1, n);
    if (n > SMALL_COPY) src.copy(this.buf, p, start, end);
    else {
      // Buffer#copy makes a view of the source range before copying; for small payloads a loop is cheaper.
      const b = this.buf;
      for (let i = 0; i < n; i++) b[p + i] = src[start + i]!;
    }
    this.pos = p + n;
  }

  /** Reserve room for a whole frame and write everything before its payload; returns where the payload goes. */
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
  ): number {
    const total = HEADER_SIZE + words * 4 + payloadLength;
    this.reserve(total);
    const b = this.buf;
    let p = this.pos;
    putU32(b, p, total - 4);
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

  /** Frame whose body is a UTF-8 string after `words` u32 values (control frames). */
  textFrame(op: number, reqId: number, words: 0 | 1 | 2, w0: number, w1: number, text: string): void {
    this.frame(op, 0, 0, 0, reqId, 0, words, w0, w1, Buffer.from(text, 'utf8'));
  }

  /** The bytes written since the last take, or undefined if none. */
  take(): Buffer | undefined {
    if (this.pos === 0) return undefined;
    const out = this.buf.subarray(0, this.pos);
    const nextSize = this.buf.length > CHUNK && this.pos < CHUNK ? CHUNK : this.buf.length;
    this.buf = Buffer.allocUnsafe(nextSize);
    this.pos = 0;
    return out;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/**
 * Incremental decoder. The length field is checked against `maxFrame`
 * before any body byte is buffered, so an oversized frame costs nothing.
 * After the first error it ignores further input.
 */
export class FrameDecoder {
  private readonly frame = new Frame();
  private assembly: Buffer | undefined;
  private filled = 0;
  private stub: Buffer | undefined;
  private failed = false;

  constructor(
    private readonly maxFrame: number,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onError: (error: ProtocolError) => void,
  ) {}

  push(input: Buffer): void {
    if (this.failed) return;
    let chunk = input;
    let off = 0;
    if (this.assembly !== undefined) {
      const asm = this.assembly;
      const n = Math.min(asm.length - this.filled, chunk.length);
      chunk.copy(asm, this.filled, 0, n);
      this.filled += n;
      off = n;
      if (this.filled < asm.length) return;
      this.assembly = undefined;
      if (!this.emit(asm, 0, asm.length)) return;
    }
    if (this.stub !== undefined) {
      chunk = Buffer.concat([this.stub, chunk.subarray(off)]);
      off = 0;
      this.stub = undefined;
    }
    const end = chunk.length;
    while (off + 4 <= end) {
      const len = chunk.readUInt32LE(off);
      if (len < HEADER_REST)
        return this.fail(`frame length ${len} is shorter than the ${HEADER_REST}-byte header`);
      if (len > this.maxFrame) return this.fail(`frame length ${len} exceeds the limit of ${this.maxFrame}`);
      const total = 4 + len;
      if (off + total <= end) {
        if (!this.emit(chunk, off, total)) return;
        off += total;
        continue;
      }
      const asm = Buffer.allocUnsafe(total);
      chunk.copy(asm, 0, off, end);
      this.assembly = asm;
      this.filled = end - off;
      return;
    }
    if (off < end) this.stub = Buffer.from(chunk.subarray(off, end));
  }

  private emit(buf: Buffer, off: number, total: number): boolean {
    const f = this.frame;
    f.op = buf[off + 4]!;
    f.flags = buf[off + 5]!;
    f.priority = buf[off + 6]!;
    f.codec = buf[off + 7]!;
    f.reqId = getU32(buf, off + 8);
    f.target = getU32(buf, off + 12);
    f.buf = buf;
    f.start = off + HEADER_SIZE;
    f.end = off + total;
    this.onFrame(f);
    return !this.failed;
  }

  /** Stop decoding (the owner found a frame it cannot accept). */
  fail(message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.assembly = undefined;
    this.stub = undefined;
    this.onError(new ProtocolError(message));
  }
}
