/**
 * Map and the cluster: a sender that maps its large payloads (the default)
 * still reaches mailboxes and processes on another node, and durable
 * mailboxes, with every byte: the kernel copies a mapped payload into the
 * frame that leaves the host (or into the durable store), and flags the
 * remote mailbox's credits COPY so credited sends to it carry their bytes.
 * Real kernels (separate OS processes) and a real nats-server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess } from '../../src/index.js';
import { intact, patterned } from '../fixtures/map-pattern.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

const MIB = 1024 * 1024;

describe('map across nodes', () => {
  let nats: NatsServer;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];
  const on = async (k: ClusterKernel, name: string) => {
    const p = await connect({ socketPath: k.socketPath, name, map: { chunks: 4 } });
    clients.push(p);
    return p;
  };

  before(async () => {
    nats = await startNatsServer();
    const dir = tempDir('ipcbox-map-cluster-');
    [a, b] = await Promise.all([
      startClusterKernel(dir, 'ma', nats.url),
      startClusterKernel(dir, 'mb', nats.url),
    ]);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const k of [a, b]) k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  test('large messages to a mailbox on another node arrive intact, credited ones included', async () => {
    const owner = await on(b, 'far-owner');
    const box = await owner.createMailbox('far-box', { capacity: 64 });
    const sender = await on(a, 'near-sender');
    await waitFor(
      async () => (await sender.status()).cluster?.remote.some((r) => r.name === 'far-box') === true,
      10_000,
      'far-box in the names mirror',
    );
    // A large send to a local mailbox first sets the sender's region up, so its first send to the
    // far mailbox (a request: no credit yet) goes by map and is copied out by this kernel.
    const near = await sender.createMailbox('near-box', { capacity: 4 });
    await near.send(patterned(0, MIB));
    const out = await sender.openMailbox('far-box');
    // Then credit comes (flagged COPY) and is spent by the sends that follow.
    for (let seq = 1; seq <= 12; seq++) await out.send(patterned(seq, MIB));
    for (let seq = 1; seq <= 12; seq++) {
      const m = await box.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.equal(m.mapped, false, 'it crossed nodes as bytes');
      assert.ok(intact(m.bytes), `message ${seq} intact`);
    }
  });

  test('a large message to a durable mailbox is stored with its bytes', async () => {
    const producer = await on(a, 'durable-producer');
    const box = await producer.createMailbox('map-ledger', { durable: true, owner: 'system', capacity: 16 });
    // The first large send is copied while the region is set up; the next two by map.
    // 256 KiB: NATS's own limit on a stored message is 1 MiB.
    for (let seq = 1; seq <= 3; seq++) await box.send(patterned(seq, 256 * 1024));
    for (let seq = 1; seq <= 3; seq++) {
      const m = await box.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.ok(intact(m.bytes), `durable message ${seq} intact`);
    }
  });
});
