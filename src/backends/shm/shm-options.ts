/**
 * The options of a shared-memory mailbox: their types, defaults and
 * validation at the boundary (bad options are an immediate RangeError with
 * the option's name; what the chosen message store lacks is NOT_SUPPORTED),
 * and the layout they resolve to.
 */
import type { Grantees } from '../../core/rights.js';
import { IpcError } from '../../errors.js';
import type { CodecName } from '../../wire/protocol.js';
import { layoutFor, type MailboxLayout } from './mailbox-layout.js';

export type ShmDelivery = 'round-robin' | 'arbitrary' | 'exclusive' | 'broadcast';

/**
 * The message store, chosen per mailbox at creation. 'priority' (default):
 * a priority queue under a robust process-shared lock, the whole contract.
 * 'ring': the lock-free MPMC ring, the fast path — capacity 1 .. 2^24,
 * priority 0, competing receivers without rotation, no ack, no sync send.
 */
export type ShmQueueKind = 'priority' | 'ring';

export interface ShmMailboxOptions {
  /** The message store (see ShmQueueKind). Default 'priority'. */
  queue?: ShmQueueKind;
  /**
   * Messages the mailbox holds: 1 .. 2^24, or (queue 'priority' only) 0 for
   * a rendezvous or 'unbounded' (bounded by `budget`). Default 256.
   */
  capacity?: number | 'unbounded';
  /**
   * Queue 'priority', capacity 0 or 'unbounded': message slots in the
   * segment — senders waiting in a rendezvous (default 64), or the most
   * messages an unbounded mailbox holds before a send rejects KERNEL_FULL
   * (default 16384).
   */
  budget?: number;
  /**
   * 'round-robin' (waiting receivers served in rotation), 'arbitrary'
   * (competing receivers), 'exclusive' (one receiver), or 'broadcast'
   * (every receiver reads every message; queue 'priority' only).
   * Default 'round-robin'. On the ring, 'round-robin' and 'arbitrary' both
   * mean competing receivers without rotation.
   */
  delivery?: ShmDelivery;
  /** 'process': removed when the creating process exits; 'system': lives until removed. Default 'process'. */
  owner?: 'process' | 'system';
  /** Largest payload, bytes (up to 1 GiB). Default 1 MiB. */
  maxMessageSize?: number;
  /** When set, every payload must be exactly this many bytes (WRONG_MESSAGE_SIZE). */
  fixedMessageSize?: number;
  /** Payloads up to this size are copied through the ring; larger ones go to the slab. Default 4096 (measured crossover, docs/shm-mailbox.md). */
  mapThreshold?: number;
  /** Slab chunks (large messages in flight or held by receivers). Default min(capacity, 8); 0 when no payload can exceed mapThreshold. */
  slabChunks?: number;
  senders?: Grantees;
  receivers?: Grantees;
  /** Permission bits of the POSIX segment. Default 0o600. */
  mode?: number;
  /** The creator's own role. Default 'both'. */
  role?: 'send' | 'receive' | 'both';
}

export interface ShmSendOptions {
  timeout?: number;
  nonblock?: boolean;
  signal?: AbortSignal;
  /** 0..31, higher first (queue 'priority'; the ring takes only 0). Default 0. */
  priority?: number;
  codec?: CodecName;
  /** Resolve only once a receiver has taken the message (queue 'priority'). */
  sync?: boolean;
}

export interface ShmReceiveOptions {
  timeout?: number;
  nonblock?: boolean;
  signal?: AbortSignal;
  /**
   * Keep the message until `message.ack()`: if this handle closes or its
   * process dies first, it is delivered again (queue 'priority'; for a
   * broadcast copy, only when no other receiver is left: docs/shm-mailbox.md).
   */
  ack?: boolean;
  /** Copy a slab message into private memory and release its chunk at once. */
  copy?: boolean;
}

export const DEFAULT_SHM_CAPACITY = 256;
export const DEFAULT_SHM_MAX_MESSAGE = 1024 * 1024;
export const DEFAULT_MAP_THRESHOLD = 4096;
const MAX_SHM_CAPACITY = 2 ** 24;
const DEFAULT_RENDEZVOUS_BUDGET = 64;
const DEFAULT_UNBOUNDED_BUDGET = 16384;
export const MAX_PRIORITY = 31;
const MAX_SHM_MESSAGE = 2 ** 30;

export function notSupported(what: string): IpcError {
  return new IpcError('NOT_SUPPORTED', `shared-memory mailboxes do not support ${what}`);
}

export function intIn(v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(`${what} must be an integer from ${lo} to ${hi}, got ${String(v)}`);
  }
  return v;
}

export interface Resolved {
  layout: MailboxLayout;
  delivery: ShmDelivery;
  owner: 'process' | 'system';
  senders: Grantees;
  receivers: Grantees;
  mode: number;
  role: 'send' | 'receive' | 'both';
}

export function resolve(o: ShmMailboxOptions): Resolved {
  const kind = o.queue ?? 'priority';
  if (kind !== 'priority' && kind !== 'ring') throw new RangeError("queue must be 'priority' or 'ring'");
  const ring = kind === 'ring';
  if (ring && o.capacity === 0) throw notSupported("capacity 0 (rendezvous) with queue 'ring'");
  if (ring && o.capacity === 'unbounded') throw notSupported("unbounded capacity with queue 'ring'");
  if (ring && o.delivery === 'broadcast') throw notSupported("broadcast delivery with queue 'ring'");
  const capacity =
    o.capacity === 'unbounded'
      ? Number.POSITIVE_INFINITY
      : intIn(o.capacity ?? DEFAULT_SHM_CAPACITY, 0, MAX_SHM_CAPACITY, 'capacity');
  const delivery = o.delivery ?? 'round-robin';
  if (
    delivery !== 'round-robin' &&
    delivery !== 'arbitrary' &&
    delivery !== 'exclusive' &&
    delivery !== 'broadcast'
  ) {
    throw new RangeError("delivery must be 'round-robin', 'arbitrary', 'exclusive' or 'broadcast'");
  }
  if (delivery === 'broadcast' && capacity === 0) {
    throw new RangeError('capacity 0 (rendezvous) is not supported with broadcast delivery');
  }
  const bounded = capacity > 0 && capacity !== Number.POSITIVE_INFINITY;
  if (bounded && o.budget !== undefined) {
    throw new RangeError('budget applies to capacity 0 or unbounded only (capacity N is the budget)');
  }
  const queueSlots = ring
    ? 0
    : bounded
      ? capacity
      : intIn(
          o.budget ?? (capacity === 0 ? DEFAULT_RENDEZVOUS_BUDGET : DEFAULT_UNBOUNDED_BUDGET),
          1,
          MAX_SHM_CAPACITY,
          'budget',
        );
  const owner = o.owner ?? 'process';
  if (owner !== 'process' && owner !== 'system') throw new RangeError("owner must be 'process' or 'system'");
  const maxMessageSize = intIn(
    o.maxMessageSize ?? DEFAULT_SHM_MAX_MESSAGE,
    0,
    MAX_SHM_MESSAGE,
    'maxMessageSize',
  );
  const fixed =
    o.fixedMessageSize === undefined
      ? undefined
      : intIn(o.fixedMessageSize, 0, maxMessageSize, 'fixedMessageSize');
  const mapThreshold = Math.min(
    intIn(o.mapThreshold ?? DEFAULT_MAP_THRESHOLD, 0, 2 ** 20, 'mapThreshold'),
    maxMessageSize,
  );
  const needSlab = maxMessageSize > mapThreshold;
  const slabChunks = needSlab
    ? intIn(o.slabChunks ?? Math.max(1, Math.min(capacity, 8)), 1, MAX_SHM_CAPACITY, 'slabChunks')
    : 0;
  const mode = o.mode ?? 0o600;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777)
    throw new RangeError('mode must be permission bits (0..0o777)');
  const role = o.role ?? 'both';
  if (role !== 'send' && role !== 'receive' && role !== 'both')
    throw new RangeError("role must be 'send', 'receive' or 'both'");
  return {
    layout: layoutFor({
      kind: ring ? 'ring' : 'queue',
      capacity,
      broadcast: delivery === 'broadcast',
      queueSlots,
      maxMessageSize,
      mapThreshold,
      fixedMessageSize: fixed,
      slabChunks,
    }),
    delivery,
    owner,
    senders: o.senders ?? 'everyone',
    receivers: o.receivers ?? 'everyone',
    mode,
    role,
  };
}
