import type { GranteesInfo } from '../core/rights.js';

/**
 * What the kernel reports about its objects, as both sides of the wire see it:
 * the JSON bodies of `mailbox.info`, `status`, `process.list` and the segment
 * calls (docs/protocol.md). The kernel builds them; clients and backends read them.
 */

export interface MailboxCounters {
  sent: number;
  received: number;
  blockedSends: number;
  redelivered: number;
  /** Deliveries acknowledged (receives with `ack: true`). */
  acked: number;
}

/** Messages per second, over the kernel's last sampling interval (1 s). */
export interface RateInfo {
  sent: number;
  received: number;
}

/**
 * What the kernel measures about a mailbox (kernel/mailbox-stats.ts): rates over
 * the last second, and how long messages waited in its queue (enqueue to delivery)
 * since it was created, as log2 buckets of microseconds (bucket 0: < 1 µs;
 * bucket i: [2^(i-1), 2^i) µs; the last: all longer) with p50/p99 in ms read from them.
 */
export interface MailboxStatsInfo {
  rates: RateInfo & { acked: number; redelivered: number };
  wait: { count: number; sumMs: number; p50: number | null; p99: number | null; buckets: number[] };
}

/** What the kernel reports about a mailbox (status, open, create). */
export interface MailboxInfo {
  id: number;
  name: string;
  capacity: number | 'unbounded';
  delivery: string;
  ownership: 'process' | 'system';
  /** Its messages are kept on disk (JetStream) until finished (docs/cluster.md). */
  durable?: boolean;
  /**
   * The path its messages take: through the kernel, or through a shared-memory segment the
   * kernel never touches ('shm': depth, waiters and counters live there, so the kernel reports
   * them as 0; the handle's `stat()` reads them). Absent from kernels before this field.
   */
  transport?: 'kernel' | 'shm';
  /** For transport 'shm': the POSIX name of its segment. */
  segment?: string;
  owner: string;
  maxMessageSize: number;
  fixedMessageSize: number | null;
  senders: GranteesInfo;
  receivers: GranteesInfo;
  depth: number;
  bytes: number;
  attached: number;
  waitingSenders: number;
  waitingReceivers: number;
  promised: number;
  counters: MailboxCounters;
  /** Rates and wait times; absent where the mailbox is not this kernel's (the shm backend's own info). */
  stats?: MailboxStatsInfo;
}

export type SegmentRole = 'send' | 'receive' | 'both' | 'attach';

export interface SegmentInfo {
  name: string;
  size: number;
  kind: 'segment' | 'mailbox';
  ownership: 'process' | 'system';
  owner: string;
  meta: unknown;
  senders: GranteesInfo;
  receivers: GranteesInfo;
  attached: { process: string; pid: number; osPid: number; role: SegmentRole }[];
  createdAt: number;
}

export interface ProcessInfo {
  pid: number;
  name: string;
  /** OS process id (from the socket's peer credentials where the platform gives them). */
  osPid: number;
  /** OS user and group of the process (peer credentials); null where unknown. */
  uid: number | null;
  gid: number | null;
  inbox: number;
  /** Messages the kernel holds for it: queued, or pushed and not yet taken (one-hop link messages are not counted). */
  inboxDepth: number;
  sent: number;
  received: number;
  connectedAt: number;
  /** Messages per second over the kernel's last sampling interval. */
  rates?: RateInfo;
  owns: string[];
  attached: string[];
  /**
   * Processes this one sends to over a one-hop link (a Unix socket between the two; the kernel
   * brokered it but does not carry its messages, so `sent`/`received` count kernel-path messages only).
   */
  links?: string[];
  /**
   * What went over its one-hop links, as the process reports it about once a second (it may lag
   * by that): messages sent over them, messages that came in over them, and those of them still
   * waiting in the process untaken. Absent until a process with links first reports.
   */
  linkSent?: number;
  linkReceived?: number;
  linkWaiting?: number;
  /**
   * In a cluster: the node the process is connected to. A process of another node that uses this
   * kernel's mailboxes or processes appears here too, with its node (it is served by a proxy).
   */
  node?: string;
}

export interface KernelStatus {
  kernel: {
    pid: number;
    socket: string;
    startedAt: number;
    memoryBudget: number;
    /** Everything the budget counts: `memory.held + memory.reserved + memory.backlog + memory.incoming`. */
    memoryUsed: number;
    memory: {
      /** Payload bytes queued in mailboxes (part of `held`). */
      queued: number;
      /** Storage of every message the kernel keeps (queued, parked, in flight), by what it pins. */
      held: number;
      /** Bytes promised to senders as credit. */
      reserved: number;
      /** Bytes written to clients that they have not read yet. */
      backlog: number;
      /** Bytes of large frames still arriving. */
      incoming: number;
    };
    connections: number;
    maxMessageSize: number;
    /** `process.wait` calls parked until a name is bound, across all connections. */
    processWaits: number;
  };
  processes: ProcessInfo[];
  mailboxes: MailboxInfo[];
  segments: SegmentInfo[];
  /** Map regions of large payloads sent by reference (protocol 3); `inUse` chunks hold a queued or lent payload. */
  mapRegions?: MapRegionInfo[];
  /** Present when the kernel is part of a cluster. */
  cluster?: ClusterStatus;
}

/** A map region as `status` reports it. */
export interface MapRegionInfo {
  id: number;
  name: string;
  owner: string;
  chunks: number;
  chunkBytes: number;
  inUse: number;
  /** Its owner has ended; it goes once no message or view refers to it. */
  ownerGone: boolean;
}

/**
 * The RESULT of `mailbox.peek`, after its `count` DELIVER frames flagged PEEK:
 * `more` is true when the queue holds messages beyond those (count or byte cap reached).
 */
export interface PeekReply {
  count: number;
  more: boolean;
}

/** A kernel of the cluster, as `status` reports it. */
export interface ClusterNodeInfo {
  node: string;
  host: string;
  /** The kernel's OS pid on its host. */
  pid: number;
  /** When that kernel joined (ms since the epoch, its own clock). */
  since: number;
  /** This kernel (the one answering). */
  self: boolean;
}

/** `status.cluster` of a kernel that is part of a cluster. */
export interface ClusterStatus {
  name: string;
  node: string;
  nodes: ClusterNodeInfo[];
  /** Process and mailbox names held on other nodes. */
  remote: { kind: 'process' | 'mailbox'; name: string; node: string }[];
}

/**
 * The path a mailbox's messages take, as `ipcbox status` and the dashboard show it: `kernel`,
 * `kernel (durable)` or `shm SEGMENT`.
 */
export function mailboxPath(m: Pick<MailboxInfo, 'transport' | 'segment' | 'durable'>): string {
  if (m.transport === 'shm') return `shm ${m.segment ?? ''}`.trim();
  return m.durable === true ? 'kernel (durable)' : 'kernel';
}
