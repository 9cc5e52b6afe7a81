/**
 * What a shared-memory mailbox promises when processes wait, die and close,
 * checked across real processes: per-handle FIFO whatever a send waits for,
 * closing that wakes everyone exactly once, no place or chunk lost to a dead
 * process, and zero-copy views that stay valid while they are reachable.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ShmMailbox } from '../../src/backends/shm/shm-mailbox.js';
import { connect, type IpcProcess } from '../../src/client/process.js';
import { IpcError } from '../../src/errors.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type Script, spawnScript, stopScripts } from './fixtures/process-harness.js';
import { uniqueName } from './fixtures/test-segments.js';

const CHILD = new URL('./fixtures/shm-mailbox-child.js', import.meta.url);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

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
  return (err: unknown) => err instanceof IpcError && err.code === code;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Run `gc()` and let FinalizationRegistry callbacks run, a few times. */
async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await sleep(10);
  }
}

/** User + system CPU seconds of process `pid` so far. */
function cpuSeconds(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] as string).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The label a received message carries in these tests: `L<n>` for slab bytes, the string otherwise. */
function label(data: unknown): string {
  return Buffer.isBuffer(data) ? `L${String(data[0])}` : String(data);
}

// Every behaviour here holds for both message stores (the ring tests were written first).
for (const queue of ['priority', 'ring'] as const) {
  describe(`${queue}: no lost wakeups`, () => {
    test('3000 messages through a one-slot mailbox, each side waiting on the other for nearly every one, none stalls', async () => {
      // Every message makes the receiver wait for it and the sender wait for
      // room, so the two processes park and wake each other thousands of
      // times, in every interleaving of "register, re-check, park" with
      // "publish, check for waiters, wake" the scheduler produces. A wake
      // lost on the ring leaves its waiter parked (the sends and receives
      // time out); on the priority queue it shows as a wait of about
      // LIVENESS_MS (100 ms), after which the waiter looks again.
      const name = uniqueName('wake');
      const count = 3000;
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 1, role: 'receive' });
      const sender = child(['send', name, String(count)]);
      let slow = 0;
      let worst = 0;
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        const m = await mb.receive({ timeout: 30_000 });
        const took = performance.now() - t;
        worst = Math.max(worst, took);
        if (took >= 90) slow++;
        assert.equal((m.data as { i: number }).i, i);
      }
      assert.equal(await sender.exited, 0);
      // A loaded machine may stall a process now and then; lost wakes would come by the dozen.
      assert.ok(slow <= 3, `${slow} receives took 90 ms or more (worst ${worst.toFixed(1)} ms)`);
      await mb.delete();
    });
  });

  describe(`${queue}: per-handle FIFO, whatever a send waits for`, () => {
    test('a large send waiting for a slab chunk is not overtaken by later small sends of the same handle', async () => {
      const name = uniqueName('fifo');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 8,
        maxMessageSize: 65536,
        slabChunks: 1,
        role: 'receive',
      });
      const first = child(['send-fill', name, '10000', '0']);
      await first.waitForLine('sent');
      const held = await mb.receive({ timeout: 10_000 });
      assert.equal(held.mapped, true, 'L0 holds the only chunk');
      const sender = child(['send-burst', name, 'L1,S2,L3,S4,S5']);
      await sender.waitForLine('pending');
      await waitFor(() => mb.stat().waitingSenders >= 1, 10_000, 'L1 to wait for the chunk');
      await sleep(50);
      assert.equal(mb.depth, 0, 'nothing overtook L1 while it waited');
      held.release();
      const got: string[] = [];
      for (let i = 0; i < 5; i++) {
        const m = await mb.receive({ timeout: 10_000 });
        got.push(label(m.data));
        m.release();
      }
      assert.deepEqual(got, ['L1', 'S2', 'L3', 'S4', 'S5'], 'delivered in call order');
      assert.equal(await sender.line('completed '), 'completed L1,S2,L3,S4,S5', 'completed in call order');
      await mb.delete();
    });

    test('many sends of one handle parked on a full mailbox complete and arrive in call order', async () => {
      const name = uniqueName('fifo');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 1, role: 'receive' });
      const items = Array.from({ length: 30 }, (_, i) => `S${i}`);
      const sender = child(['send-burst', name, items.join(',')]);
      await sender.waitForLine('pending');
      const got: string[] = [];
      for (let i = 0; i < items.length; i++) {
        const m = await mb.receive({ timeout: 10_000 });
        got.push(label(m.data));
        if (i % 3 === 0) await sleep(5);
      }
      assert.deepEqual(got, items);
      assert.equal(await sender.line('completed '), `completed ${items.join(',')}`);
      await mb.delete();
    });

    test('a send made the moment room appears does not overtake an earlier send of the handle that was waiting for it', async () => {
      const name = uniqueName('fifo');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 1 });
      await mb.send('a');
      const b = mb.send('b', { timeout: 30_000 });
      await waitFor(() => mb.stat().waitingSenders === 1, 10_000, 'b to park');
      assert.equal((await mb.receive()).data, 'a');
      const c = mb.send('c', { timeout: 30_000 });
      const got: unknown[] = [];
      for (let i = 0; i < 2; i++) got.push((await mb.receive({ timeout: 10_000 })).data);
      await Promise.all([b, c]);
      assert.deepEqual(got, ['b', 'c']);
      await mb.delete();
    });

    test('behind a waiting send: trySend is WOULD_BLOCK, a queued send times out or aborts on its own and is never delivered', async () => {
      const name = uniqueName('fifo');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 1 });
      await mb.send('a');
      const head = mb.send('b', { timeout: 30_000 });
      await assert.rejects(mb.trySend('c'), hasCode('WOULD_BLOCK'));
      const t0 = performance.now();
      await assert.rejects(mb.send('late', { timeout: 50 }), hasCode('TIMEOUT'));
      assert.ok(performance.now() - t0 < 2000, 'the queued send timed out on its own deadline');
      const ac = new AbortController();
      const aborted = mb.send('aborted', { signal: ac.signal });
      ac.abort();
      await assert.rejects(aborted, hasCode('ABORTED'));
      const tail = mb.send('d', { timeout: 30_000 });
      assert.equal(mb.stat().waitingSenders >= 1, true);
      const got: unknown[] = [];
      for (let i = 0; i < 3; i++) got.push((await mb.receive({ timeout: 10_000 })).data);
      await Promise.all([head, tail]);
      assert.deepEqual(got, ['a', 'b', 'd']);
      await assert.rejects(mb.tryReceive(), hasCode('WOULD_BLOCK'));
      await mb.delete();
    });
  });

  describe(`${queue}: closing`, () => {
    test('deleting wakes a sender whose event loop was busy while every process marked the mailbox closed: MAILBOX_CLOSED, no spinning', async () => {
      const name = uniqueName('close');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 2 });
      await mb.send(1);
      await mb.send(2);
      const idle = child(['pending', name, 'send']);
      const stalled = child(['pending-stall', name]);
      await Promise.all([idle.line('pending'), stalled.waitForLine('parked')]);
      await mb.delete();
      await idle.waitForLine('rejected MAILBOX_CLOSED');
      await stalled.waitForLine('rejected MAILBOX_CLOSED', 10_000);
      await stalled.waitForLine('tick 2');
      const pid = stalled.pid as number;
      const c0 = cpuSeconds(pid);
      await sleep(1000);
      const used = cpuSeconds(pid) - c0;
      assert.ok(used < 0.5, `the stalled sender used ${used} s of CPU in the second after`);
      await assert.rejects(mb.send(3), hasCode('MAILBOX_CLOSED'));
    });
  });

  describe(`${queue}: processes that die hold no place and no chunk for good`, () => {
    test('a sender SIGKILLed while it waits for a slab chunk: the mailbox keeps its full capacity', async () => {
      const name = uniqueName('death');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 2,
        maxMessageSize: 65536,
        slabChunks: 1,
      });
      await mb.send(Buffer.alloc(10_000, 0));
      const held = await mb.receive();
      const sender = child(['send-fill', name, '10000', '1']);
      await sender.waitForLine('sending');
      await waitFor(() => mb.stat().waitingSenders >= 1, 10_000, 'the sender to wait for the chunk');
      sender.kill();
      await sender.exited;
      held.release();
      await mb.trySend('a');
      await mb.trySend('b');
      assert.equal(mb.depth, 2);
      await assert.rejects(mb.trySend('c'), hasCode('WOULD_BLOCK'));
      assert.equal((await mb.receive()).data, 'a');
      assert.equal((await mb.receive()).data, 'b');
      await mb.trySend(Buffer.alloc(10_000, 2));
      assert.equal((await mb.receive()).bytes[0], 2, 'and the chunk is free');
      await mb.delete();
    });

    test('a sender SIGKILLed while it holds a filled chunk and waits for room: the chunk is reclaimed', async () => {
      const name = uniqueName('death');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 1,
        maxMessageSize: 65536,
        slabChunks: 1,
      });
      await mb.send('occupant');
      const sender = child(['send-fill', name, '10000', '1']);
      await sender.waitForLine('sending');
      await waitFor(() => mb.stat().waitingSenders >= 1, 10_000, 'the sender to wait for room');
      sender.kill();
      await sender.exited;
      assert.equal((await mb.receive()).data, 'occupant');
      assert.equal(mb.depth, 0, "the dead sender's message never went in");
      await mb.trySend(Buffer.alloc(10_000, 2));
      const m = await mb.receive();
      assert.equal(m.bytes[0], 2);
      m.release();
      await mb.delete();
    });

    test('a receiver SIGKILLed while it holds a zero-copy message: a send already waiting for its chunk gets it', async () => {
      const name = uniqueName('death');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 4,
        maxMessageSize: 65536,
        slabChunks: 1,
      });
      await mb.send(Buffer.alloc(10_000, 0));
      const receiver = child(['recv-hold', name]);
      await receiver.waitForLine('holding true');
      const waiting = mb.send(Buffer.alloc(10_000, 1), { timeout: 20_000 });
      await waitFor(() => mb.stat().waitingSenders >= 1, 10_000, 'the send to wait for the chunk');
      receiver.kill();
      await receiver.exited;
      await waiting;
      const m = await mb.receive();
      assert.equal(m.bytes[0], 1);
      m.release();
      await mb.delete();
    });
  });

  describe(`${queue}: zero copy is a lease`, () => {
    test('views kept after the message is dropped stay valid: the chunk is not reused until they are unreachable', async () => {
      const name = uniqueName('lease');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 4,
        maxMessageSize: 65536,
        slabChunks: 1,
        role: 'receive',
      });
      const first = child(['send-fill', name, '10000', '65']);
      await first.waitForLine('sent');
      let [data, view] = await (async () => {
        const m = await mb.receive({ timeout: 10_000 });
        assert.equal(m.mapped, true);
        return [m.data as Buffer, m.bytes.subarray(100, 104)] as const;
      })();
      assert.equal(
        data.buffer instanceof SharedArrayBuffer,
        false,
        'data of a mapped message is a private copy',
      );
      await collect();
      const second = child(['send-fill', name, '10000', '66']);
      await second.waitForLine('sending');
      await sleep(300);
      assert.ok(!second.lines.includes('sent'), 'the chunk stays lent while a view of it is reachable');
      assert.equal(view.toString(), 'AAAA');
      assert.equal(data.subarray(0, 4).toString(), 'AAAA');
      view = Buffer.alloc(0);
      await collect();
      await second.waitForLine('sent', 10_000);
      const m = await mb.receive({ timeout: 10_000 });
      assert.equal(m.bytes.subarray(0, 4).toString(), 'BBBB');
      m.release();
      assert.equal(data.subarray(0, 4).toString(), 'AAAA', 'data kept its bytes');
      data = Buffer.alloc(0);
      await mb.delete();
    });
  });
}
