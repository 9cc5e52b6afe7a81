/**
 * peek against the real daemon and real child processes: copies of the first
 * queued messages in delivery order, left in place; bounded by count and by
 * bytes; refused without the receive right; the direct inbox for its own
 * process only; payload bytes exact; and a client that stops reading cannot
 * make peeks pile up in the kernel.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, MAX_PEEK_COUNT, type Mailbox, type Message } from '../../src/index.js';
import { Op } from '../../src/wire/protocol.js';
import {
  destroyAllRaw,
  errorCode,
  frame,
  type KernelHost,
  MiB,
  RawClient,
  startDaemonProcess,
  stopAllKernels,
} from '../fixtures/hardening-support.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

interface PeekedByPeer {
  messages: PeerMessage[];
  more: boolean;
}

function call(reqId: number, m: string, a: Record<string, unknown>): Buffer {
  return frame(Op.CALL, { reqId }, Buffer.from(JSON.stringify({ m, a })));
}

describe('peek', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  let peer: RemotePeer;

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'peek-test' });
    peer = await RemotePeer.start(daemon.socketPath, 'peek-peer');
  });

  after(async () => {
    destroyAllRaw();
    await stopAll();
    await me?.close();
    await daemon?.stop();
    await stopAllKernels();
  });

  /** Sent by the child process, so senders are real other processes. */
  async function fill(mailbox: string, items: Array<[value: unknown, priority: number]>): Promise<void> {
    for (const [value, priority] of items) await peer.ok('send', { mailbox, value, options: { priority } });
  }

  test('returns copies in delivery order (priority, then FIFO) and consumes nothing', async () => {
    const mb = await me.createMailbox('peek-order');
    await peer.ok('open', { mailbox: 'peek-order' });
    await fill('peek-order', [
      ['a', 0],
      ['b', 5],
      ['c', 0],
      ['d', 9],
      ['e', 5],
    ]);
    const expected = ['d', 'b', 'e', 'a', 'c'];
    const first = await mb.peek({ count: 10 });
    assert.deepEqual(
      first.messages.map((m) => m.data),
      expected,
    );
    assert.deepEqual(
      first.messages.map((m) => m.priority),
      [9, 5, 5, 0, 0],
    );
    assert.equal(first.more, false, 'all five were returned');
    for (const m of first.messages) {
      assert.equal(m.sender, 'peek-peer');
      assert.equal(m.codec, 'string');
      assert.equal(m.mailbox, 'peek-order');
      assert.equal(m.peeked, true);
    }
    const again = await mb.peek({ count: 10 });
    assert.deepEqual(
      again.messages.map((m) => m.data),
      expected,
      'a second peek sees the same',
    );
    const info = await mb.stat();
    assert.equal(info.depth, 5, 'nothing was taken out');
    assert.equal(info.counters.received, 0, 'a peek is not a delivery');
    const received: unknown[] = [];
    for (let i = 0; i < 5; i++) received.push((await mb.receive({ timeout: 10_000 })).data);
    assert.deepEqual(received, expected, 'receive then gets the same messages in the same order');
    assert.equal((await mb.stat()).counters.redelivered, 0, 'no redelivery was counted');
    await mb.delete();
  });

  test('count: default 1, at most MAX_PEEK_COUNT, and `more` says what was left out', async () => {
    const mb = await me.createMailbox('peek-count');
    for (let i = 0; i < 5; i++) await mb.send(i);
    const one = await mb.peek();
    assert.deepEqual(
      one.messages.map((m) => m.data),
      [0],
    );
    assert.equal(one.more, true);
    const two = await mb.peek({ count: 2 });
    assert.deepEqual(
      two.messages.map((m) => m.data),
      [0, 1],
    );
    assert.equal(two.more, true);
    const exact = await mb.peek({ count: 5 });
    assert.equal(exact.messages.length, 5);
    assert.equal(exact.more, false, 'count equal to the depth leaves nothing out');
    assert.equal((await mb.peek({ count: MAX_PEEK_COUNT })).messages.length, 5);
    for (const bad of [0, -1, 1.5, MAX_PEEK_COUNT + 1, Number.NaN]) {
      await assert.rejects(mb.peek({ count: bad }), RangeError, `count ${bad}`);
    }
    await mb.delete();
  });

  test('an empty mailbox answers [] at once; in-flight messages are not queued and not shown', async () => {
    const mb = await me.createMailbox('peek-empty');
    const t0 = Date.now();
    assert.deepEqual(await mb.peek({ count: 10 }), { messages: [], more: false });
    assert.ok(Date.now() - t0 < 2000);
    await mb.send('first');
    await mb.send('second');
    const held = await mb.receive({ ack: true, timeout: 10_000 });
    assert.equal(held.data, 'first');
    assert.deepEqual(
      (await mb.peek({ count: 10 })).messages.map((m) => m.data),
      ['second'],
      'the unacknowledged delivery is in flight, not queued',
    );
    held.nack();
    await waitFor(async () => (await mb.stat()).depth === 2, 10_000, 'the nacked message back in the queue');
    assert.deepEqual(
      (await mb.peek({ count: 10 })).messages.map((m) => m.data),
      ['first', 'second'],
      'given back, it is queued again in its place',
    );
    await mb.delete();
  });

  test('a peeked message has no delivery: ack() and nack() throw INVALID_ARGUMENT', async () => {
    const mb = await me.createMailbox('peek-ack');
    await mb.send('x');
    const [m] = (await mb.peek()).messages as [Message];
    assert.throws(() => m.ack(), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => m.nack(), { code: 'INVALID_ARGUMENT' });
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'x', 'the message itself is untouched');
    await mb.delete();
  });

  test('payload bytes round-trip exactly, small ones and ones large enough to travel by reference', async () => {
    const mb = await me.createMailbox('peek-bytes');
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const invalidUtf8 = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x00, 0xed, 0xa0, 0x80]);
    const large = randomBytes(200 * 1024);
    for (const b of [every, invalidUtf8, large]) await mb.send(b, { codec: 'bytes' });
    await mb.send({ nested: ['json', 1, null] });
    const { messages } = await mb.peek({ count: 10 });
    assert.equal(messages.length, 4);
    assert.deepEqual(
      messages.map((m) => m.codec),
      ['bytes', 'bytes', 'bytes', 'json'],
    );
    assert.ok(messages[0]!.bytes.equals(every));
    assert.ok(messages[1]!.bytes.equals(invalidUtf8));
    assert.ok(messages[2]!.bytes.equals(large));
    assert.deepEqual(messages[3]!.data, { nested: ['json', 1, null] });
    const received = await mb.receive({ timeout: 10_000 });
    assert.ok(received.bytes.equals(messages[0]!.bytes), 'the received message is the peeked one');
    await mb.delete();
  });

  test('needs the receive right: PERMISSION_DENIED until the owner grants it', async () => {
    await peer.ok('create', {
      mailbox: 'peek-private',
      mailboxOptions: { senders: 'everyone', receivers: ['someone-else'] },
    });
    await peer.ok('send', { mailbox: 'peek-private', value: 'secret' });
    const mb = await me.openMailbox('peek-private');
    await mb.send('may send, may not look');
    await assert.rejects(mb.peek(), { code: 'PERMISSION_DENIED' });
    const own = await peer.ok<PeekedByPeer>('peek', { mailbox: 'peek-private', count: 5 });
    assert.deepEqual(
      own.messages.map((m) => m.data),
      ['secret', 'may send, may not look'],
      'the owner may peek',
    );
    await peer.ok('grant', { mailbox: 'peek-private', right: 'receive', who: 'peek-test' });
    assert.deepEqual(
      (await mb.peek({ count: 5 })).messages.map((m) => m.data),
      ['secret', 'may send, may not look'],
    );
    await peer.ok('revoke', { mailbox: 'peek-private', right: 'receive', who: 'peek-test' });
    await assert.rejects(mb.peek(), { code: 'PERMISSION_DENIED' }, 'revoked again');
    await peer.ok('delete', { mailbox: 'peek-private' });
  });

  test('the direct inbox: its process peeks at it in receive order; nobody else may', async () => {
    await peer.ok('send', { to: 'peek-test', value: 'low', options: { priority: 1 } });
    await peer.ok('send', { to: 'peek-test', value: 'high', options: { priority: 7 } });
    const { messages, more } = await me.peek({ count: 10 });
    assert.deepEqual(
      messages.map((m) => [m.data, m.sender, m.mailbox]),
      [
        ['high', 'peek-peer', '@peek-test'],
        ['low', 'peek-peer', '@peek-test'],
      ],
    );
    assert.equal(more, false);
    const inbox = (await me.listProcesses()).find((p) => p.name === 'peek-test')!.inbox;
    const raw = await RawClient.hello(daemon.socketPath, 'peek-snoop');
    raw.write(call(7, 'mailbox.peek', { id: inbox, count: 10 }));
    const answer = await raw.next((f) => f.reqId === 7 && (f.op === Op.ERROR || f.op === Op.RESULT));
    assert.equal(answer.op, Op.ERROR);
    assert.equal(errorCode(answer), 'PERMISSION_DENIED');
    assert.ok(!raw.frames.some((f) => f.op === Op.DELIVER), 'no copy of anything went out');
    raw.destroy();
    assert.equal((await me.receive({ timeout: 10_000 })).data, 'high');
    assert.equal((await me.receive({ timeout: 10_000 })).data, 'low');
    assert.deepEqual(await me.peek(), { messages: [], more: false });
  });

  test('a deleted mailbox: MAILBOX_CLOSED (or NO_SUCH_MAILBOX), for this handle and another process', async () => {
    const mb = await me.createMailbox('peek-gone');
    await peer.ok('open', { mailbox: 'peek-gone' });
    await mb.send('x');
    await mb.delete();
    await assert.rejects(mb.peek(), (e: { code?: string }) => {
      assert.ok(e.code === 'MAILBOX_CLOSED' || e.code === 'NO_SUCH_MAILBOX', `got ${e.code}`);
      return true;
    });
    const r = await peer.fails('peek', { mailbox: 'peek-gone' });
    assert.ok(r.code === 'MAILBOX_CLOSED' || r.code === 'NO_SUCH_MAILBOX', `got ${r.code}`);
  });

  test('one answer carries at most maxMessageSize of payload, always the first message, and says more', async () => {
    const small: KernelHost = await startDaemonProcess(['--max-message-size', String(64 * 1024)]);
    const p = await connect({ socketPath: small.socketPath, name: 'peek-cap' });
    try {
      const mb: Mailbox = await p.createMailbox('peek-cap');
      const payloads = [0, 1, 2].map(() => randomBytes(30 * 1024));
      for (const b of payloads) await mb.send(b);
      const two = await mb.peek({ count: 3 });
      assert.equal(two.messages.length, 2, 'two of 30 KiB fit 64 KiB, a third does not');
      assert.equal(two.more, true);
      assert.ok(two.messages[0]!.bytes.equals(payloads[0]!) && two.messages[1]!.bytes.equals(payloads[1]!));
      const biggest = randomBytes(64 * 1024);
      await mb.send(biggest, { priority: 3 });
      const one = await mb.peek({ count: 3 });
      assert.equal(one.messages.length, 1, 'a message of the full limit comes alone');
      assert.ok(one.messages[0]!.bytes.equals(biggest));
      assert.equal(one.more, true);
      assert.equal((await mb.stat()).depth, 4);
    } finally {
      await p.close();
      await small.stop();
    }
  });

  test('a client that pipelines peeks and stops reading is refused KERNEL_FULL; the kernel stays bounded and serves others', async () => {
    const mb = await me.createMailbox('peek-flood');
    await mb.send(randomBytes(MiB), { codec: 'bytes' });
    const id = mb.id;
    const raw = await RawClient.hello(daemon.socketPath, 'peek-hog');
    raw.pause();
    const calls = Array.from({ length: 64 }, (_, i) => call(100 + i, 'mailbox.peek', { id, count: 1 }));
    raw.write(Buffer.concat(calls));
    // 64 copies of 1 MiB would be 64 MiB; the kernel writes a few and refuses the rest.
    await waitFor(
      async () => (await me.status()).kernel.memory.backlog > 0,
      10_000,
      'the kernel to hold answers the hog does not read',
    );
    const status = await me.status();
    assert.ok(
      status.kernel.memory.backlog < 8 * MiB,
      `unread answers stay bounded: ${status.kernel.memory.backlog} bytes`,
    );
    assert.equal((await mb.peek()).messages[0]!.bytes.length, MiB, 'others are served meanwhile');
    raw.socket.resume();
    await waitFor(
      () => raw.frames.filter((f) => f.op === Op.RESULT || f.op === Op.ERROR).length === calls.length,
      30_000,
      'an answer to every peek',
    );
    const answers = raw.frames.filter((f) => f.op === Op.RESULT || f.op === Op.ERROR);
    const refused = answers.filter((f) => f.op === Op.ERROR);
    assert.ok(refused.length > 0, 'some peeks were refused');
    assert.ok(refused.every((f) => errorCode(f) === 'KERNEL_FULL'));
    const copies = raw.frames.filter((f) => f.op === Op.DELIVER);
    assert.equal(copies.length, answers.length - refused.length, 'one copy per answered peek');
    assert.ok(copies.length <= 8, `only a few copies were written (${copies.length})`);
    raw.destroy();
    assert.equal((await mb.stat()).depth, 1, 'the message itself stayed queued throughout');
    await waitFor(
      async () => (await me.status()).kernel.memory.backlog === 0,
      10_000,
      "the hog's unread answers to be released",
    );
    await mb.delete();
  });
});
