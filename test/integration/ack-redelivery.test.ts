/**
 * Receive with acknowledgement across real processes: a consumer killed with
 * SIGKILL while it holds unacknowledged messages loses nothing; the kernel
 * redelivers exactly those (plus anything it had not yet handed to the
 * application) to another consumer. Messages that were acknowledged are never
 * delivered again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox } from '../../src/index.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { RemotePeer, stopAll } from './remote-peer.js';

const N = 60;
const ACKED_BY_A = 10;
const HELD_BY_A = 5;

describe('ack and redelivery across processes', () => {
  let daemon: Daemon;
  let me: IpcProcess;

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'ack-test' });
  });

  after(async () => {
    await stopAll();
    await me?.close();
    await daemon?.stop();
  });

  async function scenario(name: string, iterate: boolean): Promise<void> {
    const mb: Mailbox = await me.createMailbox(name, { capacity: 'unbounded' });
    for (let i = 0; i < N; i++) await mb.send(i);
    await waitFor(async () => (await mb.stat()).depth === N, 10_000, 'all messages queued');

    const a = await RemotePeer.start(daemon.socketPath, `${name}-a`);
    const b = await RemotePeer.start(daemon.socketPath, `${name}-b`);
    const mode = { mailbox: name, iterate, options: { ack: true }, ...(iterate ? { prefetch: 8 } : {}) };

    // A acknowledges its first messages, then holds some without acknowledging.
    assert.equal(await a.ok('consume', { ...mode, count: ACKED_BY_A, tag: 'acked' }), ACKED_BY_A);
    assert.equal(await a.ok('consume', { ...mode, count: HELD_BY_A, hold: true, tag: 'held' }), HELD_BY_A);
    const acked = a.messages<number>('acked').map((m) => m.data);
    const held = a.messages<number>('held').map((m) => m.data);
    assert.ok(
      a.messages('held').every((m) => typeof m.holdId === 'number'),
      'A holds its messages unacknowledged',
    );

    // B takes everything still there, then waits; A dies holding its messages.
    const bDone = b.start<number>('consume', { ...mode, count: N - ACKED_BY_A, tag: 'b' });
    await waitFor(() => b.messages('b').length >= N - ACKED_BY_A - HELD_BY_A, 15_000, 'B to drain the queue');
    assert.equal(bDone.settled, false, 'B is still waiting for the messages A holds');
    await a.kill('SIGKILL');

    const r = await bDone.reply;
    assert.ok(r.ok, `B's consume failed: ${r.message}`);
    const fromB = b.messages<number>('b').map((m) => m.data);
    const everything = new Set([...acked, ...fromB]);
    assert.deepEqual(
      [...everything].sort((x, y) => x - y),
      Array.from({ length: N }, (_, i) => i),
      'every message arrived at least once',
    );
    assert.equal(new Set(fromB).size, fromB.length, 'B got no message twice');
    for (const id of acked) assert.ok(!fromB.includes(id), `acknowledged message ${id} was not redelivered`);
    const duplicates = fromB.filter((id) => acked.includes(id) || held.includes(id));
    assert.deepEqual(
      duplicates.sort((x, y) => x - y),
      [...held].sort((x, y) => x - y),
      'the only messages seen twice are the ones A held unacknowledged',
    );
    assert.ok(
      b.messages('b').every((m) => m.sender === 'ack-test'),
      'redelivered messages still name their sender',
    );

    // B acknowledged everything: nothing is left, and B leaving returns nothing.
    assert.equal((await mb.stat()).depth, 0);
    await b.stop();
    await assert.rejects(mb.tryReceive(), { code: 'WOULD_BLOCK' });
    await mb.delete();
  }

  test('a consumer SIGKILLed while holding unacknowledged receives: they are redelivered to another, none lost', async () => {
    await scenario('ack-receive', false);
  });

  test('the same with the async iterator messages({ ack: true }) and prefetch', async () => {
    await scenario('ack-iterate', true);
  });

  test('capacity 0: an unacknowledged message of a SIGKILLed receiver is redelivered', async () => {
    const mb = await me.createMailbox('ack-rendezvous', { capacity: 0 });
    const a = await RemotePeer.start(daemon.socketPath, 'rdv-a');
    const held = a.start('receive', { mailbox: 'ack-rendezvous', hold: true, options: { ack: true } });
    await waitFor(async () => (await mb.stat()).waitingReceivers === 1, 10_000, 'A waiting');
    await mb.send('precious');
    assert.ok((await held.reply).ok);
    await a.ok('stat', { mailbox: 'ack-rendezvous' });
    await a.kill('SIGKILL');
    const b = await RemotePeer.start(daemon.socketPath, 'rdv-b');
    const r = await b.call('receive', { mailbox: 'ack-rendezvous', options: { ack: true, timeout: 2000 } });
    await mb.delete();
    assert.ok(r.ok, `B: ${r.code}`);
  });

  test('nack() hands a message back for immediate redelivery to the next receiver', async () => {
    const mb = await me.createMailbox('ack-nack', { capacity: 4 });
    const b = await RemotePeer.start(daemon.socketPath, 'nack-b');
    await mb.send('once');
    const m = await mb.receive({ ack: true, timeout: 10_000 });
    assert.equal(m.data, 'once');
    const waiting = b.start('receive', { mailbox: 'ack-nack', options: { ack: true, timeout: 10_000 } });
    await waitFor(async () => (await mb.stat()).waitingReceivers === 1, 10_000, 'B waiting');
    m.nack();
    const r = await waiting.reply;
    assert.ok(r.ok, r.message);
    assert.equal((r.value as { data: unknown }).data, 'once');
    await mb.delete();
  });
});
