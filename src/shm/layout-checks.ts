/**
 * Checks every shared structure makes at its boundary (constructor and
 * init()): that it sits inside a SharedArrayBuffer at an offset aligned as
 * its layout requires, and that the counts and sizes it is initialised with
 * are in range. Each failure is an IpcError INVALID_ARGUMENT naming the
 * structure or option. The layouts themselves are documented in each
 * structure's own file.
 */
import { IpcError } from '../errors.js';

/**
 * Throws unless `bytes` bytes at `byteOffset` lie inside `buffer`, a
 * SharedArrayBuffer, with `byteOffset` a multiple of `align`.
 */
export function checkPlacement(
  buffer: SharedArrayBuffer,
  byteOffset: number,
  bytes: number,
  align: number,
  what: string,
): void {
  if (!(buffer instanceof SharedArrayBuffer))
    throw new IpcError('INVALID_ARGUMENT', `${what} needs a SharedArrayBuffer`);
  if (
    !Number.isInteger(byteOffset) ||
    byteOffset < 0 ||
    byteOffset % align !== 0 ||
    byteOffset + bytes > buffer.byteLength
  ) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${what} of ${bytes} bytes does not fit at offset ${String(byteOffset)} (${align}-aligned)`,
    );
  }
}

/** An Int32Array of `words` words at `byteOffset` of `buffer`, checked to be 4-byte aligned and in bounds. */
export function wordsAt(
  buffer: SharedArrayBuffer,
  byteOffset: number,
  words: number,
  what: string,
): Int32Array {
  checkPlacement(buffer, byteOffset, words * 4, 4, what);
  return new Int32Array(buffer, byteOffset, words);
}

/** Throws unless `value` is an integer in `min..max`; `range` is how the message writes that range (default `min..max`). */
export function checkInteger(value: number, min: number, max: number, what: string, range?: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${what} must be an integer in ${range ?? `${min}..${max}`}, got ${String(value)}`,
    );
  }
}

/** Throws unless `value` is a power of two in `min..max`; `range` is how the message writes that range (default `min..max`). */
export function checkPowerOfTwo(value: number, min: number, max: number, what: string, range?: string): void {
  if (!Number.isInteger(value) || value < min || value > max || (value & (value - 1)) !== 0) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${what} must be a power of two in ${range ?? `${min}..${max}`}, got ${String(value)}`,
    );
  }
}
