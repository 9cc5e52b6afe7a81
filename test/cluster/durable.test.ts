/**
 * Durable mailboxes (JetStream, Debian's nats-server 2.9): messages survive a SIGKILL of the home
 * kernel, and of the whole host (the NATS server killed too, restarted from its store); the
 * restarted kernel serves them again in order; acknowledged ones are gone, unacknowledged ones come
 * back; a deleted durable mailbox is not restored. Without a cluster, durable is NOT_SUPPORTED.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcError, type IpcProcess, startKernel } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

async function openWhenServed(socketPath: string, name: string) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const p = await connect({ socketPath, name: `reader-${Date.now()}` });
      try {
        return { p, box: await p.openMailbox(name) };
      } catch (e) {
        await p.close();
        throw e;
      }
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('durable mailboxes', () => {
  let nats: NatsServer;
  let dir: string;
  let k: ClusterKernel;
  const open: IpcProcess[] = [];
  before(async () => {
    nats = await startNatsServer();
    dir = tempDir('ipcbox-durable-');
    k = await startClusterKernel(dir, 'keeper', nats.url);
  });
  after(async () => {
    for (const p of open) await p.close().catch(() => undefined);
    k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  test('without a cluster a durable mailbox is NOT_SUPPORTED; it must be system-owned', async () => {
    const solo = await startKernel({ socketPath: join(tempDir(), 'solo.sock') });
    const p = await connect({ socketPath: solo.socketPath });
    await assert.rejects(
      p.createMailbox('d', { durable: true, owner: 'system' }),
      (e: IpcError) => e.code === 'NOT_SUPPORTED',
    );
    await assert.rejects(p.createMailbox('d', { durable: true }), RangeError);
    await p.close();
    await solo.close();
  });

  test('messages survive a SIGKILL of the home kernel: acknowledged ones gone, the rest in order', async () => {
    const producer = await connect({ socketPath: k.socketPath, name: 'producer' });
    const box = await producer.createMailbox('ledger', { durable: true, owner: 'system', capacity: 100 });
    assert.equal((await box.stat()).durable, true);
    for (let i = 0; i < 50; i++) await box.send({ entry: i }, { priority: i % 10 === 0 ? 1 : 0 });
    const reader = await connect({ socketPath: k.socketPath, name: 'reader' });
    const rb = await reader.openMailbox('ledger');
    const order: number[] = [];
    for (let i = 0; i < 10; i++) {
      const m = await rb.receive({ ack: true, timeout: 5000 });
      order.push((m.data as { entry: number }).entry);
      m.ack();
    }
    const unacked: number[] = [];
    for (let i = 0; i < 5; i++)
      unacked.push(((await rb.receive({ ack: true, timeout: 5000 })).data as { entry: number }).entry);
    // Acks travel on the reader's connection; a round trip makes sure the kernel has them.
    await rb.stat();
    await new Promise((r) => setTimeout(r, 300));
    k.child.kill('SIGKILL');
    await new Promise((r) => k.child.once('exit', r));
    k = await startClusterKernel(dir, 'keeper', nats.url);
    const { p, box: again } = await openWhenServed(k.socketPath, 'ledger');
    open.push(p);
    const rest: number[] = [];
    for (;;) {
      const m = await again.receive({ ack: true, timeout: 2000 }).catch(() => undefined);
      if (m === undefined) break;
      rest.push((m.data as { entry: number }).entry);
      m.ack();
    }
    // Priority 1 first (0, 10, 20, 30, 40), then the others in order — minus the 10 acknowledged.
    const all = [0, 10, 20, 30, 40, ...Array.from({ length: 50 }, (_, i) => i).filter((i) => i % 10 !== 0)];
    assert.deepEqual(order, all.slice(0, 10));
    assert.deepEqual(unacked, all.slice(10, 15));
    assert.deepEqual(rest, all.slice(10), 'the unacknowledged five first, then everything not yet delivered');
  });

  test('messages survive the whole host: kernel and NATS server killed, both restarted', async () => {
    const p = await connect({ socketPath: k.socketPath, name: 'host-writer' });
    open.push(p);
    const box = await p.createMailbox('host-ledger', { durable: true, owner: 'system' });
    for (let i = 0; i < 20; i++) await box.send(`line ${i}`);
    k.child.kill('SIGKILL');
    await nats.kill();
    await new Promise((r) => setTimeout(r, 200));
    nats = await startNatsServer({ port: nats.port, storeDir: nats.storeDir });
    k = await startClusterKernel(dir, 'keeper', nats.url);
    const { p: r, box: again } = await openWhenServed(k.socketPath, 'host-ledger');
    open.push(r);
    const got: string[] = [];
    for (let i = 0; i < 20; i++) got.push(String((await again.receive({ timeout: 5000 })).data));
    assert.deepEqual(
      got,
      Array.from({ length: 20 }, (_, i) => `line ${i}`),
    );
    await assert.rejects(again.receive({ nonblock: true }), (e: IpcError) => e.code === 'WOULD_BLOCK');
  });

  test('a deleted durable mailbox is not restored', async () => {
    const p = await connect({ socketPath: k.socketPath, name: 'deleter' });
    const box = await p.createMailbox('short-lived', { durable: true, owner: 'system' });
    await box.send('gone with it');
    await box.delete();
    await p.close();
    k.child.kill('SIGKILL');
    await new Promise((r) => k.child.once('exit', r));
    k = await startClusterKernel(dir, 'keeper', nats.url);
    const q = await connect({ socketPath: k.socketPath, name: 'checker' });
    open.push(q);
    await assert.rejects(q.openMailbox('short-lived'), (e: IpcError) => e.code === 'NO_SUCH_MAILBOX');
  });
});
