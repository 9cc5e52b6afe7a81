/**
 * Lazy loader for the `ipcbox_shm` addon (native/ipcbox_shm.cc).
 *
 * The addon is loaded on first use, never at import time, so a missing or
 * broken build only affects shared memory: every shm API then throws
 * `IpcError('NATIVE_UNAVAILABLE')` with the load failure as `cause`, and
 * message passing elsewhere keeps working.
 *
 * The addon is looked up at `<package root>/native/build/Release/ipcbox_shm.node`,
 * where the package root is the nearest ancestor directory of this file that
 * holds a package.json (this file runs from src/shm/ or dist/src/shm/), or at
 * `$IPCBOX_NATIVE_ADDON` when that is set (another build; tests use it to
 * check what happens without the addon).
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
}

export interface NativeStat {
  size: number;
  mode: number;
  uid: number;
}

/** The addon's exports; see native/ipcbox_shm.cc for the invariants. */
export interface NativeShm {
  open(name: string, size: number, flags: NativeOpenFlags): SharedArrayBuffer;
  unlink(name: string): void;
  stat(name: string): NativeStat;
  /** Blocks the calling thread. `timeoutMs` < 0 or Infinity waits forever. */
  futexWait(sab: SharedArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): FutexWaitResult;
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
}

const ADDON = join('native', 'build', 'Release', 'ipcbox_shm.node');

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
  let path = ADDON;
  try {
    if (process.platform !== 'linux')
      throw new Error(`shared memory futexes need Linux, not ${process.platform}`);
    path = process.env.IPCBOX_NATIVE_ADDON || join(packageRoot(), ADDON);
    loaded = createRequire(import.meta.url)(path) as NativeShm;
    return loaded;
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    failure = new IpcError(
      'NATIVE_UNAVAILABLE',
      `ipcbox shared memory addon unavailable (${path}): ${why}; build it with "cd native && node-gyp rebuild"`,
      { cause },
    );
    throw failure;
  }
}
