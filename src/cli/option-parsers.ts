import { InvalidArgumentError } from 'commander';

/**
 * Parsers for option values. Each throws commander's InvalidArgumentError,
 * which commander reports as a usage error naming the option and the value.
 */

/** An integer in [min, max]. */
export function integer(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

/** Permission bits in octal, as chmod takes them: 600, 0600 or 0o600. */
export function octalMode(value: string): number {
  const m = /^(?:0o?)?([0-7]{1,3})$/i.exec(value);
  if (m === null) throw new InvalidArgumentError('expected permission bits in octal, such as 0600 or 644');
  return Number.parseInt(m[1]!, 8);
}

/** Permission bits as `ls -l`'s numeric form: four octal digits. */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Text for --help of every option that takes a size. */
export const SIZE_HELP = 'bytes, or with K/M/G (also KiB/MiB/GiB): powers of 1024';

/**
 * A byte count: a plain number, or one with K, M or G (also KiB, MiB, GiB;
 * any case), all powers of 1024. "KB" is refused: it means 1000 to some and
 * 1024 to others, and a size option should not have to be guessed.
 */
export function byteSize(value: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m === null ? undefined : UNITS[m[2]!.toLowerCase()];
  if (m === null || unit === undefined)
    throw new InvalidArgumentError(`expected a size such as 4096, 64K, 16M or 1G (K, M, G: powers of 1024)`);
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('size is too large');
  return n;
}

/** 'MiB'-style rendering of a byte count for messages (exact when it divides evenly). */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  }
  return `${n} bytes`;
}
