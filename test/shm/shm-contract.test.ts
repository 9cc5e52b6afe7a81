/**
 * The parts of the mailbox contract that only the 'priority' message store
 * of a shared-memory mailbox has, across real processes: acknowledgement and
 * redelivery after SIGKILL, broadcast, priorities, rendezvous, and that a
 * process SIGKILLed while it waits (or while it holds the queue's lock)
 * does not wedge the mailbox for the others. Plus the budget of an
 * unbounded mailbox and the withdrawal of a synchronous send.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { ShmMailbox } from '../../src/backends/shm/shm-mailbox.js';
import { connect, type IpcProcess } from '../../src/client/process.js';
import { IpcError } from '../../src/errors.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type Script, spawnScript, stopScripts } from './fixtures/process-harness.js';
import { uniqueName } from './fixtures/test-segments.js';

const CHILD = new URL('./fixtures/shm-contract-child.js', import.meta.url);

let daemon: Daemon;
let proc: IpcProcess;

before(async () => {
  daemon = await startDaemon();
  proc = await connect({ socketPath: daemon.socketPath, name: 'tester' });
});
afterEach(stopScripts);
after(async () => {
  await proc?.close();
  await daemon?.stop();
});

function child(args: string[]): Script {
  return spawnScript(CHILD, args, { IPCBOX_SOCKET: daemon.socketPath });
}

function hasCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof IpcError, `expected IpcError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

function got(s: Script): unknown[] {
  return s.lines.filter((l) => l.startsWith('got ')).map((l) => JSON.parse(l.slice(4)) as unknown);
}

describe('acknowledgement and redelivery', () => {
  test('a message received with ack by a process that is then SIGKILLed is delivered again, ahead of later ones', async () => {
    const name = uniqueName('ack');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4 });
    await mb.send('must arrive');
    const receiver = child(['recv-ack', name]);
    assert.equal(await receiver.line('holding '), 'holding "must arrive"');
    await mb.send('later');
    assert.equal(mb.depth, 1, 'the held message is not queued while its receiver lives');
    receiver.kill();
    await receiver.exited;
    const again = await mb.receive({ ack: true, timeout: 10_000 });
    assert.equal(again.data, 'must arrive');
    again.ack();
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'later');
    await assert.rejects(
      mb.receive({ timeout: 300 }),
      hasCode('TIMEOUT'),
      'an acknowledged message stays gone',
    );
    await mb.delete();
  });

  test('nack gives a message back ahead of later ones, to a receive waiting in another process too; misuse is INVALID_ARGUMENT', async () => {
    const name = uniqueName('nack');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4 });
    await mb.send('first');
    await mb.send('second');
    const m = await mb.receive({ ack: true, nonblock: true });
    assert.equal(m.data, 'first');
    m.nack();
    assert.throws(() => m.nack(), hasCode('INVALID_ARGUMENT'), 'settled once');
    m.ack(); // a no-op once given back: it must not free the requeued slot
    const again = await mb.receive({ ack: true, nonblock: true });
    assert.equal(again.data, 'first', 'redelivered ahead of later ones');
    // Given back while another process waits: handed to that receive.
    const second = await mb.receive({ nonblock: true });
    assert.equal(second.data, 'second');
    const receiver = child(['recv-wait', name]);
    await receiver.line('waiting');
    await waitFor(() => mb.stat().waitingReceivers === 1, 10_000, 'the child to park');
    again.nack();
    await receiver.line('got ');
    assert.deepEqual(got(receiver), ['first']);
    await mb.send('plain');
    const plain = await mb.receive({ nonblock: true });
    assert.throws(() => plain.nack(), hasCode('INVALID_ARGUMENT'), 'not received with ack');
    await mb.delete();
  });

  test('closing a handle with an unacknowledged message redelivers it; an acknowledged one is not', async () => {
    const name = uniqueName('ack');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4 });
    const other = await ShmMailbox.open(proc, name, 'receive');
    await mb.send('kept');
    await mb.send('acked');
    const kept = await other.receive({ ack: true, nonblock: true });
    const acked = await other.receive({ ack: true, nonblock: true });
    assert.deepEqual([kept.data, acked.data], ['kept', 'acked']);
    acked.ack();
    await other.close();
    assert.equal((await mb.receive({ nonblock: true })).data, 'kept');
    await assert.rejects(mb.receive({ nonblock: true }), hasCode('WOULD_BLOCK'));
    await mb.delete();
  });
});

describe('broadcast', () => {
  test('receivers in two other processes each get every message, in order', async () => {
    const name = uniqueName('bc');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4, delivery: 'broadcast', role: 'send' });
    const r1 = child(['subscribe', name, '10']);
    const r2 = child(['subscribe', name, '10']);
    await Promise.all([r1.waitForLine('subscribed'), r2.waitForLine('subscribed')]);
    // Capacity 4 < 10: the sender waits for the slower receiver, and nothing is dropped.
    for (let i = 0; i < 10; i++) await mb.send(i, { timeout: 20_000 });
    await Promise.all([r1.waitForLine('done'), r2.waitForLine('done')]);
    const all = Array.from({ length: 10 }, (_, i) => i);
    assert.deepEqual(got(r1), all);
    assert.deepEqual(got(r2), all);
    await mb.delete();
  });
});

describe('broadcast with ack', () => {
  test('an unacknowledged copy of the last subscriber, SIGKILLed, goes to the next subscriber; an acknowledged one is gone', async () => {
    const name = uniqueName('bcack');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4, delivery: 'broadcast', role: 'send' });
    const dead = child(['recv-ack', name]);
    await waitFor(() => mb.stat().waitingReceivers === 1, 10_000, 'the subscriber to wait');
    await mb.send('copy');
    assert.equal(await dead.line('holding '), 'holding "copy"');
    dead.kill();
    await dead.exited;
    const next = await ShmMailbox.open(proc, name, 'receive');
    const again = await next.receive({ ack: true, timeout: 10_000 });
    assert.equal(again.data, 'copy');
    again.ack();
    await next.close();
    const later = await ShmMailbox.open(proc, name, 'receive');
    await assert.rejects(
      later.receive({ timeout: 200 }),
      hasCode('TIMEOUT'),
      'the acknowledged copy is not delivered again',
    );
    await mb.delete();
  });
});

describe('priorities', () => {
  test('messages a process sent with priorities 0..31 arrive highest first, FIFO within a priority', async () => {
    const name = uniqueName('prio');
    const mb = await ShmMailbox.create(proc, name, { capacity: 64, role: 'receive' });
    const sent: Array<[number, number]> = [];
    for (let i = 0; i < 48; i++) sent.push([(i * 13) % 32, i]);
    const sender = child(['send-prio', name, JSON.stringify(sent)]);
    await sender.waitForLine('sent');
    const order: Array<[number, number]> = [];
    for (let i = 0; i < sent.length; i++) {
      const m = await mb.receive({ nonblock: true });
      order.push([m.priority, m.data as number]);
    }
    assert.deepEqual(
      order,
      [...sent].sort((x, y) => y[0] - x[0] || x[1] - y[1]),
    );
    await assert.rejects(mb.send('x', { priority: 32 }), RangeError);
    await mb.delete();
  });
});

describe('rendezvous', () => {
  test('a sender in another process completes only when this process receives', async () => {
    const name = uniqueName('rdv');
    const mb = await ShmMailbox.create(proc, name, { capacity: 0 });
    const sender = child(['send-wait', name, '"hand to hand"']);
    await sender.waitForLine('sending');
    await waitFor(() => mb.stat().waitingSenders === 1, 10_000, 'the sender to wait');
    assert.equal(mb.depth, 0, 'nothing waits in a rendezvous queue');
    assert.ok(!sender.lines.includes('sent'), 'the send has not completed before a receive');
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'hand to hand');
    await sender.waitForLine('sent');
    await assert.rejects(mb.send('nobody waits', { nonblock: true }), hasCode('WOULD_BLOCK'));
    await assert.rejects(mb.send('nobody takes it', { timeout: 100 }), hasCode('TIMEOUT'));
    const receiver = child(['recv-wait', name]);
    await receiver.waitForLine('waiting');
    await waitFor(() => mb.stat().waitingReceivers === 1, 10_000, 'the receiver to wait');
    await mb.send('to a waiting receiver', { nonblock: true });
    assert.equal(await receiver.line('got '), 'got "to a waiting receiver"');
    await mb.delete();
  });

  test('a refused non-blocking rendezvous send of a slab payload gives its chunk back exactly once', async () => {
    const name = uniqueName('rdvslab');
    const mb = await ShmMailbox.create(proc, name, { capacity: 0, maxMessageSize: 65536, slabChunks: 1 });
    await assert.rejects(mb.send(Buffer.alloc(10_000, 1), { nonblock: true }), hasCode('WOULD_BLOCK'));
    const first = mb.receive({ timeout: 10_000 });
    await waitFor(() => mb.stat().waitingReceivers === 1, 10_000, 'the receiver to wait');
    await mb.send(Buffer.alloc(10_000, 2), { nonblock: true });
    const held = await first;
    assert.equal(held.mapped, true);
    const second = mb.receive({ timeout: 10_000 });
    await waitFor(() => mb.stat().waitingReceivers === 1, 10_000, 'the receiver to wait');
    await assert.rejects(
      mb.send(Buffer.alloc(10_000, 3), { nonblock: true }),
      hasCode('WOULD_BLOCK'),
      'the only chunk is lent to the held message',
    );
    assert.equal(held.bytes[0], 2, 'the held view is unchanged');
    held.release();
    await mb.send(Buffer.alloc(10_000, 4), { nonblock: true });
    const m = await second;
    assert.equal(m.bytes[0], 4);
    m.release();
    await mb.delete();
  });

  test('a synchronous send that times out is withdrawn; one taken in time resolves', async () => {
    const name = uniqueName('sync');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4 });
    await assert.rejects(mb.send('withdrawn', { sync: true, timeout: 100 }), hasCode('TIMEOUT'));
    assert.equal(mb.depth, 0);
    const receiver = child(['recv-wait', name]);
    await receiver.waitForLine('waiting');
    await waitFor(() => mb.stat().waitingReceivers === 1, 10_000, 'the receiver to wait');
    await mb.send('taken', { sync: true, timeout: 10_000 });
    assert.equal(await receiver.line('got '), 'got "taken"');
    await mb.delete();
  });
});

describe('processes SIGKILLed mid-operation do not wedge the mailbox', () => {
  test('a receiver killed while it waits: the next message goes to a live receiver, not to the dead one', async () => {
    const name = uniqueName('deadwait');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4 });
    const dead = child(['recv-wait', name]);
    await dead.waitForLine('waiting');
    await waitFor(() => mb.stat().waitingReceivers === 1, 10_000, 'the receiver to wait');
    dead.kill();
    await dead.exited;
    // This receive waits behind the dead one in the rotation.
    const live = mb.receive({ timeout: 10_000 });
    await waitFor(() => mb.stat().waitingReceivers >= 1, 10_000, 'this receiver to wait');
    await mb.send('for the living');
    assert.equal((await live).data, 'for the living');
    await waitFor(() => mb.stat().waitingReceivers === 0, 10_000, 'the dead waiter to be dropped');
    await mb.delete();
  });

  test('a sender killed while it waits for room: others keep sending and receiving', async () => {
    const name = uniqueName('deadsend');
    const mb = await ShmMailbox.create(proc, name, { capacity: 1 });
    await mb.send('occupant');
    const dead = child(['send-wait', name, '"never sent"']);
    await dead.waitForLine('sending');
    await waitFor(() => mb.stat().waitingSenders === 1, 10_000, 'the sender to wait');
    dead.kill();
    await dead.exited;
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'occupant');
    await mb.send('after', { timeout: 10_000 });
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'after');
    await assert.rejects(
      mb.receive({ nonblock: true }),
      hasCode('WOULD_BLOCK'),
      "the dead sender's message never went in",
    );
    await mb.delete();
  });

  test('a rendezvous sender killed while it waits: its message is dropped and no longer counts as a waiting sender', async () => {
    const name = uniqueName('deadrdv');
    const mb = await ShmMailbox.create(proc, name, { capacity: 0 });
    const dead = child(['send-wait', name, '"never handed over"']);
    await dead.waitForLine('sending');
    await waitFor(() => mb.stat().waitingSenders === 1, 10_000, 'the sender to wait');
    dead.kill();
    await dead.exited;
    await assert.rejects(mb.receive({ timeout: 300 }), hasCode('TIMEOUT'), 'the dead send never completed');
    assert.equal(mb.stat().waitingSenders, 0);
    const live = child(['send-wait', name, '"from the living"']);
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'from the living');
    await live.waitForLine('sent');
    await mb.delete();
  });

  test('a synchronous sender killed while it waits: its accepted message is still delivered', async () => {
    const name = uniqueName('deadsync');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4 });
    const dead = child(['send-wait', name, '"accepted"', 'sync']);
    await dead.waitForLine('sending');
    await waitFor(() => mb.stat().waitingSenders === 1 && mb.depth === 1, 10_000, 'the sync sender to wait');
    dead.kill();
    await dead.exited;
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'accepted');
    assert.equal(mb.stat().waitingSenders, 0);
    await mb.delete();
  });

  test('a process killed while it holds the queue lock: the others take the lock over and carry on', async () => {
    const name = uniqueName('deadlock');
    const mb = await ShmMailbox.create(proc, name, { capacity: 4 });
    await mb.send('before');
    const holder = child(['hold-lock', name]);
    await holder.waitForLine('locked');
    await assert.rejects(mb.receive({ timeout: 200 }), hasCode('TIMEOUT'), 'the lock is held');
    holder.kill();
    await holder.exited;
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'before');
    await mb.send('after', { timeout: 10_000 });
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'after');
    await mb.delete();
  });

  test('a process killed holding the lock with the queue half-updated: the next locker rebuilds it, nothing queued is lost', async () => {
    const name = uniqueName('repair');
    const mb = await ShmMailbox.create(proc, name, { capacity: 3 });
    await mb.send('queued before', { priority: 0 });
    await mb.send('urgent', { priority: 5 });
    const holder = child(['corrupt-lock', name]);
    await holder.waitForLine('locked');
    holder.kill();
    await holder.exited;
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'urgent');
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'queued before');
    for (let i = 0; i < 3; i++) await mb.send(i, { nonblock: true });
    await assert.rejects(
      mb.send('fourth', { nonblock: true }),
      hasCode('WOULD_BLOCK'),
      'capacity is 3 again',
    );
    await mb.delete();
  });
});

describe('unbounded', () => {
  test('senders never wait; past the budget a send rejects KERNEL_FULL at once', async () => {
    const name = uniqueName('unb');
    const mb = await ShmMailbox.create(proc, name, { capacity: 'unbounded', budget: 100 });
    for (let i = 0; i < 100; i++) await mb.send(i, { nonblock: true });
    await assert.rejects(mb.send('over', { timeout: 10_000 }), hasCode('KERNEL_FULL'));
    assert.equal((await mb.receive()).data, 0);
    await mb.send('room again', { nonblock: true });
    assert.equal(mb.depth, 100);
    await mb.delete();
  });
});
