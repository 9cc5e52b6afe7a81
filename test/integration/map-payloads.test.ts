/**
 * Map instead of copy: large messages through a kernel mailbox and by direct
 * send are written once into the sender's map region and read in place
 * (docs/protocol.md, "Map instead of copy"). Real processes: a daemon, and
 * senders and holders spawned from fixtures/map-peer.ts.
 *
 * - Through a mailbox and by direct send: bytes verified, `mapped` true from
 *   the second large send on (the first is copied while the region is set
 *   up); a peek gets a copy.
 * - A receiver SIGKILLed while holding views: its chunks are reclaimed (the
 *   sender, blocked while they and the queued messages filled the region,
 *   sends into them again).
 * - A slow receiver holding views while the sender keeps sending: the sender
 *   waits (TIMEOUT when it gives up; a non-blocking send is copied), no held
 *   view's bytes ever change, and a receiver holding half the region's chunks
 *   gets copies beyond that (so one that never releases cannot stop the sender).
 * - The sender SIGKILLed with messages queued: every one is still read, bytes
 *   intact; the region goes once the last is released.
 * - Without the addon (IPCBOX_NATIVE_ADDON pointing nowhere), on the sending
 *   or the receiving side: copies, bytes intact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type MapRegionInfo } from '../../src/index.js';
import { intact } from '../fixtures/map-pattern.js';
import { type Daemon, type Spawned, spawnFixture, startDaemon, waitFor } from '../helpers/kernel-harness.js';

const MIB = 1024 * 1024;
const NO_ADDON = { IPCBOX_NATIVE_ADDON: '/nonexistent/ipcbox_shm.node' };

interface Reply {
  id: number;
  ok: boolean;
  value: unknown;
  code?: string;
  message?: string;
}

/** A map-peer process: commands over stdin, replies matched by id. */
class MapPeer {
  private nextId = 1;
  private constructor(readonly sp: Spawned) {}

  static async start(
    daemon: Daemon,
    name: string,
    map: unknown,
    env: NodeJS.ProcessEnv = {},
  ): Promise<MapPeer> {
    const p = new MapPeer(spawnFixture('map-peer', ['serve'], daemon.socketPath, env));
    peers.add(p);
    await p.ok('connect', { name, map });
    return p;
  }

  call(op: string, args: Record<string, unknown> = {}): Promise<Reply> {
    const id = this.nextId++;
    this.sp.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    return this.sp
      .line((l) => l.startsWith('{') && (JSON.parse(l) as Reply).id === id, 60_000)
      .then((l) => JSON.parse(l) as Reply);
  }

  async ok<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const r = await this.call(op, args);
    if (!r.ok) throw new Error(`${op} failed: ${r.code} ${r.message}`);
    return r.value as T;
  }

  async kill(): Promise<void> {
    this.sp.kill('SIGKILL');
    await this.sp.exit;
  }
}

const peers = new Set<MapPeer>();

async function regionOf(me: IpcProcess, owner: string): Promise<MapRegionInfo | undefined> {
  return ((await me.status()).mapRegions ?? []).find((r) => r.owner === owner);
}

describe('map instead of copy (kernel path)', () => {
  let daemon: Daemon;
  let me: IpcProcess;

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'receiver' });
  });

  after(async () => {
    for (const p of peers) p.sp.kill('SIGKILL');
    await me?.close();
    await daemon?.stop();
  });

  test('large messages through a kernel mailbox go by map, bytes intact; a peek gets a copy', async () => {
    const mb = await me.createMailbox('big', { capacity: 64 });
    const sender = await MapPeer.start(daemon, 'sender-mb', { chunks: 8 });
    await sender.ok('send', { to: 'big', count: 6, size: MIB, start: 1 });
    const peeked = await mb.peek({ count: 2 });
    assert.equal(peeked.messages.length, 2);
    for (const m of peeked.messages) {
      assert.equal(m.mapped, false, 'a peek is a copy');
      assert.ok(intact(m.bytes));
    }
    for (let seq = 1; seq <= 6; seq++) {
      const m = await mb.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq, 'FIFO');
      assert.equal(m.bytes.length, MIB);
      assert.ok(intact(m.bytes), `message ${seq} intact`);
      // The first large send is copied while the region is being set up; every later one is mapped.
      assert.equal(m.mapped, seq > 1, `message ${seq} mapped`);
      const data = m.data as Buffer;
      m.release();
      assert.ok(intact(data), 'data is a private copy that outlives release()');
      if (seq > 1) assert.throws(() => m.bytes, { code: 'INVALID_ARGUMENT' }, 'a released view is gone');
    }
    await waitFor(async () => (await regionOf(me, 'sender-mb'))?.inUse === 0, 10_000, 'chunks back');
    await mb.close();
  });

  test('a large direct send through the kernel goes by map to the receiver inbox', async () => {
    // On one host a direct send takes a one-hop link (its large messages go over the link's socket,
    // test/integration/one-hop-links.test.ts); with links off it goes through the kernel, by map.
    const sender = await MapPeer.start(daemon, 'sender-direct', { chunks: 4 }, { MAP_PEER_LINKS: '0' });
    await sender.ok('send', { to: 'receiver', direct: true, count: 3, size: 2 * MIB, start: 100 });
    for (let seq = 100; seq < 103; seq++) {
      using m = await me.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.ok(intact(m.bytes));
      assert.equal(m.mapped, seq > 100);
    }
  });

  test('a receiver SIGKILLed while holding views: its chunks are reclaimed and the sender reuses them', async () => {
    await me.createMailbox('kill-rx', { capacity: 64 });
    const sender = await MapPeer.start(daemon, 'sender-kill', { chunks: 4 });
    const holder = await MapPeer.start(daemon, 'holder-kill', undefined);
    // One copied (the region being set up), then two mapped, lent to the holder (at most half a
    // region's chunks are lent to one receiver at once).
    await sender.ok('send', { to: 'kill-rx', count: 3, size: MIB, start: 1 });
    const got = await holder.ok<{ seq: number; mapped: boolean; intact: boolean }[]>('hold', {
      mailbox: 'kill-rx',
      count: 3,
    });
    assert.deepEqual(
      got.map((g) => [g.seq, g.mapped, g.intact]),
      [
        [1, false, true],
        [2, true, true],
        [3, true, true],
      ],
    );
    assert.equal((await regionOf(me, 'sender-kill'))?.inUse, 2);
    // Two more wait in the mailbox: every chunk is in use, and a send waiting for one gives up.
    await sender.ok('send', { to: 'kill-rx', count: 2, size: MIB, start: 4 });
    assert.equal((await regionOf(me, 'sender-kill'))?.inUse, 4);
    const full = await sender.call('send', { to: 'kill-rx', count: 1, size: MIB, start: 6, timeout: 300 });
    assert.equal(full.ok, false);
    assert.equal(full.code, 'TIMEOUT');
    assert.match(full.message ?? '', /map chunk/);
    await holder.kill();
    // The holder's two chunks take two more messages (no timeout: this would hang if never reclaimed).
    await sender.ok('send', { to: 'kill-rx', count: 2, size: MIB, start: 7 });
    const mb = await me.openMailbox('kill-rx');
    for (const seq of [4, 5, 7, 8]) {
      using m = await mb.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.equal(m.mapped, true);
      assert.ok(intact(m.bytes));
    }
    await waitFor(async () => (await regionOf(me, 'sender-kill'))?.inUse === 0, 10_000, 'chunks back');
    await mb.close();
  });

  test('a slow receiver holding views: the sender waits or times out, held bytes never change', async () => {
    await me.createMailbox('slow-rx', { capacity: 64 });
    const sender = await MapPeer.start(daemon, 'sender-slow', { chunks: 4 });
    const holder = await MapPeer.start(daemon, 'holder-slow', undefined);
    await sender.ok('send', { to: 'slow-rx', count: 3, size: MIB, start: 1 });
    const got = await holder.ok<{ seq: number; mapped: boolean }[]>('hold', { mailbox: 'slow-rx', count: 3 });
    assert.deepEqual(
      got.map((g) => g.mapped),
      [false, true, true],
    );
    // Two more queued behind the holder, which does not receive: the region is full.
    await sender.ok('send', { to: 'slow-rx', count: 2, size: MIB, start: 4 });
    // The sender keeps sending: every blocking send waits and gives up; none overwrites a held chunk.
    for (let i = 0; i < 3; i++) {
      const r = await sender.call('send', {
        to: 'slow-rx',
        count: 1,
        size: MIB,
        start: 50 + i,
        timeout: 200,
      });
      assert.equal(r.code, 'TIMEOUT');
      const check = await holder.ok<{ seq: number; intact: boolean }[]>('check');
      assert.deepEqual(
        check.map((c) => [c.seq, c.intact]),
        [
          [1, true],
          [2, true],
          [3, true],
        ],
      );
    }
    // A non-blocking send does not wait: it is copied through the kernel instead.
    await sender.ok('send', { to: 'slow-rx', count: 1, size: MIB, start: 60, nonblock: true });
    // A blocking send without a timeout waits until the holder lets a chunk go, then goes by map.
    const waiting = sender.call('send', { to: 'slow-rx', count: 1, size: MIB, start: 61 });
    const raced = await Promise.race([
      waiting.then(() => 'sent'),
      new Promise((r) => setTimeout(() => r('waiting'), 300)),
    ]);
    assert.equal(raced, 'waiting');
    await holder.ok('release', { count: 2 }); // the copied one and one mapped chunk
    assert.equal((await waiting).ok, true);
    assert.equal((await regionOf(me, 'sender-slow'))?.inUse, 4, 'the freed chunk holds message 61');
    // 4 is lent (the holder has one view out of its two); past that the holder copies and hands back.
    const more = await holder.ok<{ seq: number; mapped: boolean; intact: boolean }[]>('hold', {
      mailbox: 'slow-rx',
      count: 4,
    });
    assert.deepEqual(
      more.map((g) => [g.seq, g.mapped, g.intact]),
      [
        [4, true, true],
        [5, false, true],
        [60, false, true],
        [61, false, true],
      ],
    );
    const check = await holder.ok<{ seq: number; intact: boolean }[]>('check');
    assert.deepEqual(
      check.map((c) => [c.seq, c.intact]),
      [
        [3, true],
        [4, true],
        [5, true],
        [60, true],
        [61, true],
      ],
      'views held all along are unchanged',
    );
  });

  test('an ack-mode receiver SIGKILLed holding mapped messages: they are redelivered, bytes intact', async () => {
    const mb = await me.createMailbox('ack-rx', { capacity: 64 });
    const sender = await MapPeer.start(daemon, 'sender-ack', { chunks: 8 });
    const holder = await MapPeer.start(daemon, 'holder-ack', undefined);
    await sender.ok('send', { to: 'ack-rx', count: 4, size: MIB, start: 1 });
    const got = await holder.ok<{ seq: number; mapped: boolean }[]>('hold', {
      mailbox: 'ack-rx',
      count: 4,
      ack: true,
    });
    assert.deepEqual(
      got.map((g) => [g.seq, g.mapped]),
      [
        [1, false],
        [2, true],
        [3, true],
        [4, true],
      ],
    );
    await holder.kill();
    // Not acknowledged: back in the mailbox, in order, their chunks still theirs (the lends went, the messages stay).
    for (let seq = 1; seq <= 4; seq++) {
      using m = await mb.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.equal(m.mapped, seq > 1);
      assert.ok(intact(m.bytes), `redelivered message ${seq} intact`);
    }
    await waitFor(async () => (await regionOf(me, 'sender-ack'))?.inUse === 0, 10_000, 'chunks back');
    await mb.close();
  });

  test('the sender SIGKILLed with messages queued: they are still read intact, then its region goes', async () => {
    const mb = await me.createMailbox('orphans', { capacity: 64 });
    const sender = await MapPeer.start(daemon, 'sender-dies', { chunks: 8 });
    await sender.ok('send', { to: 'orphans', count: 6, size: MIB, start: 1 });
    await sender.kill();
    await waitFor(async () => (await regionOf(me, 'sender-dies'))?.ownerGone === true, 10_000, 'owner gone');
    for (let seq = 1; seq <= 6; seq++) {
      // Lent from the region the kernel kept (or, had a kernel starting meanwhile reaped the name
      // of a region whose creator is dead, copied by this kernel from its own mapping): intact.
      using m = await mb.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.ok(intact(m.bytes), `message ${seq} intact after its sender died`);
    }
    await waitFor(async () => (await regionOf(me, 'sender-dies')) === undefined, 10_000, 'region removed');
    await mb.close();
  });

  test('without the addon on the sending side: large messages are copied, bytes intact', async () => {
    const mb = await me.createMailbox('no-addon-tx', { capacity: 64 });
    const sender = await MapPeer.start(daemon, 'sender-noaddon', { chunks: 4 }, NO_ADDON);
    await sender.ok('send', { to: 'no-addon-tx', count: 3, size: MIB, start: 1 });
    for (let seq = 1; seq <= 3; seq++) {
      const m = await mb.receive({ timeout: 10_000 });
      assert.equal(m.mapped, false);
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.ok(intact(m.bytes));
    }
    assert.equal(await regionOf(me, 'sender-noaddon'), undefined, 'no region was made');
    await mb.close();
  });

  test('without the addon on the receiving side: the kernel copies mapped payloads to it', async () => {
    await me.createMailbox('no-addon-rx', { capacity: 64 });
    const sender = await MapPeer.start(daemon, 'sender-to-noaddon', { chunks: 4 });
    const holder = await MapPeer.start(daemon, 'holder-noaddon', undefined, NO_ADDON);
    await sender.ok('send', { to: 'no-addon-rx', count: 3, size: MIB, start: 1 });
    const got = await holder.ok<{ seq: number; mapped: boolean; intact: boolean }[]>('hold', {
      mailbox: 'no-addon-rx',
      count: 3,
    });
    assert.deepEqual(
      got.map((g) => [g.seq, g.mapped, g.intact]),
      [
        [1, false, true],
        [2, false, true],
        [3, false, true],
      ],
    );
    // Sent by map (the region's chunks were in use) and copied out for this receiver: freed once consumed.
    await waitFor(async () => (await regionOf(me, 'sender-to-noaddon'))?.inUse === 0, 10_000, 'chunks back');
  });
});
