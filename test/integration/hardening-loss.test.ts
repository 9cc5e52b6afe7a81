/**
 * Hardening against message loss: every delivery is tracked until the
 * receiving client confirms it, and a credited send resolves only once its
 * batch is in the socket.
 *
 * - send-then-exit: a send that resolved is delivered even if its process
 *   exits (process.exit) or is SIGKILLed right after.
 * - r15/r06: a `for await` loop without ack SIGKILLed after taking k of N
 *   prefetched messages loses none of the others; `close()` then leaving the
 *   loop loses nothing; `break` hands the rest back in their original order
 *   (with and without ack).
 * - SIGKILL at each step of a message's life, as the README promises: with
 *   ack, at least once (redelivered until acknowledged); without ack, lost
 *   only if the receiver dies after the application took it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox, type Message } from '../../src/index.js';
import {
  type KernelHost,
  startDaemonProcess,
  stopAllKernels,
  within,
} from '../fixtures/hardening-support.js';
import { type Spawned, spawnFixture, waitFor } from '../helpers/kernel-harness.js';

const N = 20;
const K = 5;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('hardening: no message lost', () => {
  let kernel: KernelHost;
  let me: IpcProcess;
  const children = new Set<Spawned>();

  before(async () => {
    kernel = await startDaemonProcess();
    me = await connect({ socketPath: kernel.socketPath, name: 'survivor' });
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await me?.close();
    await stopAllKernels();
  });

  function child(scenario: string, args: Record<string, unknown>): Spawned {
    const c = spawnFixture('hardening-client', [scenario, JSON.stringify(args)], kernel.socketPath);
    children.add(c);
    void c.exit.then(() => children.delete(c));
    return c;
  }

  /** A line the child printed, parsed. */
  async function event<T = Record<string, unknown>>(c: Spawned, name: string): Promise<T> {
    return JSON.parse(await c.line((l) => l.startsWith(`{"event":"${name}"`))) as T;
  }

  async function exited(c: Spawned): Promise<void> {
    await within(c.exit, 10_000, 'the child to exit');
  }

  /** Take every message now in `mb` (acknowledging each in ack mode). */
  async function drain(mb: Mailbox, ack = false): Promise<unknown[]> {
    const got: unknown[] = [];
    for (;;) {
      let m: Message;
      try {
        m = await mb.tryReceive({ ack });
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'WOULD_BLOCK');
        return got;
      }
      if (ack) m.ack();
      got.push(m.data);
    }
  }

  async function depthAtLeast(mb: Mailbox, n: number, what: string): Promise<void> {
    await waitFor(async () => (await mb.stat()).depth >= n, 5000, what);
  }

  for (const how of ['exit', 'kill'] as const) {
    test(`send-then-exit: a resolved send is delivered though its process then ends (${how})`, async () => {
      const mb = await me.createMailbox(`ste-${how}`, { capacity: 8, owner: 'system' });
      const c = child('send-then-die', { mailbox: mb.name, value: `resolved-${how}`, how });
      const credited = await event<{ promised: number }>(c, 'credited');
      assert.ok(credited.promised > 0, 'the second send goes out within credit');
      await exited(c);
      await depthAtLeast(mb, 2, 'both messages to arrive');
      assert.deepEqual(await drain(mb), ['warm-up', `resolved-${how}`]);
      await mb.delete();
    });
  }

  /** A mailbox holding 1..N. */
  async function filled(name: string): Promise<Mailbox> {
    const mb = await me.createMailbox(name, { capacity: 100 });
    for (const i of range(1, N)) await mb.send(i);
    return mb;
  }

  test(`r15: a for-await loop without ack SIGKILLed after taking ${K} of ${N} prefetched loses none of the rest`, async () => {
    const mb = await filled('pf-kill');
    const c = child('iterate', { mailbox: mb.name, take: K, finally: 'kill' });
    const took = (await event<{ values: number[] }>(c, 'took')).values;
    assert.deepEqual(took, range(1, K));
    await exited(c);
    await depthAtLeast(mb, N - K, 'the untaken messages to come back');
    const got = (await drain(mb)) as number[];
    const rest = got.filter((v) => v > K);
    assert.deepEqual(rest, range(K + 1, N), 'every message not taken is redelivered, in order');
    assert.ok(
      got.filter((v) => v <= K).every((v) => took.includes(v)),
      'anything else redelivered is one the loop took (at least once)',
    );
    await mb.delete();
  });

  test('r15: close() and then leaving the loop loses nothing', async () => {
    const mb = await filled('pf-close');
    const c = child('iterate', { mailbox: mb.name, take: K, finally: 'close' });
    assert.deepEqual((await event<{ values: number[] }>(c, 'took')).values, range(1, K));
    await event(c, 'left');
    await depthAtLeast(mb, N - K, 'the prefetched messages to come back');
    assert.deepEqual(await drain(mb), range(K + 1, N), 'every prefetched message is back, in order');
    c.kill();
    await mb.delete();
  });

  for (const ack of [false, true]) {
    test(`r06: break after taking ${K} hands the rest back in their original order (ack: ${ack})`, async () => {
      const mb = await filled(`pf-break-${ack}`);
      const c = child('iterate', { mailbox: mb.name, take: K, ack, finally: 'break' });
      assert.deepEqual((await event<{ values: number[] }>(c, 'took')).values, range(1, K));
      await event(c, 'left');
      assert.equal((await mb.stat()).depth, N - K, 'the unread ones are back in the mailbox');
      assert.deepEqual(await drain(mb, ack), range(K + 1, N), 'a later receiver sees them in order');
      c.kill();
      await mb.delete();
    });
  }

  test(`r06: break after taking ${K} and closing the handle: the rest come back in order, nothing taken does`, async () => {
    const mb = await filled('pf-close-handle');
    const c = child('iterate', { mailbox: mb.name, take: K, finally: 'close-handle' });
    assert.deepEqual((await event<{ values: number[] }>(c, 'took')).values, range(1, K));
    await event(c, 'left');
    assert.deepEqual(await drain(mb), range(K + 1, N), 'a later receiver sees exactly the unread ones');
    c.kill();
    await mb.delete();
  });

  test('a message taken with receive() does not come back when its handle is closed right after', async () => {
    const mb = await me.createMailbox('taken-then-closed', { capacity: 8 });
    await mb.send('taken');
    await mb.send('next');
    const c = child('receive-then-close', { mailbox: mb.name });
    assert.equal((await event<{ value: string }>(c, 'closed')).value, 'taken');
    assert.deepEqual(await drain(mb), ['next'], 'the taken message is not delivered again');
    c.kill();
    await mb.delete();
  });

  describe('SIGKILL at each step of a message’s life', () => {
    /** The survivor takes exactly `expected` with ack, acknowledges, and nothing comes again. */
    async function survivorGets(mb: Mailbox, expected: unknown[]): Promise<void> {
      const got: unknown[] = [];
      for (const _ of expected) {
        const m = await mb.receive({ ack: true, timeout: 5000 });
        m.ack();
        got.push(m.data);
      }
      assert.deepEqual(got, expected);
      await assert.rejects(mb.tryReceive({ ack: true }), { code: 'WOULD_BLOCK' });
      assert.equal((await mb.stat()).depth, 0, 'acknowledged: nothing is left or redelivered');
    }

    test('with ack: the sender is killed right after its send resolved', async () => {
      const mb = await me.createMailbox('life-sender', { capacity: 8, owner: 'system' });
      const c = child('send-then-die', { mailbox: mb.name, value: 'sent', how: 'kill' });
      assert.ok((await event<{ promised: number }>(c, 'credited')).promised > 0);
      await exited(c);
      await survivorGets(mb, ['warm-up', 'sent']);
      await mb.delete();
    });

    test('with ack: the receiver is killed after DELIVER, before CONSUMED (prefetched, and received)', async () => {
      const mb = await me.createMailbox('life-delivered', { capacity: 8 });
      await mb.send('prefetched');
      const c1 = child('iterate', { mailbox: mb.name, take: 0, ack: true, finally: 'kill' });
      await event(c1, 'took');
      await exited(c1);
      await survivorGets(mb, ['prefetched']);
      await mb.send('received');
      const c2 = child('receive-then-die', { mailbox: mb.name, ack: true });
      await exited(c2);
      await survivorGets(mb, ['received']);
      assert.equal((await mb.stat()).counters.redelivered, 2);
      await mb.delete();
    });

    test('with ack: the receiver is killed after taking the message, before acknowledging it', async () => {
      const mb = await me.createMailbox('life-taken', { capacity: 8 });
      await mb.send('taken');
      const c = child('receive-then-die', { mailbox: mb.name, ack: true, confirm: true });
      assert.equal((await event<{ value: string }>(c, 'received')).value, 'taken');
      await exited(c);
      await survivorGets(mb, ['taken']);
      await mb.delete();
    });

    test('without ack: a receiver killed in the turn its receive resolved loses nothing; one killed after it confirmed does', async () => {
      const mb = await me.createMailbox('life-noack', { capacity: 8 });
      await mb.send('unconfirmed');
      const c1 = child('receive-then-die', { mailbox: mb.name });
      await exited(c1);
      await depthAtLeast(mb, 1, 'the unconfirmed message to come back');
      assert.equal((await mb.receive({ timeout: 5000 })).data, 'unconfirmed');

      await mb.send('confirmed');
      const c2 = child('receive-then-die', { mailbox: mb.name, confirm: true, name: 'noack-confirmed' });
      assert.equal((await event<{ value: string }>(c2, 'received')).value, 'confirmed');
      await exited(c2);
      await waitFor(
        async () => !(await me.listProcesses()).some((p) => p.name === 'noack-confirmed'),
        5000,
        'the kernel to end the killed receiver’s session',
      );
      // The application took it and the kernel heard so: that one is gone with the receiver, as documented.
      assert.equal((await mb.stat()).depth, 0);
      await mb.delete();
    });
  });
});
