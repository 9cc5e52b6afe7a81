/**
 * Does the dashboard page stay responsive at scale? A daemon with 1,000 mailboxes and a stream of
 * about 10,000 messages a second, the page open in headless Chromium (Debian's, via playwright-core)
 * for a measured window. Reported (not asserted: a benchmark, not a test):
 * - how long until the page lists all 1,000 mailboxes;
 * - main-thread long tasks (over 50 ms) in the window, their count and total, from the page's own
 *   PerformanceObserver;
 * - input latency: typing a name in the filter box until the table shows only that mailbox, median
 *   of several tries while the stream flows;
 * - the message rate the stream reached (so the load is known).
 *
 * Usage: node dist/bench/dashboard-scale.js [--seconds N] [--rate N]
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { connect } from '../src/index.js';
import { spawnDaemon, tempDir } from '../test/helpers/kernel-harness.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, rate: { type: 'string', default: '10000' } },
});
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const MAILBOXES = 1000;

function chromiumPath(): string {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {}
  }
  throw new Error('needs Chromium (apt-get install -y chromium)');
}

const dir = tempDir('ipcbox-dash-scale-');
const d = await spawnDaemon(`${dir}/k.sock`, ['--http', '0']);
const m = /dashboard: (https?:\/\/\S+?\/)(?:#token=(\S+))?\n/.exec(d.output());
if (m === null) throw new Error(`no dashboard address: ${d.output()}`);
const [base, token] = [m[1] as string, m[2] ?? ''];
const owner = await connect({ socketPath: `${dir}/k.sock`, name: 'scale-owner' });
for (let i = 0; i < MAILBOXES; i++)
  await owner.createMailbox(`box-${String(i).padStart(4, '0')}`, { capacity: 64 });
const stream = await owner.createMailbox('stream', { capacity: 4096 });
const sender = await connect({ socketPath: `${dir}/k.sock`, name: 'scale-sender' });
const to = await sender.openMailbox('stream');
let sent = 0;
let received = 0;
let running = true;
const reading = (async () => {
  for await (const _m of stream.messages({ prefetch: 256 })) {
    received++;
    if (!running) break;
  }
})();
const sending = (async () => {
  const perTick = Math.max(1, Math.round(RATE / 100));
  while (running) {
    const t0 = performance.now();
    const batch: Promise<void>[] = [];
    for (let i = 0; i < perTick; i++) batch.push(to.send(++sent));
    await Promise.all(batch);
    const left = 10 - (performance.now() - t0);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
})();

const browser = await chromium.launch({
  executablePath: chromiumPath(),
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  headless: true,
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
// Page-side code is given as source text: this file is compiled without the DOM's types.
await page.addInitScript(`
  window.longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.longTasks.push(e.duration);
  }).observe({ type: 'longtask', buffered: true });
`);
process.stderr.write(`${MAILBOXES + 1} mailboxes made; opening the page\n`);
const t0 = performance.now();
await page.goto(`${base}#token=${token}`);
await page.waitForFunction(
  `(document.getElementById('mailbox-count')?.textContent ?? '').startsWith('(${MAILBOXES + 1}')`,
  undefined,
  { timeout: 60_000 },
);
const listed = performance.now() - t0;
await page.evaluate('window.longTasks.length = 0');
const r0 = received;
const w0 = performance.now();
const latencies: number[] = [];
while (performance.now() - w0 < SECONDS * 1000) {
  const pick = `box-${String(Math.floor(Math.random() * MAILBOXES)).padStart(4, '0')}`;
  const s = performance.now();
  await page.fill('input[placeholder="filter by name"]', pick);
  await page.waitForFunction(
    `(() => { const rows = document.querySelectorAll('tr[data-mailbox]');
      return rows.length === 1 && rows[0].getAttribute('data-mailbox') === ${JSON.stringify(pick)}; })()`,
    undefined,
    { timeout: 10_000 },
  );
  latencies.push(performance.now() - s);
  await page.fill('input[placeholder="filter by name"]', '');
  await new Promise((r) => setTimeout(r, 300));
}
const window_ = (performance.now() - w0) / 1000;
const rate = (received - r0) / window_;
const long = (await page.evaluate('window.longTasks')) as number[];
latencies.sort((a, b) => a - b);
const median = latencies[latencies.length >> 1] ?? Number.NaN;
running = false;
await browser.close();
await sending;
await sender.close();
// The iteration ends when its connection does.
await owner.close();
await reading.catch(() => undefined);
d.child.kill('SIGTERM');
await d.exit;
console.log(
  JSON.stringify(
    {
      mailboxes: MAILBOXES + 1,
      streamRate: Math.round(rate),
      listedMs: Math.round(listed),
      windowS: Number(window_.toFixed(1)),
      longTasks: long.length,
      longTaskMs: Math.round(long.reduce((a, b) => a + b, 0)),
      longestTaskMs: Math.round(Math.max(0, ...long)),
      filterLatencyMedianMs: Math.round(median),
      filterLatencyMaxMs: Math.round(latencies.at(-1) ?? Number.NaN),
      tries: latencies.length,
    },
    null,
    2,
  ),
);
