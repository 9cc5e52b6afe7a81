/**
 * Every IPC object on this host that ipcbox can see, like `ipcs`: POSIX
 * shared memory and named semaphores (enumerated from /dev/shm), message
 * queues (from /dev/mqueue where it is mounted, else only the known ones),
 * and the FIFOs and mapped files ipcbox knows of (known-objects.ts) or is
 * asked about by path. The kernel's own objects (processes, mailboxes,
 * registered segments) are not here: they come from the kernel's status.
 *
 * Each object has its owner, permission bits and the usage the OS exposes:
 * - shm: size, processes mapping it;
 * - mqueue: messages queued / capacity / message size (mq_getattr, which
 *   needs read-write permission), bytes queued (/dev/mqueue's QSIZE, when
 *   mounted);
 * - semaphore: value (sem_getvalue, needs read-write permission), processes
 *   mapping it;
 * - fifo: processes holding it open (readers and writers together);
 * - file: size, processes mapping it.
 * A counter the OS will not give this user is null. Processes are those this
 * user may inspect in /proc (process-usage.ts).
 *
 * What the OS hides is said in `notes`, one line each with the kinds it concerns (e.g. message queues
 * without /dev/mqueue). Objects that vanish while being listed are left out.
 */
import { readdirSync, readFileSync, type Stats, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { IpcError } from '../errors.js';
import { type KnownObjectsOptions, knownObjects } from './known-objects.js';
import { listMessageQueues } from './listing.js';
import { MessageQueue } from './message-queue.js';
import { NamedSemaphore } from './named-semaphore.js';
import { errnoCode, fromErrno } from './os-errors.js';
import { processUsage } from './process-usage.js';

export type HostObjectKind = 'shm' | 'mqueue' | 'semaphore' | 'fifo' | 'file';

export interface HostObject {
  kind: HostObjectKind;
  /** POSIX name ("/jobs") for shm, mqueue, semaphore; absolute path for fifo, file. */
  name: string;
  uid: number | null;
  /** The owner's user name (from /etc/passwd), or null. */
  user: string | null;
  /** Permission bits as four octal digits ("0600"), or null where unknown. */
  mode: string | null;
  /** In ipcbox's registry of known objects. */
  known: boolean;
  /** shm, file: bytes. */
  size?: number;
  /** shm, semaphore, file: processes mapping it; fifo: processes holding it open. */
  processes?: number;
  /** mqueue: messages queued now, capacity, largest message. */
  messages?: number | null;
  maxMessages?: number | null;
  messageSize?: number | null;
  /** mqueue: bytes queued (/dev/mqueue QSIZE), where mounted. */
  queuedBytes?: number | null;
  /** semaphore: its value. */
  value?: number | null;
}

/** Something the OS hides from this listing, and the kinds of object it concerns. */
export interface HostListingNote {
  kinds: HostObjectKind[];
  text: string;
}

export interface HostListing {
  objects: HostObject[];
  notes: HostListingNote[];
}

export interface ListHostObjectsOptions extends KnownObjectsOptions {
  /** Also list these paths (FIFOs or regular files, e.g. mapped files); a missing one is NO_SUCH_OBJECT. */
  paths?: readonly string[];
}

const SHM_DIR = '/dev/shm';
const MQUEUE_DIR = '/dev/mqueue';
/** sizeof(sem_t) on Linux (64-bit): a smaller sem.* file is not a semaphore, and mapping it would fault. */
const SEM_T_SIZE = 32;
const KIND_ORDER: readonly HostObjectKind[] = ['shm', 'mqueue', 'semaphore', 'fifo', 'file'];

function userNames(): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && /^\d+$/.test(f[2]!)) names.set(Number(f[2]), f[0]!);
    }
  } catch {
    // No passwd file: uids only.
  }
  return names;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

export function listHostObjects(options: ListHostObjectsOptions = {}): HostListing {
  const notes: HostListingNote[] = [];
  const users = userNames();
  const known = knownObjects(options);
  const isKnown = new Set(known.map((k) => `${k.kind}:${k.name}`));
  const objects: HostObject[] = [];
  const base = (kind: HostObjectKind, name: string, st: Stats | undefined): HostObject => ({
    kind,
    name,
    uid: st?.uid ?? null,
    user: st === undefined ? null : (users.get(st.uid) ?? null),
    mode: st === undefined ? null : octal(st.mode),
    known: isKnown.has(`${kind}:${name}`),
  });

  // Paths: the known FIFOs and files that still are one, and those asked about.
  const paths = new Map<string, { kind: 'fifo' | 'file'; st: Stats }>();
  for (const k of known) {
    if (k.kind !== 'fifo' && k.kind !== 'file') continue;
    const st = statOrUndefined(k.name);
    if (st !== undefined && (k.kind === 'fifo' ? st.isFIFO() : st.isFile()))
      paths.set(k.name, { kind: k.kind, st });
  }
  for (const p of options.paths ?? []) {
    const path = resolve(p);
    let st: Stats;
    try {
      st = statSync(path);
    } catch (err) {
      throw fromErrno(err, `FIFO or file ${path}`);
    }
    if (!st.isFIFO() && !st.isFile())
      throw new IpcError('INVALID_ARGUMENT', `${path} is neither a FIFO nor a regular file`);
    paths.set(path, { kind: st.isFIFO() ? 'fifo' : 'file', st });
  }

  // /dev/shm: shared memory segments and (glibc) named semaphores.
  let shmEntries: string[] = [];
  try {
    shmEntries = readdirSync(SHM_DIR);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    notes.push({
      kinds: ['shm', 'semaphore'],
      text: `shared memory and named semaphores: not listed, there is no ${SHM_DIR} on this system`,
    });
  }

  // Scan /proc before opening anything: this process's own descriptors and mappings are not usage.
  const fifoPaths = new Set([...paths].filter(([, v]) => v.kind === 'fifo').map(([k]) => k));
  const usage = processUsage(fifoPaths);
  const mapped = (path: string): number => usage.mapped.get(path)?.size ?? 0;

  for (const entry of shmEntries.sort()) {
    const path = `${SHM_DIR}/${entry}`;
    const st = statOrUndefined(path);
    if (st === undefined || !st.isFile()) continue;
    if (entry.startsWith('sem.')) {
      const name = `/${entry.slice(4)}`;
      objects.push({
        ...base('semaphore', name, st),
        value: st.size >= SEM_T_SIZE ? semaphoreValue(name) : null,
        processes: mapped(path),
      });
    } else {
      objects.push({ ...base('shm', `/${entry}`, st), size: st.size, processes: mapped(path) });
    }
  }

  const queues = new Set(known.filter((k) => k.kind === 'mqueue').map((k) => k.name));
  let mqueueMounted = false;
  try {
    for (const q of listMessageQueues()) queues.add(q);
    mqueueMounted = true;
  } catch (err) {
    if (!(err instanceof IpcError) || err.code !== 'NOT_SUPPORTED') throw err;
    notes.push({
      kinds: ['mqueue'],
      text: `message queues: only those ipcbox knows of are listed; the OS enumerates queues only in ${MQUEUE_DIR}, which is not mounted (mount -t mqueue none ${MQUEUE_DIR})`,
    });
  }
  for (const name of [...queues].sort()) {
    const q = messageQueue(name, mqueueMounted, users);
    if (q !== undefined)
      objects.push({ ...base('mqueue', name, undefined), ...q, known: isKnown.has(`mqueue:${name}`) });
  }
  // A known semaphore that glibc does not keep in /dev/shm (another libc) is not listed: it cannot be found.

  for (const [path, { kind, st }] of paths) {
    const o = base(kind, path, st);
    if (kind === 'fifo') objects.push({ ...o, processes: usage.open.get(path)?.size ?? 0 });
    else objects.push({ ...o, size: st.size, processes: mapped(path) });
  }

  objects.sort(
    (a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || a.name.localeCompare(b.name),
  );
  return { objects, notes };
}

function semaphoreValue(name: string): number | null {
  try {
    const s = NamedSemaphore.open(name);
    try {
      return s.value();
    } finally {
      s.close();
    }
  } catch {
    // Not ours to open (permission), or removed meanwhile.
    return null;
  }
}

/** Owner, mode and counters of queue `name`; undefined when it does not exist (any more). */
function messageQueue(
  name: string,
  mounted: boolean,
  users: Map<number, string>,
): Partial<HostObject> | undefined {
  const st = mounted ? statOrUndefined(`${MQUEUE_DIR}${name}`) : undefined;
  if (mounted && st === undefined) return undefined;
  const owner = (uid: number, mode: number): Partial<HostObject> => ({
    uid,
    user: users.get(uid) ?? null,
    mode: octal(mode),
  });
  const out: Partial<HostObject> = st === undefined ? {} : owner(st.uid, st.mode);
  out.queuedBytes = mounted ? queuedBytes(name) : null;
  let q: MessageQueue;
  try {
    q = MessageQueue.open(name);
  } catch (err) {
    if (err instanceof IpcError && err.code === 'NO_SUCH_OBJECT') return undefined;
    return { ...out, messages: null, maxMessages: null, messageSize: null };
  }
  try {
    const a = q.attributes();
    const s = q.stat();
    return {
      ...out,
      ...owner(s.uid, s.mode),
      messages: a.currentMessages,
      maxMessages: a.maxMessages,
      messageSize: a.messageSize,
    };
  } finally {
    q.close();
  }
}

/** The QSIZE field of /dev/mqueue/<name>: bytes of message data queued. */
function queuedBytes(name: string): number | null {
  try {
    const m = /QSIZE:(\d+)/.exec(readFileSync(`${MQUEUE_DIR}${name}`, 'utf8'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}
