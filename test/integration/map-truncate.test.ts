/**
 * A map region cut short under the kernel (hostile sender): the sender owns its region's
 * file, so it can ftruncate() it while the kernel and receivers map it. An access past the
 * new end used to raise SIGBUS and kill the kernel serving everyone (or the receiver).
 *
 * - The kernel copying a queued payload out of a truncated region (for a client without
 *   MAP) survives, keeps serving other processes, and ends the truncating sender's
 *   connection (PROTOCOL); the receiver gets the message, its bytes zeros (the sender
 *   destroyed them, as overwriting its own chunk would), and another sender's messages
 *   are untouched.
 * - A receiver holding a lent view when the sender truncates reads zeros, it does not die.
 * - A guarded Segment reports `damaged` after it was cut short; an unguarded one would die,
 *   which a child process shows (SIGBUS), so the guard is what saves the others.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, truncateSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox, Segment } from '../../src/index.js';
import { DeliverFlag, Op } from '../../src/wire/protocol.js';
import {
  destroyAllRaw,
  frame,
  type KernelHost,
  RawClient,
  startDaemonProcess,
  stopAllKernels,
  u32s,
} from '../fixtures/hardening-support.js';
import { intact, patterned } from '../fixtures/map-pattern.js';

const MIB = 1024 * 1024;

/** This test process's map regions in /dev/shm (each connection with map makes one). */
function myRegions(): string[] {
  return readdirSync('/dev/shm').filter((n) => n.startsWith(`ipcbox-map-${process.pid}-`));
}

/** Connect a sender with map and have its region registered (its first large send is copied). */
async function mapSender(
  socketPath: string,
  name: string,
  into: Mailbox,
  box: Mailbox,
): Promise<{ p: IpcProcess; region: string }> {
  const before = new Set(myRegions());
  const p = await connect({ socketPath, name, map: { chunks: 4 } });
  const mine = await p.openMailbox(box.name);
  await mine.send(patterned(0, MIB));
  (await into.receive({ timeout: 10_000 })).release();
  // The second goes by map: proof the region is registered.
  await mine.send(patterned(1, MIB));
  const m = await into.receive({ timeout: 10_000 });
  assert.equal(m.mapped, true, 'the sender sends by map');
  m.release();
  const fresh = myRegions().filter((n) => !before.has(n));
  assert.equal(fresh.length, 1, 'one new region');
  return { p, region: fresh[0] as string };
}

describe('a map region truncated under the kernel', () => {
  let kernel: KernelHost;
  let owner: IpcProcess;
  let box: Mailbox;

  before(async () => {
    kernel = await startDaemonProcess();
    owner = await connect({ socketPath: kernel.socketPath, name: 'trunc-owner' });
    box = await owner.createMailbox('trunc-box', { capacity: 64 });
  });

  after(async () => {
    destroyAllRaw();
    await owner?.close();
    await stopAllKernels();
  });

  test('the kernel copying out of it survives, ends only the truncating sender, and serves the rest', async () => {
    const { p: hostile, region } = await mapSender(kernel.socketPath, 'trunc-hostile', box, box);
    const honest = await connect({ socketPath: kernel.socketPath, name: 'trunc-honest' });
    const honestBox = await honest.openMailbox('trunc-box');
    const hostileBox = await hostile.openMailbox('trunc-box');
    const lost = new Promise<Error>((resolve) => hostile.once('disconnect', resolve));

    await hostileBox.send(patterned(7, MIB)); // queued, by map
    await honestBox.send(Buffer.from('honest-before'));
    truncateSync(`/dev/shm/${region}`, 0);

    // A client without MAP makes the kernel copy the payload out of the region.
    const raw = await RawClient.hello(kernel.socketPath, 'trunc-raw', 2);
    raw.write(frame(Op.RECV, { reqId: 5, target: box.id }));
    const d = await raw.next((f) => f.op === Op.DELIVER && f.reqId === 5, 10_000, 'the copied delivery');
    assert.equal(d.flags & DeliverFlag.MAPPED, 0);
    const payload = d.body.subarray(8);
    assert.equal(payload.length, MIB, 'the message arrives at its length');
    assert.ok(
      payload.every((b) => b === 0),
      'its bytes are zeros: the sender destroyed them',
    );
    raw.write(frame(Op.CONSUMED, {}, u32s(d.body.readUInt32LE(0))));
    assert.ok(kernel.alive(), 'the kernel survived the truncated region');

    const why = await lost;
    assert.match(
      String(why.message),
      /cut short|truncated|PROTOCOL/i,
      'the hostile sender lost its connection',
    );

    // Everyone else is served: the honest message queued before, and new traffic.
    const m1 = await box.receive({ timeout: 10_000 });
    assert.equal(m1.bytes.toString(), 'honest-before');
    await honestBox.send(patterned(9, MIB));
    const m2 = await box.receive({ timeout: 10_000 });
    assert.equal(m2.bytes.readUInt32LE(0), 9);
    assert.ok(intact(m2.bytes));
    m2.release();
    const probe = await connect({ socketPath: kernel.socketPath, name: 'trunc-probe' });
    assert.ok((await probe.status()).processes.some((p) => p.name === 'trunc-honest'));
    await probe.close();
    raw.destroy();
    await honest.close();
    await hostile.close().catch(() => {});
  });

  test('a receiver holding a lent view when the sender truncates reads zeros and lives', async () => {
    const { p: hostile, region } = await mapSender(kernel.socketPath, 'trunc-lender', box, box);
    const hostileBox = await hostile.openMailbox('trunc-box');
    await hostileBox.send(patterned(11, MIB));
    const m = await box.receive({ timeout: 10_000 });
    assert.equal(m.mapped, true, 'the receiver holds a view of the region');
    assert.equal(m.bytes.readUInt32LE(0), 11);
    truncateSync(`/dev/shm/${region}`, 0);
    // Reading the view past the file's new end: zeros, not SIGBUS.
    let sum = 0;
    for (let i = 0; i < m.bytes.length; i += 4096) sum += m.bytes[i] as number;
    assert.equal(sum, 0);
    m.release();
    assert.ok(kernel.alive());
    await hostile.close().catch(() => {});
    // The kernel keeps serving this receiver.
    const other = await connect({ socketPath: kernel.socketPath, name: 'trunc-after' });
    await (await other.openMailbox('trunc-box')).send(Buffer.from('still here'));
    assert.equal((await box.receive({ timeout: 10_000 })).bytes.toString(), 'still here');
    await other.close();
  });
});

describe('Segment guard', () => {
  const child = (guard: boolean) => `
    const { Segment } = await import(${JSON.stringify(new URL('../../src/index.js', import.meta.url).href)});
    const { truncateSync } = await import('node:fs');
    const name = 'ipcbox-guard-test-' + process.pid;
    const a = Segment.create(name, { size: 1 << 20 });
    const b = Segment.open(name, { guard: ${guard} });
    new Uint8Array(b.buffer).fill(1);
    truncateSync('/dev/shm/' + name, 0);
    Segment.unlink(name);
    const v = new Uint8Array(b.buffer)[4096 * 10];
    console.log(JSON.stringify({ value: v, damaged: b.damaged, other: a.damaged }));
  `;
  const run = (guard: boolean) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', child(guard)], {
      encoding: 'utf8',
      timeout: 30_000,
    });

  test('a guarded mapping cut short reads zeros and says damaged; an unguarded one dies of SIGBUS', () => {
    const guarded = run(true);
    assert.equal(guarded.status, 0, guarded.stderr);
    assert.deepEqual(JSON.parse(guarded.stdout.trim()), { value: 0, damaged: true, other: false });
    const bare = run(false);
    assert.equal(bare.signal, 'SIGBUS', 'without the guard the same access kills the process');
  });

  test('an intact guarded mapping is shared as usual and not damaged', () => {
    const name = `ipcbox-guard-ok-${process.pid}`;
    const a = Segment.create(name, { size: 4096, guard: true });
    const b = Segment.open(name, { guard: true });
    try {
      new Uint8Array(a.buffer)[5] = 42;
      assert.equal(new Uint8Array(b.buffer)[5], 42);
      assert.equal(a.damaged, false);
      assert.equal(b.damaged, false);
    } finally {
      Segment.unlink(name);
    }
  });
});
