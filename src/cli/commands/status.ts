import type { GranteesInfo } from '../../core/rights.js';
import { listHostObjects } from '../../unix/host-objects.js';
import { type KernelStatus, mailboxPath } from '../../wire/info-types.js';
import { formatHost, table } from '../object-tables.js';
import { style, writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions, registryOf } from './common.js';

function rights(v: GranteesInfo): string {
  if (v === 'everyone') return '*';
  if ('except' in v) return `*-${v.except.join(',-')}`;
  return v.length === 0 ? '-' : v.join(',');
}

/** A wait time in ms as status and top print it (us, ms or s). */
export function waitMs(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return v < 1 ? `${Math.round(v * 1000)}us` : v < 1000 ? `${v.toFixed(1)}ms` : `${(v / 1000).toFixed(1)}s`;
}

export function formatStatus(s: KernelStatus, self: string): string {
  const k = s.kernel;
  const out: string[] = [];
  out.push(
    `kernel pid ${k.pid} on ${k.socket}; memory ${k.memoryUsed}/${k.memoryBudget} bytes; max message ${k.maxMessageSize} bytes`,
  );
  out.push('');
  const c = s.cluster;
  if (c !== undefined) {
    out.push(style.heading(`Cluster ${c.name}`));
    const nr = [['NODE', 'HOST', 'PID', 'SINCE']];
    for (const n of c.nodes)
      nr.push([n.self ? `${n.node} (this)` : n.node, n.host, String(n.pid), new Date(n.since).toISOString()]);
    out.push(table(nr));
    if (c.remote.length > 0) {
      const rr = [['KIND', 'NAME', 'NODE']];
      for (const r of c.remote) rr.push([r.kind, r.name, r.node]);
      out.push('');
      out.push(table(rr));
    }
    out.push('');
  }
  out.push(style.heading('Processes'));
  const procs = s.processes.filter((p) => p.name !== self);
  const clustered = s.cluster !== undefined;
  const pr = [
    ['PID', 'NAME', ...(clustered ? ['NODE'] : []), 'OS-PID', 'UID', 'INBOX', 'SENT', 'RECEIVED', 'OWNS'],
  ];
  for (const p of procs) {
    pr.push([
      String(p.pid),
      p.name,
      ...(clustered ? [p.node ?? '-'] : []),
      String(p.osPid),
      p.uid === null ? '-' : String(p.uid),
      // The kernel's counts plus what the process reports of its links (at most a second old).
      String(p.inboxDepth + (p.linkWaiting ?? 0)),
      String(p.sent + (p.linkSent ?? 0)),
      String(p.received + (p.linkReceived ?? 0)),
      p.owns.join(',') || '-',
    ]);
  }
  out.push(procs.length === 0 ? '  (none)' : table(pr));
  // One-hop links: direct messages between two processes of this host go over them, not through
  // the kernel; the processes report their counts (added to INBOX, SENT and RECEIVED above).
  const lr = [['FROM', 'TO', 'PATH']];
  for (const p of procs)
    for (const to of p.links ?? []) lr.push([p.name, to, 'one-hop link (shm ring, map region, socket)']);
  if (lr.length > 1) {
    out.push('');
    out.push(style.heading('Links'));
    out.push(table(lr));
  }
  out.push('');
  out.push(style.heading('Mailboxes'));
  const mr = [
    [
      'NAME',
      'PATH',
      'CAPACITY',
      'DEPTH',
      'DELIVERY',
      'OWNERSHIP',
      'OWNER',
      'SEND',
      'RECV',
      'RECEIVERS',
      'SENT',
      'DELIVERED',
      'IN/S',
      'OUT/S',
      'P50',
      'P99',
      'WAIT-S',
      'WAIT-R',
    ],
  ];
  for (const m of s.mailboxes) {
    // A shared-memory mailbox's queue and counters are in its segment, which the kernel never maps.
    const shm = m.transport === 'shm';
    const seen = (v: unknown): string => (shm ? '-' : String(v));
    mr.push([
      m.name,
      mailboxPath(m),
      String(m.capacity),
      seen(m.depth),
      m.delivery,
      m.ownership,
      m.owner,
      rights(m.senders),
      rights(m.receivers),
      String(m.attached),
      seen(m.counters.sent),
      seen(m.counters.received),
      // Rates over the kernel's last second; wait times (enqueue to delivery) since the mailbox was made.
      String(m.stats?.rates.sent ?? '-'),
      String(m.stats?.rates.received ?? '-'),
      waitMs(m.stats?.wait.p50),
      waitMs(m.stats?.wait.p99),
      seen(m.waitingSenders),
      seen(m.waitingReceivers),
    ]);
  }
  out.push(s.mailboxes.length === 0 ? '  (none)' : table(mr));
  out.push('');
  out.push(style.heading('Segments'));
  const sr = [['NAME', 'SIZE', 'KIND', 'OWNERSHIP', 'OWNER', 'ATTACHED']];
  for (const g of s.segments) {
    sr.push([
      g.name,
      String(g.size),
      g.kind,
      g.ownership,
      g.owner,
      g.attached.map((a) => `${a.process}:${a.role}`).join(',') || '-',
    ]);
  }
  out.push(s.segments.length === 0 ? '  (none)' : table(sr));
  return `${out.join('\n')}\n`;
}

/** Kernel status (processes, mailboxes, segments) and the host's objects: ipcs for ipcbox. Needs the kernel. */
export async function status(g: GlobalOptions, o: { json?: boolean }): Promise<void> {
  const p = await connectFromCli(g);
  try {
    const s = await p.status();
    const host = listHostObjects(registryOf(g));
    if (o.json) {
      s.processes = s.processes.filter((x) => x.name !== p.name);
      await writeOut(`${JSON.stringify({ ...s, host }, null, 2)}\n`);
    } else await writeOut(formatStatus(s, p.name) + formatHost(host));
  } finally {
    await p.close();
  }
}
