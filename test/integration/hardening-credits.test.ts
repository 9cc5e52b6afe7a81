/**
 * Hardening of credits and links: what a sender may do within credit, what
 * a revocation round waits for, and which refusals end only the operation
 * they answer.
 *
 * - r11: iterating without the receive right fails the iterator with
 *   PERMISSION_DENIED, an exclusive mailbox already taken with
 *   RECEIVER_BUSY; the process's connection stays alive.
 * - r08: two handles on one mailbox in one process: closing one leaves the
 *   other working (the link is shared); the closed one rejects MAILBOX_CLOSED.
 * - r16: a sender whose send right was revoked gets PERMISSION_DENIED, also
 *   after a synchronous send of its completes; the mailbox does not grow.
 * - r10: a holder returning its credit unasked does not end a revocation
 *   round: a non-blocking send never reports WOULD_BLOCK while room is
 *   being returned.
 * - A holder that never answers REVOKE does not freeze other senders: its
 *   credit is voided at the deadline (revokeTimeout, default 1000 ms).
 * - r07: per-sender FIFO holds across a synchronous send, and across a
 *   payload larger than the byte credit, followed by sends within credit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox, type MailboxInfo } from '../../src/index.js';
import { Op } from '../../src/wire/protocol.js';
import {
  destroyAllRaw,
  frame,
  type KernelHost,
  MiB,
  RawClient,
  startDaemonProcess,
  startKernelHost,
  stopAllKernels,
  tracked,
  u32s,
  within,
} from '../fixtures/hardening-support.js';
import { waitFor } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

/** Wait until `mb` reports `predicate` true. */
function statUntil(mb: Mailbox, predicate: (i: MailboxInfo) => boolean, what: string): Promise<void> {
  return waitFor(async () => predicate(await mb.stat()), 10_000, what);
}

describe('hardening: credits and links', () => {
  let kernel: KernelHost;
  let me: IpcProcess;
  const clients: IpcProcess[] = [];

  /** Another client in this process, closed after the suite. */
  async function client(name: string, socketPath = kernel.socketPath): Promise<IpcProcess> {
    const p = await connect({ socketPath, name });
    clients.push(p);
    return p;
  }

  before(async () => {
    kernel = await startDaemonProcess();
    me = await client('owner');
  });

  after(async () => {
    destroyAllRaw();
    await stopAll();
    await Promise.all(clients.map((p) => p.close()));
    await stopAllKernels();
  });

  test('r11: an iterator refused the receive right or an exclusive mailbox fails alone; the connection lives', async () => {
    const priv = await me.createMailbox('private', { receivers: ['owner'] });
    const solo = await me.createMailbox('solo', { delivery: 'exclusive' });
    const soloReceive = tracked(solo.receive());
    await statUntil(solo, (i) => i.waitingReceivers === 1, 'owner to be the exclusive receiver');

    const b = await RemotePeer.start(kernel.socketPath, 'iterating-b');
    const denied = await within(
      b.call('consume', { mailbox: 'private', iterate: true, count: 1 }),
      5000,
      'the iterator over a mailbox without the receive right',
    );
    assert.equal(denied.ok, false);
    assert.equal(denied.code, 'PERMISSION_DENIED');
    const busy = await within(
      b.call('consume', { mailbox: 'solo', iterate: true, count: 1 }),
      5000,
      'the iterator over a taken exclusive mailbox',
    );
    assert.equal(busy.ok, false);
    assert.equal(busy.code, 'RECEIVER_BUSY');

    // The same process goes on sending and receiving on that connection.
    await b.ok('send', { mailbox: 'private', value: 'still connected' });
    assert.equal((await priv.receive({ timeout: 5000 })).data, 'still connected');
    await b.ok('send', { mailbox: 'solo', value: 'to the exclusive receiver' });
    assert.equal(((await soloReceive.promise) as { data: unknown }).data, 'to the exclusive receiver');
    await b.ok('create', { mailbox: 'b-own' });
    await b.ok('send', { mailbox: 'b-own', value: 42 });
    assert.equal(
      (await b.ok<PeerMessage>('receive', { mailbox: 'b-own', options: { timeout: 5000 } })).data,
      42,
    );
    assert.deepEqual(b.eventsOf('disconnect'), [], 'b was never disconnected');
    await stopAll([b]);
  });

  test('r08: closing one of two handles on a mailbox leaves the other (and the connection) working', async () => {
    const app = await client('app');
    let lost: string | undefined;
    app.on('disconnect', (e) => {
      lost = e.code;
    });
    const h1 = await app.createMailbox('jobs', { capacity: 8, owner: 'system' });
    await h1.send('one');
    await statUntil(h1, (i) => i.promised > 0, 'the kernel to grant app credits');
    const inboxReceive = tracked(app.receive());
    const h2 = await app.openMailbox('jobs');
    await h2.close();

    await within(h1.send('two'), 2000, 'the send through the handle still open');
    await assert.rejects(h2.send('three'), { code: 'MAILBOX_CLOSED' });
    await app.status();
    assert.equal(lost, undefined, 'app kept its connection');
    assert.equal(inboxReceive.settled, false, 'an unrelated pending receive is still pending');

    const peer = await RemotePeer.start(kernel.socketPath, 'jobs-reader');
    assert.equal((await peer.ok<MailboxInfo>('open', { mailbox: 'jobs' })).depth, 2, 'both messages are in');
    for (const v of ['one', 'two']) {
      assert.equal(
        (await peer.ok<PeerMessage>('receive', { mailbox: 'jobs', options: { timeout: 5000 } })).data,
        v,
      );
    }
    await peer.ok('send', { to: 'app', value: 'direct' });
    assert.equal(((await inboxReceive.promise) as { data: unknown }).data, 'direct');
    await stopAll([peer]);
    await h1.delete();
  });

  test('r16: after the owner revokes its send right a sender is refused, also once its sync send completed', async () => {
    const b = await RemotePeer.start(kernel.socketPath, 'revoked-b');
    const mb = await me.createMailbox('r16', { capacity: 64, senders: ['owner', 'revoked-b'] });
    await b.ok('open', { mailbox: 'r16' });
    const syncSend = b.start('send', { mailbox: 'r16', value: 'before the revoke', options: { sync: true } });
    await statUntil(mb, (i) => i.depth === 1, 'the sync send to be queued');
    await mb.revoke('send', 'revoked-b');
    assert.equal(
      (await b.fails('send', { mailbox: 'r16', value: 'x', options: { nonblock: true } })).code,
      'PERMISSION_DENIED',
    );
    assert.equal((await mb.receive({ timeout: 5000 })).data, 'before the revoke');
    const done = await within(syncSend.reply, 5000, 'the sync send');
    assert.ok(done.ok, `the sync send failed: ${done.code}`);
    await b.ok('stat', { mailbox: 'r16' });
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await b.fails('send', { mailbox: 'r16', value: `after the revoke #${i}` })).code,
        'PERMISSION_DENIED',
      );
    }
    assert.equal((await mb.stat()).depth, 0, 'nothing entered after the revoke');

    // A sender holding credits from earlier sends loses them with the right.
    const mb2 = await me.createMailbox('r16-credited', { capacity: 64, senders: ['owner', 'revoked-b'] });
    await b.ok('send', { mailbox: 'r16-credited', value: 'earlier' });
    await statUntil(mb2, (i) => i.promised > 0, 'the kernel to grant b credits');
    await mb2.revoke('send', 'revoked-b');
    await b.ok('stat', { mailbox: 'r16-credited' });
    for (let i = 0; i < 5; i++) {
      assert.equal((await b.fails('send', { mailbox: 'r16-credited', value: i })).code, 'PERMISSION_DENIED');
    }
    assert.equal((await mb2.stat()).depth, 1, 'only the message from before the revoke is there');
    assert.deepEqual(b.eventsOf('disconnect'), [], 'b was never disconnected');
    await stopAll([b]);
  });

  test('a credit holder that never answers REVOKE does not freeze other senders for good', async () => {
    const mb = await me.createMailbox('stuck', { capacity: 4 });
    const a = await RawClient.hello(kernel.socketPath, 'silent-holder');
    a.write(frame(Op.SEND, { reqId: 2, target: mb.id }, Buffer.from('a')));
    const credit = await a.next((f) => f.op === Op.CREDIT && f.target === mb.id, 5000, 'CREDIT');
    assert.equal(credit.body.readUInt32LE(0), 2, 'the raw client holds 2 slots (half the capacity)');
    await mb.send('fill');
    const info = await mb.stat();
    assert.equal(info.depth + info.promised, 4, 'no free slot left but the promised ones');

    const b = await RemotePeer.start(kernel.socketPath, 'blocked-b');
    await b.ok('open', { mailbox: 'stuck' });
    const blocked = b.start('send', { mailbox: 'stuck', value: 'b' });
    await a.next((f) => f.op === Op.REVOKE && f.target === mb.id, 5000, 'REVOKE');
    // The holder never answers.
    const r = await within(blocked.reply, 5000, 'the blocked send');
    assert.ok(r.ok, `the blocked send failed: ${r.code}`);
    assert.ok(r.elapsed >= 500, `the send waited for the revocation deadline (${r.elapsed.toFixed(0)} ms)`);
    assert.equal((await mb.stat()).depth, 3);
    assert.equal(a.closed, false, 'a slow holder loses its credit, not its connection');
    await stopAll([b]);
    a.destroy();
  });

  test('r10: a holder returning its credit unasked does not end the round: no WOULD_BLOCK while room comes back', async () => {
    // A deadline far away: here only the slow holder's answer may end the round.
    const host = await startKernelHost({ revokeTimeout: 10_000 });
    try {
      const d = await client('d', host.socketPath);
      const mbD = await d.createMailbox('r10', { capacity: 4, owner: 'system' });
      const c = await RemotePeer.start(host.socketPath, 'c');
      await c.ok('open', { mailbox: 'r10' });
      const a = await RawClient.hello(host.socketPath, 'slow-holder');
      a.write(frame(Op.SEND, { reqId: 2, target: mbD.id }, Buffer.from('a')));
      const credit = await a.next((f) => f.op === Op.CREDIT && f.target === mbD.id, 5000, 'CREDIT');
      assert.equal(credit.body.readUInt32LE(0), 2, 'the slow holder holds 2 slots');
      await mbD.send('d');
      const info = await mbD.stat();
      assert.deepEqual([info.depth, info.promised], [2, 2], 'room exists once the slow holder returns it');

      const trySend = c.start('send', { mailbox: 'r10', value: 'c', options: { nonblock: true } });
      const revoke = await a.next((f) => f.op === Op.REVOKE && f.target === mbD.id, 5000, 'REVOKE');
      // d held byte credit only; closing its handle hands it back unasked.
      await mbD.close();
      await c.ok('stat', { mailbox: 'r10' });
      await c.ok('stat', { mailbox: 'r10' });
      assert.equal(trySend.settled, false, 'the non-blocking send still waits for the slow holder');

      const epoch = revoke.body.length >= 4 ? revoke.body.readUInt32LE(0) : 0;
      a.write(frame(Op.CREDIT_RETURN, { target: mbD.id }, u32s(0, 0, epoch)));
      const r = await within(trySend.reply, 2000, 'the non-blocking send');
      assert.ok(r.ok, `the non-blocking send failed: ${r.code} ${r.message}`);
      assert.equal((await c.ok<MailboxInfo>('stat', { mailbox: 'r10' })).depth, 3);
      await stopAll([c]);
      a.destroy();
    } finally {
      await host.stop();
    }
  });

  test('r07: per-sender FIFO across a sync send and a payload larger than the byte credit', async () => {
    const tx = await client('fifo-tx');
    const rx = await RemotePeer.start(kernel.socketPath, 'fifo-rx');
    const big = `A${'a'.repeat(5 * MiB)}`;
    const firsts: Array<[string, (mb: Mailbox) => Promise<void>, string]> = [
      ['sync', (mb) => mb.send('A', { sync: true }), 'A'],
      ['large', (mb) => mb.send(big), big],
    ];
    for (const [label, first, firstValue] of firsts) {
      const name = `fifo-${label}`;
      const mb = await tx.createMailbox(name, { capacity: 2 });
      await rx.ok('open', { mailbox: name });
      await mb.send('x0');
      await statUntil(mb, (i) => i.promised === 1, 'the kernel to grant one slot of credit');
      const a = first(mb);
      const b = mb.send('B');
      await statUntil(mb, (i) => i.depth + i.waitingSenders === 3, 'both sends to reach the kernel');
      const got: unknown[] = [];
      for (let i = 0; i < 3; i++) {
        got.push((await rx.ok<PeerMessage>('receive', { mailbox: name, options: { timeout: 5000 } })).data);
      }
      await within(Promise.all([a, b]), 5000, 'both sends');
      assert.deepEqual(
        got.map((v) => (v === big ? '<large>' : v)),
        ['x0', firstValue === big ? '<large>' : firstValue, 'B'],
        `${label}: received in send order`,
      );
    }
    await stopAll([rx]);
  });
});
