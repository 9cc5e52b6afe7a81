import { chownSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { IpcError } from '../errors.js';
import { socketDirectoryProblem } from '../wire/socket-path.js';

/**
 * Create the socket's directory (mode 0700, or 0750 for a group daemon) or
 * check the existing one: ours and writable by nobody else, or sticky like
 * /tmp (nobody else can remove or replace the socket the kernel binds there).
 * An existing directory is never chmodded: a loose one is refused, since
 * another user may already have put something in it.
 */
export function prepareSocketDirectory(path: string, group?: number): void {
  const dir = dirname(path);
  const mode = group === undefined ? 0o700 : 0o750;
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode });
    if (group !== undefined) chownSync(dir, process.getuid?.() ?? -1, group);
  }
  const st = lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  const problem = socketDirectoryProblem(st, dir, [uid]);
  if (problem !== undefined)
    throw new IpcError('PERMISSION_DENIED', `refusing to listen in ${dir}: ${problem}`);
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
export async function claimSocketPath(path: string, group?: number): Promise<void> {
  prepareSocketDirectory(path, group);
  if (!existsSync(path)) return;
  if (await probeSocket(path)) {
    throw new IpcError('KERNEL_RUNNING', `an ipcbox kernel is already listening on ${path}`);
  }
  const st = lstatSync(path);
  if (!st.isSocket()) throw new IpcError('INVALID_ARGUMENT', `${path} exists and is not a socket`);
  try {
    unlinkSync(path);
  } catch (e) {
    // In a sticky directory a socket someone else left cannot be removed by us: refuse, clearly.
    throw new IpcError(
      'PERMISSION_DENIED',
      `cannot replace the stale socket ${path}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}
