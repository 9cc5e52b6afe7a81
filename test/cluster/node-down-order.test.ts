/**
 * `node-down` comes after every message the node's processes sent (Erlang's guarantee for
 * nodedown), also when the home was not reading them: a process on kernel B asks a mailbox on
 * kernel A for a peek of many MiB (A writes it into the pipe to B faster than the pipe drains, so
 * A pauses reading that process's proxy session) and keeps streaming sends to another mailbox on
 * A. Kernel B is then SIGSTOPped (the pipe from A stops draining) and SIGKILLed: sends that
 * reached A sit unread in the paused session. A monitor
 * on A must hear `node-down` only once they are all in the mailbox: nothing may arrive after it.
 * And the paused session itself must end: it used to wait forever for the pipe to the dead node
 * (its writes went to a new pipe made after the old one was forgotten), attached and holding what
 * it held. (Before: the monitor's channel also ended at once, ahead of what that session held.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { spawnFixture, tempDir } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

const MIB = 1024 * 1024;

describe('node-down after every message', () => {
  let nats: NatsServer;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    const dir = tempDir('ipcbox-ndo-');
    [a, b] = await Promise.all([
      startClusterKernel(dir, 'oa', nats.url),
      startClusterKernel(dir, 'ob', nats.url),
    ]);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const k of [a, b]) k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  test('a monitor hears node-down only after the sends a paused proxy session held', async () => {
    const w = await connect({ socketPath: a.socketPath, name: 'ndo-watcher' });
    clients.push(w);
    const big = await w.createMailbox('ndo-big', { capacity: 'unbounded' });
    for (let i = 0; i < 15; i++) await big.send(Buffer.alloc(MIB, i));
    const into = await w.createMailbox('ndo-in', { capacity: 'unbounded' });
    const sender = spawnFixture(
      'peek-then-send',
      [b.socketPath, 'ndo-big', 'ndo-in', 'ndo-sender'],
      b.socketPath,
    );
    await w.waitForProcess('ndo-sender', { timeout: 10_000 });
    const down = new Promise<{ reason: string; depth: number }>((resolve) => {
      w.on('exit', (e) => {
        if (e.process !== 'ndo-sender') return;
        // The depth when the notice is handled: every message from the dead node must be in.
        void into.stat().then((s) => resolve({ reason: e.reason, depth: s.depth }));
      });
    });
    await w.monitor('ndo-sender');
    // Each send's answer can wait behind a 15 MiB peek answer in the same session: on a loaded
    // machine the stream runs at a few sends a second (CI once took more than 20 s for 200), so
    // the waits here are generous and the count asked for is small.
    await sender.line((l) => l === 'sending', 60_000);
    // Some of the stream in first, so what follows is about the sends still on their way.
    const deadline = Date.now() + 60_000;
    let before = (await into.stat()).depth;
    while (before < 20 && Date.now() < deadline) {
      await sleep(20);
      before = (await into.stat()).depth;
    }
    assert.ok(before >= 20, `the stream got going (${before} sends in 60 s)`);
    // Stopped first, so the pipe from A stops draining (no acks) while the sends B had already
    // published reach A; then killed.
    b.child.kill('SIGSTOP');
    await sleep(300);
    b.child.kill('SIGKILL');
    sender.kill('SIGKILL');
    const killedAt = Date.now();
    const seen = await down;
    assert.equal(seen.reason, 'node-down');
    // Within the heartbeat bound (4 s, ipcbox's stated ≤ 5 s) plus serving what the sessions held.
    assert.ok(Date.now() - killedAt < 8000, `node-down after ${Date.now() - killedAt} ms`);
    assert.ok(
      seen.depth >= before,
      `the sends made before the kill arrived (${seen.depth} of at least ${before})`,
    );
    // Nothing may come after the notice.
    await sleep(2000);
    const later = (await into.stat()).depth;
    assert.equal(later, seen.depth, `${later - seen.depth} messages arrived after node-down`);
    // And the dead node's sessions here are gone, the paused one too (it used to wait forever
    // for a pipe to the dead node, holding its attachments and any unacknowledged deliveries).
    const left = (await w.status()).processes.map((p) => p.name).filter((n) => n !== 'ndo-watcher');
    assert.deepEqual(left, [], 'no session of the dead node is left here');
    assert.equal((await big.stat()).attached, 0, 'no session of the dead node is still attached');
    assert.equal((await into.stat()).attached, 0);
  });
});
