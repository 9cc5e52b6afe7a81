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

/** The path the kernel uses when nobody chose one (no $IPCBOX_SOCKET, no explicit path). */
export function isDefaultSocketPath(path: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return path === defaultSocketPath({ ...env, IPCBOX_SOCKET: undefined });
}

/**
 * What is wrong with `dir` as the home of a kernel socket, if anything.
 *
 * Someone who may create and remove entries in the directory can replace the
 * kernel's socket with an impostor that captures clients' HELLO. So the
 * directory must be writable only by its owner, or be sticky (like /tmp: its
 * entries can be removed or renamed only by their owners, so a socket the
 * kernel made stays the kernel's; the client then checks who made it). For
 * a directory that is not sticky, `owners` are the uids trusted to own it
 * (the kernel: itself; a client: anyone, the peer check decides).
 */
export function socketDirectoryProblem(
  st: { uid: number; mode: number; isDirectory(): boolean; isSymbolicLink(): boolean },
  dir: string,
  owners: readonly number[] | 'any',
): string | undefined {
  if (st.isSymbolicLink()) return `${dir} is a symbolic link`;
  if (!st.isDirectory()) return `${dir} is not a directory`;
  if ((st.mode & 0o1000) !== 0) return undefined;
  if (owners !== 'any' && !owners.includes(st.uid)) {
    return `${dir} is owned by uid ${st.uid}, not by ${owners.join(' or ')}`;
  }
  if ((st.mode & 0o022) !== 0) {
    return `${dir} is writable by others (mode ${(st.mode & 0o7777).toString(8)}) and not sticky; use a directory only its owner can write`;
  }
  return undefined;
}
