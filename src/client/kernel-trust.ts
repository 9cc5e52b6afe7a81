import { lstatSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { IpcError } from '../errors.js';
import { native } from '../shm/native.js';
import { isDefaultSocketPath, socketDirectoryProblem } from '../wire/socket-path.js';

/**
 * Before a client says HELLO (its name) to whatever listens on a path, it
 * checks that the listener can be the kernel it means: the socket's
 * directory is writable by nobody but its owner (or is sticky, like /tmp),
 * and the process at the other end runs as this user, as root, or (on a path
 * the user chose) as the directory's owner. Someone who could put an
 * impostor socket there fails one of the two.
 */

function myUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** What the client learnt about where it is about to connect. */
export interface SocketPlace {
  dirOwner: number;
  /** Owner of the socket file: the uid of whoever bound it. */
  socketOwner: number | undefined;
  /** The user chose this path ($IPCBOX_SOCKET or an explicit socketPath): its directory's owner is trusted. */
  chosen: boolean;
}

/** Check the socket's directory before connecting. Throws PERMISSION_DENIED. */
export function checkSocketDirectory(path: string): SocketPlace | undefined {
  if (myUid() === undefined) return undefined;
  const dir = dirname(path);
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch {
    // No directory, no kernel: connecting fails with KERNEL_UNAVAILABLE, which says so.
    return undefined;
  }
  const problem = socketDirectoryProblem(st, dir, 'any');
  if (problem !== undefined) {
    throw new IpcError('PERMISSION_DENIED', `refusing to connect to a kernel socket in ${dir}: ${problem}`);
  }
  let socketOwner: number | undefined;
  try {
    socketOwner = lstatSync(path).uid;
  } catch {
    socketOwner = undefined;
  }
  return { dirOwner: st.uid, socketOwner, chosen: !isDefaultSocketPath(path) };
}

/**
 * After connecting: the listener must be this user or root, or, on a path the
 * user chose, the owner of a (non-sticky) directory such as a group daemon's.
 * With peer credentials (SO_PEERCRED, through the addon) that is the peer's
 * uid; without them, the uid that bound the socket file.
 */
export function checkKernelPeer(socket: Socket, path: string, place: SocketPlace | undefined): void {
  const me = myUid();
  if (me === undefined || place === undefined) return;
  const trusted = (uid: number) => uid === me || uid === 0 || (place.chosen && uid === place.dirOwner);
  let peerUid: number | undefined;
  try {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const addon = native() as unknown as { peerCredentials?: (fd: number) => { uid: number } };
    if (typeof fd === 'number' && fd >= 0) peerUid = addon.peerCredentials?.(fd).uid;
  } catch {
    peerUid = undefined;
  }
  const who = peerUid ?? place.socketOwner;
  if (who === undefined) return;
  if (!trusted(who)) {
    throw new IpcError(
      'PERMISSION_DENIED',
      `the process listening on ${path} runs as uid ${who}, neither this user (${me}) nor the owner of its directory: refusing to talk to it`,
    );
  }
}
