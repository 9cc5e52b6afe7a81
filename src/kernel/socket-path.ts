import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { IpcError } from '../errors.js';

/** Create the socket's directory with mode 0700 (tightening it if it is ours and looser). */
export function prepareSocketDirectory(path: string): void {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new IpcError('INVALID_ARGUMENT', `${dir} is not a directory`);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (st.uid === uid && (st.mode & 0o077) !== 0 && dir !== '/tmp') chmodSync(dir, 0o700);
}

/** True if something accepts connections on the socket path. */
export function probeSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Make the path free for a new kernel: a stale socket left by a dead kernel is
 * removed; a live kernel is never hijacked (KERNEL_RUNNING).
 */
export async function claimSocketPath(path: string): Promise<void> {
  prepareSocketDirectory(path);
  if (!existsSync(path)) return;
  if (await probeSocket(path)) {
    throw new IpcError('KERNEL_RUNNING', `an ipcbox kernel is already listening on ${path}`);
  }
  const st = lstatSync(path);
  if (!st.isSocket()) throw new IpcError('INVALID_ARGUMENT', `${path} exists and is not a socket`);
  unlinkSync(path);
}
