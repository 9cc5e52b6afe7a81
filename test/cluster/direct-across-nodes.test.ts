/**
 * Direct naming across the kernels of a cluster (separate OS processes, a real nats-server): a
 * process's code does not change when its peer is on another node. send(P, m) reaches P with the
 * sender named; receive({ from }) picks one sender among local and remote ones; a stream keeps its
 * order; waitForProcess finds a process that connects on another node; the home kernel's inbox decides blocking, timeouts and would-block; signals and monitors
 * cross; a monitored process whose kernel is SIGKILLed is reported `node-down`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  connect,
  type ExitEvent,
  type IpcError,
  type IpcProcess,
  type SignalEvent,
} from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

describe('direct naming across nodes', () => {
  let nats: NatsServer;
  let dir: string;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];
  const on = async (k: ClusterKernel, name: string, extra: { inboxCapacity?: number } = {}) => {
    const p = await connect({ socketPath: k.socketPath, name, ...extra });
    clients.push(p);
    return p;
  };
  /** Wait until `from` can see `name` held on the other node (the names mirror is a watch). */
  const seen = (from: IpcProcess, name: string) =>
    waitFor(
      async () => (await from.status()).cluster?.remote.some((r) => r.name === name) === true,
      5000,
      name,
    );

  before(async () => {
    nats = await startNatsServer();
    dir = tempDir('ipcbox-direct-');
    [a, b] = await Promise.all([
      startClusterKernel(dir, 'da', nats.url),
      startClusterKernel(dir, 'db', nats.url),
    ]);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const k of [a, b]) k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  test('send(P, m) reaches a process on another node, sender named; it replies the same way', async () => {
    const alice = await on(a, 'alice');
    const bob = await on(b, 'bob');
    await seen(alice, 'bob');
    await alice.send('bob', { hello: 'from a' });
    const m = await bob.receive({ timeout: 5000 });
    assert.deepEqual(m.data, { hello: 'from a' });
    assert.equal(m.sender, 'alice');
    await bob.send('alice', 'back from b');
    const r = await alice.receive({ from: 'bob', timeout: 5000 });
    assert.equal(r.data, 'back from b');
    assert.equal(r.sender, 'bob');
  });

  test('waitForProcess finds a process on another node, connected already or later', async () => {
    await on(b, 'early-bird');
    const waiter = await on(a, 'waiter');
    await seen(waiter, 'early-bird');
    assert.equal((await waiter.waitForProcess('early-bird', { timeout: 5000 })).name, 'early-bird');
    const late = waiter.waitForProcess('late-comer', { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    const comer = await on(b, 'late-comer');
    assert.equal((await late).name, 'late-comer');
    await waiter.send('late-comer', 'you made it');
    assert.equal((await comer.receive({ timeout: 5000 })).data, 'you made it');
  });

  test('receive({ from }) picks one sender among a local and a remote one', async () => {
    const carol = await on(b, 'carol');
    const dan = await on(a, 'dan');
    const erin = await on(b, 'erin');
    await seen(dan, 'carol');
    await erin.send('carol', 'local 1');
    await dan.send('carol', 'remote 1');
    await erin.send('carol', 'local 2');
    await dan.send('carol', 'remote 2');
    const fromDan = [
      await carol.receive({ from: 'dan', timeout: 5000 }),
      await carol.receive({ from: 'dan', timeout: 5000 }),
    ];
    assert.deepEqual(
      fromDan.map((m) => m.data),
      ['remote 1', 'remote 2'],
    );
    const rest = [await carol.receive({ timeout: 5000 }), await carol.receive({ timeout: 5000 })];
    assert.deepEqual(
      rest.map((m) => [m.sender, m.data]),
      [
        ['erin', 'local 1'],
        ['erin', 'local 2'],
      ],
    );
  });

  test('a stream of 3000 sends arrives complete and in order', async () => {
    const src = await on(a, 'streamer');
    const dst = await on(b, 'sink');
    await seen(src, 'sink');
    const n = 3000;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < n; i++) sends.push(src.send('sink', i));
    await Promise.all(sends);
    for (let i = 0; i < n; i++) assert.equal((await dst.receive({ timeout: 10_000 })).data, i);
  });

  test("the home kernel's inbox decides: bounded, would-block, timeout", async () => {
    const small = await on(b, 'small', { inboxCapacity: 1 });
    const pusher = await on(a, 'pusher');
    await seen(pusher, 'small');
    await pusher.send('small', 1);
    await assert.rejects(pusher.trySend('small', 2), (e: IpcError) => e.code === 'WOULD_BLOCK');
    const t0 = performance.now();
    await assert.rejects(pusher.send('small', 3, { timeout: 300 }), (e: IpcError) => e.code === 'TIMEOUT');
    assert.ok(performance.now() - t0 >= 250, 'the timeout ran its course');
    const blocked = pusher.send('small', 4);
    assert.equal((await small.receive({ timeout: 5000 })).data, 1);
    await blocked;
    assert.equal((await small.receive({ timeout: 5000 })).data, 4, 'a blocked sender went in when room came');
  });

  test('a receive waiting on a mailbox whose home kernel is SIGKILLed fails MAILBOX_CLOSED', async () => {
    const c = await startClusterKernel(dir, 'dd', nats.url);
    const owner = await connect({ socketPath: c.socketPath, name: 'mb-owner' });
    await owner.createMailbox('doomed-box', { owner: 'system' });
    const reader = await on(a, 'doomed-reader');
    let box: Awaited<ReturnType<IpcProcess['openMailbox']>> | undefined;
    await waitFor(async () => {
      box = await reader.openMailbox('doomed-box').catch(() => undefined);
      return box !== undefined;
    }, 5000);
    const waiting = box!.receive({ timeout: 20_000 });
    waiting.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    owner.removeAllListeners();
    c.child.kill('SIGKILL');
    await assert.rejects(waiting, (e: IpcError) => e.code === 'MAILBOX_CLOSED' && /dd/.test(e.message));
  });

  test('signals cross nodes; a monitor sees a normal exit, and node-down when the kernel is killed', async () => {
    const watcher = await on(a, 'watcher');
    const target = await on(b, 'target');
    const signals: SignalEvent[] = [];
    target.on('signal', (e) => signals.push(e));
    await seen(watcher, 'target');
    await watcher.signal('target', 'reload', { level: 2 });
    await waitFor(() => signals.length === 1, 5000, 'the signal');
    assert.equal(signals[0]?.type, 'reload');
    assert.equal(signals[0]?.from, 'watcher');
    assert.deepEqual(signals[0]?.payload, { level: 2 });

    const exits: ExitEvent[] = [];
    watcher.on('exit', (e) => exits.push(e));
    await watcher.monitor('target');
    await target.close();
    await waitFor(() => exits.length === 1, 5000, 'the exit');
    assert.equal(exits[0]?.process, 'target');
    assert.equal(exits[0]?.reason, 'normal');

    const c = await startClusterKernel(dir, 'dc', nats.url);
    const doomed = await connect({ socketPath: c.socketPath, name: 'doomed' });
    await seen(watcher, 'doomed');
    await watcher.monitor('doomed');
    const t0 = performance.now();
    c.child.kill('SIGKILL');
    await waitFor(() => exits.length === 2, 8000, 'node-down');
    assert.equal(exits[1]?.process, 'doomed');
    assert.equal(exits[1]?.reason, 'node-down');
    assert.ok(performance.now() - t0 <= 5500, 'within the stated 5 s');
    doomed.removeAllListeners();
    await assert.rejects(watcher.send('doomed', 'anyone?'), (e: IpcError) =>
      ['NO_SUCH_PROCESS', 'CLUSTER_UNAVAILABLE'].includes(e.code),
    );
  });
});
