import type { KernelStatus, MailboxInfo, ProcessInfo } from '../../wire/info-types.js';
import { UsageError } from '../failure.js';
import { table } from '../object-tables.js';
import { style, writeJsonLine, writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions, untilInterrupted } from './common.js';
import { waitMs } from './status.js';

export interface TopOptions {
  interval?: number;
  count?: number;
  sort?: string;
  json?: boolean;
}

/** What the mailboxes (and processes) are sorted by; each has its key in the terminal view. */
const SORTS = {
  depth: { key: 'd', mailbox: (m: MailboxInfo) => m.depth, process: (p: ProcessInfo) => p.inboxDepth },
  in: {
    key: 'i',
    mailbox: (m: MailboxInfo) => m.stats?.rates.sent ?? 0,
    process: (p: ProcessInfo) => p.rates?.sent ?? 0,
  },
  out: {
    key: 'o',
    mailbox: (m: MailboxInfo) => m.stats?.rates.received ?? 0,
    process: (p: ProcessInfo) => p.rates?.received ?? 0,
  },
  wait: {
    key: 'w',
    mailbox: (m: MailboxInfo) => m.stats?.wait.p99 ?? 0,
    process: (p: ProcessInfo) => p.inboxDepth,
  },
} as const;
type SortName = keyof typeof SORTS;

const rate = (v: number | undefined): string =>
  v === undefined ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(1);

/** One screen: the kernel line, then mailboxes and processes sorted by `sort`, cut to `rows` lines when set. */
export function formatTop(s: KernelStatus, self: string, sort: SortName, rows: number | undefined): string {
  const k = s.kernel;
  const by = SORTS[sort];
  const mailboxes = [...s.mailboxes].sort(
    (a, b) => by.mailbox(b) - by.mailbox(a) || a.name.localeCompare(b.name),
  );
  const procs = s.processes
    .filter((p) => p.name !== self)
    .sort((a, b) => by.process(b) - by.process(a) || a.name.localeCompare(b.name));
  let inRate = 0;
  let outRate = 0;
  for (const m of s.mailboxes) {
    inRate += m.stats?.rates.sent ?? 0;
    outRate += m.stats?.rates.received ?? 0;
  }
  const up = Math.round((Date.now() - k.startedAt) / 1000);
  const head = [
    `ipcbox top - kernel pid ${k.pid}, up ${up}s, ${k.connections} connections, memory ${k.memoryUsed}/${k.memoryBudget} bytes, in ${rate(inRate)}/s out ${rate(outRate)}/s`,
    `sorted by ${sort} (keys: d depth, i in/s, o out/s, w wait p99, q quit)`,
    '',
  ];
  // Room for each table when the screen is `rows` tall: half each, at least 3 lines.
  const room = rows === undefined ? undefined : Math.max(3, Math.floor((rows - head.length - 6) / 2));
  const mr = [
    [
      'MAILBOX',
      'DEPTH',
      'CAP',
      'IN/S',
      'OUT/S',
      'ACK/S',
      'REDELIV/S',
      'P50',
      'P99',
      'WAIT-S',
      'WAIT-R',
      'RECV',
    ],
  ];
  for (const m of mailboxes.slice(0, room)) {
    const r = m.stats?.rates;
    mr.push([
      m.name,
      String(m.depth),
      String(m.capacity),
      rate(r?.sent),
      rate(r?.received),
      rate(r?.acked),
      rate(r?.redelivered),
      waitMs(m.stats?.wait.p50),
      waitMs(m.stats?.wait.p99),
      String(m.waitingSenders),
      String(m.waitingReceivers),
      String(m.attached),
    ]);
  }
  const pr = [['PROCESS', 'PID', 'OS-PID', 'INBOX', 'OUT/S', 'IN/S', 'SENT', 'RECEIVED']];
  for (const p of procs.slice(0, room)) {
    pr.push([
      p.node === undefined ? p.name : `${p.name}@${p.node}`,
      String(p.pid),
      String(p.osPid),
      String(p.inboxDepth),
      rate(p.rates?.sent),
      rate(p.rates?.received),
      String(p.sent),
      String(p.received),
    ]);
  }
  const more = (n: number, shown: number) => (n > shown ? [`  ... ${n - shown} more`] : []);
  return [
    ...head,
    style.heading(`Mailboxes (${mailboxes.length})`),
    mailboxes.length === 0 ? '  (none)' : table(mr),
    ...more(mailboxes.length, mr.length - 1),
    '',
    style.heading(`Processes (${procs.length})`),
    procs.length === 0 ? '  (none)' : table(pr),
    ...more(procs.length, pr.length - 1),
  ].join('\n');
}

/**
 * A live view of the kernel, like top or nats-top: on a terminal it redraws in
 * place (the alternate screen, restored on exit) and reads keys to sort and
 * to quit; otherwise (a pipe, a file) it prints one plain snapshot per interval,
 * separated by a blank line, with no escape codes. `--count N` stops after N.
 * Rates come from the kernel's own sampling (once a second), so every view agrees.
 */
export async function top(g: GlobalOptions, o: TopOptions): Promise<void> {
  const interval = o.interval ?? 1000;
  if (interval < 100) throw new UsageError('--interval must be at least 100 ms', 'top');
  let sort: SortName = 'depth';
  if (o.sort !== undefined) {
    if (!(o.sort in SORTS))
      throw new UsageError(`--sort must be one of ${Object.keys(SORTS).join(', ')}`, 'top');
    sort = o.sort as SortName;
  }
  const p = await connectFromCli(g);
  const tty = process.stdout.isTTY === true && o.json !== true;
  const stop = untilInterrupted();
  let wake: () => void = () => {};
  let quit = false;
  const onKey = (b: Buffer) => {
    const c = b.toString('utf8');
    // Raw mode turns Ctrl-C into a byte: it quits like q.
    if (c === 'q' || c === '\x03') quit = true;
    for (const [name, s] of Object.entries(SORTS)) if (c === s.key) sort = name as SortName;
    wake();
  };
  const stdin = process.stdin;
  const keys = tty && stdin.isTTY === true;
  if (tty) await writeOut('\x1b[?1049h\x1b[?25l');
  if (keys) {
    stdin.setRawMode(true);
    stdin.on('data', onKey);
  }
  stop.signal.addEventListener('abort', () => wake());
  try {
    for (let n = 0; o.count === undefined || n < o.count; n++) {
      const s = await p.status();
      if (o.json === true) {
        s.processes = s.processes.filter((x) => x.name !== p.name);
        await writeJsonLine({
          t: Date.now(),
          kernel: s.kernel,
          processes: s.processes,
          mailboxes: s.mailboxes,
        });
      } else if (tty) {
        await writeOut(`\x1b[H\x1b[2J${formatTop(s, p.name, sort, process.stdout.rows)}`);
      } else
        await writeOut(
          `${n === 0 ? '' : '\n'}${new Date().toISOString()}\n${formatTop(s, p.name, sort, undefined)}\n`,
        );
      if (quit || stop.signal.aborted || (o.count !== undefined && n + 1 >= o.count)) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      if (quit || stop.signal.aborted) break;
    }
  } finally {
    if (keys) {
      stdin.off('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    if (tty) await writeOut('\x1b[?25h\x1b[?1049l').catch(() => undefined);
    stop.done();
    await p.close();
  }
}
