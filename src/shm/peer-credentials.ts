import type { Socket } from 'node:net';
import { native, type PeerCredentials } from './native.js';

/**
 * The OS identity of the process at the other end of an accepted Unix socket
 * (SO_PEERCRED), through the native addon. Undefined where the addon or the
 * call is unavailable: the kernel then knows only that the peer could open
 * its socket (0600, or 0660 for a group daemon).
 */
export function peerCredentialsOf(socket: Socket): PeerCredentials | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    const addon = native() as unknown as { peerCredentials?: (fd: number) => PeerCredentials };
    return addon.peerCredentials?.(fd);
  } catch {
    return undefined;
  }
}

/** Whether this process can read peer credentials (the addon is built with them). */
export function peerCredentialsSupported(): boolean {
  try {
    return typeof (native() as unknown as { peerCredentials?: unknown }).peerCredentials === 'function';
  } catch {
    return false;
  }
}
