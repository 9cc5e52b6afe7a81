/**
 * waitForProcess against the real daemon and real child processes: the
 * kernel parks `process.wait` until a HELLO binds the name, runs its timeout,
 * withdraws aborted waits, bounds them per connection and forgets them when
 * their connection ends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  AbortError,
  connect,
  type IpcProcess,
  KernelFullError,
  type ProcessInfo,
  TimeoutError,
} from '../../src/index.js';
import { outcomeOf, tracked, within } from '../fixtures/hardening-support.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { RemotePeer, stopAll } from './remote-peer.js';

/** The kernel's own per-connection bound (kernel/process-waits.ts). */
const MAX_PROCESS_WAITS = 1024;

describe('waitForProcess', () => {
  let daemon: Daemon;
  let me: IpcProcess;

  async function parkedWaits(): Promise<number> {
    return (await me.status()).kernel.processWaits;
  }

  function parkedUntil(n: number, what: string): Promise<void> {
    return waitFor(async () => (await parkedWaits()) === n, 10_000, what);
  }

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'wfp-test' });
  });

  after(async () => {
    await stopAll();
    await me?.close();
    await daemon?.stop();
  });

  test('resolves at once for a process that is connected, with its info', async () => {
    const bob = await RemotePeer.start(daemon.socketPath, 'wfp-present');
    const info = await within(me.waitForProcess('wfp-present', { timeout: 10_000 }), 5000, 'the wait');
    assert.equal(info.name, 'wfp-present');
    assert.equal(info.osPid, bob.pid, 'the info is that of the connected child');
    assert.equal(await parkedWaits(), 0, 'nothing was parked');
    assert.equal((await me.waitForProcess('@wfp-present')).name, 'wfp-present', "the '@' form names it too");
    await bob.stop();
  });

  test('a wait started first resolves when a separate child process connects later, and the name is then usable', async () => {
    const wait = tracked(me.waitForProcess('wfp-late', { timeout: 60_000 }));
    await parkedUntil(1, 'the wait to be parked in the kernel');
    assert.equal(wait.settled, false, 'no process of that name yet');
    const late = await RemotePeer.start(daemon.socketPath, 'wfp-late');
    const info: ProcessInfo = await within(wait.promise, 10_000, 'the parked wait');
    assert.equal(info.name, 'wfp-late');
    assert.equal(info.osPid, late.pid);
    assert.equal(await parkedWaits(), 0, 'the answered wait left the kernel');
    // The startup race this is for: right after the wait, sending to the name works.
    await me.send('wfp-late', 'hello after the wait');
    const got = await late.ok<{ data: string; sender: string }>('receive', { options: { timeout: 10_000 } });
    assert.deepEqual([got.data, got.sender], ['hello after the wait', 'wfp-test']);
    await late.stop();
  });

  test('several waiters, in this process and in another, are all answered by one HELLO', async () => {
    const waiter = await RemotePeer.start(daemon.socketPath, 'wfp-waiter');
    const theirs = waiter.start<{ name: string }>('waitForProcess', {
      name: 'wfp-many',
      options: { timeout: 60_000 },
    });
    const mine = [1, 2, 3].map(() => me.waitForProcess('wfp-many', { timeout: 60_000 }));
    await parkedUntil(4, 'four parked waits');
    const target = await RemotePeer.start(daemon.socketPath, 'wfp-many');
    for (const info of await within(Promise.all(mine), 10_000, 'my waits'))
      assert.equal(info.name, 'wfp-many');
    const reply = await theirs.reply;
    assert.equal(reply.ok, true, `the other process's wait: ${reply.code} ${reply.message}`);
    assert.equal(reply.value.name, 'wfp-many');
    await stopAll([waiter, target]);
  });

  test('times out with TIMEOUT, run by the kernel, within a tolerance; nothing stays parked', async () => {
    const started = Date.now();
    const err = await me.waitForProcess('wfp-never', { timeout: 300 }).then(
      () => assert.fail('resolved without such a process'),
      (e: unknown) => e,
    );
    const elapsed = Date.now() - started;
    assert.ok(err instanceof TimeoutError, `a TimeoutError, got ${String(err)}`);
    assert.equal(err.code, 'TIMEOUT');
    assert.ok(elapsed >= 290, `not before its time (${elapsed} ms)`);
    assert.ok(elapsed < 3000, `within a tolerance (${elapsed} ms)`);
    assert.equal(await parkedWaits(), 0);
    await assert.rejects(me.waitForProcess('wfp-never', { timeout: 0 }), { code: 'TIMEOUT' });
    await assert.rejects(me.waitForProcess('wfp-never', { timeout: -1 }), RangeError);
  });

  test('abort rejects with AbortError at once and the kernel withdraws the wait', async () => {
    const ac = new AbortController();
    const wait = tracked(me.waitForProcess('wfp-aborted', { signal: ac.signal }));
    await parkedUntil(1, 'the wait to be parked');
    const t0 = Date.now();
    ac.abort();
    await assert.rejects(within(wait.promise, 1000, 'the aborted wait'), (e: unknown) => {
      assert.ok(e instanceof AbortError, `an AbortError, got ${String(e)}`);
      assert.equal(e.code, 'ABORTED');
      return true;
    });
    assert.ok(Date.now() - t0 < 1000);
    await parkedUntil(0, 'the kernel to withdraw the aborted wait');
    // The kernel's late answer (had the name been bound meanwhile) is harmless: this connection still works.
    const bob = await RemotePeer.start(daemon.socketPath, 'wfp-aborted');
    assert.equal((await me.waitForProcess('wfp-aborted')).name, 'wfp-aborted');
    await bob.stop();
    await assert.rejects(
      me.waitForProcess('wfp-aborted', { signal: AbortSignal.abort() }),
      AbortError,
      'an already aborted signal rejects without asking',
    );
  });

  test('invalid names are INVALID_ARGUMENT at once; a kernel-assigned name resolves only while connected', async () => {
    for (const bad of ['', 'has space', `x${'y'.repeat(300)}`]) {
      await assert.rejects(me.waitForProcess(bad, { timeout: 60_000 }), { code: 'INVALID_ARGUMENT' }, bad);
    }
    const anon = await RemotePeer.start(daemon.socketPath);
    assert.match(anon.name, /^proc-\d+$/);
    assert.equal((await me.waitForProcess(anon.name, { timeout: 60_000 })).name, anon.name);
    await anon.stop();
    await waitFor(
      async () => !(await me.listProcesses()).some((p) => p.name === anon.name),
      10_000,
      'the anonymous peer to leave',
    );
    // Never given out again, and never claimable: waiting for it would wait forever.
    await assert.rejects(me.waitForProcess(anon.name, { timeout: 60_000 }), { code: 'NO_SUCH_PROCESS' });
    assert.equal(await parkedWaits(), 0);
  });

  test('after the waited process exits, a new wait waits again, and resolves when the name returns', async () => {
    const first = await RemotePeer.start(daemon.socketPath, 'wfp-cycle');
    assert.equal((await me.waitForProcess('wfp-cycle', { timeout: 10_000 })).osPid, first.pid);
    await me.send('wfp-cycle', 'to the first');
    await first.kill('SIGKILL');
    await waitFor(
      async () => !(await me.listProcesses()).some((p) => p.name === 'wfp-cycle'),
      10_000,
      'the killed process to be gone',
    );
    await assert.rejects(me.waitForProcess('wfp-cycle', { timeout: 200 }), { code: 'TIMEOUT' });
    const wait = tracked(me.waitForProcess('wfp-cycle', { timeout: 60_000 }));
    await parkedUntil(1, 'the new wait to be parked');
    const second = await RemotePeer.start(daemon.socketPath, 'wfp-cycle');
    assert.equal((await within(wait.promise, 10_000, 'the new wait')).osPid, second.pid);
    await me.send('wfp-cycle', 'to the second');
    const got = await second.ok<{ data: string }>('receive', { options: { timeout: 10_000 } });
    assert.equal(
      got.data,
      'to the second',
      'a send after the wait reaches the new process, not the old inbox',
    );
    await second.stop();
  });

  test(`beyond ${MAX_PROCESS_WAITS} parked waits a connection is refused KERNEL_FULL; others are served; closing it frees them all`, async () => {
    const flood = await connect({ socketPath: daemon.socketPath, name: 'wfp-flood' });
    const parked = Array.from({ length: MAX_PROCESS_WAITS }, (_, i) =>
      outcomeOf(flood.waitForProcess(`wfp-absent-${i}`)),
    );
    await parkedUntil(MAX_PROCESS_WAITS, 'every wait of the flood to be parked');
    const refused = await flood.waitForProcess('wfp-one-too-many').then(
      () => assert.fail('the wait past the limit was parked'),
      (e: unknown) => e,
    );
    assert.ok(refused instanceof KernelFullError, `a KernelFullError, got ${String(refused)}`);
    assert.equal(refused.code, 'KERNEL_FULL');
    assert.equal(await parkedWaits(), MAX_PROCESS_WAITS, 'the refused wait was not parked');

    // Another client is served as ever, waits included.
    const bob = await RemotePeer.start(daemon.socketPath, 'wfp-served');
    assert.equal((await me.waitForProcess('wfp-served', { timeout: 10_000 })).name, 'wfp-served');
    await assert.rejects(me.waitForProcess('wfp-absent-0', { timeout: 50 }), { code: 'TIMEOUT' });
    await bob.stop();

    await flood.close();
    const outcomes = await within(Promise.all(parked), 5000, "the flood's waits to reject on close");
    assert.ok(
      outcomes.every((o) => o === 'DISCONNECTED'),
      'every parked wait rejects promptly when its connection closes',
    );
    await parkedUntil(0, 'the kernel to forget the closed connection’s waits');
  });

  test('a child process killed with waits parked leaves the kernel clean', async () => {
    const child = await RemotePeer.start(daemon.socketPath, 'wfp-doomed');
    for (let i = 0; i < 5; i++) child.start('waitForProcess', { name: `wfp-ghost-${i}` });
    child.start('waitForProcess', { name: 'wfp-ghost-timed', options: { timeout: 60_000 } });
    await parkedUntil(6, "the child's waits to be parked");
    await child.kill('SIGKILL');
    await parkedUntil(0, 'the kernel to drop the dead connection’s waits');
    const status = await me.status();
    assert.ok(!status.processes.some((p) => p.name === 'wfp-doomed'));
    // The names it waited for are ordinary names still: one connects and nothing is answered to nobody.
    const ghost = await RemotePeer.start(daemon.socketPath, 'wfp-ghost-0');
    assert.equal((await me.waitForProcess('wfp-ghost-0')).name, 'wfp-ghost-0');
    await ghost.stop();
  });
});
