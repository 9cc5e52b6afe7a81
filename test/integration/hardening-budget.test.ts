/**
 * Hardening of the kernel's memory and time under load.
 *
 * - r14: 32k parked sends to a full mailbox do not stall the kernel: a
 *   bystander's calls keep being answered quickly while they arrive.
 * - r09: with a 4 MiB budget, parked sends beyond it are refused KERNEL_FULL.
 * - r13: tiny messages queued among a stream do not pin the read chunks they
 *   arrived in (measured in the kernel after GC, and its RSS).
 * - A reader that stops reading its socket while a sender streams does not
 *   make the kernel buffer without bound: senders get KERNEL_FULL instead.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type MailboxInfo } from '../../src/index.js';
import { Op } from '../../src/wire/protocol.js';
import {
  destroyAllRaw,
  frame,
  type KernelHost,
  MiB,
  outcomeOf,
  RawClient,
  rssOf,
  startDaemonProcess,
  startKernelHost,
  stopAllKernels,
  u32s,
  within,
} from '../fixtures/hardening-support.js';
import { type Spawned, spawnFixture, waitFor } from '../helpers/kernel-harness.js';
import { RemotePeer, stopAll } from './remote-peer.js';

const BUDGET = 4 * MiB;

describe('hardening: memory and time under load', () => {
  const clients: IpcProcess[] = [];
  const children = new Set<Spawned>();

  async function client(socketPath: string, name: string): Promise<IpcProcess> {
    const p = await connect({ socketPath, name });
    clients.push(p);
    return p;
  }

  function child(socketPath: string, scenario: string, args: Record<string, unknown>): Spawned {
    const c = spawnFixture('hardening-client', [scenario, JSON.stringify(args)], socketPath);
    children.add(c);
    void c.exit.then(() => children.delete(c));
    return c;
  }

  after(async () => {
    destroyAllRaw();
    for (const c of children) c.kill('SIGKILL');
    await stopAll();
    await Promise.all(clients.map((p) => p.close()));
    await stopAllKernels();
  });

  test('r14: 32k parked sends to a full mailbox do not stall the kernel for a bystander', async (t) => {
    const kernel = await startDaemonProcess();
    const flooder = await client(kernel.socketPath, 'flooder');
    const mb = await flooder.createMailbox('full', { capacity: 1 });
    await mb.send('fill');
    const bystander = await RemotePeer.start(kernel.socketPath, 'bystander');
    await bystander.ok('open', { mailbox: 'full' });

    const N = 32_000;
    const sends: Promise<string>[] = [];
    for (let i = 0; i < N; i++) sends.push(outcomeOf(mb.send(i, { timeout: 60_000 })));
    // The bystander asks again and again while the kernel takes the sends in.
    let slowest = 0;
    await waitFor(
      async () => {
        const r = await bystander.call<MailboxInfo>('stat', { mailbox: 'full' });
        assert.ok(r.ok, `the bystander's call failed: ${r.code}`);
        slowest = Math.max(slowest, r.elapsed);
        return r.value.waitingSenders === N;
      },
      20_000,
      `all ${N} sends to park`,
    );
    t.diagnostic(`slowest bystander answer: ${slowest.toFixed(0)} ms`);
    assert.ok(slowest < 1000, `the bystander waited up to ${slowest.toFixed(0)} ms for an answer`);
    await mb.delete();
    const outcomes = await within(Promise.all(sends), 20_000, 'the parked sends to fail');
    assert.ok(
      outcomes.every((o) => o === 'MAILBOX_CLOSED'),
      'every parked send ends with its mailbox',
    );
    await stopAll([bystander]);
    await kernel.stop();
  });

  describe(`with a memory budget of ${BUDGET / MiB} MiB`, () => {
    let kernel: KernelHost;
    let me: IpcProcess;

    before(async () => {
      kernel = await startKernelHost({ memoryBudget: BUDGET });
      me = await client(kernel.socketPath, 'budget-owner');
    });

    test('r09: parked sends beyond the budget are refused KERNEL_FULL, not all accepted', async (t) => {
      const mb = await me.createMailbox('tiny', { capacity: 1 });
      await mb.send('fill');
      const payload = Buffer.alloc(512 * 1024, 7);
      const outcomes: string[] = [];
      const sends = Array.from({ length: 160 }, () =>
        outcomeOf(mb.send(payload)).then((o) => outcomes.push(o)),
      );
      let parked = 0;
      await waitFor(
        async () => {
          parked = (await mb.stat()).waitingSenders;
          return parked + outcomes.length === 160;
        },
        20_000,
        'every send to be parked or refused',
      );
      t.diagnostic(`${parked} parked, ${outcomes.length} refused`);
      assert.ok(outcomes.length > 0, 'some sends were refused');
      assert.ok(
        outcomes.every((o) => o === 'KERNEL_FULL'),
        `refusals: ${[...new Set(outcomes)].join(', ')}`,
      );
      assert.ok(parked * payload.length <= BUDGET, `${parked} parked sends of 512 KiB fit the budget`);
      await mb.delete();
      await within(Promise.all(sends), 10_000, 'the parked sends to end');
    });

    /**
     * Stream to a consumed mailbox and, in the same batches, send one tiny message per batch to
     * `tiny` (each arrives in a read chunk of its own, the rest of which is garbage once the
     * stream is consumed). Returns how much the kernel's retained buffers (after GC) and RSS grew.
     */
    async function tinyAmongStream(tiny: string, prepare: () => Promise<void>) {
      const busy = await me.createMailbox('busy', { capacity: 'unbounded' });
      const small = await me.createMailbox(tiny, { capacity: 4096 });
      const rx = child(kernel.socketPath, 'drain', { mailbox: 'busy' });
      await rx.line((l) => l.includes('"ready"'));
      await prepare();
      await busy.send('warm');
      await small.send('warm');
      const before = await kernel.memory();
      const rssBefore = rssOf(kernel.pid);
      const tinySends: Promise<string>[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        tinySends.push(outcomeOf(small.send('i')));
        for (let i = 0; i < 550; i++) busy.send(FILLER).catch(() => {});
        await new Promise((res) => setImmediate(() => setImmediate(res)));
      }
      const outcomes = await within(Promise.all(tinySends), 10_000, 'the tiny sends');
      await waitFor(async () => (await busy.stat()).depth === 0, 20_000, 'the reader to drain the stream');
      const afterward = await kernel.memory();
      const status = await me.status();
      const result = {
        outcomes,
        depth: (await small.stat()).depth,
        pinned: afterward.arrayBuffers - before.arrayBuffers,
        rssGrowth: rssOf(kernel.pid) - rssBefore,
        memoryUsed: status.kernel.memoryUsed,
      };
      rx.kill();
      await busy.delete();
      await small.delete();
      return result;
    }

    const ROUNDS = 300;
    const FILLER = Buffer.alloc(100, 1);

    function assertUnpinned(
      t: { diagnostic(m: string): void },
      r: Awaited<ReturnType<typeof tinyAmongStream>>,
    ): void {
      t.diagnostic(
        `kept buffers +${(r.pinned / MiB).toFixed(1)} MiB, RSS +${(r.rssGrowth / MiB).toFixed(0)} MiB, memoryUsed ${r.memoryUsed}`,
      );
      assert.ok(
        r.pinned < BUDGET,
        `buffers the kernel keeps after GC grew by ${(r.pinned / MiB).toFixed(1)} MiB`,
      );
      assert.ok(r.rssGrowth < 64 * MiB, `kernel RSS grew by ${(r.rssGrowth / MiB).toFixed(0)} MiB`);
      assert.ok(r.memoryUsed <= BUDGET, `memoryUsed ${r.memoryUsed} is within the budget of ${BUDGET}`);
    }

    test('r13: tiny messages queued among a stream do not pin the read chunks they came in', async (t) => {
      const r = await tinyAmongStream('idle', async () => {});
      assert.deepEqual(new Set(r.outcomes), new Set(['resolved']), 'every tiny send was accepted');
      assert.equal(r.depth, ROUNDS + 1, 'they are all queued');
      assertUnpinned(t, r);
    });

    for (const [how, args] of [
      ['held unacknowledged by an ack-mode receiver', { hold: true, prefetch: 4096 }],
      ['pushed to a receiver whose loop is busy', { stuckAfter: 1, prefetch: 4096 }],
    ] as const) {
      test(`r13: tiny messages ${how} do not pin read chunks past the budget`, async (t) => {
        let holder: Spawned | undefined;
        const r = await tinyAmongStream('held', async () => {
          holder = child(kernel.socketPath, 'drain', { mailbox: 'held', ...args });
          await holder.line((l) => l.includes('"ready"'));
        });
        holder?.kill();
        assert.ok(
          r.outcomes.every((o) => o === 'resolved' || o === 'KERNEL_FULL'),
          r.outcomes.join(),
        );
        assert.equal(r.depth, 0, 'the receiver has them all');
        assertUnpinned(t, r);
      });
    }

    test('a reader that stops reading its socket does not grow the kernel past a bound: the sender gets KERNEL_FULL', async (t) => {
      const hose = await me.createMailbox('firehose', { capacity: 'unbounded' });
      const reader = await RawClient.hello(kernel.socketPath, 'slow-reader');
      reader.write(frame(Op.DEMAND, { reqId: 7, target: hose.id }, u32s(65_536)));
      await waitFor(async () => (await hose.stat()).attached === 1, 5000, 'the reader to attach');
      reader.pause();
      const rssBefore = rssOf(kernel.pid);

      const COUNT = 4000;
      const SIZE = 64 * 1024;
      // By copy: this is about the kernel's own memory. By map the payloads would wait in the
      // sender's bounded region instead (test/integration/map-payloads.test.ts).
      const tx = child(kernel.socketPath, 'stream', {
        mailbox: 'firehose',
        count: COUNT,
        size: SIZE,
        map: false,
      });
      const streamed = JSON.parse(await tx.line((l) => l.includes('"streamed"'), 60_000)) as {
        ok: number;
        codes: Record<string, number>;
      };
      const rssGrowth = rssOf(kernel.pid) - rssBefore;
      t.diagnostic(`${JSON.stringify(streamed)}; RSS +${(rssGrowth / MiB).toFixed(0)} MiB`);
      assert.ok(kernel.alive());
      assert.ok((streamed.codes.KERNEL_FULL ?? 0) > 0, `the sender was refused: ${JSON.stringify(streamed)}`);
      assert.deepEqual(Object.keys(streamed.codes), ['KERNEL_FULL'], 'refused only for the budget');
      assert.ok(streamed.ok * SIZE < 64 * MiB, `${streamed.ok} of ${COUNT} sends of 64 KiB were accepted`);
      assert.ok(
        rssGrowth < 4 * BUDGET + 100 * MiB,
        `kernel RSS grew by ${(rssGrowth / MiB).toFixed(0)} MiB while ${(COUNT * SIZE) / MiB} MiB were offered`,
      );
      const status = await me.status();
      assert.ok(
        status.kernel.memoryUsed <= BUDGET,
        `memoryUsed ${status.kernel.memoryUsed} is within the budget`,
      );
      tx.kill();
      reader.destroy();
      await hose.delete();
    });
  });
});
