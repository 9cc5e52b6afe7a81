/**
 * A send that resolved arrives, also across nodes when its sender leaves right after: a process on
 * kernel B streams credited sends to a mailbox (and to a process) homed on kernel A, then closes,
 * exits or SIGKILLs itself the moment its last send resolved. Every number must arrive at A, once
 * and in order. (Before: the tail a sender's kernel had forwarded in its last turn, or that the
 * home's proxy session still held in its read buffer, was dropped with the route.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { spawnFixture, tempDir } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

const COUNT = 30_000;

describe('last sends across nodes', () => {
  let nats: NatsServer;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    const dir = tempDir('ipcbox-last-');
    [a, b] = await Promise.all([
      startClusterKernel(dir, 'la', nats.url),
      startClusterKernel(dir, 'lb', nats.url),
    ]);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const k of [a, b]) k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  /** Receive COUNT numbers from `next` and check they are 0..COUNT-1 in order. */
  async function expectAll(next: () => Promise<unknown>): Promise<void> {
    for (let i = 0; i < COUNT; i++) {
      const n = await next();
      assert.equal(n, i, `message ${i} of ${COUNT}`);
    }
  }

  test('a monitor on another node sees the exit only after every message the process sent', async () => {
    const w = await connect({ socketPath: a.socketPath, name: 'watcher', inboxCapacity: 64 });
    clients.push(w);
    const sender = spawnFixture(
      'burst-sender',
      [b.socketPath, 'process', 'watcher', String(COUNT), 'exit', 'leaver'],
      b.socketPath,
    );
    await w.waitForProcess('leaver', { timeout: 10_000 });
    let exited = false;
    w.on('exit', (e) => {
      if (e.process === 'leaver') exited = true;
    });
    await w.monitor('leaver');
    // Take messages until the exit is reported, then only what is already here (non-blocking):
    // everything the process sent before it left must be.
    let got = 0;
    while (!exited) {
      try {
        assert.equal((await w.receive({ timeout: 200 })).data, got);
        got++;
      } catch (e) {
        if ((e as { code?: string }).code !== 'TIMEOUT') throw e;
      }
    }
    for (;;) {
      try {
        assert.equal((await w.receive({ nonblock: true })).data, got);
        got++;
      } catch (e) {
        if ((e as { code?: string }).code !== 'WOULD_BLOCK') throw e;
        break;
      }
    }
    assert.equal(got, COUNT, 'every message was there when the exit came');
    await sender.exit;
  });

  for (const ending of ['close', 'exit', 'kill'] as const) {
    test(`to a mailbox on another node, the sender then ${ending}s: all ${COUNT} arrive in order`, async () => {
      const owner = await connect({ socketPath: a.socketPath, name: `owner-${ending}` });
      clients.push(owner);
      // A small capacity keeps the home's proxy session waiting on the mailbox (its reads paused).
      const mb = await owner.createMailbox(`last-${ending}`, { capacity: 64 });
      const sender = spawnFixture(
        'burst-sender',
        [b.socketPath, 'mailbox', `last-${ending}`, String(COUNT), ending],
        b.socketPath,
      );
      await expectAll(async () => (await mb.receive({ timeout: 10_000 })).data);
      await sender.exit;
      assert.ok(sender.lines.includes('sent'), `the sender finished: ${sender.stderr()}`);
      await assert.rejects(mb.receive({ nonblock: true }), { code: 'WOULD_BLOCK' });
    });

    test(`to a process on another node, the sender then ${ending}s: all ${COUNT} arrive in order`, async () => {
      const rx = await connect({ socketPath: a.socketPath, name: `rx-${ending}`, inboxCapacity: 64 });
      clients.push(rx);
      const sender = spawnFixture(
        'burst-sender',
        [b.socketPath, 'process', `rx-${ending}`, String(COUNT), ending, `tx-${ending}`],
        b.socketPath,
      );
      await expectAll(async () => (await rx.receive({ timeout: 10_000 })).data);
      await sender.exit;
      assert.ok(sender.lines.includes('sent'), `the sender finished: ${sender.stderr()}`);
      await assert.rejects(rx.receive({ nonblock: true }), { code: 'WOULD_BLOCK' });
    });
  }
});
