import { deserialize, serialize } from 'node:v8';
import { IpcError } from '../errors.js';
import { CODEC_NAMES, Codec, type CodecId, type CodecName } from './protocol.js';

/**
 * Payload codecs. Bytes pass through untouched (a Uint8Array view over the
 * same memory, no copy); strings are UTF-8; JSON is UTF-8 JSON text; v8 is
 * the structured-clone format of `v8.serialize`.
 */
export function codecId(name: CodecName): CodecId {
  switch (name) {
    case 'bytes':
      return Codec.BYTES;
    case 'string':
      return Codec.STRING;
    case 'json':
      return Codec.JSON;
    case 'v8':
      return Codec.V8;
    default:
      throw new RangeError(`codec must be one of ${CODEC_NAMES.join(', ')}`);
  }
}

export function codecName(id: number): CodecName {
  const name = CODEC_NAMES[id];
  if (name === undefined) throw new IpcError('PROTOCOL', `unknown payload codec ${id}`);
  return name;
}

/** The codec a value is sent with when the caller names none. */
export function inferCodec(value: unknown): CodecId {
  if (value instanceof Uint8Array) return Codec.BYTES;
  if (typeof value === 'string') return Codec.STRING;
  return Codec.JSON;
}

export function encodePayload(value: unknown, codec: CodecId): Uint8Array {
  switch (codec) {
    case Codec.BYTES:
      if (value instanceof Uint8Array) return value;
      if (value instanceof ArrayBuffer) return new Uint8Array(value);
      throw new TypeError('the bytes codec takes a Buffer, Uint8Array or ArrayBuffer');
    case Codec.STRING:
      if (typeof value !== 'string') throw new TypeError('the string codec takes a string');
      return Buffer.from(value, 'utf8');
    case Codec.JSON: {
      const text = JSON.stringify(value);
      if (text === undefined) throw new TypeError('value is not representable as JSON');
      return Buffer.from(text, 'utf8');
    }
    case Codec.V8:
      return serialize(value);
    default:
      throw new RangeError(`unknown codec ${String(codec)}`);
  }
}

export function decodePayload(bytes: Buffer, codec: number): unknown {
  switch (codec) {
    case Codec.BYTES:
      return bytes;
    case Codec.STRING:
      return bytes.toString('utf8');
    case Codec.JSON:
      return JSON.parse(bytes.toString('utf8'));
    case Codec.V8:
      return deserialize(bytes);
    default:
      throw new IpcError('PROTOCOL', `unknown payload codec ${codec}`);
  }
}
