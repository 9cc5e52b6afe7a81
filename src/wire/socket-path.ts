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
