import type { DeliveryPolicy } from './mailbox-core.js';
import type { Grantees } from './rights.js';

/** Options for creating a mailbox, validated at the boundary (client and kernel both call this). */
export interface MailboxOptions {
  /** 0 = rendezvous, N = bounded, 'unbounded'. Default 1024. */
  capacity?: number | 'unbounded';
  /** Which receiver gets a message when several receive. Default 'round-robin'. */
  delivery?: DeliveryPolicy;
  /** 'process': deleted when the creating process exits. 'system': lives until deleted. Default 'process'. */
  owner?: 'process' | 'system';
  /** Largest payload in bytes. Default: the kernel's limit. */
  maxMessageSize?: number;
  /** When set, every payload must be exactly this many bytes. */
  fixedMessageSize?: number;
  /** Who may send. Default 'everyone'. */
  senders?: Grantees;
  /** Who may receive. Default 'everyone'. */
  receivers?: Grantees;
  /**
   * Keep the messages on disk (JetStream) until they are finished, so they survive a crash and
   * restart of the home kernel or of the whole host. Needs a clustered kernel; system-owned only.
   * Default false.
   */
  durable?: boolean;
  /**
   * The path messages take (README "Which path"). 'kernel': through the kernel, reachable from
   * every process of the system. 'shm': a shared-memory segment that processes of this host
   * map, the kernel keeping only name, rights and ownership. 'auto' (default): 'shm' where it
   * is measured faster and reaches every process that could open the mailbox, else 'kernel'.
   */
  transport?: MailboxTransport;
}

export type MailboxTransport = 'auto' | 'kernel' | 'shm';

export interface ResolvedMailboxOptions {
  capacity: number;
  delivery: DeliveryPolicy;
  owner: 'process' | 'system';
  maxMessageSize: number;
  fixedMessageSize: number | undefined;
  senders: Grantees;
  receivers: Grantees;
  durable: boolean;
  transport: MailboxTransport;
}

export const DEFAULT_CAPACITY = 1024;
const POLICIES: readonly DeliveryPolicy[] = ['exclusive', 'round-robin', 'arbitrary', 'broadcast'];

function isGrantees(v: unknown): v is Grantees {
  return v === 'everyone' || (Array.isArray(v) && v.every((x) => typeof x === 'string' && x.length > 0));
}

/** Validate and fill defaults. Throws TypeError/RangeError naming the bad option. */
export function resolveMailboxOptions(
  options: MailboxOptions,
  kernelMaxMessage: number,
): ResolvedMailboxOptions {
  const capacityIn = options.capacity ?? DEFAULT_CAPACITY;
  let capacity: number;
  if (capacityIn === 'unbounded') capacity = Number.POSITIVE_INFINITY;
  else if (
    typeof capacityIn === 'number' &&
    Number.isInteger(capacityIn) &&
    capacityIn >= 0 &&
    capacityIn <= 2 ** 31
  ) {
    capacity = capacityIn;
  } else
    throw new RangeError(`capacity must be a non-negative integer or 'unbounded', got ${String(capacityIn)}`);

  const delivery = options.delivery ?? 'round-robin';
  if (!POLICIES.includes(delivery)) throw new RangeError(`delivery must be one of ${POLICIES.join(', ')}`);
  if (delivery === 'broadcast' && capacity === 0) {
    throw new RangeError('capacity 0 (rendezvous) cannot be combined with broadcast delivery');
  }
  const owner = options.owner ?? 'process';
  if (owner !== 'process' && owner !== 'system') throw new RangeError("owner must be 'process' or 'system'");

  const maxMessageSize = options.maxMessageSize ?? kernelMaxMessage;
  if (!Number.isInteger(maxMessageSize) || maxMessageSize < 0 || maxMessageSize > kernelMaxMessage) {
    throw new RangeError(`maxMessageSize must be an integer from 0 to ${kernelMaxMessage}`);
  }
  const fixed = options.fixedMessageSize;
  if (fixed !== undefined && (!Number.isInteger(fixed) || fixed < 0 || fixed > maxMessageSize)) {
    throw new RangeError(`fixedMessageSize must be an integer from 0 to maxMessageSize (${maxMessageSize})`);
  }
  const senders = options.senders ?? 'everyone';
  const receivers = options.receivers ?? 'everyone';
  if (!isGrantees(senders)) throw new TypeError("senders must be 'everyone' or an array of process names");
  if (!isGrantees(receivers))
    throw new TypeError("receivers must be 'everyone' or an array of process names");
  const durable = options.durable ?? false;
  if (typeof durable !== 'boolean') throw new TypeError('durable must be a boolean');
  if (durable && options.owner !== 'system')
    throw new RangeError("a durable mailbox outlives every process: give it owner 'system'");
  const transport = options.transport ?? 'auto';
  if (transport !== 'auto' && transport !== 'kernel' && transport !== 'shm')
    throw new RangeError("transport must be 'auto', 'kernel' or 'shm'");
  if (durable && transport === 'shm')
    throw new RangeError(
      "a durable mailbox keeps its messages on NATS JetStream: it cannot use transport 'shm'",
    );
  return {
    capacity,
    delivery,
    owner,
    maxMessageSize,
    fixedMessageSize: fixed,
    senders,
    receivers,
    durable,
    transport,
  };
}

/** Names of processes and mailboxes: 1..255 bytes, no whitespace or control characters, no leading '@'. */
export function validateName(kind: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 255) {
    throw new TypeError(`${kind} name must be a non-empty string of at most 255 bytes`);
  }
  if (/[\s\p{Cc}]/u.test(name) || name.startsWith('@')) {
    throw new TypeError(
      `${kind} name must not contain whitespace or control characters or start with '@': ${JSON.stringify(name)}`,
    );
  }
  return name;
}
