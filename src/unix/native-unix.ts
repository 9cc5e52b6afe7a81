/**
 * Typed view of the addon's Unix IPC exports (native/ipcbox_unix.cc, compiled
 * into the same binary as the shared-memory exports and loaded by the same
 * lazy loader: without the addon every API here throws NATIVE_UNAVAILABLE).
 * Failed system calls throw an Error with `errno`, `code` ('EAGAIN', …),
 * `syscall` and, for named objects, `path`.
 */
import { native } from '../shm/native.js';

/** uv_poll_t event bits. */
export const READABLE = 1;
export const WRITABLE = 2;
export type PollEvents = typeof READABLE | typeof WRITABLE | 3;

export interface NativeMqOpenFlags {
  create: boolean;
  exclusive: boolean;
  mode: number;
  /** 0 (with messageSize 0): the kernel's defaults (fs.mqueue.msg_default / msgsize_default). */
  maxMessages: number;
  messageSize: number;
}

export interface NativeMqAttributes {
  maxMessages: number;
  messageSize: number;
  currentMessages: number;
}

export interface NativeSemOpenFlags {
  create: boolean;
  exclusive: boolean;
  mode: number;
  initial: number;
}

export interface NativeMapFlags {
  create: boolean;
  readOnly: boolean;
  mode: number;
}

export interface NativeUnix {
  /** pipe2(O_CLOEXEC): [readFd, writeFd]. */
  pipe(): [number, number];
  mkfifo(path: string, mode: number): void;
  /**
   * A uv_poll_t on `fd` in this thread's event loop, watching `events` (0:
   * not yet). `callback(status, events)` runs on every readiness (level
   * triggered) until the mask is set to 0 or the poller is closed; status is
   * 0 or a negative errno (a POLLERR is reported as -EBADF).
   * At most one poller per fd (a libuv rule).
   */
  pollStart(fd: number, events: 0 | PollEvents, callback: (status: number, events: number) => void): number;
  pollUpdate(id: number, events: 0 | PollEvents): void;
  /** Stops and frees the poller; call before closing its fd. Unknown ids are ignored. */
  pollClose(id: number): void;
  /** poll(2) on this thread: true once ready, false when `timeoutMs` (< 0 or Infinity: none) ran out. */
  waitFdSync(fd: number, events: PollEvents, timeoutMs: number): boolean;
  /** mq_open(O_RDWR | O_NONBLOCK); the descriptor is a close-on-exec fd (Linux). ENOSYS without mq. */
  mqOpen(name: string, flags: NativeMqOpenFlags): number;
  mqClose(fd: number): void;
  mqUnlink(name: string): void;
  mqGetattr(fd: number): NativeMqAttributes;
  /** false: the queue is full (EAGAIN). */
  mqSend(fd: number, bytes: Uint8Array, priority: number): boolean;
  /** `buffer` must hold messageSize bytes; null: the queue is empty (EAGAIN). */
  mqReceive(fd: number, buffer: Uint8Array): { length: number; priority: number } | null;
  /** sem_open; returns a handle id (process-wide, reference counted). */
  semOpen(name: string, flags: NativeSemOpenFlags): number;
  /** Drops the handle; sem_close runs once no pending wait uses it. */
  semClose(id: number): void;
  semUnlink(name: string): void;
  semPost(id: number): void;
  semTryWait(id: number): boolean;
  semValue(id: number): number;
  /** Blocks this thread; false when `timeoutMs` ran out. */
  semWaitSync(id: number, timeoutMs: number): boolean;
  /** Waits on a dedicated thread (bounded pool; throws errno EAGAIN when it is full). */
  semWaitAsync(
    id: number,
    timeoutMs: number,
  ): { id: number; promise: Promise<'ok' | 'timed-out' | 'cancelled'> };
  /** Resolves the wait with 'cancelled' now; a permit it takes later is posted back. */
  semCancel(waitId: number): boolean;
  /** mmap(MAP_SHARED) of a regular file; `size` 0 maps the whole file. */
  mapFile(path: string, size: number, flags: NativeMapFlags): SharedArrayBuffer;
  /** msync(MS_SYNC) of a mapFile buffer. */
  msync(buffer: SharedArrayBuffer): void;
}

/** The addon's Unix exports; throws NATIVE_UNAVAILABLE if the addon cannot load. */
export function nativeUnix(): NativeUnix {
  // One binary exports both sets; NativeShm types the shared-memory half only.
  return native() as unknown as NativeUnix;
}
