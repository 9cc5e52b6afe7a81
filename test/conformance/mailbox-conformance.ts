/**
 * The mailbox contract as one suite of behaviours, run against every backend
 * (kernel today; shared memory or NATS later) through the small interface
 * below. A backend passes by supplying `setup()`; the suite never reaches
 * past the interface.
 *
 * Contract checked here:
 * - capacity 0 is a rendezvous: a send completes only when a receive takes
 *   the message; non-blocking send/receive succeed only if the other side is
 *   already waiting (else WOULD_BLOCK).
 * - capacity N holds N messages; a further send waits (or WOULD_BLOCK /
 *   TIMEOUT) until a receive frees a slot; unbounded never makes a sender wait.
 * - order: highest priority first, FIFO within one priority.
 * - delivery policies: round-robin rotates over waiting receivers, broadcast
 *   copies to each, exclusive refuses a second receiver (RECEIVER_BUSY),
 *   arbitrary delivers each message exactly once.
 * - timed operations reject TIMEOUT; an AbortSignal rejects ABORTED and the
 *   aborted operation leaves no trace (no message lost or taken).
 * - a deleted mailbox rejects pending and later operations with MAILBOX_CLOSED.
 * - a message received with `ack` and not acknowledged when its receiver
 *   leaves is delivered again.
 *
 * Optional features: a backend lists what it lacks in `unsupported` (and
 * where it documents that in `docs`). Each behaviour names the features it
 * needs; one needing an unsupported feature is still registered, as skipped
 * with the reason, so a report always shows all of them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

export interface WaitOptions {
  timeout?: number;
  nonblock?: boolean;
  signal?: AbortSignal;
}

export interface ConformanceMessage {
  readonly data: unknown;
  readonly priority: number;
  ack(): void;
}

export interface ConformanceMailbox {
  send(value: unknown, options?: WaitOptions & { priority?: number }): Promise<void>;
  receive(options?: WaitOptions & { ack?: boolean }): Promise<ConformanceMessage>;
  stat(): Promise<{ depth: number; waitingSenders: number; waitingReceivers: number }>;
  close(): Promise<void>;
}

export interface ConformanceProcess {
  createMailbox(
    name: string,
    options: {
      capacity: number | 'unbounded';
      delivery?: 'exclusive' | 'round-robin' | 'arbitrary' | 'broadcast';
    },
  ): Promise<ConformanceMailbox>;
  openMailbox(name: string): Promise<ConformanceMailbox>;
  deleteMailbox(name: string): Promise<void>;
  close(): Promise<void>;
}

/** Parts of the contract a backend may lack (each test declares those it needs). */
export type Feature =
  /** capacity 0: a send completes only when a receive takes the message. */
  | 'rendezvous'
  /** capacity 'unbounded': senders never wait. */
  | 'unbounded'
  /** priorities other than 0 (highest first). */
  | 'priority'
  /** round-robin delivery that rotates over waiting receivers in order. */
  | 'rotation'
  /** broadcast delivery: a copy per receiver. */
  | 'broadcast'
  /** receive with `ack`; redelivery of unacknowledged messages. */
  | 'ack';

export interface MailboxBackend {
  name: string;
  /** Features this backend does not implement; their tests are skipped with a reason. Default: none. */
  unsupported?: ReadonlySet<Feature>;
  /** Where the backend documents what it does not support (cited in skip reasons). */
  docs?: string;
  setup(): Promise<{ connect: () => Promise<ConformanceProcess>; teardown: () => Promise<void> }>;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export function runMailboxConformance(backend: MailboxBackend): void {
  /** Register a behaviour; skipped (with the reason) if it needs a feature the backend lacks. */
  function behaviour(title: string, needs: readonly Feature[], fn: () => Promise<void>): void {
    const missing = needs.filter((f) => backend.unsupported?.has(f) === true);
    if (missing.length === 0) {
      test(title, fn);
      return;
    }
    const where = backend.docs === undefined ? '' : ` (see ${backend.docs})`;
    test(title, { skip: `${backend.name} does not support ${missing.join(', ')}${where}` }, fn);
  }

  describe(`mailbox conformance: ${backend.name}`, () => {
    let env: { connect: () => Promise<ConformanceProcess>; teardown: () => Promise<void> };
    let a: ConformanceProcess;
    let b: ConformanceProcess;
    let c: ConformanceProcess;
    let seq = 0;
    const fresh = (tag: string) => `conf-${tag}-${++seq}`;

    before(async () => {
      env = await backend.setup();
      [a, b, c] = await Promise.all([env.connect(), env.connect(), env.connect()]);
    });

    after(async () => {
      for (const p of [a, b, c]) await p?.close();
      await env?.teardown();
    });

    /** A mailbox created by `a` and opened by `b` (the usual sender/receiver pair). */
    async function pair(tag: string, options: Parameters<ConformanceProcess['createMailbox']>[1]) {
      const name = fresh(tag);
      const mine = await a.createMailbox(name, options);
      const theirs = await b.openMailbox(name);
      return { name, mine, theirs };
    }

    behaviour(
      'capacity 0: a send completes only when a receive takes the message',
      ['rendezvous'],
      async () => {
        const { name, mine, theirs } = await pair('rdv', { capacity: 0 });
        await assert.rejects(mine.send('x', { nonblock: true }), { code: 'WOULD_BLOCK' });
        await assert.rejects(theirs.receive({ nonblock: true }), { code: 'WOULD_BLOCK' });
        let done = false;
        const sending = mine.send('r').then(() => {
          done = true;
        });
        await until('the sender to wait', async () => (await mine.stat()).waitingSenders === 1);
        assert.equal(done, false);
        assert.equal((await mine.stat()).depth, 0, 'nothing waits in a rendezvous queue');
        assert.equal((await theirs.receive({ timeout: 10_000 })).data, 'r');
        await sending;
        const waiting = theirs.receive({ timeout: 10_000 });
        await until('the receiver to wait', async () => (await mine.stat()).waitingReceivers === 1);
        await mine.send('to a waiting receiver', { nonblock: true });
        assert.equal((await waiting).data, 'to a waiting receiver');
        await a.deleteMailbox(name);
      },
    );

    behaviour(
      'capacity N: N sends complete with no receiver, the next waits until a slot frees',
      [],
      async () => {
        const { name, mine, theirs } = await pair('bounded', { capacity: 3 });
        for (const i of range(3)) await mine.send(i);
        await until('three queued', async () => (await mine.stat()).depth === 3);
        await assert.rejects(mine.send('x', { nonblock: true }), { code: 'WOULD_BLOCK' });
        await assert.rejects(mine.send('x', { timeout: 50 }), { code: 'TIMEOUT' });
        let done = false;
        const blocked = mine.send(3).then(() => {
          done = true;
        });
        await until('the sender to wait', async () => (await mine.stat()).waitingSenders === 1);
        assert.equal(done, false);
        assert.equal((await theirs.receive()).data, 0);
        await blocked;
        const rest = [];
        for (let i = 0; i < 3; i++) rest.push((await theirs.receive({ nonblock: true })).data);
        assert.deepEqual(rest, [1, 2, 3], 'FIFO, and the timed-out and refused sends left nothing behind');
        await a.deleteMailbox(name);
      },
    );

    behaviour('unbounded: senders never wait', ['unbounded'], async () => {
      const { name, mine, theirs } = await pair('unbounded', { capacity: 'unbounded' });
      for (const i of range(500)) await mine.send(i, { nonblock: true });
      await until('all queued', async () => (await mine.stat()).depth === 500);
      const got = [];
      for (let i = 0; i < 500; i++) got.push((await theirs.receive()).data);
      assert.deepEqual(got, range(500));
      await a.deleteMailbox(name);
    });

    behaviour('order: highest priority first, FIFO within a priority', ['priority'], async () => {
      const { name, mine, theirs } = await pair('prio', { capacity: 64 });
      const sent: Array<[number, number]> = [];
      for (let i = 0; i < 40; i++) sent.push([(i * 7) % 5 === 0 ? 31 : (i * 7) % 3, i]);
      for (const [priority, i] of sent) await mine.send(i, { priority });
      await until('all queued', async () => (await mine.stat()).depth === sent.length);
      const expected = [...sent].sort((x, y) => y[0] - x[0] || x[1] - y[1]);
      const got: Array<[number, number]> = [];
      for (let i = 0; i < sent.length; i++) {
        const m = await theirs.receive({ nonblock: true });
        got.push([m.priority, m.data as number]);
      }
      assert.deepEqual(got, expected);
      await a.deleteMailbox(name);
    });

    behaviour('round-robin: waiting receivers are served in rotation', ['rotation'], async () => {
      const name = fresh('rr');
      const mine = await a.createMailbox(name, { capacity: 8, delivery: 'round-robin' });
      const rb = await b.openMailbox(name);
      const rc = await c.openMailbox(name);
      const who: string[] = [];
      for (let round = 0; round < 3; round++) {
        const pb = rb.receive({ timeout: 10_000 }).then((m) => who.push(`b${m.data}`));
        await until('b waiting', async () => (await mine.stat()).waitingReceivers === 1);
        const pc = rc.receive({ timeout: 10_000 }).then((m) => who.push(`c${m.data}`));
        await until('b and c waiting', async () => (await mine.stat()).waitingReceivers === 2);
        await mine.send(2 * round);
        await mine.send(2 * round + 1);
        await Promise.all([pb, pc]);
      }
      assert.deepEqual(who.sort(), ['b0', 'b2', 'b4', 'c1', 'c3', 'c5']);
      await a.deleteMailbox(name);
    });

    behaviour('broadcast: every receiver gets its own copy of every message', ['broadcast'], async () => {
      const name = fresh('bc');
      const mine = await a.createMailbox(name, { capacity: 8, delivery: 'broadcast' });
      const rb = await b.openMailbox(name);
      const rc = await c.openMailbox(name);
      const first = [rb.receive({ timeout: 10_000 }), rc.receive({ timeout: 10_000 })];
      await until('both attached and waiting', async () => (await mine.stat()).waitingReceivers === 2);
      for (const i of range(5)) await mine.send(i);
      const got = (await Promise.all(first)).map((m) => [m.data]);
      for (let i = 1; i < 5; i++) {
        got[0]!.push((await rb.receive({ timeout: 10_000 })).data);
        got[1]!.push((await rc.receive({ timeout: 10_000 })).data);
      }
      assert.deepEqual(got, [range(5), range(5)]);
      await a.deleteMailbox(name);
    });

    behaviour('exclusive: a second receiver is refused with RECEIVER_BUSY', [], async () => {
      const name = fresh('ex');
      const mine = await a.createMailbox(name, { capacity: 8, delivery: 'exclusive' });
      const rb = await b.openMailbox(name);
      const rc = await c.openMailbox(name);
      await assert.rejects(rb.receive({ nonblock: true }), { code: 'WOULD_BLOCK' });
      await assert.rejects(rc.receive({ nonblock: true }), { code: 'RECEIVER_BUSY' });
      await mine.send('only b');
      assert.equal((await rb.receive({ timeout: 10_000 })).data, 'only b');
      await a.deleteMailbox(name);
    });

    behaviour('arbitrary: each message is delivered exactly once across receivers', [], async () => {
      const name = fresh('arb');
      const N = 100;
      // Capacity N (not 'unbounded'): the behaviour is exactly-once delivery, not capacity.
      const mine = await a.createMailbox(name, { capacity: N, delivery: 'arbitrary' });
      const rb = await b.openMailbox(name);
      const rc = await c.openMailbox(name);
      for (const i of range(N)) await mine.send(i);
      const got: number[] = [];
      const drain = async (mb: ConformanceMailbox) => {
        for (;;) {
          try {
            got.push((await mb.receive({ nonblock: true })).data as number);
          } catch (e) {
            if ((e as { code?: string }).code === 'WOULD_BLOCK') return;
            throw e;
          }
        }
      };
      await until('all queued', async () => (await mine.stat()).depth === N);
      await Promise.all([drain(rb), drain(rc)]);
      assert.deepEqual(
        got.sort((x, y) => x - y),
        range(N),
      );
      await a.deleteMailbox(name);
    });

    behaviour(
      'timed receive on an empty mailbox rejects TIMEOUT and leaves no waiter behind',
      [],
      async () => {
        const { name, mine, theirs } = await pair('timeout', { capacity: 4 });
        await assert.rejects(theirs.receive({ timeout: 50 }), { code: 'TIMEOUT' });
        assert.equal((await mine.stat()).waitingReceivers, 0);
        await mine.send('after');
        assert.equal((await theirs.receive({ timeout: 10_000 })).data, 'after');
        await a.deleteMailbox(name);
      },
    );

    behaviour(
      'AbortSignal: aborting a waiting receive or send rejects ABORTED and loses nothing',
      [],
      async () => {
        const { name, mine, theirs } = await pair('abort', { capacity: 1 });
        await assert.rejects(theirs.receive({ signal: AbortSignal.abort() }), { code: 'ABORTED' });
        const ac = new AbortController();
        const r = theirs.receive({ signal: ac.signal });
        await until('the receiver to wait', async () => (await mine.stat()).waitingReceivers === 1);
        ac.abort();
        await assert.rejects(r, { code: 'ABORTED' });
        await until('the receive withdrawn', async () => (await mine.stat()).waitingReceivers === 0);
        await mine.send('kept');
        const sc = new AbortController();
        const s = mine.send('dropped', { signal: sc.signal });
        await until('the sender to wait', async () => (await mine.stat()).waitingSenders === 1);
        sc.abort();
        await assert.rejects(s, { code: 'ABORTED' });
        assert.equal(
          (await theirs.receive({ timeout: 10_000 })).data,
          'kept',
          'the aborted receive took nothing',
        );
        await assert.rejects(
          theirs.receive({ nonblock: true }),
          { code: 'WOULD_BLOCK' },
          'the aborted send left nothing',
        );
        await a.deleteMailbox(name);
      },
    );

    behaviour('a deleted mailbox rejects pending and later operations with MAILBOX_CLOSED', [], async () => {
      const { name, mine, theirs } = await pair('closed', { capacity: 1 });
      const pending = theirs.receive();
      pending.catch(() => {});
      await until('the receiver to wait', async () => (await mine.stat()).waitingReceivers === 1);
      await a.deleteMailbox(name);
      await assert.rejects(pending, { code: 'MAILBOX_CLOSED' });
      await assert.rejects(theirs.send('late'), { code: 'MAILBOX_CLOSED' });
      await assert.rejects(b.openMailbox(name), { code: 'NO_SUCH_MAILBOX' });
    });

    behaviour(
      'ack: a message not acknowledged when its receiver leaves is delivered again',
      ['ack'],
      async () => {
        const name = fresh('ack');
        const mine = await a.createMailbox(name, { capacity: 4 });
        const leaver = await env.connect();
        const rl = await leaver.openMailbox(name);
        await mine.send('must arrive');
        const m = await rl.receive({ ack: true, timeout: 10_000 });
        assert.equal(m.data, 'must arrive');
        await leaver.close();
        const again = await (await b.openMailbox(name)).receive({ ack: true, timeout: 10_000 });
        assert.equal(again.data, 'must arrive');
        again.ack();
        await a.deleteMailbox(name);
      },
    );
  });
}
