/**
 * Pipes between two nodes over a real nats-server: records arrive in order, each exactly once,
 * large ones split to the server's max_payload; the window bounds what is unacknowledged; a NATS
 * server killed and restarted mid-stream loses nothing (retransmission); a receiver that restarts
 * makes the sender reset (never a silent gap).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type PipeRecord, Pipes } from '../../src/cluster/pipes.js';
import { waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

interface End {
  nc: NatsConnection;
  pipes: Pipes;
  got: PipeRecord[];
  resets: string[];
}

async function end(url: string, prefix: string, self: string): Promise<End> {
  const nc = await connect({
    servers: url,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  const e: End = { nc, pipes: undefined as unknown as Pipes, got: [], resets: [] };
  e.pipes = new Pipes(nc, prefix, self, {
    records: (_from, rs) => e.got.push(...rs),
    reset: (node) => e.resets.push(node),
  });
  // The pipe's subscriptions reach the server before anything is sent to this end: NATS core drops
  // what is published to a subject nobody has subscribed yet, and a receiver whose first batch of
  // an epoch was lost answers reset. (In a cluster the same order holds: other nodes send to a node
  // only for names it claims after its pipes subscribed, on the same connection.)
  await nc.flush();
  return e;
}

function payload(i: number): Buffer {
  const b = Buffer.alloc(8 + (i % 97) * 13);
  b.writeUInt32LE(i, 0);
  b.writeUInt32LE(b.length, 4);
  return b;
}

function checkInOrder(got: PipeRecord[], n: number): void {
  assert.equal(got.length, n, `${got.length} records of ${n}`);
  got.forEach((r, i) => {
    assert.equal(r.bytes.readUInt32LE(0), i, `record ${i} in order`);
    assert.equal(r.channel, i % 5);
  });
}

describe('pipes over NATS core', () => {
  let nats: NatsServer;
  const ends: End[] = [];
  before(async () => {
    nats = await startNatsServer();
  });
  after(async () => {
    for (const e of ends) {
      e.pipes.close();
      await e.nc.close().catch(() => undefined);
    }
    await nats?.stop();
  });

  test('20k records in order, exactly once; a 3 MiB record is split and rejoined as a stream', async () => {
    const a = await end(nats.url, 'p1', 'a');
    const b = await end(nats.url, 'p1', 'b');
    ends.push(a, b);
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      await new Promise<void>((r) => a.pipes.whenWritable('b', r));
      a.pipes.send('b', 7, i % 5, payload(i));
    }
    await waitFor(() => b.got.length >= n, 30_000, 'all records');
    checkInOrder(b.got, n);
    const big = Buffer.alloc(3 * 1024 * 1024, 0x5a);
    big.writeUInt32LE(0xdeadbeef, big.length - 4);
    b.got.length = 0;
    a.pipes.send('b', 9, 42, big);
    await waitFor(
      () => b.got.reduce((s, r) => s + r.bytes.length, 0) >= big.length,
      30_000,
      'the big record',
    );
    assert.ok(b.got.length > 1, 'split over several NATS messages');
    assert.ok(b.got.every((r) => r.channel === 42 && r.type === 9));
    assert.ok(Buffer.concat(b.got.map((r) => r.bytes)).equals(big));
    await waitFor(() => a.pipes.inFlight('b') === 0, 5000, 'all acknowledged');
    assert.deepEqual([...a.resets, ...b.resets], []);
  });

  test('the NATS server killed and restarted mid-stream: nothing lost, nothing twice', async () => {
    const a = await end(nats.url, 'p2', 'a');
    const b = await end(nats.url, 'p2', 'b');
    ends.push(a, b);
    const n = 6000;
    let i = 0;
    const pump = (async () => {
      for (; i < n; i++) {
        await new Promise<void>((r) => a.pipes.whenWritable('b', r));
        a.pipes.send('b', 7, i % 5, payload(i));
        if (i % 200 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    await waitFor(() => b.got.length > 1000, 20_000, 'traffic before the restart');
    await nats.kill();
    nats = await startNatsServer({ port: nats.port, storeDir: nats.storeDir });
    await pump;
    await waitFor(
      () => b.got.length >= n,
      30_000,
      () =>
        `all records after the restart (${b.got.length} of ${n}, ${a.pipes.inFlight('b')} bytes unacknowledged, ` +
        `a ${a.nc.isClosed() ? 'closed' : 'open'}, b ${b.nc.isClosed() ? 'closed' : 'open'}, ` +
        `resets ${JSON.stringify([...a.resets, ...b.resets])})`,
    );
    checkInOrder(b.got, n);
    assert.deepEqual([...a.resets, ...b.resets], [], 'both sides kept their pipe: no reset needed');
  });

  test('a receiver that restarts (loses its pipe state) makes the sender reset, not skip', async () => {
    const a = await end(nats.url, 'p3', 'a');
    let b = await end(nats.url, 'p3', 'b');
    ends.push(a);
    for (let i = 0; i < 10; i++) a.pipes.send('b', 7, 0, payload(i));
    await waitFor(() => b.got.length === 10, 10_000);
    // Acknowledged: the sender holds nothing of the old epoch that a new receiver could start from.
    await waitFor(() => a.pipes.inFlight('b') === 0, 10_000, 'the first batch acknowledged');
    b.pipes.close();
    await b.nc.close();
    b = await end(nats.url, 'p3', 'b');
    ends.push(b);
    a.pipes.send('b', 7, 0, payload(10));
    await waitFor(() => a.resets.includes('b'), 20_000, 'the sender hears the reset');
    assert.equal(b.got.length, 0, 'the new receiver got nothing of the old epoch');
    a.pipes.send('b', 7, 0, payload(0));
    await waitFor(() => b.got.length === 1, 10_000, 'a new epoch starts cleanly');
  });
});
