import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { ShmMailbox, type ShmMessage } from '../../src/backends/shm/shm-mailbox.js';
import { connect, type IpcProcess } from '../../src/client/process.js';
import { IpcError } from '../../src/errors.js';
import { Segment } from '../../src/shm/segment.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type Script, spawnScript, stopScripts } from './fixtures/process-harness.js';
import { uniqueName } from './fixtures/test-segments.js';

const CHILD = new URL('./fixtures/shm-mailbox-child.js', import.meta.url);

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

function gotLines(s: Script): unknown[] {
  return s.lines.filter((l) => l.startsWith('got ')).map((l) => JSON.parse(l.slice(4)) as unknown);
}

// Every behaviour here holds for both message stores (the ring tests were written first).
for (const queue of ['priority', 'ring'] as const) {
  describe(`${queue}: shared-memory mailbox between processes`, () => {
    test('messages of every codec go from this process to a receiver process, in order', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 4 });
      const receiver = child(['recv', name, '5']);
      await mb.send({ n: 1 });
      await mb.send('two');
      await mb.send([3], { codec: 'v8' });
      await mb.send(Buffer.from([4, 4]));
      await mb.send({ n: 5 }, { codec: 'json' });
      assert.equal(await receiver.exited, 0);
      assert.deepEqual(gotLines(receiver), [{ n: 1 }, 'two', [3], { bytes: 2, mapped: false }, { n: 5 }]);
      await mb.delete();
    });

    test('a sender process fills a bounded mailbox and waits for this receiver; the kernel sees the segment', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 2, role: 'receive' });
      const listed = (await proc.listSegments()).find((s) => s.name === name);
      assert.equal(listed?.kind, 'mailbox');
      const sender = child(['send', name, '300']);
      await waitFor(() => mb.depth === 2, 10_000, 'the sender to fill the mailbox');
      const got: number[] = [];
      for (let i = 0; i < 300; i++) {
        const m = await mb.receive({ timeout: 30_000 });
        got.push((m.data as { i: number }).i);
        assert.ok(mb.depth <= 2, 'never more than capacity queued');
      }
      assert.deepEqual(
        got,
        Array.from({ length: 300 }, (_, i) => i),
      );
      assert.equal(await sender.exited, 0);
      await mb.delete();
    });

    test('competing receivers: each message goes to exactly one of them; iteration ends when the mailbox is removed', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 16, role: 'send' });
      const a = child(['drain', name]);
      const b = child(['drain', name]);
      await waitFor(
        async () => {
          const info = (await proc.listSegments()).find((s) => s.name === name);
          return (info?.attached.length ?? 0) === 3;
        },
        10_000,
        'both receivers to attach',
      );
      for (let i = 0; i < 2000; i++) await mb.send(i);
      await waitFor(() => mb.depth === 0, 10_000, 'the receivers to drain the mailbox');
      await mb.delete();
      assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);
      const parts = [a, b].map((s) => {
        const line = s.lines.find((l) => l.startsWith('took ')) as string;
        return JSON.parse(line.slice(line.indexOf('['))) as number[];
      });
      for (const part of parts)
        assert.deepEqual(
          part,
          [...part].sort((x, y) => x - y),
          'each receiver sees FIFO order',
        );
      const all = parts.flat().sort((x, y) => x - y);
      assert.deepEqual(
        all,
        Array.from({ length: 2000 }, (_, i) => i),
        'no loss, no duplication',
      );
    });
  });

  describe(`${queue}: waiting: blocking, non-blocking, timed, aborted`, () => {
    test('a full mailbox: trySend → WOULD_BLOCK, timed send → TIMEOUT, blocked send resumes when a receiver takes one', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 2 });
      await mb.send('a');
      await mb.trySend('b');
      await assert.rejects(mb.trySend('c'), hasCode('WOULD_BLOCK'));
      await assert.rejects(mb.send('c', { timeout: 30 }), hasCode('TIMEOUT'));
      const ac = new AbortController();
      const aborted = mb.send('c', { signal: ac.signal });
      ac.abort(new Error('changed my mind'));
      await assert.rejects(aborted, hasCode('ABORTED'));
      assert.equal(mb.depth, 2, 'failed sends left nothing behind');
      const blocked = mb.send('c', { timeout: 30_000 });
      const receiver = child(['recv', name, '3']);
      await blocked;
      assert.equal(await receiver.exited, 0);
      assert.deepEqual(gotLines(receiver), ['a', 'b', 'c']);
      await mb.delete();
    });

    test('an empty mailbox: tryReceive → WOULD_BLOCK, timed → TIMEOUT, abort → ABORTED, blocked receive gets the next message', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 2 });
      await assert.rejects(mb.tryReceive(), hasCode('WOULD_BLOCK'));
      await assert.rejects(mb.receive({ timeout: 30 }), hasCode('TIMEOUT'));
      const ac = new AbortController();
      const aborted = mb.receive({ signal: ac.signal });
      const waiting = mb.receive({ timeout: 30_000 });
      ac.abort();
      await assert.rejects(aborted, hasCode('ABORTED'));
      const sender = child(['send', name, '1']);
      assert.equal(((await waiting).data as { i: number }).i, 0);
      assert.equal(await sender.exited, 0);
      await mb.delete();
    });

    test('messages(): next() calls are answered in call order, taken at once or waited for; abort rejects and ends it; return() and closing end it', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 8 });
      const data = async (p: Promise<IteratorResult<ShmMessage, void>>): Promise<unknown> => {
        const r = await p;
        assert.equal(r.done, false);
        return (r.value as ShmMessage).data;
      };
      const done = { value: undefined, done: true };
      await mb.send('a');
      const it = mb.messages();
      const first = it.next(); // taken at once
      const second = it.next(); // waits for a message
      const third = it.next(); // queued behind the waiting one
      await mb.send('b');
      await mb.send('c');
      assert.deepEqual([await data(first), await data(second), await data(third)], ['a', 'b', 'c']);

      const ac = new AbortController();
      const aborted = mb.messages({ signal: ac.signal });
      const pending = aborted.next();
      ac.abort();
      await assert.rejects(pending, hasCode('ABORTED'));
      assert.deepEqual(await aborted.next(), done);

      await mb.send('d');
      const returned = mb.messages();
      assert.equal(await data(returned.next()), 'd');
      assert.deepEqual(await returned.return(undefined), done);
      assert.deepEqual(await returned.next(), done);
      await mb.send('e');
      assert.equal((await mb.receive()).data, 'e', 'return() took nothing');

      const other = await ShmMailbox.open(proc, name, 'receive');
      const ends = other.messages().next();
      await other.close();
      assert.deepEqual(await ends, done);
      await mb.delete();
    });

    test('closing a handle rejects its pending operations with MAILBOX_CLOSED', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 1 });
      const other = await ShmMailbox.open(proc, name, 'receive');
      const pending = assert.rejects(other.receive(), hasCode('MAILBOX_CLOSED'));
      await other.close();
      await pending;
      await assert.rejects(other.receive(), hasCode('MAILBOX_CLOSED'));
      await mb.send('still open for others');
      assert.equal((await mb.receive()).data, 'still open for others');
      await mb.delete();
    });
  });

  describe(`${queue}: large messages through the slab`, () => {
    test('a 1 MiB message arrives as a zero-copy view; release gives the chunk back; copy is private', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 4,
        maxMessageSize: 1 << 20,
        slabChunks: 2,
        role: 'receive',
      });
      const sender = child(['send', name, '3', String(1 << 20)]);
      const first = await mb.receive({ timeout: 30_000 });
      assert.equal(first.mapped, true);
      assert.equal(first.bytes.byteLength, 1 << 20);
      assert.ok(first.bytes.buffer instanceof SharedArrayBuffer, 'a view of the segment, not a copy');
      for (const j of [0, 1, 4095, (1 << 20) - 1]) assert.equal(first.bytes[j], j & 0xff);
      const second = await mb.receive({ timeout: 30_000, copy: true });
      assert.equal(second.mapped, false);
      assert.equal(second.bytes[5], (1 + 5) & 0xff);
      const own = first.copy();
      own[0] = 99;
      assert.equal(first.bytes[0], 0, 'copy() is private');
      // Chunks: `first` still holds one; the third message needs the other.
      const third: ShmMessage = await mb.receive({ timeout: 30_000 });
      assert.equal(third.bytes[0], 2);
      first.release();
      assert.throws(() => first.bytes, hasCode('INVALID_ARGUMENT'));
      third.release();
      assert.equal(await sender.exited, 0);
      await mb.delete();
    });

    test('when every chunk is held, a large trySend is WOULD_BLOCK and a large send waits for a release', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 8,
        maxMessageSize: 65536,
        mapThreshold: 1024,
        slabChunks: 1,
      });
      const big = Buffer.alloc(4096, 7);
      await mb.send(big);
      await assert.rejects(mb.trySend(big), hasCode('WOULD_BLOCK'));
      await mb.trySend(Buffer.alloc(1024, 1));
      const held = await mb.receive();
      assert.equal(held.mapped, true);
      const waiting = mb.send(big, { timeout: 30_000 });
      held.release();
      await waiting;
      assert.equal((await mb.receive()).bytes.byteLength, 1024);
      assert.equal((await mb.receive()).mapped, true);
      await mb.delete();
    });
  });

  describe(`${queue}: the owner goes away`, () => {
    test('owner SIGKILLed: the kernel removes the segment and pending sends and receives elsewhere reject MAILBOX_CLOSED', async () => {
      const empty = uniqueName('mbx');
      const full = uniqueName('mbx');
      const owner = child(['fill-hold', empty, full]);
      await owner.line('created');
      const a = await ShmMailbox.open(proc, empty, 'receive');
      const b = await ShmMailbox.open(proc, full, 'send');
      const receiving = assert.rejects(a.receive(), hasCode('MAILBOX_CLOSED'));
      const sending = assert.rejects(b.send('no room'), hasCode('MAILBOX_CLOSED'));
      const other = child(['pending', empty, 'receive']);
      await other.line('pending');
      owner.kill('SIGKILL');
      await Promise.all([receiving, sending]);
      await other.line('rejected');
      assert.ok(other.lines.includes('rejected MAILBOX_CLOSED'), JSON.stringify(other.lines));
      await assert.rejects(a.receive(), hasCode('MAILBOX_CLOSED'));
      assert.throws(() => Segment.open(empty), hasCode('NO_SUCH_SEGMENT'), 'the kernel unlinked it');
      await assert.rejects(ShmMailbox.open(proc, empty), hasCode('NO_SUCH_MAILBOX'));
    });
  });

  describe(`${queue}: bad input`, () => {
    test('unknown mailbox → NO_SUCH_MAILBOX; taken name → NAME_TAKEN', async () => {
      await assert.rejects(ShmMailbox.open(proc, uniqueName('nothing')), hasCode('NO_SUCH_MAILBOX'));
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 1 });
      await assert.rejects(ShmMailbox.create(proc, name, { queue, capacity: 1 }), hasCode('NAME_TAKEN'));
      await mb.send('the first mailbox is untouched');
      await mb.delete();
    });

    test('rights: no send or receive right → PERMISSION_DENIED; exclusive → RECEIVER_BUSY; role is enforced on the handle', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, {
        queue,
        capacity: 1,
        senders: ['tester'],
        receivers: ['tester'],
      });
      const stranger = await connect({ socketPath: daemon.socketPath, name: 'stranger' });
      try {
        await assert.rejects(ShmMailbox.open(stranger, name, 'send'), hasCode('PERMISSION_DENIED'));
        await assert.rejects(ShmMailbox.open(stranger, name, 'receive'), hasCode('PERMISSION_DENIED'));
        const ex = uniqueName('mbx');
        const exclusive = await ShmMailbox.create(proc, ex, {
          queue,
          capacity: 1,
          delivery: 'exclusive',
          role: 'send',
        });
        const first = await ShmMailbox.open(stranger, ex, 'receive');
        await assert.rejects(ShmMailbox.open(proc, ex, 'receive'), hasCode('RECEIVER_BUSY'));
        await assert.rejects(first.send('x'), hasCode('PERMISSION_DENIED'));
        await assert.rejects(exclusive.receive(), hasCode('PERMISSION_DENIED'));
        await exclusive.delete();
      } finally {
        await stranger.close();
      }
      await mb.delete();
    });

    test('sizes: too large → MESSAGE_TOO_LARGE, not the fixed size → WRONG_MESSAGE_SIZE; bad options → RangeError', async () => {
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue, capacity: 1, maxMessageSize: 100 });
      await assert.rejects(mb.send(Buffer.alloc(101)), hasCode('MESSAGE_TOO_LARGE'));
      await mb.delete();
      const fixedName = uniqueName('mbx');
      const fixed = await ShmMailbox.create(proc, fixedName, {
        queue,
        capacity: 1,
        maxMessageSize: 100,
        fixedMessageSize: 16,
      });
      await assert.rejects(fixed.send(Buffer.alloc(15)), hasCode('WRONG_MESSAGE_SIZE'));
      await fixed.send(Buffer.alloc(16));
      await fixed.delete();
      for (const bad of [
        { capacity: -1 },
        { capacity: 1.5 },
        { maxMessageSize: -1 },
        { fixedMessageSize: 200, maxMessageSize: 100 },
      ]) {
        await assert.rejects(ShmMailbox.create(proc, uniqueName('bad'), bad), RangeError);
      }
    });

    // Registered once, for the ring (what it names is ring-only).
    const ringOnly = queue === 'ring' ? test : () => undefined;
    ringOnly("queue 'ring': what the ring lacks fails with NOT_SUPPORTED", async () => {
      for (const options of [
        { queue: 'ring' as const, capacity: 0 },
        { queue: 'ring' as const, capacity: 'unbounded' as const },
        { queue: 'ring' as const, delivery: 'broadcast' as const },
      ]) {
        await assert.rejects(ShmMailbox.create(proc, uniqueName('ns'), options), hasCode('NOT_SUPPORTED'));
      }
      const name = uniqueName('mbx');
      const mb = await ShmMailbox.create(proc, name, { queue: 'ring', capacity: 1 });
      await assert.rejects(mb.send('x', { priority: 3 }), hasCode('NOT_SUPPORTED'));
      await assert.rejects(mb.send('x', { sync: true }), hasCode('NOT_SUPPORTED'));
      await assert.rejects(mb.receive({ ack: true }), hasCode('NOT_SUPPORTED'));
      await mb.delete();
    });
  });
}
