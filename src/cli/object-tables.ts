import type { HostListing, HostObject, HostObjectKind } from '../unix/host-objects.js';
import { style } from './output.js';

/**
 * The tables `status`, `ls`, `mq ls` and `sem ls` print: columns padded to
 * the widest cell, two spaces apart, no trailing blanks; a section with no
 * rows says "(none)".
 */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const num = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : String(v));
const owner = (o: HostObject): string => o.user ?? num(o.uid);

/** Heading and columns of each kind of host object. */
const SECTIONS: Record<
  HostObjectKind,
  { heading: string; head: string[]; row: (o: HostObject) => string[] }
> = {
  shm: {
    heading: 'Shared memory (/dev/shm)',
    head: ['NAME', 'OWNER', 'MODE', 'SIZE', 'PROCS'],
    row: (o) => [o.name, owner(o), o.mode ?? '-', num(o.size), num(o.processes)],
  },
  mqueue: {
    heading: 'Message queues',
    head: ['NAME', 'OWNER', 'MODE', 'MESSAGES', 'MAX', 'MSGSIZE'],
    row: (o) => [o.name, owner(o), o.mode ?? '-', num(o.messages), num(o.maxMessages), num(o.messageSize)],
  },
  semaphore: {
    heading: 'Named semaphores',
    head: ['NAME', 'OWNER', 'MODE', 'VALUE', 'PROCS'],
    row: (o) => [o.name, owner(o), o.mode ?? '-', num(o.value), num(o.processes)],
  },
  fifo: {
    heading: 'FIFOs',
    head: ['PATH', 'OWNER', 'MODE', 'PROCS'],
    row: (o) => [o.name, owner(o), o.mode ?? '-', num(o.processes)],
  },
  file: {
    heading: 'Mapped files',
    head: ['PATH', 'OWNER', 'MODE', 'SIZE', 'PROCS'],
    row: (o) => [o.name, owner(o), o.mode ?? '-', num(o.size), num(o.processes)],
  },
};

/** The sections of `kinds` (in that order), then one `note:` line per thing the OS hides. */
export function formatHost(
  listing: HostListing,
  kinds: readonly HostObjectKind[] = ['shm', 'mqueue', 'semaphore', 'fifo', 'file'],
): string {
  const out: string[] = [];
  for (const kind of kinds) {
    const s = SECTIONS[kind];
    const rows = listing.objects.filter((o) => o.kind === kind).map(s.row);
    if (kinds.length > 1) out.push('', style.heading(s.heading));
    out.push(rows.length === 0 ? '  (none)' : table([s.head, ...rows]));
  }
  for (const n of listing.notes) if (n.kinds.some((k) => kinds.includes(k))) out.push(`note: ${n.text}`);
  return `${out.join('\n')}\n`;
}
