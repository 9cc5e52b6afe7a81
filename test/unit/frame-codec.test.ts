import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.js';
import { type Frame, FrameDecoder, FrameWriter } from '../../src/wire/frame-codec.js';
import { HEADER_REST, HEADER_SIZE } from '../../src/wire/protocol.js';

interface FrameSpec {
  op: number;
  flags: number;
  priority: number;
  codec: number;
  reqId: number;
  target: number;
  words: 0 | 1 | 2;
  w0: number;
  w1: number;
  payload: Uint8Array | undefined;
  /** Call writer.take() after this frame (so the stream arrives as several writer chunks). */
  takeAfter: boolean;
}

interface Decoded {
  op: number;
  flags: number;
  priority: number;
  codec: number;
  reqId: number;
  target: number;
  body: Buffer;
}

/** Deterministic filler so large payloads cost nothing to generate and still differ byte by byte. */
function filled(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u8 = fc.integer({ min: 0, max: 255 });

const payloadArb: fc.Arbitrary<Uint8Array | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constant(new Uint8Array(0)) },
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.integer({ min: 41, max: 70_000 }), fc.integer()).map(([n, s]) => filled(n, s)),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 150_000, max: 200_000 }), fc.integer())
      .map(([n, s]) => filled(n, s)),
  },
);

const frameArb: fc.Arbitrary<FrameSpec> = fc.record({
  op: u8,
  flags: u8,
  priority: fc.integer({ min: 0, max: 31 }),
  codec: u8,
  reqId: u32,
  target: u32,
  words: fc.constantFrom(0 as const, 1 as const, 2 as const),
  w0: u32,
  w1: u32,
  payload: payloadArb,
  takeAfter: fc.boolean(),
});

function expectedBody(f: FrameSpec): Buffer {
  const words = Buffer.alloc(f.words * 4);
  if (f.words > 0) words.writeUInt32LE(f.w0, 0);
  if (f.words > 1) words.writeUInt32LE(f.w1, 4);
  return Buffer.concat([words, f.payload ?? new Uint8Array(0)]);
}

function writeAll(frames: FrameSpec[]): Buffer {
  const w = new FrameWriter();
  const parts: Buffer[] = [];
  for (const f of frames) {
    w.frame(f.op, f.flags, f.priority, f.codec, f.reqId, f.target, f.words, f.w0, f.w1, f.payload);
    if (f.takeAfter) {
      const out = w.take();
      assert.ok(out !== undefined);
      parts.push(out);
    }
  }
  const last = w.take();
  if (last !== undefined) parts.push(last);
  assert.equal(w.pending, 0);
  return Buffer.concat(parts);
}

/** Split `bytes` at the given positions (any order, duplicates and out-of-range positions allowed). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

function collect(maxFrame: number): { decoder: FrameDecoder; frames: Decoded[]; errors: ProtocolError[] } {
  const frames: Decoded[] = [];
  const errors: ProtocolError[] = [];
  const decoder = new FrameDecoder(
    maxFrame,
    (f: Frame) => frames.push({ ...f, body: Buffer.from(f.body) }),
    (e) => errors.push(e),
  );
  return { decoder, frames, errors };
}

/** A well-formed frame with an empty body, as bytes. */
function emptyFrame(op: number): Buffer {
  const w = new FrameWriter();
  w.frame(op, 0, 0, 0, 0, 0, 0, 0, 0, undefined);
  return Buffer.from(w.take()!);
}

describe('FrameWriter + FrameDecoder: round trip', () => {
  it('decodes exactly the frames written, in order, however the byte stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 25 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: -3, max: 20 })), { maxLength: 20 }),
        (specs, fractions, nearBoundaries) => {
          const bytes = writeAll(specs);
          // Frame start offsets, so cuts can land inside the length field and the header.
          const starts: number[] = [];
          let off = 0;
          for (const s of specs) {
            starts.push(off);
            off += HEADER_SIZE + s.words * 4 + (s.payload?.byteLength ?? 0);
          }
          assert.equal(bytes.length, off, 'the stream is exactly the frames, nothing more');
          const cuts = [
            ...fractions.map((x) => Math.floor(x * bytes.length)),
            ...nearBoundaries.map(([i, d]) => starts[i % starts.length]! + d),
          ];
          const { decoder, frames, errors } = collect(1 << 20);
          for (const chunk of split(bytes, cuts)) decoder.push(chunk);
          assert.deepEqual(errors, []);
          assert.equal(frames.length, specs.length);
          for (let i = 0; i < specs.length; i++) {
            const s = specs[i]!;
            const f = frames[i]!;
            assert.deepEqual(
              {
                op: f.op,
                flags: f.flags,
                priority: f.priority,
                codec: f.codec,
                reqId: f.reqId,
                target: f.target,
              },
              {
                op: s.op,
                flags: s.flags,
                priority: s.priority,
                codec: s.codec,
                reqId: s.reqId,
                target: s.target,
              },
            );
            assert.ok(f.body.equals(expectedBody(s)), `frame ${i}: body differs`);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('decodes a stream fed one byte at a time', () => {
    const specs: FrameSpec[] = [
      {
        op: 6,
        flags: 1,
        priority: 31,
        codec: 2,
        reqId: 0xffffffff,
        target: 7,
        words: 2,
        w0: 1,
        w1: 0xfffffffe,
        payload: filled(300, 3),
        takeAfter: false,
      },
      {
        op: 9,
        flags: 0,
        priority: 0,
        codec: 0,
        reqId: 0,
        target: 0,
        words: 0,
        w0: 0,
        w1: 0,
        payload: undefined,
        takeAfter: false,
      },
      {
        op: 255,
        flags: 255,
        priority: 5,
        codec: 3,
        reqId: 1,
        target: 0x80000000,
        words: 1,
        w0: 42,
        w1: 0,
        payload: filled(17, 9),
        takeAfter: false,
      },
    ];
    const bytes = writeAll(specs);
    const { decoder, frames, errors } = collect(1 << 20);
    for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1));
    assert.deepEqual(errors, []);
    assert.deepEqual(
      frames.map((f) => [f.op, f.flags, f.priority, f.codec, f.reqId, f.target]),
      specs.map((s) => [s.op, s.flags, s.priority, s.codec, s.reqId, s.target]),
    );
    for (const [i, s] of specs.entries())
      assert.ok(frames[i]!.body.equals(expectedBody(s)), `frame ${i}: body differs`);
  });

  it('body views handed to the callback stay valid after later input', () => {
    const specs = [0, 1, 2, 3].map(
      (i): FrameSpec => ({
        op: i,
        flags: 0,
        priority: 0,
        codec: 0,
        reqId: i,
        target: 0,
        words: 0,
        w0: 0,
        w1: 0,
        payload: filled(1000 + i * 40_000, i + 1),
        takeAfter: false,
      }),
    );
    const bytes = writeAll(specs);
    const bodies: Buffer[] = [];
    const decoder = new FrameDecoder(
      1 << 20,
      (f) => bodies.push(f.body),
      (e) => assert.fail(e),
    );
    for (const chunk of split(bytes, [3, 500, 1020, 1030, 50_000, 90_000, 90_002, 120_000]))
      decoder.push(chunk);
    assert.equal(bodies.length, 4);
    for (const [i, s] of specs.entries())
      assert.ok(bodies[i]!.equals(expectedBody(s)), `body ${i} was overwritten`);
  });

  it('a frame with an empty body (length field 12) decodes', () => {
    const { decoder, frames, errors } = collect(64);
    decoder.push(emptyFrame(3));
    assert.deepEqual(errors, []);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.op, 3);
    assert.equal(frames[0]!.body.length, 0);
  });

  it('a frame of exactly maxFrame bytes after the length field decodes', () => {
    const w = new FrameWriter();
    w.frame(1, 0, 0, 0, 0, 0, 0, 0, 0, new Uint8Array(100 - HEADER_REST));
    const { decoder, frames, errors } = collect(100);
    decoder.push(w.take()!);
    assert.deepEqual(errors, []);
    assert.equal(frames.length, 1);
  });
});

describe('FrameWriter', () => {
  it('take() returns undefined when nothing was written and pending counts bytes written', () => {
    const w = new FrameWriter();
    assert.equal(w.take(), undefined);
    assert.equal(w.pending, 0);
    w.frame(1, 0, 0, 0, 0, 0, 1, 5, 0, new Uint8Array(3));
    assert.equal(w.pending, HEADER_SIZE + 4 + 3);
    assert.equal(w.take()!.length, HEADER_SIZE + 4 + 3);
    assert.equal(w.pending, 0);
  });

  it('writes the documented little-endian header layout', () => {
    const w = new FrameWriter();
    w.frame(6, 0x81, 31, 3, 0x01020304, 0xa0b0c0d0, 2, 0x11223344, 0x55667788, Uint8Array.of(9, 8));
    const b = w.take()!;
    assert.deepEqual(
      [...b],
      [
        // length = 12 + 8 (words) + 2 (payload) = 22
        22, 0, 0, 0, 6, 0x81, 31, 3, 0x04, 0x03, 0x02, 0x01, 0xd0, 0xc0, 0xb0, 0xa0, 0x44, 0x33, 0x22, 0x11,
        0x88, 0x77, 0x66, 0x55, 9, 8,
      ],
    );
  });

  it('bytes already taken are never overwritten by later frames', () => {
    const w = new FrameWriter();
    w.frame(1, 0, 0, 0, 1, 0, 0, 0, 0, filled(1000, 1));
    const first = w.take()!;
    const snapshot = Buffer.from(first);
    for (let i = 0; i < 5; i++) w.frame(2, 0, 0, 0, 2, 0, 0, 0, 0, filled(100_000, i + 7));
    w.take();
    w.frame(3, 0, 0, 0, 3, 0, 0, 0, 0, filled(1000, 99));
    w.take();
    assert.ok(first.equals(snapshot));
  });

  it('textFrame writes UTF-8 text after the words, with zero flags, priority, codec and target', () => {
    const w = new FrameWriter();
    w.textFrame(3, 77, 1, 0xdeadbeef, 0, '{"ok":"ü→😀"}');
    const { decoder, frames } = collect(1 << 10);
    decoder.push(w.take()!);
    assert.equal(frames.length, 1);
    const f = frames[0]!;
    assert.deepEqual([f.op, f.flags, f.priority, f.codec, f.reqId, f.target], [3, 0, 0, 0, 77, 0]);
    assert.equal(f.body.readUInt32LE(0), 0xdeadbeef);
    assert.equal(f.body.subarray(4).toString('utf8'), '{"ok":"ü→😀"}');
  });
});

describe("letting a closed connection's buffers go", () => {
  it('FrameWriter.discard forgets what was not taken, keeps taken bytes intact, and writes on afterwards', () => {
    const w = new FrameWriter();
    w.frame(1, 0, 0, 0, 1, 0, 0, 0, 0, filled(100, 1));
    const taken = w.take()!;
    const snapshot = Buffer.from(taken);
    w.frame(2, 0, 0, 0, 2, 0, 0, 0, 0, filled(100, 2));
    w.discard();
    assert.equal(w.pending, 0);
    assert.equal(w.take(), undefined, 'the frame written before discard is gone');
    w.frame(3, 0, 0, 0, 3, 0, 0, 0, 0, filled(10, 3));
    const { decoder, frames } = collect(1 << 10);
    decoder.push(w.take()!);
    assert.deepEqual(
      frames.map((f) => f.reqId),
      [3],
    );
    assert.ok(taken.equals(snapshot), 'bytes handed over before discard are not touched');
  });

  it('FrameDecoder.close drops a frame in assembly and ignores further input', () => {
    const { decoder, frames, errors } = collect(1 << 20);
    const w = new FrameWriter();
    w.frame(1, 0, 0, 0, 1, 0, 0, 0, 0, filled(200_000, 1));
    const whole = w.take()!;
    decoder.push(whole.subarray(0, 150_000));
    assert.ok(decoder.buffered > 0);
    decoder.close();
    assert.equal(decoder.buffered, 0);
    decoder.push(whole.subarray(150_000));
    decoder.push(whole);
    assert.equal(frames.length, 0);
    assert.equal(errors.length, 0, 'closing is not an error');
  });
});

describe('FrameDecoder: errors', () => {
  function lengthPrefix(len: number, extra = 0): Buffer {
    const b = Buffer.alloc(4 + extra, 0xab);
    b.writeUInt32LE(len, 0);
    return b;
  }

  it('an oversized length is reported once, as a ProtocolError with code PROTOCOL, before the body arrives', () => {
    const { decoder, frames, errors } = collect(1000);
    decoder.push(lengthPrefix(1001, 3));
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof ProtocolError);
    assert.equal(errors[0]!.code, 'PROTOCOL');
    assert.deepEqual(frames, []);
  });

  it('an oversized length split across pushes is reported as soon as its fourth byte arrives', () => {
    const { decoder, errors } = collect(1000);
    const prefix = lengthPrefix(0xffffffff);
    decoder.push(prefix.subarray(0, 2));
    assert.equal(errors.length, 0);
    decoder.push(prefix.subarray(2, 4));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'PROTOCOL');
  });

  it('an oversized length after a valid frame in the same chunk: the valid frame is decoded, then the error', () => {
    const { decoder, frames, errors } = collect(1000);
    decoder.push(Buffer.concat([emptyFrame(4), lengthPrefix(5000, 2)]));
    assert.equal(frames.length, 1);
    assert.equal(errors.length, 1);
  });

  for (const len of [0, 1, HEADER_REST - 1]) {
    it(`a length of ${len} (shorter than the 12-byte header) is a ProtocolError`, () => {
      const { decoder, frames, errors } = collect(1000);
      decoder.push(lengthPrefix(len, 20));
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof ProtocolError);
      assert.equal(errors[0]!.code, 'PROTOCOL');
      assert.deepEqual(frames, []);
    });
  }

  it('ignores all input after an error: no frames and no second error', () => {
    const { decoder, frames, errors } = collect(1000);
    decoder.push(lengthPrefix(2000, 1));
    decoder.push(emptyFrame(1));
    decoder.push(lengthPrefix(3));
    decoder.push(Buffer.concat([emptyFrame(2), emptyFrame(3)]));
    assert.equal(errors.length, 1);
    assert.deepEqual(frames, []);
  });

  it('fail() called from the frame callback stops the frames that follow in the same chunk', () => {
    const errors: ProtocolError[] = [];
    const ops: number[] = [];
    const decoder: FrameDecoder = new FrameDecoder(
      1000,
      (f) => {
        ops.push(f.op);
        if (f.op === 2) decoder.fail('op 2 is not accepted here');
      },
      (e) => errors.push(e),
    );
    decoder.push(Buffer.concat([emptyFrame(1), emptyFrame(2), emptyFrame(3)]));
    decoder.push(emptyFrame(4));
    assert.deepEqual(ops, [1, 2]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'PROTOCOL');
    decoder.fail('again');
    assert.equal(errors.length, 1, 'fail() reports only the first error');
  });

  it('fail() from the callback of a frame completed across pushes stops the rest of that push', () => {
    const ops: number[] = [];
    let errorCount = 0;
    const decoder: FrameDecoder = new FrameDecoder(
      1000,
      (f) => {
        ops.push(f.op);
        decoder.fail('stop');
      },
      () => errorCount++,
    );
    const first = emptyFrame(1);
    decoder.push(first.subarray(0, 10));
    decoder.push(Buffer.concat([first.subarray(10), emptyFrame(2)]));
    assert.deepEqual(ops, [1]);
    assert.equal(errorCount, 1);
  });
});

describe('FrameWriter.frameFrom and gathered parts', () => {
  it('forwards a large payload by reference as its own part and a small one by copy, both decoding intact', () => {
    const w = new FrameWriter();
    const received = Buffer.alloc(100_000);
    for (let i = 0; i < received.length; i++) received[i] = (i * 13) & 0xff;
    w.frameFrom(9, 1, 5, 0, 7, 3, 2, 11, 22, received, 1000, 1000 + 40_000);
    w.frameFrom(9, 0, 0, 0, 8, 3, 2, 12, 23, received, 10, 74);
    const parts = w.takeParts()!;
    assert.ok(
      parts.some((p) => p.buffer === received.buffer),
      'the large payload is a view of the source bytes',
    );
    const { decoder, frames } = collect(1 << 20);
    decoder.push(Buffer.concat(parts));
    assert.equal(frames.length, 2);
    assert.deepEqual(frames[0]!.body.subarray(8), received.subarray(1000, 41_000));
    assert.deepEqual(frames[1]!.body.subarray(8), received.subarray(10, 74));
    assert.equal(w.takeParts(), undefined);
  });

  it('pending counts every byte of a frame, inline or by reference, and resets on take', () => {
    const w = new FrameWriter();
    const src = Buffer.alloc(50_000, 1);
    w.frameFrom(9, 0, 0, 0, 1, 1, 2, 0, 0, src, 0, src.length);
    assert.equal(w.pending, HEADER_SIZE + 8 + src.length);
    w.takeParts();
    assert.equal(w.pending, 0);
  });
});
