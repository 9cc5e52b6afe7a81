/**
 * Kernel state a client makes that the message budget does not count — mailbox and segment
 * records, segment meta — is bounded too: a client that makes them without end gets KERNEL_FULL,
 * and the kernel keeps serving everyone (an existing mailbox still carries messages; freeing one
 * makes room again).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type IpcProcess, type Kernel, startKernel } from '../../src/index.js';
import { tempDir } from '../helpers/kernel-harness.js';

describe('bounded kernel records', () => {
  let dir: string;
  let kernel: Kernel;
  let hostile: IpcProcess;
  let bystander: IpcProcess;

  before(async () => {
    dir = tempDir('ipcbox-records-');
    kernel = await startKernel({
      socketPath: join(dir, 'k.sock'),
      maxMailboxes: 8,
      maxSegments: 4,
      memoryBudget: 1024 * 1024,
    });
    hostile = await connect({ socketPath: kernel.socketPath, name: 'hoarder' });
    bystander = await connect({ socketPath: kernel.socketPath, name: 'bystander' });
  });
  after(async () => {
    await hostile?.close();
    await bystander?.close();
    await kernel?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mailboxes past maxMailboxes are KERNEL_FULL, on either path; one deleted makes room', async () => {
    const mine = await bystander.createMailbox('bystander-box', { owner: 'system' });
    const made = [];
    for (let i = 0; i < 7; i++) made.push(await hostile.createMailbox(`hoard-${i}`, { owner: 'system' }));
    await assert.rejects(hostile.createMailbox('hoard-8', { owner: 'system' }), { code: 'KERNEL_FULL' });
    await assert.rejects(hostile.createMailbox('hoard-shm', { transport: 'shm' }), { code: 'KERNEL_FULL' });
    // Everyone else is still served.
    await mine.send('still here');
    assert.equal((await mine.receive({ timeout: 5000 })).data, 'still here');
    await made[0]!.delete();
    const again = await hostile.createMailbox('hoard-again', { transport: 'shm' });
    assert.equal(again.transport, 'shm');
    await again.delete();
    for (const m of made.slice(1)) await m.delete();
    await mine.delete();
  });

  it('segments past maxSegments, or meta past a 16th of the budget, are KERNEL_FULL and leave nothing behind', async () => {
    const raw = hostile as unknown as { conn: { call(m: string, a: unknown): Promise<unknown> } };
    const big = { blob: 'x'.repeat(40 * 1024) }; // 40 KiB of meta; the budget allows 64 KiB in all
    await raw.conn.call('segment.register', { name: 'seg-a', size: 4096, meta: big });
    await assert.rejects(raw.conn.call('segment.register', { name: 'seg-b', size: 4096, meta: big }), {
      code: 'KERNEL_FULL',
    });
    assert.ok(!(await bystander.listSegments()).some((g) => g.name === 'seg-b'), 'nothing recorded');
    for (const n of ['seg-b', 'seg-c', 'seg-d'])
      await raw.conn.call('segment.register', { name: n, size: 4096 });
    await assert.rejects(raw.conn.call('segment.register', { name: 'seg-e', size: 4096 }), {
      code: 'KERNEL_FULL',
    });
    await hostile.removeSegment('seg-a');
    // Its meta and its place are free again.
    await raw.conn.call('segment.register', { name: 'seg-e', size: 4096, meta: big });
    for (const n of ['seg-b', 'seg-c', 'seg-d', 'seg-e']) await hostile.removeSegment(n);
  });
});
