import type { ResolvedMailboxOptions } from '../core/mailbox-options.js';
import { native } from '../shm/native.js';
import type { Welcome } from './connection.js';

/**
 * Which path a new mailbox takes when its creator leaves it to 'auto' (README "Which path").
 *
 * The shared-memory path is faster at every size (one run of the comparison bench after the
 * store's lock work, docs/benchmarks.md: one-way 64 B 5.5x the kernel mailbox, 1 KiB 4.9x,
 * 64 KiB 1.25x; round trip p50 64 B 0.81x), but it does not keep every promise of the kernel
 * path, so 'auto' takes it only where the creator's options leave nothing of those to lose:
 * - it must reach every process that could open the mailbox: the kernel says so in WELCOME
 *   (HOST_LOCAL: no cluster, no TLS listener, no group of other users), and this process loads
 *   the addon; a durable mailbox's messages live in JetStream, so never;
 * - the kernel is the trusted centre: on its path a client that misbehaves loses its connection
 *   and nobody else's messages, where every process attached to a segment can write its queue.
 *   And the kernel path has peek and the kernel's counters. A mailbox declared for bulk
 *   data — a fixedMessageSize of at least SHM_AUTO_MIN_BYTES, where the copies the segment saves
 *   are most of the cost — is where 'auto' makes that trade; any other mailbox stays on the
 *   kernel unless its creator asks for 'shm'.
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
