import { types } from 'node:util';

/**
 * Structured-clone values (the `v8` codec) as JSON, and back: what
 * `recv --json` prints for a v8 message and what `send --codec v8` reads.
 *
 * JSON has no BigInt, Map, Set, Date, undefined, NaN, typed arrays or
 * errors, so each of those becomes an object with one `$`-key (a tag):
 *   {"$bigint":"12345678901234567890"}   {"$undefined":true}
 *   {"$number":"NaN"|"Infinity"|"-Infinity"|"-0"}
 *   {"$date":"2024-01-02T03:04:05.000Z"}  (an invalid date: {"$date":null})
 *   {"$map":[[key,value],...]}            {"$set":[value,...]}
 *   {"$regexp":{"source":"a+","flags":"g"}}
 *   {"$bytes":"<base64>"}                 (Uint8Array, Buffer)
 *   {"$typedarray":{"type":"Float64Array","base64":"..."}}  (other views, DataView)
 *   {"$arraybuffer":"<base64>"}
 *   {"$error":{"name":"TypeError","message":"..."}}
 *   {"$object":{...}}   a plain object whose only key starts with `$`, so it
 *                       is not read as a tag
 * Keys and values inside are tagged the same way. Two things do not come
 * back as they were: a value that contains itself prints as
 * {"$circular":true} (and reads back as that object), and a value reached
 * twice is printed twice (two copies when read back).
 */

const TAGS = new Set([
  '$bigint',
  '$undefined',
  '$number',
  '$date',
  '$map',
  '$set',
  '$regexp',
  '$bytes',
  '$typedarray',
  '$arraybuffer',
  '$error',
  '$object',
]);

function base64(view: ArrayBufferView | ArrayBuffer): string {
  const u8 =
    view instanceof ArrayBuffer
      ? new Uint8Array(view)
      : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  return Buffer.from(u8).toString('base64');
}

export function toTaggedJson(value: unknown, ancestors: object[] = []): unknown {
  switch (typeof value) {
    case 'bigint':
      return { $bigint: value.toString() };
    case 'undefined':
      return { $undefined: true };
    case 'number':
      if (Number.isNaN(value)) return { $number: 'NaN' };
      if (value === Number.POSITIVE_INFINITY) return { $number: 'Infinity' };
      if (value === Number.NEGATIVE_INFINITY) return { $number: '-Infinity' };
      if (Object.is(value, -0)) return { $number: '-0' };
      return value;
    case 'string':
    case 'boolean':
      return value;
    case 'object':
      break;
    default:
      // Functions and symbols cannot be structured-cloned; nothing decoded holds one.
      return { $undefined: true };
  }
  if (value === null) return null;
  if (ancestors.includes(value)) return { $circular: true };
  const inner = [...ancestors, value];
  const tag = (v: unknown) => toTaggedJson(v, inner);
  if (types.isDate(value)) {
    const t = value.getTime();
    return { $date: Number.isNaN(t) ? null : value.toISOString() };
  }
  if (types.isRegExp(value)) return { $regexp: { source: value.source, flags: value.flags } };
  if (value instanceof Uint8Array) return { $bytes: base64(value) };
  if (ArrayBuffer.isView(value)) {
    return { $typedarray: { type: value.constructor.name, base64: base64(value) } };
  }
  if (value instanceof ArrayBuffer) return { $arraybuffer: base64(value) };
  if (types.isNativeError(value)) return { $error: { name: value.name, message: value.message } };
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [tag(k), tag(v)]) };
  if (value instanceof Set) return { $set: [...value].map(tag) };
  if (types.isBoxedPrimitive(value)) return tag(value.valueOf());
  if (Array.isArray(value)) return Array.from(value, tag);
  const out: Record<string, unknown> = {};
  const keys = Object.keys(value);
  for (const k of keys) define(out, k, tag((value as Record<string, unknown>)[k]));
  return keys.length === 1 && keys[0]!.startsWith('$') ? { $object: out } : out;
}

/** Set an own property even for a key like `__proto__`, which plain assignment would not. */
function define(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

const TYPED_ARRAYS: Record<string, new (b: ArrayBuffer, offset: number, length: number) => ArrayBufferView> =
  {
    Int8Array,
    Uint8ClampedArray,
    Int16Array,
    Uint16Array,
    Int32Array,
    Uint32Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    BigUint64Array,
    DataView,
  };

const ERRORS: Record<string, ErrorConstructor> = {
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
};

function bytesOf(text: unknown, what: string): Buffer {
  if (typeof text !== 'string') throw new TypeError(`${what} must be a base64 string`);
  return Buffer.from(text, 'base64');
}

function arrayBufferOf(b: Buffer): ArrayBuffer {
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return ab;
}

/** The inverse of toTaggedJson, for a value JSON.parse produced. TypeError names a malformed tag. */
export function fromTaggedJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(fromTaggedJson);
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  const key = keys[0];
  if (keys.length !== 1 || key === undefined || !TAGS.has(key)) return plainObject(o);
  const v = o[key];
  switch (key) {
    case '$bigint':
      if (typeof v !== 'string' || !/^-?\d+$/.test(v))
        throw new TypeError('$bigint must be a decimal string');
      return BigInt(v);
    case '$undefined':
      return undefined;
    case '$number':
      if (v === '-0') return -0;
      if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
      throw new TypeError("$number must be 'NaN', 'Infinity', '-Infinity' or '-0'");
    case '$date':
      if (v !== null && typeof v !== 'string')
        throw new TypeError('$date must be an ISO date string or null');
      return new Date(v === null ? Number.NaN : v);
    case '$map':
      if (!Array.isArray(v) || !v.every((e) => Array.isArray(e) && e.length === 2))
        throw new TypeError('$map must be an array of [key, value] pairs');
      return new Map(v.map(([k, x]) => [fromTaggedJson(k), fromTaggedJson(x)]));
    case '$set':
      if (!Array.isArray(v)) throw new TypeError('$set must be an array');
      return new Set(v.map(fromTaggedJson));
    case '$regexp': {
      const r = v as { source?: unknown; flags?: unknown } | null;
      if (typeof r?.source !== 'string' || typeof r.flags !== 'string')
        throw new TypeError('$regexp must be {"source": string, "flags": string}');
      return new RegExp(r.source, r.flags);
    }
    case '$bytes':
      return new Uint8Array(bytesOf(v, '$bytes'));
    case '$arraybuffer':
      return arrayBufferOf(bytesOf(v, '$arraybuffer'));
    case '$typedarray': {
      const t = v as { type?: unknown; base64?: unknown } | null;
      const make = typeof t?.type === 'string' ? TYPED_ARRAYS[t.type] : undefined;
      if (make === undefined)
        throw new TypeError(`$typedarray type must be one of ${Object.keys(TYPED_ARRAYS).join(', ')}`);
      const b = bytesOf(t!.base64, '$typedarray base64');
      const per =
        make === DataView ? 1 : (make as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      if (b.length % per !== 0)
        throw new TypeError(`$typedarray: ${b.length} bytes is no whole number of ${t!.type} elements`);
      return new make(arrayBufferOf(b), 0, b.length / per);
    }
    case '$error': {
      const e = v as { name?: unknown; message?: unknown } | null;
      const name = typeof e?.name === 'string' ? e.name : 'Error';
      const make = ERRORS[name];
      const err = new (make ?? Error)(typeof e?.message === 'string' ? e.message : '');
      // The structured clone keeps only the standard error types; any other name rides along as a property.
      if (make === undefined) err.name = name;
      return err;
    }
    default: // '$object'
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        throw new TypeError('$object must be an object');
      return plainObject(v as Record<string, unknown>);
  }
}

function plainObject(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) define(out, k, fromTaggedJson(o[k]));
  return out;
}
