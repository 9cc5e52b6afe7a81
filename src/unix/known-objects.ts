/**
 * The host objects ipcbox knows of: a registry on disk of the FIFOs, mapped
 * files, message queues and named semaphores that were made (or named) through
 * ipcbox, so `ipcbox ls` can list what the OS cannot enumerate: FIFOs and
 * mapped files are files anywhere, and message queues can be enumerated only
 * where /dev/mqueue is mounted.
 *
 * Contract:
 * - The registry is the directory `<kernel socket>.known/` (default:
 *   beside the default socket, e.g. $XDG_RUNTIME_DIR/ipcbox/kernel.sock.known),
 *   mode 0700: one `--socket` is one ipcbox world, and a test's private socket
 *   has a private registry. It needs no kernel: the objects outlive kernels.
 * - One file per object, named by kind and a hash of the name, holding
 *   {"kind","name"}: written to a temporary name and renamed, so concurrent
 *   commands never see half an entry and never lose each other's entries.
 * - Names are normalised: FIFOs and files to absolute paths, queues and
 *   semaphores to their POSIX name ("/jobs").
 * - Nothing registers by itself: `mkfifo`, `MappedFile.open`,
 *   `MessageQueue.open` do not touch the registry (a library user calls
 *   `rememberObject`; the CLI's `fifo create`, `mq create`, `sem create` do,
 *   and their `rm` commands forget). An entry whose object is gone is not
 *   listed; it stays until forgotten.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { IpcError } from '../errors.js';
import { defaultSocketPath } from '../wire/socket-path.js';
import { errnoCode, fromErrno } from './os-errors.js';
import { posixIpcName } from './posix-name.js';

export type KnownKind = 'fifo' | 'file' | 'mqueue' | 'semaphore';

export interface KnownObject {
  kind: KnownKind;
  /** An absolute path (fifo, file) or a POSIX name (mqueue, semaphore). */
  name: string;
}

export interface KnownObjectsOptions {
  /** The registry directory; default `knownObjectsDirectory()`. */
  directory?: string;
}

const KINDS: readonly KnownKind[] = ['fifo', 'file', 'mqueue', 'semaphore'];

/** The registry that belongs with the kernel socket `socketPath`. */
export function knownObjectsDirectory(socketPath: string = defaultSocketPath()): string {
  return `${socketPath}.known`;
}

function normalise(kind: KnownKind, name: string): string {
  if (!KINDS.includes(kind))
    throw new IpcError('INVALID_ARGUMENT', `kind must be one of ${KINDS.join(', ')}, got ${String(kind)}`);
  if (kind === 'mqueue') return posixIpcName(name, 'message queue', 255);
  if (kind === 'semaphore') return posixIpcName(name, 'semaphore', 252);
  if (typeof name !== 'string' || name.length === 0)
    throw new IpcError('INVALID_ARGUMENT', `${kind} path must be a non-empty string`);
  return resolve(name);
}

function entryName(kind: KnownKind, name: string): string {
  return `${kind}-${createHash('sha256').update(name).digest('hex').slice(0, 32)}`;
}

/** Record that ipcbox knows `name` (idempotent). */
export function rememberObject(kind: KnownKind, name: string, options: KnownObjectsOptions = {}): void {
  const object: KnownObject = { kind, name: normalise(kind, name) };
  const dir = options.directory ?? knownObjectsDirectory();
  const entry = join(dir, entryName(object.kind, object.name));
  const temp = `${entry}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(temp, `${JSON.stringify(object)}\n`, { mode: 0o600 });
    renameSync(temp, entry);
  } catch (err) {
    throw fromErrno(err, `registry ${dir} (recording ${kind} ${object.name})`);
  }
}

/** Drop `name` from the registry; a name it does not hold is no error. */
export function forgetObject(kind: KnownKind, name: string, options: KnownObjectsOptions = {}): void {
  const n = normalise(kind, name);
  const dir = options.directory ?? knownObjectsDirectory();
  try {
    unlinkSync(join(dir, entryName(kind, n)));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

/** Every registered object, sorted by kind and name (whether it still exists or not). */
export function knownObjects(options: KnownObjectsOptions = {}): KnownObject[] {
  const dir = options.directory ?? knownObjectsDirectory();
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const out: KnownObject[] = [];
  for (const f of files) {
    if (f.endsWith('.tmp')) continue;
    try {
      const o = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Partial<KnownObject>;
      if (typeof o.name === 'string' && KINDS.includes(o.kind as KnownKind))
        out.push({ kind: o.kind as KnownKind, name: o.name });
    } catch {
      // An entry removed meanwhile, or not ours: not an object to list.
    }
  }
  return out.sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
}
