/**
 * Segment: a named POSIX shared-memory object mapped into this process as a
 * SharedArrayBuffer.
 *
 * Contract:
 * - Names are POSIX shm names. "foo" and "/foo" are the same segment (the
 *   one Python's `multiprocessing.shared_memory.SharedMemory(name="foo")`
 *   uses); no other "/" is allowed; at most 255 bytes.
 * - `create` is exclusive by default: an existing name fails with NAME_TAKEN.
 *   A new segment is zero-filled, `size` bytes long, with `mode` (default
 *   0o600) regardless of the umask.
 * - `open` maps the whole segment, or `size` bytes if given; a size past the
 *   end fails with INVALID_ARGUMENT.
 * - The mapping lives as long as any SharedArrayBuffer on it (in any thread)
 *   or any pending async futex wait on it; `close()` only drops this handle's
 *   reference, so it can never leave a view pointing at unmapped memory.
 * - `grow` enlarges a segment (never shrinks it: other processes may still
 *   map the end); existing mappings keep their length, `open` maps the new one.
 * - `unlink` removes the name; mappings stay valid until released.
 * - OS errors map to IpcError codes with the original error as `cause`:
 *   ENOENT → NO_SUCH_SEGMENT, EACCES/EPERM → PERMISSION_DENIED,
 *   EEXIST → NAME_TAKEN, EINVAL/ENAMETOOLONG → INVALID_ARGUMENT. Others
 *   (ENOSPC, EMFILE, ...) are rethrown unchanged as Node errno errors.
 */
import { truncateSync } from 'node:fs';
import { IpcError } from '../errors.js';
import { native } from './native.js';

export interface SegmentCreateOptions {
  /** Size in bytes; a positive integer. */
  size: number;
  /** Permission bits; default 0o600. */
  mode?: number;
  /** Fail with NAME_TAKEN if the name exists (default true); false opens and grows it. */
  exclusive?: boolean;
  /** As for `Segment.open`: survive another process of this user cutting it short. */
  guard?: boolean;
}

export interface SegmentOpenOptions {
  /** Bytes to map from the start; default the whole segment. */
  size?: number;
  /**
   * Survive another process cutting the segment short (ftruncate): an access past the new end
   * then reads zeros (the mapping is replaced by private zero pages and stops being shared)
   * instead of killing this process with SIGBUS, and `damaged` turns true. For memory a less
   * trusted process created. Default false.
   */
  guard?: boolean;
}

export interface SegmentStat {
  size: number;
  mode: number;
  uid: number;
}

const NAME_MAX = 255;

/** The POSIX name for `name`: a single leading slash, no other slash. */
export function posixName(name: string): string {
  if (typeof name !== 'string') throw new IpcError('INVALID_ARGUMENT', 'segment name must be a string');
  const posix = name.startsWith('/') ? name : `/${name}`;
  if (
    posix.length < 2 ||
    posix.indexOf('/', 1) !== -1 ||
    Buffer.byteLength(posix) > NAME_MAX ||
    posix.includes('\0')
  ) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `invalid segment name ${JSON.stringify(name)}: want "name" or "/name", no other "/"`,
    );
  }
  return posix;
}

function checkSize(size: unknown, what: string): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
    throw new IpcError('INVALID_ARGUMENT', `${what} must be a positive integer, got ${String(size)}`);
  }
  return size;
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}

/** Map an errno error from the addon to an IpcError (or rethrow it unchanged). */
function fromErrno(err: unknown, name: string): never {
  switch (errnoCode(err)) {
    case 'ENOENT':
      throw new IpcError('NO_SUCH_SEGMENT', `no such segment: ${name}`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      throw new IpcError('PERMISSION_DENIED', `permission denied for segment ${name}`, { cause: err });
    case 'EEXIST':
      throw new IpcError('NAME_TAKEN', `segment already exists: ${name}`, { cause: err });
    case 'EINVAL':
      throw new IpcError('INVALID_ARGUMENT', `invalid size or segment for ${name}`, { cause: err });
    case 'ENAMETOOLONG':
      throw new IpcError('INVALID_ARGUMENT', `segment name too long: ${name}`, { cause: err });
    default:
      throw err;
  }
}

export class Segment {
  /** The POSIX name, with its leading slash. */
  readonly name: string;
  #buffer: SharedArrayBuffer | undefined;
  /** The addon's guard slot of a guarded mapping, else -1. */
  readonly #guard: number;

  private constructor(name: string, buffer: SharedArrayBuffer, guarded = false) {
    this.name = name;
    this.#buffer = buffer;
    this.#guard = guarded ? native().guardIndex(buffer) : -1;
  }

  /** Create a new zero-filled segment and map it. */
  static create(name: string, options: SegmentCreateOptions): Segment {
    const posix = posixName(name);
    const size = checkSize(options?.size, 'size');
    const mode = options.mode ?? 0o600;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      throw new IpcError('INVALID_ARGUMENT', `mode must be permission bits (0..0o777), got ${String(mode)}`);
    }
    const shm = native();
    try {
      return new Segment(
        posix,
        shm.open(posix, size, {
          create: true,
          exclusive: options.exclusive ?? true,
          mode,
          guard: options.guard,
        }),
        options.guard === true,
      );
    } catch (err) {
      return fromErrno(err, posix);
    }
  }

  /** Map an existing segment. */
  static open(name: string, options: SegmentOpenOptions = {}): Segment {
    const posix = posixName(name);
    const size = options.size === undefined ? 0 : checkSize(options.size, 'size');
    const shm = native();
    try {
      const buffer = shm.open(posix, size, {
        create: false,
        exclusive: false,
        mode: 0,
        guard: options.guard,
      });
      return new Segment(posix, buffer, options.guard === true);
    } catch (err) {
      return fromErrno(err, posix);
    }
  }

  /**
   * Grow a segment to `size` bytes (where safe: growing only). Existing
   * mappings keep their length and stay valid; `open()` afterwards maps the
   * new size. Shrinking is refused, since a process still mapping the cut-off
   * pages would fault on its next access. POSIX shared memory lives in
   * /dev/shm on Linux, so this is a plain truncate of that file.
   */
  static grow(name: string, size: number): void {
    const posix = posixName(name);
    const wanted = checkSize(size, 'size');
    const current = Segment.stat(name).size;
    if (wanted < current) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `segment ${posix} is ${current} bytes; shrinking a shared segment is unsafe`,
      );
    }
    try {
      truncateSync(`/dev/shm${posix}`, wanted);
    } catch (err) {
      fromErrno(err, posix);
    }
  }

  /** Remove the name; existing mappings stay valid. */
  static unlink(name: string): void {
    const posix = posixName(name);
    const shm = native();
    try {
      shm.unlink(posix);
    } catch (err) {
      fromErrno(err, posix);
    }
  }

  static stat(name: string): SegmentStat {
    const posix = posixName(name);
    const shm = native();
    try {
      return shm.stat(posix);
    } catch (err) {
      return fromErrno(err, posix);
    }
  }

  /** The mapped memory; throws INVALID_ARGUMENT after close(). */
  get buffer(): SharedArrayBuffer {
    if (this.#buffer === undefined) throw new IpcError('INVALID_ARGUMENT', `segment ${this.name} is closed`);
    return this.#buffer;
  }

  get size(): number {
    return this.buffer.byteLength;
  }

  /**
   * A guarded mapping (`guard: true`) that another process cut short: it reads zeros from the
   * first fault on, no longer shared. Always false for an unguarded one (which would have died).
   */
  get damaged(): boolean {
    return this.#guard >= 0 && this.#buffer !== undefined && native().guardHit(this.#guard);
  }

  get closed(): boolean {
    return this.#buffer === undefined;
  }

  /** Drop this handle's reference; the memory is unmapped once nothing uses it. Idempotent. */
  close(): void {
    this.#buffer = undefined;
  }
}
