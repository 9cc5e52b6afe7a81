import type { ResolvedMailboxOptions } from '../core/mailbox-options.js';
import { native } from '../shm/native.js';
import type { Welcome } from './connection.js';

/**
 * Which path a new mailbox takes when its creator leaves it to 'auto' (README "Which path").
 *
 * The shared-memory path is taken only where it keeps every promise the kernel path makes and
 * is measured faster:
 * - it must reach every process that could open the mailbox: the kernel says so in WELCOME
 *   (HOST_LOCAL: no cluster, no TLS listener, no group of other users), and this process loads
 *   the addon; a durable mailbox's messages live in JetStream, so never;
 * - it must be faster for the messages the mailbox will carry. Measured in one run of the
 *   comparison bench (docs/benchmarks.md), the segment beats two socket hops through the kernel
 *   for large messages only (64 KiB: 1.8x the kernel mailbox; 64 B: 0.43x), and only a fixed
 *   message size tells at creation what the messages will be. So 'auto' picks it for a
 *   fixedMessageSize of at least SHM_AUTO_MIN_BYTES, and the kernel path otherwise.
 */
export const SHM_AUTO_MIN_BYTES = 16 * 1024;

/** The shared-memory store's largest capacity (a bounded mailbox above it stays on the kernel). */
const SHM_MAX_CAPACITY = 2 ** 24;

export function choosePath(o: ResolvedMailboxOptions, w: Welcome): 'kernel' | 'shm' {
  if (o.transport !== 'auto') return o.transport;
  if (!w.hostLocal || o.durable) return 'kernel';
  if (o.fixedMessageSize === undefined || o.fixedMessageSize < SHM_AUTO_MIN_BYTES) return 'kernel';
  if (o.capacity !== Number.POSITIVE_INFINITY && o.capacity > SHM_MAX_CAPACITY) return 'kernel';
  try {
    native();
  } catch {
    return 'kernel';
  }
  return 'shm';
}
