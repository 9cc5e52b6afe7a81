/**
 * What watching costs: the kernel's message path with and without the dashboard, in one run.
 *
 * Two variants of the same daemon (`ipcbox daemon`, a child process), each with 1,000 idle mailboxes
 * so a snapshot has the size the dashboard must cope with:
 * - plain: no --http;
 * - watched: --http 0, with an SSE client reading the live stream (1 snapshot/s of all 1,000
 *   mailboxes) and /metrics scraped once a second for the whole measurement.
 * In each, one process sends N messages of 64 bytes to a mailbox and another receives them by
 * iteration; the figure is messages per second from the first send to the last receive. The variants
 * alternate (plain, watched, plain, ...) so drift on a shared machine hits both; medians, spread
 * (min-max) and the ratio watched/plain are printed.
 *
 * Usage: node dist/bench/dashboard-cost.js [--reps N] [--messages N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '../src/index.js';
import { spawnDaemon } from '../test/helpers/kernel-harness.js';

const { values } = parseArgs({
  options: { reps: { type: 'string', default: '5' }, messages: { type: 'string', default: '50000' } },
});
const REPS = Number(values.reps);
const N = Number(values.messages);
const IDLE_MAILBOXES = 1000;

/** Follow the event stream until aborted, counting snapshots (as a browser tab would). */
async function watch(base: string, signal: AbortSignal): Promise<number> {
  let snapshots = 0;
  try {
    const r = await fetch(`${base}api/events`, { signal });
    const decoder = new TextDecoder();
    for await (const chunk of r.body as AsyncIterable<Uint8Array>) {
      snapshots += decoder.decode(chunk).split('\n\n').length - 1;
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
  return snapshots;
}

async function measure(watched: boolean): Promise<{ rate: number; snapshots: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ipcbox-bench-dash-'));
  const sock = join(dir, 'k.sock');
  const daemon = await spawnDaemon(sock, watched ? ['--http', '0'] : []);
  const ac = new AbortController();
  try {
    const owner = await connect({ socketPath: sock, name: 'owner' });
    for (let i = 0; i < IDLE_MAILBOXES; i++) await owner.createMailbox(`idle-${i}`);
    const box = await owner.createMailbox('work', { capacity: 4096 });
    let watching: Promise<number> = Promise.resolve(0);
    let scrape: NodeJS.Timeout | undefined;
    if (watched) {
      const base = /dashboard: (http:\/\/\S+?\/)/.exec(daemon.output())?.[1];
      if (base === undefined) throw new Error(`no dashboard address: ${daemon.output()}`);
      watching = watch(base, ac.signal);
      scrape = setInterval(() => {
        fetch(`${base}metrics`, { signal: ac.signal })
          .then((r) => r.text())
          .catch(() => undefined);
      }, 1000);
      // The stream is open and the first snapshot has come before the clock starts.
      await new Promise((r) => setTimeout(r, 1200));
    }
    const sender = await connect({ socketPath: sock, name: 'sender' });
    const to = await sender.openMailbox('work');
    const payload = Buffer.alloc(64, 7);
    const start = performance.now();
    const received = (async () => {
      let n = 0;
      for await (const _ of box) if (++n === N) break;
    })();
    for (let i = 0; i < N; i++) await to.send(payload);
    await received;
    const seconds = (performance.now() - start) / 1000;
    if (scrape !== undefined) clearInterval(scrape);
    ac.abort();
    const snapshots = await watching;
    await sender.close();
    await owner.close();
    return { rate: N / seconds, snapshots };
  } finally {
    ac.abort();
    daemon.child.kill('SIGTERM');
    await daemon.exit;
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const plain: number[] = [];
const watched: number[] = [];
let snapshots = 0;
for (let r = 0; r < REPS; r++) {
  plain.push((await measure(false)).rate);
  const w = await measure(true);
  watched.push(w.rate);
  snapshots += w.snapshots;
}
const fmt = (xs: number[]) =>
  `${Math.round(median(xs))} msg/s (${Math.round(Math.min(...xs))}-${Math.round(Math.max(...xs))})`;
const ratio = median(watched) / median(plain);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, node ${process.version}`);
console.log(`${N} messages of 64 B, ${IDLE_MAILBOXES} idle mailboxes, ${REPS} alternating repetitions`);
console.log(`plain kernel:                  ${fmt(plain)}`);
console.log(`with dashboard + SSE + scrape: ${fmt(watched)} (${snapshots} snapshots streamed)`);
console.log(`ratio watched/plain: ${ratio.toFixed(3)} (${((1 - ratio) * 100).toFixed(1)} % slower)`);
