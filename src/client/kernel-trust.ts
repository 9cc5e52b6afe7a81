import { lstatSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { IpcError } from '../errors.js';
import { native } from '../shm/native.js';
import { socketDirectoryProblem } from '../wire/socket-path.js';

/**
 * Before a client says HELLO (its name) to whatever listens on a path, it
 * checks that the listener can be the kernel it means: the socket's
 * directory is writable by nobody but its owner, and the process at the
 * other end (SO_PEERCRED, where the native addon gives it) runs as the
 * directory's owner or as this user. Someone who could swap in an impostor
 * socket fails one of the two.
 */

function myUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** The directory's owner, after checking it is safe to look for a kernel in. Throws PERMISSION_DENIED. */
export function checkSocketDirectory(path: string): number | undefined {
  const me = myUid();
  if (me === undefined) return undefined;
  const dir = dirname(path);
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch {
    // No directory, no kernel: connecting fails with KERNEL_UNAVAILABLE, which says so.
    return undefined;
  }
  // Any owner may be right (a group daemon's user); the peer check below decides.
  const problem = socketDirectoryProblem(st, dir, [st.uid]);
  if (problem !== undefined) {
    throw new IpcError('PERMISSION_DENIED', `refusing to connect to a kernel socket in ${dir}: ${problem}`);
  }
  return st.uid;
}

/** After connecting: the peer must be the directory's owner, this user, or live in a root-owned directory. */
export function checkKernelPeer(socket: Socket, path: string, dirOwner: number | undefined): void {
  const me = myUid();
  if (me === undefined || dirOwner === undefined) return;
  const trusted = (uid: number) => uid === dirOwner || uid === me || dirOwner === 0;
  let peerUid: number | undefined;
  try {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const addon = native() as unknown as { peerCredentials?: (fd: number) => { uid: number } };
    if (typeof fd === 'number' && fd >= 0) peerUid = addon.peerCredentials?.(fd).uid;
  } catch {
    peerUid = undefined;
  }
  if (peerUid === undefined) {
    // Without peer credentials only the directory vouches: it must be ours or root's.
    if (dirOwner === me || dirOwner === 0) return;
    throw new IpcError(
      'PERMISSION_DENIED',
      `the kernel socket ${path} is in a directory of uid ${dirOwner}; without the native addon its peer cannot be verified`,
    );
  }
  if (!trusted(peerUid)) {
    throw new IpcError(
      'PERMISSION_DENIED',
      `the process listening on ${path} runs as uid ${peerUid}, not as the directory's owner (${dirOwner}): refusing to talk to it`,
    );
  }
}
