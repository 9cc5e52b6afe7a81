/**
 * Kernels on a NATS cluster of three servers (clustered JetStream, names kept in R3 buckets): each
 * server in turn is killed under traffic and restarted; the kernels fail over by themselves and no
 * acknowledged message is lost or delivered twice.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { connect, IpcError, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir, waitFor } from '../helpers/kernel-harness.js';
import { type NatsCluster, startNatsCluster } from '../helpers/nats-harness.js';

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

test('each NATS server of three killed under traffic in turn: kernels fail over, no acknowledged message lost or doubled', async () => {
  const nats: NatsCluster = await startNatsCluster(3);
  cleanup.push(() => nats.stop());
  const dir = tempDir('ipcbox-natsc-');
  const servers = nats.urls.join(',');
  // A JetStream meta leader takes a moment to be elected: the kernels retry their start until then.
  const start = async (node: string): Promise<ClusterKernel> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await startClusterKernel(dir, node, servers, { replicas: 3, deadAfterMs: 12_000 });
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  const a = await start('ca');
  const b = await start('cb');
  cleanup.push(() => {
    for (const k of [a, b]) k.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const owner: IpcProcess = await connect({ socketPath: a.socketPath, name: 'owner' });
  const producer: IpcProcess = await connect({ socketPath: b.socketPath, name: 'producer' });
  const consumer: IpcProcess = await connect({ socketPath: a.socketPath, name: 'consumer' });
  cleanup.push(() =>
    Promise.all([owner, producer, consumer].map((p) => p.close().catch(() => undefined))).then(
      () => undefined,
    ),
  );
  await owner.createMailbox('orders', { capacity: 32, owner: 'system' });
  let box: Awaited<ReturnType<IpcProcess['openMailbox']>> | undefined;
  await waitFor(async () => {
    box = await producer.openMailbox('orders').catch(() => undefined);
    return box !== undefined;
  }, 10_000);
  const inbox = await consumer.openMailbox('orders');
  const n = 4000;
  const resolved: number[] = [];
  const failed: { i: number; code: string }[] = [];
  const sending = (async () => {
    for (let i = 0; i < n; i++) {
      await (box as NonNullable<typeof box>).send(i).then(
        () => resolved.push(i),
        (e: unknown) => failed.push({ i, code: e instanceof IpcError ? e.code : String(e) }),
      );
    }
  })();
  const got: number[] = [];
  const receiving = (async () => {
    while (got.length < resolved.length + (n - resolved.length - failed.length)) {
      const m = await inbox.receive({ ack: true, timeout: 20_000 }).catch(() => undefined);
      if (m === undefined) return;
      got.push(m.data as number);
      m.ack();
    }
  })();
  // Each server in turn is killed under traffic and brought back (one down at a time keeps the
  // JetStream quorum): whichever server a kernel is connected to, it has to fail over at least once.
  for (let i = 0; i < 3; i++) {
    const before = got.length;
    await waitFor(() => got.length > before + 300, 60_000, `traffic before killing s${i}`);
    await (nats.servers[i] as NonNullable<(typeof nats.servers)[0]>).kill();
    await waitFor(() => got.length > before + 600, 60_000, `traffic with s${i} down`);
    await nats.restart(i);
  }
  await sending;
  await receiving;
  assert.deepEqual(failed, [], 'no send failed across the failovers');
  assert.deepEqual(got, resolved, 'every acknowledged send arrived exactly once, in order');
});
