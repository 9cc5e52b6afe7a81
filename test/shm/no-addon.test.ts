import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Daemon, spawnFixture, startDaemon } from '../helpers/kernel-harness.js';

/** Without the native addon, shared memory fails with a clear code and message passing keeps working. */
describe('without the native addon', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it('shared-memory calls throw NATIVE_UNAVAILABLE while send and receive through the kernel still work', async () => {
    const p = spawnFixture('../shm/fixtures/no-addon', [], d.socketPath, {
      IPCBOX_NATIVE_ADDON: '/nonexistent/ipcbox_shm.node',
    });
    const shm = await p.line((l) => l.startsWith('shm: '));
    assert.equal(shm, 'shm: NATIVE_UNAVAILABLE');
    assert.equal(await p.line((l) => l.startsWith('message: ')), 'message: still here');
    assert.equal((await p.exit).code, 0);
  });
});
