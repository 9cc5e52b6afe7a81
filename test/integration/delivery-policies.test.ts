/**
 * Delivery policies with three receiver processes on one mailbox:
 * round-robin rotates exactly, broadcast copies every message to each,
 * exclusive refuses a second receiver, arbitrary spreads messages over all
 * ready receivers with none lost or duplicated.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox, type MailboxInfo } from '../../src/index.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

describe('delivery policies across three receiver processes', () => {
  let daemon: Daemon;
  let me: IpcProcess;

  async function receivers(prefix: string, mailbox: string): Promise<RemotePeer[]> {
    const rs = await Promise.all(
      [1, 2, 3].map((i) => RemotePeer.start(daemon.socketPath, `${prefix}-r${i}`)),
    );
    for (const r of rs) await r.ok('open', { mailbox });
    return rs;
  }

  async function until(mb: Mailbox, what: string, ok: (s: MailboxInfo) => boolean): Promise<void> {
    await waitFor(async () => ok(await mb.stat()), 15_000, `${mb.name}: ${what}`);
  }

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'policy-test' });
  });

  after(async () => {
    await stopAll();
    await me?.close();
    await daemon?.stop();
  });

  test('round-robin: with every receiver blocked in receive, messages go r1, r2, r3, r1, ... exactly', async () => {
    const mb = await me.createMailbox('rr', { delivery: 'round-robin', capacity: 'unbounded' });
    const rs = await receivers('rr', 'rr');
    const ROUNDS = 5;
    // Attach in order r1, r2, r3: the rotation follows attach order. Each receives
    // one more than it will get, so all three stay parked until the last send.
    for (const [i, r] of rs.entries()) {
      r.start('consume', { mailbox: 'rr', count: ROUNDS + 1 });
      await until(mb, `${i + 1} receivers parked`, (s) => s.waitingReceivers === i + 1);
    }
    for (let i = 0; i < 3 * ROUNDS; i++) {
      await until(mb, 'all three parked again', (s) => s.waitingReceivers === 3 || i === 0);
      await mb.send(i);
      await waitFor(
        () => rs.reduce((n, r) => n + r.messages().length, 0) === i + 1,
        15_000,
        `message ${i} delivered`,
      );
    }
    const gotBy = new Map<number, string>();
    for (const r of rs) for (const m of r.messages<number>()) gotBy.set(m.data, r.name);
    const order = Array.from({ length: 3 * ROUNDS }, (_, i) => gotBy.get(i));
    assert.deepEqual(
      order,
      Array.from({ length: 3 * ROUNDS }, (_, i) => rs[i % 3]!.name),
    );
    await mb.delete();
  });

  test('broadcast: each of three receivers gets its own copy of every message, in order', async () => {
    const N = 40;
    const mb = await me.createMailbox('bc', { delivery: 'broadcast', capacity: 16 });
    const rs = await receivers('bc', 'bc');
    const done = rs.map((r) => r.start('consume', { mailbox: 'bc', count: N }));
    await until(mb, 'three receivers attached', (s) => s.attached === 3 && s.waitingReceivers === 3);
    for (let i = 0; i < N; i++) await mb.send(i);
    for (const d of done) assert.ok((await d.reply).ok);
    for (const r of rs) {
      assert.deepEqual(
        r.messages<number>().map((m) => m.data),
        Array.from({ length: N }, (_, i) => i),
        `${r.name} got every message once, in order`,
      );
    }
    await mb.delete();
  });

  test('exclusive: a second receiver process gets RECEIVER_BUSY; once the first is gone another may receive', async () => {
    const mb = await me.createMailbox('ex', { delivery: 'exclusive', capacity: 8 });
    const [r1, r2, r3] = await receivers('ex', 'ex');
    assert.equal(
      (await r1!.call('receive', { mailbox: 'ex', options: { nonblock: true } })).code,
      'WOULD_BLOCK',
      'r1 attached',
    );
    assert.equal(
      (await r2!.fails('receive', { mailbox: 'ex', options: { nonblock: true } })).code,
      'RECEIVER_BUSY',
    );
    assert.equal(
      (await r3!.fails('receive', { mailbox: 'ex', options: { timeout: 1000 } })).code,
      'RECEIVER_BUSY',
    );
    await mb.send('for r1');
    assert.equal((await r1!.ok<PeerMessage>('receive', { mailbox: 'ex' })).data, 'for r1');
    // A round trip from r1 after its receive: the kernel has seen r1 take the message
    // (otherwise r1 dying would hand it on, as for any delivery not yet taken).
    await r1!.ok('stat', { mailbox: 'ex' });

    await r1!.kill('SIGKILL');
    await until(mb, 'r1 detached', (s) => s.attached === 0);
    await mb.send('for r2');
    assert.equal((await r2!.ok<PeerMessage>('receive', { mailbox: 'ex' })).data, 'for r2');
    assert.equal(
      (await r3!.fails('receive', { mailbox: 'ex', options: { nonblock: true } })).code,
      'RECEIVER_BUSY',
    );
    await mb.delete();
  });

  test('arbitrary: 300 messages spread over all three receivers, exactly 300 in total, no duplicates', async () => {
    const N = 300;
    const mb = await me.createMailbox('arb', { delivery: 'arbitrary', capacity: 'unbounded' });
    const rs = await receivers('arb', 'arb');
    // Standing demand (prefetch) keeps every receiver ready, so the policy alone decides.
    for (const r of rs) r.start('consume', { mailbox: 'arb', iterate: true, prefetch: N });
    await until(mb, 'three receivers attached', (s) => s.attached === 3);
    for (let i = 0; i < N; i++) await mb.send(i);
    const total = () => rs.reduce((n, r) => n + r.messages().length, 0);
    await waitFor(() => total() >= N, 15_000, 'all messages delivered');
    const all = rs.flatMap((r) => r.messages<number>().map((m) => m.data));
    assert.equal(all.length, N);
    assert.equal(new Set(all).size, N, 'no message was delivered twice');
    for (const r of rs) assert.ok(r.messages().length > 0, `${r.name} got some (${r.messages().length})`);
    const byOrder = new Map<number, string>();
    for (const r of rs) for (const m of r.messages<number>()) byOrder.set(m.data, r.name);
    const strictRotation = Array.from({ length: N }, (_, i) => byOrder.get(i)).every(
      (n, i, a) => i < 3 || n === a[i - 3],
    );
    assert.equal(strictRotation, false, 'the spread is not a fixed rotation');
    assert.equal((await mb.stat()).depth, 0);
    await mb.delete();
  });
});
