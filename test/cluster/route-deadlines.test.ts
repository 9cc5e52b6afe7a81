/**
 * A timed, non-blocking or aborted receive or send on a mailbox of another node ends by its
 * deadline (or signal) also when that node does not answer. A send so ended fails
 * CLUSTER_UNAVAILABLE (the home may have taken it: its outcome is unknown). For receives: with the home kernel stopped (SIGSTOP), a receive through a route rejects
 * TIMEOUT (WOULD_BLOCK when non-blocking) instead of waiting for the membership to call the node
 * down. The message the home delivers once it runs again, to a receive already answered, goes back
 * to the mailbox: the next receive gets it, once. (Before: the deadline was the home's alone, and
 * the receive waited until the node was counted down, then failed MAILBOX_CLOSED.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

/** Long enough for a route's own deadline (timeout + 250 ms), well short of the membership's 4 s down time. */
const STALL_MS = 2500;

describe('receive deadlines through a route', () => {
  let nats: NatsServer;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    const dir = tempDir('ipcbox-deadline-');
    [a, b] = await Promise.all([
      startClusterKernel(dir, 'da', nats.url),
      startClusterKernel(dir, 'db', nats.url),
    ]);
  });
  after(async () => {
    a?.child.kill('SIGCONT');
    for (const c of clients) await c.close().catch(() => undefined);
    for (const k of [a, b]) k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  /** `p`'s outcome, or 'no answer' if it has none within STALL_MS (the home is stopped meanwhile). */
  async function outcome(p: Promise<unknown>): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<string>((r) => {
      timer = setTimeout(() => r('no answer'), STALL_MS);
    });
    const settled = p.then(
      () => 'resolved',
      (e: { code?: string }) => String(e.code),
    );
    try {
      return await Promise.race([settled, stalled]);
    } finally {
      clearTimeout(timer);
    }
  }

  for (const ack of [false, true]) {
    test(`with the home stopped, a receive${ack ? ' with ack' : ''} ends by its deadline and the message stays`, async () => {
      const owner = await connect({ socketPath: a.socketPath });
      clients.push(owner);
      const name = `deadline-${ack}`;
      const home = await owner.createMailbox(name, { capacity: 8 });
      await home.send('kept');
      const p = await connect({ socketPath: b.socketPath });
      clients.push(p);
      const mb = await p.openMailbox(name);

      a.child.kill('SIGSTOP');
      let timed: string;
      let nonblock: string;
      try {
        timed = await outcome(mb.receive({ timeout: 100, ack }));
        nonblock = await outcome(mb.receive({ nonblock: true, ack }));
      } finally {
        a.child.kill('SIGCONT');
      }
      assert.equal(timed, 'TIMEOUT');
      assert.equal(nonblock, 'WOULD_BLOCK');

      // The home, running again, answered both receives with the message: each answer came too
      // late and handed it back, so it is there once for the next receive.
      const m = await mb.receive({ timeout: 10_000, ack });
      assert.equal(m.data, 'kept');
      if (ack) await m.ack();
      await assert.rejects(home.receive({ nonblock: true }), { code: 'WOULD_BLOCK' });
      await assert.rejects(mb.receive({ timeout: 300 }), { code: 'TIMEOUT' });
      const info = await home.stat();
      assert.equal(info.depth, 0);
    });
  }

  test('with the home stopped, a timed receive is answered for itself while other requests come and go on the connection', async () => {
    // The route answers at the deadline for the request it forwarded. It used to read that request's
    // id off the frame object at the deadline, but the decoder reuses one frame for every frame of
    // the connection: the TIMEOUT went to whatever came last (a request already answered, or 0: the
    // whole connection), and the receive itself waited for ever.
    const owner = await connect({ socketPath: a.socketPath });
    clients.push(owner);
    await owner.createMailbox('deadline-busy', { capacity: 8 });
    const p = await connect({ socketPath: b.socketPath });
    clients.push(p);
    const far = await p.openMailbox('deadline-busy');
    const near = await p.createMailbox('deadline-near', { capacity: 8 });
    let lost: unknown;
    p.on('disconnect', (e) => {
      lost = e;
    });
    a.child.kill('SIGSTOP');
    let timed: string;
    try {
      const waiting = outcome(far.receive({ timeout: 100 }));
      // Frames on the same connection meanwhile, answered by kernel B alone.
      const until = Date.now() + 600;
      let others = 0;
      while (Date.now() < until) {
        await assert.rejects(near.tryReceive(), { code: 'WOULD_BLOCK' });
        others++;
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(others > 10);
      timed = await waiting;
    } finally {
      a.child.kill('SIGCONT');
    }
    assert.equal(timed, 'TIMEOUT');
    assert.equal(lost, undefined, 'the connection was not ended');
    await near.send('still here');
    assert.equal((await near.receive({ timeout: 5000 })).data, 'still here');
  });

  test('with the home stopped, a timed, non-blocking or aborted send ends, CLUSTER_UNAVAILABLE; an aborted receive ends ABORTED', async () => {
    const owner = await connect({ socketPath: a.socketPath });
    clients.push(owner);
    // Full, so every send is a request the home must answer (no credit to spend).
    const home = await owner.createMailbox('deadline-send', { capacity: 1 });
    await home.send('first');
    const p = await connect({ socketPath: b.socketPath });
    clients.push(p);
    const mb = await p.openMailbox('deadline-send');
    await assert.rejects(mb.send('x', { nonblock: true }), { code: 'WOULD_BLOCK' });

    a.child.kill('SIGSTOP');
    const results: string[] = [];
    try {
      results.push(await outcome(mb.send('timed', { timeout: 100 })));
      results.push(await outcome(mb.send('nonblock', { nonblock: true })));
      const sendAbort = new AbortController();
      setTimeout(() => sendAbort.abort(), 100);
      results.push(await outcome(mb.send('aborted', { signal: sendAbort.signal })));
      // A receive that would get 'first', but the home is stopped: aborted, it ends anyway.
      const recvAbort = new AbortController();
      setTimeout(() => recvAbort.abort(), 100);
      results.push(await outcome(mb.receive({ signal: recvAbort.signal })));
    } finally {
      a.child.kill('SIGCONT');
    }
    assert.deepEqual(results.slice(0, 3), [
      'CLUSTER_UNAVAILABLE',
      'CLUSTER_UNAVAILABLE',
      'CLUSTER_UNAVAILABLE',
    ]);
    assert.equal(results[3], 'ABORTED');
    // Running again, the home met each withdrawn send on a full mailbox and the aborted receive
    // handed back what it got: 'first' is there, alone.
    const m = await home.receive({ timeout: 10_000 });
    assert.equal(m.data, 'first');
    await assert.rejects(home.receive({ timeout: 500 }), { code: 'TIMEOUT' });
  });
});
