/**
 * Direct naming between real processes: send(P, m) to a process's inbox,
 * receive from anyone (the message names its sender) or symmetrically from
 * one process, FIFO order on each link, signals as events, monitors with exit
 * reasons.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type ExitEvent, type IpcProcess, type SignalEvent } from '../../src/index.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

describe('direct naming across processes', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  const signals: SignalEvent[] = [];
  const exits: ExitEvent[] = [];

  async function peer(name: string): Promise<RemotePeer> {
    return RemotePeer.start(daemon.socketPath, name);
  }

  /** Messages waiting for me: in the kernel, or here (those that came over a one-hop link). */
  async function myInboxDepth(): Promise<number> {
    return (await me.peek({ count: 100 })).messages.length;
  }

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'dn-test' });
    me.on('signal', (e) => signals.push(e));
    me.on('exit', (e) => exits.push(e));
  });

  after(async () => {
    await stopAll();
    await me?.close();
    await daemon?.stop();
  });

  test('send(P, m) reaches P; receive from anyone reports each sender by name and pid', async () => {
    const a = await peer('dn-a');
    const b = await peer('dn-b');
    await a.ok('send', { to: 'dn-test', value: 'hello from a' });
    await b.ok('send', { to: '@dn-test', value: { from: 'b' } });
    const first = await me.receive({ timeout: 10_000 });
    const second = await me.receive({ timeout: 10_000 });
    const bySender = new Map([first, second].map((m) => [m.sender, m]));
    assert.equal(bySender.get('dn-a')?.data, 'hello from a');
    assert.deepEqual(bySender.get('dn-b')?.data, { from: 'b' });
    assert.equal(first.mailbox, '@dn-test');
    assert.notEqual(first.senderPid, second.senderPid);
    const table = await me.listProcesses();
    assert.equal(bySender.get('dn-a')!.senderPid, table.find((p) => p.name === 'dn-a')!.pid);

    await me.send('dn-a', 'and back');
    const back = await a.ok<PeerMessage>('receive', { options: { timeout: 10_000 } });
    assert.equal(back.data, 'and back');
    assert.equal(back.sender, 'dn-test');
  });

  test("receive({ from: Q }) waits for Q only: R's message stays queued meanwhile", async () => {
    const q = await peer('dn-q');
    const r = await peer('dn-r');
    await r.ok('send', { to: 'dn-test', value: 'from r' });
    await waitFor(async () => (await myInboxDepth()) === 1, 10_000, "R's message in my inbox");
    await assert.rejects(me.receive({ from: 'dn-q', nonblock: true }), { code: 'WOULD_BLOCK' });
    let settled = false;
    const fromQ = me.receive({ from: 'dn-q', timeout: 30_000 }).finally(() => {
      settled = true;
    });
    // Two round trips: the filtered receive has reached the kernel and is parked there.
    await me.listProcesses();
    await me.listProcesses();
    assert.equal(settled, false, "R's message does not satisfy a receive from Q");
    assert.equal(await myInboxDepth(), 1, "R's message is still queued");
    await q.ok('send', { to: 'dn-test', value: 'from q' });
    const m = await fromQ;
    assert.equal(m.sender, 'dn-q');
    assert.equal(m.data, 'from q');
    const rest = await me.receive({ nonblock: true });
    assert.equal(rest.sender, 'dn-r');
    assert.equal(rest.data, 'from r');

    // Symmetric in the other direction too: the peer waits for me only.
    await r.ok('send', { to: 'dn-q', value: 'r to q' });
    const qWaits = q.start<PeerMessage>('receive', { options: { from: 'dn-test', timeout: 30_000 } });
    await me.send('dn-q', 'me to q');
    assert.equal(expectData(await qWaits.reply), 'me to q');
    assert.equal((await q.ok<PeerMessage>('receive', { options: { nonblock: true } })).sender, 'dn-r');
  });

  test('FIFO order per link: 1000 messages from each of two processes arrive in send order', async () => {
    const N = 1000;
    const a = await peer('dn-fifo-a');
    const b = await peer('dn-fifo-b');
    const sends = [
      a.ok('sendMany', { to: 'dn-test', count: N }),
      b.ok('sendMany', { to: 'dn-test', count: N, start: 10_000 }),
    ];
    const got = new Map<string, number[]>([
      ['dn-fifo-a', []],
      ['dn-fifo-b', []],
    ]);
    for (let i = 0; i < 2 * N; i++) {
      const m = await me.receive({ timeout: 30_000 });
      got.get(m.sender)!.push(m.data as number);
    }
    await Promise.all(sends);
    assert.deepEqual(
      got.get('dn-fifo-a'),
      Array.from({ length: N }, (_, i) => i),
    );
    assert.deepEqual(
      got.get('dn-fifo-b'),
      Array.from({ length: N }, (_, i) => 10_000 + i),
    );

    for (let i = 0; i < N; i++) await me.send('dn-fifo-a', i);
    assert.equal(await a.ok('consume', { count: N, tag: 'fifo-back' }), N);
    assert.deepEqual(
      a.messages<number>('fifo-back').map((m) => m.data),
      Array.from({ length: N }, (_, i) => i),
    );
  });

  test("signals arrive as 'signal' events with sender, type and payload", async () => {
    const s = await peer('dn-sig');
    await me.signal('dn-sig', 'reload', { level: 2 });
    const e = await s.waitEvent('signal');
    assert.deepEqual(
      { from: e.from, type: e.type, payload: e.payload },
      { from: 'dn-test', type: 'reload', payload: { level: 2 } },
    );
    await s.ok('signal', { to: 'dn-test', type: 'ping', payload: 'pong?' });
    await waitFor(() => signals.some((x) => x.type === 'ping'), 10_000, 'the signal at the test process');
    assert.deepEqual(
      signals.find((x) => x.type === 'ping'),
      { from: 'dn-sig', type: 'ping', payload: 'pong?' },
    );
  });

  test("monitor: 'exit' with reason 'normal' after close(), 'lost' after SIGKILL", async () => {
    const polite = await peer('dn-polite');
    const crash = await peer('dn-crash');
    await me.monitor('dn-polite');
    await me.monitor('dn-crash');
    const pids = new Map((await me.listProcesses()).map((p) => [p.name, p.pid]));

    await polite.ok('close');
    await waitFor(() => exits.some((e) => e.process === 'dn-polite'), 10_000, 'exit of dn-polite');
    assert.deepEqual(
      exits.find((e) => e.process === 'dn-polite'),
      { process: 'dn-polite', pid: pids.get('dn-polite'), reason: 'normal' },
    );

    await crash.kill('SIGKILL');
    await waitFor(() => exits.some((e) => e.process === 'dn-crash'), 10_000, 'exit of dn-crash');
    assert.deepEqual(
      exits.find((e) => e.process === 'dn-crash'),
      { process: 'dn-crash', pid: pids.get('dn-crash'), reason: 'lost' },
    );

    const watcher = await peer('dn-watcher');
    const target = await peer('dn-target');
    await watcher.ok('monitor', { name: 'dn-target' });
    await target.kill('SIGKILL');
    const e = await watcher.waitEvent('exit', (x) => x.process === 'dn-target');
    assert.equal(e.reason, 'lost', 'another process monitoring sees the same');
    await assert.rejects(me.send('dn-target', 'too late'), { code: 'NO_SUCH_PROCESS' });
  });
});

function expectData(r: { ok: boolean; value: PeerMessage; message?: string }): unknown {
  assert.ok(r.ok, r.message);
  return r.value.data;
}
