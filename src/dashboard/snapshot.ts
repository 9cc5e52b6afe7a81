import type { GranteesInfo } from '../core/rights.js';
import { kernelStatus } from '../kernel/control.js';
import type { Kernel } from '../kernel/kernel.js';
import { type KernelStatus, mailboxPath } from '../wire/info-types.js';

/**
 * What the page receives once a second: the kernel's status (the same as the
 * `status` call answers) made compact. Rows are arrays whose columns `cols`
 * names, so 1,000 mailboxes cost about 100 bytes each rather than a kilobyte of
 * repeated keys, and the snapshot is serialised once per tick for every client.
 * No message contents: those need the token (peek).
 */
export const PROCESS_COLUMNS = [
  'pid',
  'name',
  'node',
  'osPid',
  'uid',
  'connectedAt',
  'sent',
  'received',
  'rateSent',
  'rateReceived',
  'inboxDepth',
  'owns',
  'attached',
] as const;

export const MAILBOX_COLUMNS = [
  'id',
  'name',
  'capacity',
  'depth',
  'bytes',
  'rateIn',
  'rateOut',
  'rateAcked',
  'rateRedelivered',
  'sent',
  'received',
  'acked',
  'redelivered',
  'waitingSenders',
  'waitingReceivers',
  'receivers',
  'delivery',
  'ownership',
  'owner',
  'sendRight',
  'receiveRight',
  'waitP50',
  'waitP99',
  'path',
] as const;

export const SEGMENT_COLUMNS = ['name', 'size', 'kind', 'owner', 'attached'] as const;

type Cell = string | number | null;

export interface Snapshot {
  t: number;
  kernel: KernelStatus['kernel'] & { node: string | null; uptime: number };
  totals: { rateIn: number; rateOut: number; depth: number; mailboxes: number; processes: number };
  cols: { P: readonly string[]; M: readonly string[]; S: readonly string[] };
  P: Cell[][];
  M: Cell[][];
  S: Cell[][];
}

export function rightsText(v: GranteesInfo): string {
  if (v === 'everyone') return '*';
  if ('except' in v) return `*-${v.except.join(',-')}`;
  return v.length === 0 ? '-' : v.join(',');
}

export function takeSnapshot(k: Kernel): Snapshot {
  const s = kernelStatus(k);
  let rateIn = 0;
  let rateOut = 0;
  let depth = 0;
  const M = s.mailboxes.map((m): Cell[] => {
    // A shared-memory mailbox's queue and counters are in its segment, which the kernel never maps:
    // shown as unknown ('-'), not as zero.
    const shm = m.transport === 'shm';
    const known = (v: number | null): number | null => (shm ? null : v);
    const r = m.stats?.rates;
    rateIn += r?.sent ?? 0;
    rateOut += r?.received ?? 0;
    depth += m.depth;
    return [
      m.id,
      m.name,
      m.capacity === 'unbounded' ? null : m.capacity,
      known(m.depth),
      known(m.bytes),
      known(r?.sent ?? 0),
      known(r?.received ?? 0),
      known(r?.acked ?? 0),
      known(r?.redelivered ?? 0),
      known(m.counters.sent),
      known(m.counters.received),
      known(m.counters.acked),
      known(m.counters.redelivered),
      known(m.waitingSenders),
      known(m.waitingReceivers),
      m.attached,
      m.delivery,
      m.ownership,
      m.owner,
      rightsText(m.senders),
      rightsText(m.receivers),
      known(m.stats?.wait.p50 ?? null),
      known(m.stats?.wait.p99 ?? null),
      mailboxPath(m),
    ];
  });
  const P = s.processes.map((p): Cell[] => [
    p.pid,
    p.name,
    p.node ?? null,
    p.osPid,
    p.uid,
    p.connectedAt,
    p.sent,
    p.received,
    p.rates?.sent ?? 0,
    p.rates?.received ?? 0,
    p.inboxDepth,
    p.owns.join(','),
    p.attached.join(','),
  ]);
  const S = s.segments.map((g): Cell[] => [
    g.name,
    g.size,
    g.kind,
    g.owner,
    g.attached.map((a) => `${a.process}:${a.role}`).join(','),
  ]);
  return {
    t: Date.now(),
    kernel: { ...s.kernel, node: s.cluster?.node ?? null, uptime: Date.now() - s.kernel.startedAt },
    totals: {
      rateIn: Math.round(rateIn * 100) / 100,
      rateOut: Math.round(rateOut * 100) / 100,
      depth,
      mailboxes: M.length,
      processes: P.length,
    },
    cols: { P: PROCESS_COLUMNS, M: MAILBOX_COLUMNS, S: SEGMENT_COLUMNS },
    P,
    M,
    S,
  };
}
