import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IpcError } from '../../src/errors.js';
import {
  codecId,
  codecName,
  decodePayload,
  encodePayload,
  inferCodec,
} from '../../src/wire/payload-codec.js';
import { CODEC_NAMES, Codec, type CodecId, type CodecName } from '../../src/wire/protocol.js';

function roundTrip(value: unknown, codec: CodecId): unknown {
  const bytes = encodePayload(value, codec);
  return decodePayload(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), codec);
}

/** JSON has no -0: it comes back as 0. Everything else JSON can hold must come back equal. */
function withoutNegativeZero(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return v.map(withoutNegativeZero);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v))
      Object.defineProperty(out, k, {
        value: withoutNegativeZero(x),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return out;
  }
  return v;
}

describe('payload codecs: names and ids', () => {
  it('codecId and codecName are inverse for every codec', () => {
    for (const name of CODEC_NAMES) assert.equal(codecName(codecId(name)), name);
    assert.deepEqual(CODEC_NAMES.map(codecId), [Codec.BYTES, Codec.STRING, Codec.JSON, Codec.V8]);
  });

  it('an unknown codec name is a RangeError; an unknown codec id is an IpcError PROTOCOL', () => {
    assert.throws(() => codecId('xml' as CodecName), RangeError);
    for (const id of [4, 255, -1]) {
      assert.throws(
        () => codecName(id),
        (e: unknown) => e instanceof IpcError && e.code === 'PROTOCOL',
      );
    }
  });

  it('inferCodec: bytes for Uint8Array/Buffer, string for strings, JSON for everything else', () => {
    assert.equal(inferCodec(new Uint8Array(2)), Codec.BYTES);
    assert.equal(inferCodec(Buffer.from('x')), Codec.BYTES);
    assert.equal(inferCodec(''), Codec.STRING);
    assert.equal(inferCodec('text'), Codec.STRING);
    for (const v of [0, null, true, {}, [], { a: 1 }]) assert.equal(inferCodec(v), Codec.JSON);
  });
});

describe('payload codecs: round trips', () => {
  it('bytes pass through without copying: the same view over the same ArrayBuffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(8), fc.nat(8), (data, before, after) => {
        // A view with an offset into a larger buffer, as a socket read would give.
        const backing = new Uint8Array(before + data.length + after);
        backing.set(data, before);
        const view = backing.subarray(before, before + data.length);
        const encoded = encodePayload(view, Codec.BYTES);
        assert.equal(encoded, view);
        const asBuffer = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
        const decoded = decodePayload(asBuffer, Codec.BYTES) as Buffer;
        assert.equal(decoded, asBuffer);
        assert.equal(decoded.buffer, backing.buffer);
        assert.equal(decoded.byteOffset, before);
        assert.deepEqual([...decoded], [...data]);
      }),
    );
  });

  it('an ArrayBuffer is wrapped, not copied, by the bytes codec', () => {
    const ab = new ArrayBuffer(8);
    const encoded = encodePayload(ab, Codec.BYTES);
    assert.equal(encoded.buffer, ab);
    assert.equal(encoded.byteLength, 8);
  });

  it('strings round trip through UTF-8, including astral characters', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const bytes = encodePayload(s, Codec.STRING);
        assert.equal(bytes.byteLength, Buffer.byteLength(s, 'utf8'));
        assert.equal(roundTrip(s, Codec.STRING), s);
      }),
    );
  });

  it('JSON values round trip (with -0 read back as 0, as JSON has no -0)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        assert.deepStrictEqual(roundTrip(v, Codec.JSON), withoutNegativeZero(v));
      }),
    );
  });

  it('v8 structured-clone values round trip (maps, sets, dates, typed arrays, bigints, sparse arrays)', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withMap: true,
          withSet: true,
          withDate: true,
          withTypedArray: true,
          withBigInt: true,
          withSparseArray: true,
        }),
        (v) => {
          // An invalid Date survives the round trip, but deepStrictEqual never finds two of them equal (NaN time).
          fc.pre(!hasInvalidDate(v, new Set()));
          assert.deepStrictEqual(roundTrip(v, Codec.V8), v);
        },
      ),
    );
  });

  it('v8 keeps -0, NaN and undefined that JSON cannot', () => {
    assert.deepStrictEqual(roundTrip({ z: -0, n: Number.NaN, u: undefined }, Codec.V8), {
      z: -0,
      n: Number.NaN,
      u: undefined,
    });
  });
});

describe('payload codecs: misuse', () => {
  it('the bytes codec refuses anything but Uint8Array or ArrayBuffer (TypeError)', () => {
    for (const v of ['text', 1, null, {}, [1, 2]])
      assert.throws(() => encodePayload(v, Codec.BYTES), TypeError);
  });

  it('the string codec refuses non-strings (TypeError)', () => {
    for (const v of [1, null, {}, new Uint8Array(1)])
      assert.throws(() => encodePayload(v, Codec.STRING), TypeError);
  });

  it('the JSON codec refuses values JSON cannot represent (TypeError)', () => {
    for (const v of [undefined, () => 1, Symbol('s'), 10n])
      assert.throws(() => encodePayload(v, Codec.JSON), TypeError);
  });

  it('an unknown codec id: encode throws RangeError, decode throws IpcError PROTOCOL', () => {
    assert.throws(() => encodePayload('x', 9 as CodecId), RangeError);
    assert.throws(
      () => decodePayload(Buffer.from('x'), 9),
      (e: unknown) => e instanceof IpcError && e.code === 'PROTOCOL',
    );
  });
});

/** True if `v` holds a Date whose time is NaN anywhere inside (maps, sets, arrays, objects). */
function hasInvalidDate(v: unknown, seen: Set<unknown>): boolean {
  if (v instanceof Date) return Number.isNaN(v.getTime());
  if (typeof v !== 'object' || v === null || seen.has(v)) return false;
  seen.add(v);
  if (v instanceof Map) return [...v].some(([k, x]) => hasInvalidDate(k, seen) || hasInvalidDate(x, seen));
  if (v instanceof Set) return [...v].some((x) => hasInvalidDate(x, seen));
  if (ArrayBuffer.isView(v)) return false;
  return Object.values(v).some((x) => hasInvalidDate(x, seen));
}
