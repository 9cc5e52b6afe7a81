import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import { type IpcError, listMessageQueues, MessageQueue } from '../../src/index.js';
import {
  blockedInKernel,
  buildCPeer,
  Cleanup,
  PY_PEER,
  spawnPeer,
  stopPeers,
  uniqueName,
} from './fixtures/peers.js';

const te = new TextEncoder();
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const hasCode = (code: string) => (e: IpcError) => e.code === code;

/** POSIX message queues between ipcbox and C / Python programs, at the OS limits, and with a killed receiver. */
describe('POSIX message queues', () => {
  let cPeer: string;
  let removeDir: () => void;
  const cleanup = new Cleanup();

  const fresh = (tag: string, options: { maxMessages?: number; messageSize?: number } = {}) => {
    const name = `/${uniqueName(tag)}`;
    const q = MessageQueue.open(name, {
      create: true,
      exclusive: true,
      maxMessages: 8,
      messageSize: 256,
      ...options,
    });
    cleanup.add(() => MessageQueue.unlink(name));
    cleanup.add(() => q.close());
    return q;
  };

  before(async () => {
    ({ cPeer, remove: removeDir } = await buildCPeer());
  });
  afterEach(async () => {
    await stopPeers();
    cleanup.run();
  });
  after(() => removeDir());

  for (const lang of ['C', 'Python'] as const) {
    const peer = (args: string[]) =>
      lang === 'C' ? spawnPeer(cPeer, args) : spawnPeer('python3', [PY_PEER, ...args]);

    it(`${lang} receives ipcbox's messages highest priority first`, async () => {
      const q = fresh(`to-${lang}`);
      q.trySend(te.encode('low'), { priority: 1 });
      await q.send(te.encode('high'), { priority: 30000 });
      q.sendSync(te.encode('mid'), { priority: 7 });
      q.trySend(te.encode('low2'), { priority: 1 });
      const p = peer(['mq-recv', q.name, '4']);
      assert.equal(await p.exited, 0, p.lines.join('\n'));
      assert.deepEqual(p.lines.slice(1), ['30000 high', '7 mid', '1 low', '1 low2']);
    });

    it(`an async receive in Node is woken by ${lang}'s send, and ${lang}'s priorities are reported`, async () => {
      const q = fresh(`from-${lang}`);
      let settled = false;
      const first = q.receive({ timeout: 20_000 }).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(settled, false, 'receive waits on an empty queue');
      const p = peer(['mq-send', q.name, '4', 'wake']);
      const m = await first;
      assert.equal(text(m.bytes), 'wake');
      assert.equal(m.priority, 4);
      assert.equal(await p.exited, 0);
      const p2 = peer(['mq-send', q.name, '2', 'b', '9', 'a', '2', 'c']);
      assert.equal(await p2.exited, 0);
      const got = [q.tryReceive(), await q.receive(), q.receiveSync({ timeout: 1000 })];
      assert.deepEqual(
        got.map((g) => `${g.priority} ${text(g.bytes)}`),
        ['9 a', '2 b', '2 c'],
      );
    });
  }

  it('at its OS limits: full → WOULD_BLOCK and TIMEOUT; oversized → MESSAGE_TOO_LARGE; maxMessages > msg_max → OS_LIMIT naming the sysctl', async () => {
    const q = fresh('full', { maxMessages: 2, messageSize: 64 });
    assert.deepEqual(q.attributes(), { maxMessages: 2, messageSize: 64, currentMessages: 0 });
    q.trySend(te.encode('1'));
    q.trySend(te.encode('2'));
    assert.throws(() => q.trySend(te.encode('3')), hasCode('WOULD_BLOCK'));
    const t0 = performance.now();
    await assert.rejects(q.timedSend(te.encode('3'), 100), hasCode('TIMEOUT'));
    assert.ok(performance.now() - t0 >= 90, 'timedSend waited for its timeout');
    assert.throws(() => q.sendSync(te.encode('3'), { timeout: 50 }), hasCode('TIMEOUT'));
    assert.throws(
      () => q.trySend(new Uint8Array(65)),
      (e: IpcError) =>
        e.code === 'MESSAGE_TOO_LARGE' && /65 bytes/.test(e.message) && /messageSize 64/.test(e.message),
    );
    assert.equal(q.attributes().currentMessages, 2);

    const msgMax = Number(readFileSync('/proc/sys/fs/mqueue/msg_max', 'utf8'));
    const name = `/${uniqueName('too-deep')}`;
    assert.throws(
      () => {
        const big = MessageQueue.open(name, { create: true, maxMessages: msgMax + 1, messageSize: 64 });
        cleanup.add(() => MessageQueue.unlink(name));
        big.close();
      },
      (e: IpcError) =>
        e.code === 'OS_LIMIT' &&
        e.message.includes('/proc/sys/fs/mqueue/msg_max') &&
        e.message.includes(`sysctl fs.mqueue.msg_max=${msgMax + 1}`) &&
        (e.cause as NodeJS.ErrnoException).code === 'EINVAL',
    );
    const sizeMax = Number(readFileSync('/proc/sys/fs/mqueue/msgsize_max', 'utf8'));
    assert.throws(
      () => MessageQueue.open(name, { create: true, maxMessages: 1, messageSize: sizeMax + 1 }),
      (e: IpcError) => e.code === 'OS_LIMIT' && e.message.includes('/proc/sys/fs/mqueue/msgsize_max'),
    );
  });

  it('an empty queue: tryReceive WOULD_BLOCK, receive times out or is aborted, close rejects pending receives', async () => {
    const q = fresh('empty');
    assert.throws(() => q.tryReceive(), hasCode('WOULD_BLOCK'));
    await assert.rejects(q.timedReceive(50), hasCode('TIMEOUT'));
    assert.throws(() => q.receiveSync({ timeout: 30 }), hasCode('TIMEOUT'));
    const ac = new AbortController();
    const aborted = q.receive({ signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 30);
    await assert.rejects(aborted, hasCode('ABORTED'));
    const pending = q.receive();
    q.close();
    await assert.rejects(pending, hasCode('MAILBOX_CLOSED'));
    assert.throws(() => q.tryReceive(), hasCode('MAILBOX_CLOSED'));
  });

  it('open errors: missing queue NO_SUCH_OBJECT, exclusive on an existing one NAME_TAKEN, bad names INVALID_ARGUMENT', () => {
    const q = fresh('errors');
    assert.throws(() => MessageQueue.open(`${q.name}-missing`), hasCode('NO_SUCH_OBJECT'));
    assert.throws(() => MessageQueue.open(q.name, { create: true, exclusive: true }), hasCode('NAME_TAKEN'));
    assert.throws(() => MessageQueue.open('/a/b'), hasCode('INVALID_ARGUMENT'));
    if (existsSync('/dev/mqueue')) assert.ok(listMessageQueues().includes(q.name));
    else assert.throws(() => listMessageQueues(), hasCode('NOT_SUPPORTED'));
    const again = MessageQueue.open(q.name.slice(1));
    assert.equal(again.messageSize, 256);
    again.close();
  });

  it('a receiver SIGKILLed while blocked takes nothing: a later message reaches the receiver still waiting', async () => {
    const q = fresh('killed');
    const victim = spawnPeer(cPeer, ['mq-recv', q.name, '1']);
    await victim.line('ready');
    const survivor = q.receive({ timeout: 20_000 });
    await blockedInKernel(victim.pid);
    victim.kill('SIGKILL');
    assert.equal(await victim.exited, 'SIGKILL');
    const sender = spawnPeer('python3', [PY_PEER, 'mq-send', q.name, '3', 'after-kill']);
    assert.equal(await sender.exited, 0);
    const m = await survivor;
    assert.equal(text(m.bytes), 'after-kill');
    assert.equal(q.attributes().currentMessages, 0);
  });
});
