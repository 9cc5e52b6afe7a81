/**
 * The synchronisation matrix across real processes: {blocking, non-blocking,
 * timed} x {send, receive} x {capacity 0, 1, 4, unbounded}. The operation under
 * test runs in a peer process (fixtures/peer.js); this test process is the
 * other party and watches the kernel's view of the mailbox (waiting senders,
 * waiting receivers, depth) to know when the peer is parked.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox, type MailboxInfo } from '../../src/index.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { expectOk, type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

type Mode = 'blocking' | 'non-blocking' | 'timed';
type Op = 'send' | 'receive';
type Capacity = 0 | 1 | 4 | 'unbounded';

/** A timeout short enough to keep the suite quick, long enough to be a real wait. */
const T = 150;
/** A timeout that never fires in a passing test. */
const LONG = 30_000;

interface Ctx {
  me: IpcProcess;
  peer: RemotePeer;
  mb: Mailbox;
  name: string;
  cap: Capacity;
}

async function waitStat(mb: Mailbox, what: string, ok: (s: MailboxInfo) => boolean): Promise<MailboxInfo> {
  let last: MailboxInfo | undefined;
  await waitFor(
    async () => {
      last = await mb.stat();
      return ok(last);
    },
    10_000,
    `${mb.name}: ${what}`,
  );
  return last!;
}

/** How many messages fill the mailbox (a large batch for unbounded). */
function fill(cap: Capacity): number {
  return cap === 'unbounded' ? 100 : cap;
}

async function drain(mb: Mailbox, n: number): Promise<unknown[]> {
  const got: unknown[] = [];
  for (let i = 0; i < n; i++) got.push((await mb.receive({ timeout: LONG })).data);
  return got;
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

/** Peer receives one message from `name` with the given options. */
function peerReceive(c: Ctx, options: Record<string, unknown> = {}) {
  return c.peer.start<PeerMessage>('receive', { mailbox: c.name, options });
}

interface Case {
  behaviour: Record<`${Capacity}`, string>;
  run(c: Ctx): Promise<void>;
}

const cases: Record<Mode, Record<Op, Case>> = {
  blocking: {
    send: {
      behaviour: {
        '0': 'rendezvous: the send waits until the receiver process takes the message',
        '1': 'completes while there is room; on a full mailbox waits until the receiver takes one',
        '4': 'four sends complete without a receiver; the fifth waits until one is received',
        unbounded: 'never waits: 100 sends complete with no receiver, kept in FIFO order',
      },
      async run(c) {
        if (c.cap === 0) {
          const s = c.peer.start('send', { mailbox: c.name, value: 'r0' });
          const st = await waitStat(c.mb, 'the sender parked', (x) => x.waitingSenders === 1);
          assert.equal(st.depth, 0, 'a rendezvous message never waits in the queue');
          assert.equal(s.settled, false, 'the send has not completed before anyone received');
          const m = await c.mb.receive({ timeout: LONG });
          assert.equal(m.data, 'r0');
          assert.equal(m.sender, c.peer.name);
          expectOk(await s.reply);
          return;
        }
        const n = fill(c.cap);
        assert.equal(await c.peer.ok('sendMany', { mailbox: c.name, count: n }), n);
        if (c.cap === 'unbounded') {
          await waitStat(c.mb, 'all queued', (x) => x.depth === n && x.waitingSenders === 0);
          assert.deepEqual(await drain(c.mb, n), range(n));
          return;
        }
        await waitStat(c.mb, 'full', (x) => x.depth === n);
        const s = c.peer.start('send', { mailbox: c.name, value: n });
        await waitStat(c.mb, 'the extra sender parked', (x) => x.waitingSenders === 1);
        assert.equal(s.settled, false, 'a send to a full mailbox waits');
        assert.equal((await c.mb.receive({ timeout: LONG })).data, 0);
        expectOk(await s.reply);
        assert.deepEqual(await drain(c.mb, n), range(n, 1));
      },
    },
    receive: {
      behaviour: {
        '0': 'rendezvous: the receive waits until a sender process sends, and completes that send',
        '1': 'takes a queued message at once; on an empty mailbox waits for the next send',
        '4': 'takes four queued messages at once in FIFO order, then waits for the next send',
        unbounded: 'takes 100 queued messages at once in FIFO order, then waits for the next send',
      },
      async run(c) {
        if (c.cap !== 0) {
          const n = fill(c.cap);
          for (let i = 0; i < n; i++) await c.mb.send(i);
          await waitStat(c.mb, 'queued', (x) => x.depth === n);
          const got = await c.peer.ok<number>('consume', { mailbox: c.name, count: n, tag: c.name });
          assert.equal(got, n);
          assert.deepEqual(
            c.peer.messages(c.name).map((m) => m.data),
            range(n),
          );
        }
        const r = peerReceive(c);
        await waitStat(c.mb, 'the receiver parked', (x) => x.waitingReceivers === 1);
        assert.equal(r.settled, false, 'a receive on an empty mailbox waits');
        await c.mb.send('late');
        const m = expectOk(await r.reply);
        assert.equal(m.data, 'late');
        assert.equal(m.sender, c.me.name);
      },
    },
  },
  'non-blocking': {
    send: {
      behaviour: {
        '0': 'WOULD_BLOCK unless a receiver is already waiting; then it is handed over',
        '1': 'succeeds on an empty mailbox, WOULD_BLOCK when full, succeeds again after a receive',
        '4': 'four succeed, the fifth is WOULD_BLOCK and never enters the mailbox',
        unbounded: 'never WOULD_BLOCK: 100 succeed with no receiver',
      },
      async run(c) {
        const opts = { nonblock: true };
        if (c.cap === 0) {
          const r = await c.peer.fails('send', { mailbox: c.name, value: 'x', options: opts });
          assert.equal(r.code, 'WOULD_BLOCK');
          const waiting = c.mb.receive({ timeout: LONG });
          await waitStat(c.mb, 'the receiver parked', (x) => x.waitingReceivers === 1);
          await c.peer.ok('send', { mailbox: c.name, value: 'y', options: opts });
          assert.equal((await waiting).data, 'y');
          return;
        }
        const n = fill(c.cap);
        assert.equal(await c.peer.ok('sendMany', { mailbox: c.name, count: n, options: opts }), n);
        if (c.cap === 'unbounded') {
          await waitStat(c.mb, 'all queued', (x) => x.depth === n);
          assert.deepEqual(await drain(c.mb, n), range(n));
          return;
        }
        const r = await c.peer.fails('send', { mailbox: c.name, value: 'refused', options: opts });
        assert.equal(r.code, 'WOULD_BLOCK');
        assert.equal((await c.mb.stat()).depth, n);
        assert.deepEqual(await drain(c.mb, n), range(n));
        await assert.rejects(c.mb.tryReceive(), { code: 'WOULD_BLOCK' }, 'the refused message did not enter');
        await c.peer.ok('send', { mailbox: c.name, value: 'again', options: opts });
        assert.equal((await c.mb.receive({ timeout: LONG })).data, 'again');
      },
    },
    receive: {
      behaviour: {
        '0': 'WOULD_BLOCK unless a sender is waiting; then takes its message and completes its send',
        '1': 'WOULD_BLOCK when empty, takes the queued message, then WOULD_BLOCK again',
        '4': 'WOULD_BLOCK when empty, takes four queued messages in order, then WOULD_BLOCK',
        unbounded: 'WOULD_BLOCK when empty, takes 100 queued messages in order, then WOULD_BLOCK',
      },
      async run(c) {
        const opts = { nonblock: true };
        assert.equal((await c.peer.call('receive', { mailbox: c.name, options: opts })).code, 'WOULD_BLOCK');
        if (c.cap === 0) {
          let sent = false;
          const s = c.mb.send('x').then(() => {
            sent = true;
          });
          await waitStat(c.mb, 'the sender parked', (x) => x.waitingSenders === 1);
          assert.equal(sent, false);
          const m = await c.peer.ok<PeerMessage>('receive', { mailbox: c.name, options: opts });
          assert.equal(m.data, 'x');
          await s;
          return;
        }
        const n = fill(c.cap);
        for (let i = 0; i < n; i++) await c.mb.send(i);
        await waitStat(c.mb, 'queued', (x) => x.depth === n);
        for (let i = 0; i < n; i++) {
          assert.equal((await c.peer.ok<PeerMessage>('receive', { mailbox: c.name, options: opts })).data, i);
        }
        assert.equal((await c.peer.call('receive', { mailbox: c.name, options: opts })).code, 'WOULD_BLOCK');
      },
    },
  },
  timed: {
    send: {
      behaviour: {
        '0': 'TIMEOUT with no receiver (and the message is withdrawn); completes if a receiver comes in time',
        '1': 'TIMEOUT on a full mailbox (message not queued); completes when a receive frees the slot in time',
        '4': 'TIMEOUT on a full mailbox (message not queued); completes when a receive frees a slot in time',
        unbounded: 'never waits: completes at once with no receiver',
      },
      async run(c) {
        if (c.cap === 'unbounded') {
          for (let i = 0; i < 10; i++)
            await c.peer.ok('send', { mailbox: c.name, value: i, options: { timeout: T } });
          await waitStat(c.mb, 'queued', (x) => x.depth === 10);
          assert.deepEqual(await drain(c.mb, 10), range(10));
          return;
        }
        const n = fill(c.cap);
        if (n > 0) await c.peer.ok('sendMany', { mailbox: c.name, count: n });
        await waitStat(c.mb, 'full', (x) => x.depth === n);
        const r = await c.peer.fails('send', { mailbox: c.name, value: 'late', options: { timeout: T } });
        assert.equal(r.code, 'TIMEOUT');
        assert.ok(r.elapsed >= T / 2, `waited ${r.elapsed} ms before TIMEOUT`);
        const st = await c.mb.stat();
        assert.equal(st.waitingSenders, 0, 'the timed-out sender was withdrawn');
        assert.equal(st.depth, n, 'the timed-out message was not queued');
        const s = c.peer.start('send', { mailbox: c.name, value: 'in-time', options: { timeout: LONG } });
        await waitStat(c.mb, 'the sender parked', (x) => x.waitingSenders === 1);
        assert.equal(s.settled, false);
        const got = await drain(c.mb, n + 1);
        expectOk(await s.reply);
        assert.deepEqual(got, [...range(n), 'in-time']);
      },
    },
    receive: {
      behaviour: {
        '0': 'TIMEOUT with no sender; completes (and completes the send) if a sender comes in time',
        '1': 'TIMEOUT on an empty mailbox; takes a queued message at once; completes if a send comes in time',
        '4': 'TIMEOUT on an empty mailbox; takes a queued message at once; completes if a send comes in time',
        unbounded:
          'TIMEOUT on an empty mailbox; takes a queued message at once; completes if a send comes in time',
      },
      async run(c) {
        const r = await c.peer.fails('receive', { mailbox: c.name, options: { timeout: T } });
        assert.equal(r.code, 'TIMEOUT');
        assert.ok(r.elapsed >= T / 2, `waited ${r.elapsed} ms before TIMEOUT`);
        assert.equal((await c.mb.stat()).waitingReceivers, 0, 'the timed-out receive was withdrawn');
        if (c.cap !== 0) {
          await c.mb.send('queued');
          await waitStat(c.mb, 'queued', (x) => x.depth === 1);
          assert.equal(
            (await c.peer.ok<PeerMessage>('receive', { mailbox: c.name, options: { timeout: T } })).data,
            'queued',
          );
        }
        const w = peerReceive(c, { timeout: LONG });
        await waitStat(c.mb, 'the receiver parked', (x) => x.waitingReceivers === 1);
        assert.equal(w.settled, false);
        await c.mb.send('in-time');
        assert.equal(expectOk(await w.reply).data, 'in-time');
      },
    },
  },
};

describe('sync matrix: {blocking, non-blocking, timed} x {send, receive} x {capacity 0, 1, 4, unbounded}', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  let peer: RemotePeer;
  let seq = 0;

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'matrix-test' });
    peer = await RemotePeer.start(daemon.socketPath, 'matrix-peer');
  });

  after(async () => {
    await stopAll();
    await me?.close();
    await daemon?.stop();
  });

  for (const mode of ['blocking', 'non-blocking', 'timed'] as const) {
    for (const op of ['send', 'receive'] as const) {
      for (const cap of [0, 1, 4, 'unbounded'] as const) {
        const k = cases[mode][op];
        test(`${mode} ${op}, capacity ${cap}: ${k.behaviour[`${cap}`]}`, async () => {
          const name = `matrix-${++seq}`;
          const mb = await me.createMailbox(name, { capacity: cap });
          try {
            await peer.ok('open', { mailbox: name });
            await k.run({ me, peer, mb, name, cap });
          } finally {
            await mb.delete();
          }
        });
      }
    }
  }
});
