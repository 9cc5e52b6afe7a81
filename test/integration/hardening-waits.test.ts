/**
 * Hardening of timed and abortable waits: one timer per send request through
 * every state it passes (parked, queued, held by a receiver, re-parked), and
 * timers longer than setTimeout can take.
 *
 * - r03: a sync send with a timeout and no receiver rejects TIMEOUT (the
 *   mailbox is empty afterwards); with a signal, aborting rejects ABORTED.
 * - r04: a rendezvous send whose message a receiver handed back (its
 *   receive was aborted with the DELIVER on its way) still times out on time.
 * - The CLI's `send --sync --timeout` exits with the TIMEOUT exit status.
 * - r05: a sync send to a broadcast mailbox whose only receiver closes its
 *   handle first: the message goes back to the backlog and the sender keeps
 *   waiting (its timeout applies); a receiver attaching later takes it and
 *   the send resolves.
 * - r02: a 30-day timeout does not fire at once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { connect, type IpcProcess, type Mailbox, type MailboxInfo } from '../../src/index.js';
import {
  type KernelHost,
  outcomeOf,
  startDaemonProcess,
  stopAllKernels,
  tracked,
  within,
} from '../fixtures/hardening-support.js';
import { CLI, type Spawned, spawnFixture, tempDir, waitFor } from '../helpers/kernel-harness.js';
import { RemotePeer, stopAll } from './remote-peer.js';

function statUntil(mb: Mailbox, predicate: (i: MailboxInfo) => boolean, what: string): Promise<void> {
  return waitFor(async () => predicate(await mb.stat()), 10_000, what);
}

/** Run the CLI; kill it if it has not exited within `deadlineMs`. */
function runCliWithin(
  args: string[],
  socketPath: string,
  deadlineMs: number,
): Promise<{ code: number | null; elapsed: number; stderr: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, '--socket', socketPath, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, elapsed: Date.now() - started, stderr });
    });
  });
}

describe('hardening: timed and abortable waits', () => {
  let kernel: KernelHost;
  let me: IpcProcess;
  const children: Spawned[] = [];

  before(async () => {
    kernel = await startDaemonProcess();
    me = await connect({ socketPath: kernel.socketPath, name: 'waits-owner' });
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await stopAll();
    await me?.close();
    await stopAllKernels();
  });

  test('r03: a sync send with a timeout and no receiver rejects TIMEOUT; with a signal, ABORTED; nothing stays', async () => {
    const mb = await me.createMailbox('sync-box', { capacity: 10 });
    const s = await RemotePeer.start(kernel.socketPath, 'sync-sender');
    await s.ok('open', { mailbox: 'sync-box' });

    const timed = await within(
      s.call('send', { mailbox: 'sync-box', value: 'x', options: { sync: true, timeout: 200 } }),
      3000,
      'the timed sync send',
    );
    assert.equal(timed.code, 'TIMEOUT');
    assert.ok(timed.elapsed >= 150, `it waited for its timeout (${timed.elapsed.toFixed(0)} ms)`);
    assert.equal((await mb.stat()).depth, 0, 'the timed-out message is gone from the mailbox');

    const aborted = s.start('send', {
      mailbox: 'sync-box',
      value: 'y',
      options: { sync: true, abortKey: 'k' },
    });
    await statUntil(mb, (i) => i.depth === 1, 'the sync send to be queued');
    await s.ok('abort', { key: 'k' });
    assert.equal((await within(aborted.reply, 3000, 'the aborted sync send')).code, 'ABORTED');
    assert.equal((await mb.stat()).depth, 0, 'the aborted message is gone from the mailbox');
    await stopAll([s]);
  });

  test('r03: a sync send with a timeout that a busy receiver has prefetched unread still times out, and leaves nothing', async () => {
    const mb = await me.createMailbox('sync-prefetched', { capacity: 10 });
    await mb.send('first');
    const rx = spawnFixture(
      'hardening-client',
      ['drain', JSON.stringify({ mailbox: mb.name, stuckAfter: 1, prefetch: 8 })],
      kernel.socketPath,
    );
    children.push(rx);
    await rx.line((l) => l.includes('"ready"'));
    await statUntil(mb, (i) => i.depth === 0, 'the receiver to take the first message');
    const started = Date.now();
    const sent = await within(
      outcomeOf(mb.send('sync', { sync: true, timeout: 300 })),
      3000,
      'the sync send',
    );
    const elapsed = Date.now() - started;
    assert.equal(sent, 'TIMEOUT');
    assert.ok(elapsed >= 250, `it waited for its timeout (${elapsed} ms)`);
    const info = await mb.stat();
    assert.equal(info.counters.received, 2, 'the receiver had been handed the sync message');
    assert.equal(info.depth, 0, 'the timed-out message did not go back to the mailbox');
    rx.kill('SIGKILL');
  });

  test('r04: a rendezvous send handed back by a receiver that aborted still times out on time', async () => {
    const mb = await me.createMailbox('rv', { capacity: 0 });
    const markerDir = tempDir('ipcbox-hardening-');
    const marker = join(markerDir, 'handed-over');
    const rx = spawnFixture(
      'hardening-client',
      ['rendezvous-abort', JSON.stringify({ mailbox: 'rv', marker })],
      kernel.socketPath,
    );
    children.push(rx);
    try {
      await rx.line((l) => l.includes('"parked"'));
      rx.child.stdin!.write('go\n');
      await rx.line((l) => l.includes('"busy"'));
      // The receiver's event loop is blocked: the message reaches it unread; once the kernel has handed
      // it over, the receiver aborts its receive and the DELIVER on its way is handed back.
      const started = Date.now();
      const sending = outcomeOf(mb.send('hello', { timeout: 1000 }));
      await statUntil(mb, (i) => i.waitingReceivers === 0, 'the kernel to hand the message to the receiver');
      writeFileSync(marker, '');
      const sent = await within(sending, 4000, 'the rendezvous send');
      const elapsed = Date.now() - started;
      assert.equal(sent, 'TIMEOUT');
      assert.ok(elapsed >= 900, `timed out by its own timer (${elapsed} ms)`);
      assert.match(await rx.line((l) => l.includes('"receive"')), /"how":"ABORTED"/);
      const info = await mb.stat();
      assert.equal(info.counters.redelivered, 1, 'the message was handed back once (the case under test)');
      assert.equal(info.waitingSenders, 0);
    } finally {
      rx.kill('SIGKILL');
      rmSync(markerDir, { recursive: true, force: true });
    }
  });

  test('CLI: send --sync --timeout 500 exits with the TIMEOUT status within a few seconds', async () => {
    await me.createMailbox('cli-box', { capacity: 10 });
    const r = await runCliWithin(
      ['send', 'cli-box', 'hi', '--sync', '--timeout', '500'],
      kernel.socketPath,
      10_000,
    );
    assert.equal(r.code, ExitCode.TIMEOUT, `exit status (stderr: ${r.stderr})`);
    assert.ok(r.elapsed < 5000, `exited after ${r.elapsed} ms`);
    assert.equal((await (await me.openMailbox('cli-box')).stat()).depth, 0);
  });

  test('r05: a sync broadcast send whose only receiver closed its handle waits on (timeout applies), then resolves for a new receiver', async () => {
    const news = await me.createMailbox('news', { capacity: 10, delivery: 'broadcast' });
    const s = await RemotePeer.start(kernel.socketPath, 'news-sender');
    await s.ok('open', { mailbox: 'news' });
    const reader = await connect({ socketPath: kernel.socketPath, name: 'news-reader' });
    try {
      // With a timeout: the copy comes back to the backlog when the receiver leaves; the timeout still fires.
      let r1 = await reader.openMailbox('news');
      await assert.rejects(r1.tryReceive(), { code: 'WOULD_BLOCK' });
      const timed = s.start('send', {
        mailbox: 'news',
        value: 'timed',
        options: { sync: true, timeout: 500 },
      });
      await statUntil(news, (i) => i.depth === 1, 'the copy to be queued for the receiver');
      await r1.close();
      const back = await news.stat();
      assert.deepEqual([back.attached, back.depth], [0, 1], 'the message is back in the backlog');
      assert.equal((await within(timed.reply, 3000, 'the timed broadcast sync send')).code, 'TIMEOUT');
      assert.equal((await news.stat()).depth, 0, 'the timed-out message left the backlog');

      // Without a timeout: the sender waits until a receiver that attaches later takes it.
      r1 = await reader.openMailbox('news');
      await assert.rejects(r1.tryReceive(), { code: 'WOULD_BLOCK' });
      const waiting = s.start('send', { mailbox: 'news', value: 'bulletin', options: { sync: true } });
      await statUntil(news, (i) => i.depth === 1, 'the copy to be queued for the receiver');
      await r1.close();
      await s.ok('stat', { mailbox: 'news' });
      assert.equal((await news.stat()).depth, 1, 'the message is back in the backlog');
      assert.equal(waiting.settled, false, 'the sync sender keeps waiting');
      const r2 = await reader.openMailbox('news');
      assert.equal((await r2.receive({ timeout: 3000 })).data, 'bulletin');
      const done = await within(waiting.reply, 3000, 'the broadcast sync send');
      assert.ok(done.ok, `the sync send failed: ${done.code}`);
    } finally {
      await reader.close();
      await stopAll([s]);
    }
  });

  test('r02: receive and send with a 30-day timeout do not fire within 1 s; aborting them rejects ABORTED', async () => {
    const thirtyDays = 30 * 24 * 3600 * 1000;
    const empty = await me.createMailbox('long-empty', { capacity: 1 });
    const full = await me.createMailbox('long-full', { capacity: 1 });
    await full.send('fill');
    const ac = new AbortController();
    const receive = tracked(outcomeOf(empty.receive({ timeout: thirtyDays, signal: ac.signal })));
    const send = tracked(outcomeOf(full.send('more', { timeout: thirtyDays, signal: ac.signal })));
    await statUntil(full, (i) => i.waitingSenders === 1, 'the send to park');
    // A window in which nothing may happen: the old kernel fired such timers after 1 ms.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(receive.settled, false, 'the receive is still waiting after 1 s');
    assert.equal(send.settled, false, 'the send is still waiting after 1 s');
    ac.abort();
    assert.equal(await within(receive.promise, 3000, 'the aborted receive'), 'ABORTED');
    assert.equal(await within(send.promise, 3000, 'the aborted send'), 'ABORTED');
    assert.equal((await full.stat()).depth, 1, 'the aborted send left nothing behind');
  });
});
