/**
 * MappedFile: a regular file mapped MAP_SHARED into this process as a
 * SharedArrayBuffer. Every process mapping the same file (ipcbox, C's mmap,
 * Python's mmap module) sees the same bytes, and they persist in the file.
 *
 * A sibling of Segment rather than a kind of it: a file has a path (not a
 * POSIX shm name), can be read-only, and needs flush(); what both share is a
 * SharedArrayBuffer, so every shm structure (Mutex, Ring, Semaphore…) can be
 * placed in a mapped file as well (futexes on a shared file mapping work
 * across processes).
 *
 * Contract:
 * - `MappedFile.open(path, { size, create, readOnly, mode })`: `create`
 *   makes a missing file (mode default 0o600, umask applies as for open(2))
 *   and grows a shorter one to `size` (zero-filled); without it `size` bytes
 *   (default: the whole file) must exist — a mapping past the end would fault
 *   on access, so that is INVALID_ARGUMENT, as is an empty file or a path
 *   that is not a regular file.
 * - `buffer` is the shared memory (writes reach the file's page cache at
 *   once; other mappings see them immediately). `flush()` is msync(MS_SYNC):
 *   it returns once the bytes are on disk (it blocks the thread meanwhile).
 * - Read-only (`readOnly: true`): the file is opened O_RDONLY and mapped
 *   PROT_READ, and writes are refused by construction: `buffer` throws
 *   PERMISSION_DENIED (a JS write to PROT_READ memory would kill the process,
 *   and Node has no read-only ArrayBuffer), and reading goes through
 *   `read(offset, length)` / `readInto(target, offset)`, which copy. Updates
 *   by other processes' writable mappings are seen.
 * - `MappedFile.grow(path, size)` enlarges the file (never shrinks: another
 *   process may still map the end). Existing mappings keep their length; a
 *   new `open` maps the new size.
 * - Mappings live as long as any SharedArrayBuffer on them; `close()` only
 *   drops this handle's reference (JS never touches unmapped memory).
 * - Errors: ENOENT → NO_SUCH_OBJECT, EACCES/EPERM → PERMISSION_DENIED,
 *   EINVAL → INVALID_ARGUMENT, others (ENOSPC, EMFILE…) per os-errors.ts.
 */
import { statSync, truncateSync } from 'node:fs';
import { IpcError } from '../errors.js';
import { nativeUnix } from './native-unix.js';
import { checkMode, fromErrno } from './os-errors.js';

export interface MappedFileOptions {
  /** Bytes to map from the start; default the whole file (required with create for a new file). */
  size?: number;
  /** Create the file if missing and grow it to `size` (default false). */
  create?: boolean;
  /** Map read-only (default false); see the module contract. */
  readOnly?: boolean;
  /** With `create`: permission bits for a new file, default 0o600. */
  mode?: number;
}

function checkSize(size: unknown): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0)
    throw new IpcError('INVALID_ARGUMENT', `size must be a positive integer, got ${String(size)}`);
  return size;
}

export class MappedFile {
  readonly path: string;
  readonly readOnly: boolean;
  #buffer: SharedArrayBuffer | undefined;

  private constructor(path: string, readOnly: boolean, buffer: SharedArrayBuffer) {
    this.path = path;
    this.readOnly = readOnly;
    this.#buffer = buffer;
  }

  static open(path: string, options: MappedFileOptions = {}): MappedFile {
    if (typeof path !== 'string' || path === '')
      throw new IpcError('INVALID_ARGUMENT', 'path must be a non-empty string');
    const create = options.create ?? false;
    const readOnly = options.readOnly ?? false;
    if (create && readOnly) throw new IpcError('INVALID_ARGUMENT', 'create and readOnly exclude each other');
    const size = options.size === undefined ? 0 : checkSize(options.size);
    const mode = checkMode(options.mode, 0o600);
    try {
      return new MappedFile(path, readOnly, nativeUnix().mapFile(path, size, { create, readOnly, mode }));
    } catch (err) {
      throw fromErrno(err, `file ${path} (to map ${size === 0 ? 'whole' : `${size} bytes`})`);
    }
  }

  /** Grow the file to `size` bytes; shrinking is refused (INVALID_ARGUMENT). */
  static grow(path: string, size: number): void {
    const wanted = checkSize(size);
    try {
      const current = statSync(path).size;
      if (wanted < current)
        throw new IpcError(
          'INVALID_ARGUMENT',
          `${path} is ${current} bytes; shrinking a shared mapping's file is unsafe`,
        );
      truncateSync(path, wanted);
    } catch (err) {
      throw fromErrno(err, `file ${path}`);
    }
  }

  /** The shared memory of a writable mapping; PERMISSION_DENIED for a read-only one. */
  get buffer(): SharedArrayBuffer {
    const b = this.#mapped();
    if (this.readOnly)
      throw new IpcError('PERMISSION_DENIED', `${this.path} is mapped read-only: use read() or readInto()`);
    return b;
  }

  get size(): number {
    return this.#mapped().byteLength;
  }

  get closed(): boolean {
    return this.#buffer === undefined;
  }

  /** A copy of `length` bytes at `offset` (default: to the end). */
  read(offset = 0, length?: number): Buffer {
    const b = this.#mapped();
    const len = length ?? b.byteLength - offset;
    this.#checkRange(offset, len);
    return Buffer.from(new Uint8Array(b, offset, len));
  }

  /** Copy bytes at `offset` into `target` (as many as it holds); returns that count. */
  readInto(target: Uint8Array, offset = 0): number {
    const b = this.#mapped();
    const len = Math.min(target.byteLength, b.byteLength - offset);
    this.#checkRange(offset, len);
    target.set(new Uint8Array(b, offset, len));
    return len;
  }

  /** msync(MS_SYNC): returns once the mapping's bytes are on disk. */
  flush(): void {
    const b = this.#mapped();
    try {
      nativeUnix().msync(b);
    } catch (err) {
      throw fromErrno(err, `file ${this.path}`);
    }
  }

  /** Drop this handle's reference; the memory is unmapped once nothing uses it. Idempotent. */
  close(): void {
    this.#buffer = undefined;
  }

  #mapped(): SharedArrayBuffer {
    if (this.#buffer === undefined)
      throw new IpcError('INVALID_ARGUMENT', `mapping of ${this.path} is closed`);
    return this.#buffer;
  }

  #checkRange(offset: number, length: number): void {
    const size = this.#mapped().byteLength;
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > size
    )
      throw new IpcError(
        'INVALID_ARGUMENT',
        `range ${offset}+${length} is outside the ${size}-byte mapping of ${this.path}`,
      );
  }
}
