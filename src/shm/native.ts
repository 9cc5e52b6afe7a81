/**
 * Lazy loader for the `ipcbox_shm` addon (native/ipcbox_shm.cc).
 *
 * The addon is loaded on first use, never at import time, so a missing or
 * broken build only affects shared memory: every shm API then throws
 * `IpcError('NATIVE_UNAVAILABLE')` with the load failure as `cause`, and
 * message passing elsewhere keeps working.
 *
 * node-gyp-build finds the binary in `<package root>/native`: a local build
 * (`native/build/Release`, what `npm install` compiles when nothing prebuilt
 * fits) first, then the prebuilt one shipped in the package
 * (`native/prebuilds/<platform>-<arch>/node.abi<N>.glibc.node`). The package
 * root is the nearest ancestor directory of this file that holds a
 * package.json (this file runs from src/shm/ or dist/src/shm/).
 * `$IPCBOX_NATIVE_ADDON`, when set, names the binary instead (another build;
 * tests use it to check what happens without the addon).
 *
 * The addon uses V8's API, not Node-API: Node-API cannot make a
 * SharedArrayBuffer over external memory (nodejs/node#62259), and a segment
 * must be one. So a prebuild fits one Node ABI; other Node versions compile
 * at install.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../errors.js';

/** Result of a futex wait, as the kernel reports it. */
export type FutexWaitResult = 'ok' | 'timed-out' | 'not-equal';

export interface NativeOpenFlags {
  create: boolean;
  exclusive: boolean;
  mode: number;
  /** Survive the segment being cut short by another process (see "guarded mappings" in the addon). */
  guard?: boolean;
}

export interface NativeStat {
  size: number;
  mode: number;
  uid: number;
}

/** What the OS recorded about the process at the other end of a connected Unix socket. */
export interface PeerCredentials {
  /** The peer's pid (0 on macOS, which does not record it). */
  pid: number;
  uid: number;
  gid: number;
}

/**
 * The addon's exports; see native/ipcbox_shm.cc for the invariants. Failed
 * system calls throw an Error with `errno` (positive), `code` ('EAGAIN', …)
 * and `syscall`.
 */
export interface NativeShm {
  open(name: string, size: number, flags: NativeOpenFlags): SharedArrayBuffer;
  unlink(name: string): void;
  stat(name: string): NativeStat;
  /**
   * A new SharedArrayBuffer over `length` (>= 1) bytes at `byteOffset` of
   * `sab`'s memory, which stays mapped while either buffer is reachable.
   */
  alias(sab: SharedArrayBuffer, byteOffset: number, length: number): SharedArrayBuffer;
  /** The guard slot of a mapping opened with `guard`, or -1. */
  guardIndex(sab: SharedArrayBuffer): number;
  /** Whether guarded mapping `slot` faulted: its segment was cut short, it now reads zeros. */
  guardHit(slot: number): boolean;
  /**
   * Blocks the calling thread. `timeoutMs` < 0, NaN, Infinity or beyond what
   * a timespec deadline holds waits forever.
   */
  futexWait(sab: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): FutexWaitResult;
  /**
   * Parks on a waiter thread of a bounded pool. Throws (errno EAGAIN) when
   * every allowed waiter thread is full, or pthread_create's errno; the
   * promise rejects with an errno Error if the futex call fails.
   */
  futexWaitAsync(
    sab: SharedArrayBuffer,
    byteOffset: number,
    expected: number,
    timeoutMs: number,
  ): { id: number; promise: Promise<FutexWaitResult | 'cancelled'> };
  /** Resolves the wait's promise with 'cancelled'; false if it already settled. */
  futexCancel(id: number): boolean;
  futexWake(sab: SharedArrayBuffer, byteOffset: number, count: number): number;
  getpid(): number;
  gettid(): number;
  /** kill(pid, 0): false only on ESRCH. Works for thread ids too. */
  isAlive(pid: number): boolean;
  /**
   * The peer of the connected Unix socket `fd`: getsockopt(SO_PEERCRED) on
   * Linux, getpeereid on macOS (pid 0 there). Throws an errno Error on
   * failure (ENOTSOCK, ENOTCONN, EBADF, …).
   */
  peerCredentials(fd: number): PeerCredentials;
}

/** node-gyp-build's entry point (a CommonJS module without types). */
interface NodeGypBuild {
  path(dir: string): string;
}

/** What fixes a missing addon, for an installed package (the usual case) and inside its own checkout. */
export const NATIVE_FIX =
  'install a C++ compiler, make and python3, then run "npm rebuild ipcbox" (in the ipcbox checkout itself: "npm run build:native")';

let loaded: NativeShm | undefined;
let failure: IpcError | undefined;

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The addon, loading it on first call; throws NATIVE_UNAVAILABLE if it cannot load. */
export function native(): NativeShm {
  if (loaded !== undefined) return loaded;
  if (failure !== undefined) throw failure;
  let where = 'native/';
  try {
    const require = createRequire(import.meta.url);
    const dir = join(packageRoot(), 'native');
    where = dir;
    const path = process.env.IPCBOX_NATIVE_ADDON || (require('node-gyp-build') as NodeGypBuild).path(dir);
    where = path;
    loaded = require(path) as NativeShm;
    return loaded;
  } catch (cause) {
    const why = (cause instanceof Error ? cause.message : String(cause)).trim().replace(/\s*\n\s*/g, '; ');
    failure = new IpcError(
      'NATIVE_UNAVAILABLE',
      `ipcbox shared memory addon unavailable (${where}): ${why}; to fix: ${NATIVE_FIX}`,
      {
        cause,
      },
    );
    throw failure;
  }
}
