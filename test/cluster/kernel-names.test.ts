/**
 * Kernels in one cluster (separate OS processes, one real nats-server) share one namespace: a
 * process or mailbox name held on one kernel is refused on another, and freed when its holder goes
 * — at once when it leaves, within the stated bound when its kernel is SIGKILLed. Status shows the
 * nodes and what lives where; a mailbox that lives on another node opens from this one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, IpcError, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    assert.ok(e instanceof IpcError, String(e));
    return e.code;
  }
}

describe('names across the kernels of a cluster', () => {
  let nats: NatsServer;
  let dir: string;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];
  const on = async (k: ClusterKernel, name?: string) => {
    const p = await connect({ socketPath: k.socketPath, ...(name === undefined ? {} : { name }) });
    clients.push(p);
    return p;
  };

  before(async () => {
    nats = await startNatsServer();
    dir = tempDir('ipcbox-cluster-');
    [a, b] = await Promise.all([
      startClusterKernel(dir, 'node-a', nats.url),
      startClusterKernel(dir, 'node-b', nats.url),
    ]);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const k of [a, b]) k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  test('a process name held on one kernel is refused on the other, and free again once it exits', async () => {
    const bobA = await on(a, 'bob');
    assert.equal(await codeOf(connect({ socketPath: b.socketPath, name: 'bob' })), 'NAME_TAKEN');
    await bobA.close();
    await waitFor(async () => (await codeOf(on(b, 'bob'))) === 'resolved', 5000, 'bob free on node-b');
  });

  test('a mailbox name held on one kernel is refused on the other (MAILBOX_EXISTS), free once deleted', async () => {
    const pa = await on(a);
    const pb = await on(b);
    assert.match(pa.name, /^proc-\d+\.node-a$/, 'assigned names carry the node');
    const jobs = await pa.createMailbox('jobs', { owner: 'system' });
    assert.equal(await codeOf(pb.createMailbox('jobs')), 'MAILBOX_EXISTS');
    assert.equal(await codeOf(pa.createMailbox('jobs')), 'MAILBOX_EXISTS');
    await jobs.delete();
    await waitFor(
      async () => (await codeOf(pb.createMailbox('jobs', { owner: 'system' }))) === 'resolved',
      5000,
    );
  });

  test('status shows both nodes and the names that live on the other one', async () => {
    const carol = await on(a, 'carol');
    await carol.createMailbox('carol-box');
    const pb = await on(b);
    await waitFor(async () => {
      const st = await pb.status();
      return (
        st.cluster?.remote.some((r) => r.kind === 'process' && r.name === 'carol' && r.node === 'node-a') ===
          true &&
        st.cluster.remote.some((r) => r.kind === 'mailbox' && r.name === 'carol-box' && r.node === 'node-a')
      );
    }, 5000);
    const st = await pb.status();
    assert.equal(st.cluster?.node, 'node-b');
    assert.deepEqual(st.cluster?.nodes.map((n) => n.node).sort(), ['node-a', 'node-b']);
    assert.equal(st.cluster?.nodes.find((n) => n.self)?.node, 'node-b');
  });

  test('a mailbox that lives on another node opens from this one; an absent one is NO_SUCH_*', async () => {
    const pa = await on(a);
    const here = await pa.createMailbox('a-only');
    const pb = await on(b);
    let there: Awaited<ReturnType<IpcProcess['openMailbox']>> | undefined;
    await waitFor(async () => {
      there = await pb.openMailbox('a-only').catch(() => undefined);
      return there !== undefined;
    }, 5000);
    assert.equal((await there!.stat()).name, 'a-only');
    await there!.send('across');
    assert.equal((await here.receive({ timeout: 5000 })).data, 'across');
    assert.equal(await codeOf(pb.send('nobody-at-all', 'hi')), 'NO_SUCH_PROCESS');
    assert.equal(await codeOf(pb.openMailbox('no-such-box')), 'NO_SUCH_MAILBOX');
  });

  test('the names of a SIGKILLed kernel are free on the others within 5 s', async () => {
    const c = await startClusterKernel(dir, 'node-c', nats.url);
    const eve = await connect({ socketPath: c.socketPath, name: 'eve' });
    await eve.createMailbox('eve-box', { owner: 'system' });
    const pb = await on(b);
    assert.equal(await codeOf(connect({ socketPath: b.socketPath, name: 'eve' })), 'NAME_TAKEN');
    const t0 = performance.now();
    c.child.kill('SIGKILL');
    await waitFor(async () => (await codeOf(on(b, 'eve'))) === 'resolved', 8000, 'eve free on node-b');
    await waitFor(async () => (await codeOf(pb.createMailbox('eve-box'))) === 'resolved', 8000);
    const took = performance.now() - t0;
    assert.ok(took <= 5500, `freed ${Math.round(took)} ms after SIGKILL (bound 5 s)`);
  });
});
