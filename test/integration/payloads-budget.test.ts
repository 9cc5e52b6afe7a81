import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcError, type IpcProcess } from '../../src/index.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

describe('payload codecs across processes', () => {
  let d: Daemon;
  let me: IpcProcess;
  let peer: RemotePeer;

  before(async () => {
    d = await startDaemon();
    me = await connect({ socketPath: d.socketPath, name: 'codec-tester' });
    peer = await RemotePeer.start(d.socketPath, 'codec-peer');
  });
  after(async () => {
    await stopAll();
    await me?.close();
    await d?.stop();
  });

  test('each codec chosen per send reaches the other process with its codec and value', async () => {
    const cases: Array<[string, unknown, 'bytes' | 'string' | 'json' | 'v8', unknown]> = [
      ['bytes', Buffer.from([0, 1, 2, 255]), 'bytes', { type: 'Buffer', data: [0, 1, 2, 255] }],
      ['string', 'grüße ✓', 'string', 'grüße ✓'],
      ['json', { a: [1, 2, { b: null }], c: 'x' }, 'json', { a: [1, 2, { b: null }], c: 'x' }],
      ['v8', { nested: { n: 42, list: ['x'] } }, 'v8', { nested: { n: 42, list: ['x'] } }],
    ];
    for (const [label, value, codec, seen] of cases) {
      await me.send('codec-peer', value, { codec });
      const m = await peer.ok<PeerMessage>('receive', { options: { timeout: 10_000 } });
      assert.equal(m.codec, codec, label);
      assert.deepEqual(m.data, seen, label);
      assert.equal(m.sender, 'codec-tester', label);
    }
  });

  test('bytes pass through untouched and structured clone keeps types JSON cannot carry', async () => {
    const other = await connect({ socketPath: d.socketPath, name: 'codec-other' });
    try {
      const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
      await other.send('codec-tester', bytes);
      const b = await me.receive({ from: 'codec-other', timeout: 10_000 });
      assert.equal(b.codec, 'bytes');
      assert.deepEqual(Buffer.compare(b.bytes, bytes), 0);
      const value = new Map<string, unknown>([
        ['when', new Date(0)],
        ['set', new Set([1, 2])],
      ]);
      await other.send('codec-tester', value, { codec: 'v8' });
      const v = await me.receive({ from: 'codec-other', timeout: 10_000 });
      assert.equal(v.codec, 'v8');
      assert.ok(v.data instanceof Map);
      assert.deepEqual(v.data, value);
    } finally {
      await other.close();
    }
  });

  test('a synchronous send completes only when the receiving process has taken the message', async () => {
    const mb = await me.createMailbox('sync-box', { capacity: 10 });
    let done = false;
    const sending = mb.send('now', { sync: true }).then(() => {
      done = true;
    });
    await waitFor(async () => (await mb.stat()).depth === 1, 10_000, 'the message queued');
    assert.equal(done, false, 'a sync send must wait although the mailbox has room');
    const m = await peer.ok<PeerMessage>('receive', { mailbox: 'sync-box', options: { timeout: 10_000 } });
    assert.equal(m.data, 'now');
    await sending;
    assert.equal(done, true);
  });
});

describe('kernel memory budget', () => {
  const BUDGET = 64 * 1024;
  let d: Daemon;

  before(async () => {
    d = await startDaemon(['--memory-budget', String(BUDGET)]);
  });
  after(async () => {
    await stopAll();
    await d?.stop();
  });

  test('an unbounded mailbox past the budget refuses sends with KERNEL_FULL, keeps what it accepted and keeps serving', async () => {
    const sender = await connect({ socketPath: d.socketPath, name: 'flooder' });
    try {
      const mb = await sender.createMailbox('flood', { capacity: 'unbounded' });
      const payload = Buffer.alloc(1024, 7);
      let accepted = 0;
      let refusal: IpcError | undefined;
      for (let i = 0; i < 1000 && refusal === undefined; i++) {
        try {
          await mb.send(payload);
          accepted++;
        } catch (e) {
          refusal = e as IpcError;
        }
      }
      assert.ok(refusal, 'the kernel refused a send before 1000 KiB were queued');
      assert.equal(refusal.code, 'KERNEL_FULL');
      assert.ok(accepted > 0);
      const status = await sender.status();
      assert.ok(
        status.kernel.memoryUsed <= BUDGET,
        `queued ${status.kernel.memoryUsed} bytes within the ${BUDGET}-byte budget`,
      );
      assert.equal(
        status.mailboxes.find((m) => m.name === 'flood')!.depth,
        accepted,
        'every accepted message is queued',
      );

      const drainer = await RemotePeer.start(d.socketPath, 'drainer');
      const got = await drainer.ok<number>('consume', { mailbox: 'flood', count: accepted });
      assert.equal(got, accepted, 'another process receives every accepted message');
      await mb.send(payload);
      assert.equal((await mb.stat()).depth, 1, 'with room again, sends succeed');
    } finally {
      await sender.close();
    }
  });
});
