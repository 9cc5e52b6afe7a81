/**
 * Map on the wire (protocol 3): clients that cannot map get copies, and a
 * MAPPED reference is checked before the kernel believes it.
 *
 * - A version 2 client, and a version 3 client that did not offer MAP in
 *   HELLO, receive a mapped payload as an ordinary DELIVER with the bytes
 *   (copied out of the region by the kernel); WELCOME offers them no MAP.
 * - A MAPPED SEND naming a region that is not the sender's is a protocol
 *   error for that sender only: the region's owner keeps sending by map.
 * - A send waiting for a free chunk (the region full of queued messages)
 *   rejects ABORTED on its signal; the sends behind it go on.
 * - A kernel starting unlinks map regions whose creating process is dead.
 * - A receiver that cannot open a region (its name gone) refuses the lend
 *   (UNMAP REFUSE): its receive() still gets the message, by copy.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox, Segment, startKernel } from '../../src/index.js';
import { DeliverFlag, Op, SendFlag } from '../../src/wire/protocol.js';
import {
  destroyAllRaw,
  errorCode,
  frame,
  type KernelHost,
  RawClient,
  startDaemonProcess,
  stopAllKernels,
  u32s,
} from '../fixtures/hardening-support.js';
import { intact, patterned } from '../fixtures/map-pattern.js';
import { tempDir } from '../helpers/kernel-harness.js';

const MIB = 1024 * 1024;

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

describe('map on the wire', () => {
  let kernel: KernelHost;
  let me: IpcProcess;
  let sender: IpcProcess;
  let box: Mailbox;
  let mine: Mailbox;

  before(async () => {
    kernel = await startDaemonProcess();
    me = await connect({ socketPath: kernel.socketPath, name: 'owner' });
    sender = await connect({ socketPath: kernel.socketPath, name: 'map-sender', map: { chunks: 4 } });
    mine = await me.createMailbox('wire-box', { capacity: 64 });
    box = await sender.openMailbox('wire-box');
    // The first large send is copied while the region is set up; from the second on, by map.
    await box.send(patterned(0, MIB));
    const first = await mine.receive();
    first.release();
  });

  after(async () => {
    destroyAllRaw();
    await sender?.close();
    await me?.close();
    await stopAllKernels();
  });

  for (const version of [2, 3]) {
    test(`a version ${version} client without MAP gets a mapped payload as a copy`, async () => {
      const raw = await RawClient.hello(kernel.socketPath, `raw-v${version}`, version);
      const welcome = raw.frames.find((f) => f.op === Op.WELCOME)!;
      assert.equal(welcome.body.readUInt16LE(2), 0, 'WELCOME offers no MAP');
      const seq = 10 + version;
      await box.send(patterned(seq, MIB));
      raw.write(frame(Op.RECV, { reqId: 5, target: mine.id }));
      const d = await raw.next((f) => f.op === Op.DELIVER && f.reqId === 5, 10_000, 'the delivery');
      assert.equal(d.flags & DeliverFlag.MAPPED, 0);
      const payload = d.body.subarray(8);
      assert.equal(payload.length, MIB);
      assert.equal(payload.readUInt32LE(0), seq);
      assert.ok(intact(payload), 'the kernel copied the bytes out of the region');
      raw.write(frame(Op.CONSUMED, {}, u32s(d.body.readUInt32LE(0))));
      const regions = (await me.status()).mapRegions ?? [];
      assert.ok(
        regions.some((r) => r.owner === 'map-sender'),
        'the payload went by map (the sender has a region)',
      );
      raw.destroy();
    });
  }

  test("a MAPPED SEND naming another process's region is a protocol error for its sender only", async () => {
    const region = ((await me.status()).mapRegions ?? []).find((r) => r.owner === 'map-sender');
    assert.ok(region !== undefined);
    const raw = await RawClient.hello(kernel.socketPath, 'forger');
    raw.write(frame(Op.SEND, { flags: SendFlag.MAPPED, reqId: 9, target: mine.id }, u32s(region.id, 0, 64)));
    const err = await raw.next((f) => f.op === Op.ERROR, 10_000, 'the refusal');
    assert.equal(err.reqId, 0);
    assert.equal(errorCode(err), 'PROTOCOL');
    await raw.closedWithin(5000);
    // The owner's region is untouched: its next large send goes by map, bytes intact.
    await box.send(patterned(42, MIB));
    const m = await mine.receive({ timeout: 10_000 });
    assert.equal(m.mapped, true);
    assert.equal(m.bytes.readUInt32LE(0), 42);
    assert.ok(intact(m.bytes));
    m.release();
  });

  test('a send waiting for a free map chunk honours its AbortSignal', async () => {
    // Four mapped messages queued: every chunk of the sender's region is taken.
    for (let seq = 60; seq < 64; seq++) await box.send(patterned(seq, MIB));
    const ac = new AbortController();
    const waiting = box.send(patterned(64, MIB), { signal: ac.signal });
    const raced = await Promise.race([
      waiting.then(
        () => 'sent',
        () => 'failed',
      ),
      new Promise((r) => setTimeout(() => r('waiting'), 200)),
    ]);
    assert.equal(raced, 'waiting', 'the send waits while the region is full');
    ac.abort();
    await assert.rejects(waiting, { code: 'ABORTED' });
    // Nothing was sent by the aborted send, and the queue behind it moves on.
    for (let seq = 60; seq < 64; seq++) {
      using m = await mine.receive({ timeout: 10_000 });
      assert.equal(m.bytes.readUInt32LE(0), seq);
      assert.ok(intact(m.bytes));
    }
    await box.send(patterned(65, MIB), { timeout: 10_000 });
    using last = await mine.receive({ timeout: 10_000 });
    assert.equal(last.bytes.readUInt32LE(0), 65);
    assert.equal(last.mapped, true);
  });

  test('a kernel starting unlinks the map regions of dead processes, not those of live ones', async () => {
    // A pid no process has now.
    let dead = 4_000_000;
    while (processExists(dead)) dead++;
    const orphan = `ipcbox-map-${dead}-0badf00d`;
    const live = `ipcbox-map-${process.pid}-0badf00d`;
    for (const name of [orphan, live]) Segment.create(name, { size: 4096 }).close();
    const dir = tempDir();
    const k = await startKernel({ socketPath: join(dir, 'k.sock') });
    try {
      assert.throws(() => Segment.stat(orphan), { code: 'NO_SUCH_SEGMENT' }, 'the dead one is gone');
      assert.equal(Segment.stat(live).size, 4096, 'the live one stays');
    } finally {
      Segment.unlink(live);
      await k.close();
    }
  });

  test('a receiver that cannot open a region refuses the lend and its receive gets a copy', async () => {
    const region = ((await me.status()).mapRegions ?? []).find((r) => r.owner === 'map-sender');
    assert.ok(region !== undefined);
    // A receiver that has never opened the region, which then loses its name.
    const fresh = await connect({ socketPath: kernel.socketPath, name: 'fresh-receiver' });
    try {
      const theirs = await fresh.openMailbox('wire-box');
      Segment.unlink(region.name);
      await box.send(patterned(70, MIB));
      using m = await theirs.receive({ timeout: 10_000 });
      assert.equal(m.mapped, false, 'a copy, after the refused lend');
      assert.equal(m.bytes.readUInt32LE(0), 70);
      assert.ok(intact(m.bytes));
      // Receivers that have the region open still get lends from it.
      await box.send(patterned(71, MIB));
      using again = await mine.receive({ timeout: 10_000 });
      assert.equal(again.mapped, true);
      assert.ok(intact(again.bytes));
    } finally {
      await fresh.close();
    }
  });
});
