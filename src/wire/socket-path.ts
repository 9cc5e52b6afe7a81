import { join } from 'node:path';

/**
 * Where the kernel listens: $IPCBOX_SOCKET, else $XDG_RUNTIME_DIR/ipcbox/kernel.sock,
 * else /tmp/ipcbox-<uid>/kernel.sock. Both sides agree on this rule, so it lives with the protocol.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IPCBOX_SOCKET) return env.IPCBOX_SOCKET;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'ipcbox', 'kernel.sock');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join('/tmp', `ipcbox-${uid}`, 'kernel.sock');
}

/**
 * What is wrong with `dir` as the home of a kernel socket, if anything. A
 * directory another user owns, or that anyone but its owner may write, lets
 * that user replace the socket with an impostor that captures clients'
 * HELLO, so neither the kernel nor a client uses one. `owners` are the uids
 * trusted to own it (the kernel: itself; a client: itself, root, or the uid
 * of a group daemon it was pointed at).
 */
export function socketDirectoryProblem(
  st: { uid: number; mode: number; isDirectory(): boolean; isSymbolicLink(): boolean },
  dir: string,
  owners: readonly number[],
): string | undefined {
  if (st.isSymbolicLink()) return `${dir} is a symbolic link`;
  if (!st.isDirectory()) return `${dir} is not a directory`;
  if (!owners.includes(st.uid)) return `${dir} is owned by uid ${st.uid}, not by ${owners.join(' or ')}`;
  if ((st.mode & 0o022) !== 0) {
    return `${dir} is writable by others (mode ${(st.mode & 0o7777).toString(8)}); use a directory only its owner can write`;
  }
  return undefined;
}
