/**
 * The addon's futex waits in real processes: the waiter threads are bounded
 * and go away when idle, a wait that finds no thread rejects instead of
 * aborting the process, and timeouts too large for a timespec wait forever
 * instead of returning at once.
 */
import assert from 'node:assert/strict';
import { release } from 'node:os';
import { afterEach, describe, test } from 'node:test';
import { spawnScript, stopScripts } from './fixtures/process-harness.js';

const CHILD = new URL('./fixtures/native-child.js', import.meta.url);

afterEach(stopScripts);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** futex_waitv is in Linux 5.16 and later. */
const kernelHasWaitv = ((): boolean => {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major > 5 || (major === 5 && minor >= 16);
})();

/** The pool's two ways to wait: multiplexed (futex_waitv) and the one-wait-per-thread fallback. */
const modes = [
  { name: 'futex_waitv', env: {}, skip: kernelHasWaitv ? false : 'kernel before 5.16' },
  { name: 'one wait per thread', env: { IPCBOX_FUTEX_WAITV: '0' }, skip: false },
] as const;

for (const mode of modes) {
  describe(`async futex waits (${mode.name}): a bounded pool of waiter threads`, { skip: mode.skip }, () => {
    test('300 pending waits start, the thread count stays bounded, and the threads exit once idle', async () => {
      const child = spawnScript(CHILD, ['pending', '300'], mode.env);
      const [, before, during] = (await child.line('threads ')).split(' ').map(Number);
      assert.ok(during !== undefined && before !== undefined);
      const bound = mode.name === 'futex_waitv' ? 8 : 304;
      assert.ok(during - before <= bound, `300 waits took ${during - before} extra threads`);
      const [, after] = (await child.line('idle ')).split(' ').map(Number);
      assert.equal(after, before, 'the waiter threads exited after the waits were cancelled');
      assert.equal(await child.exited, 0);
    });

    test('a wait that finds no waiter thread rejects with NATIVE_UNAVAILABLE; the process lives on', async () => {
      const child = spawnScript(CHILD, ['cap'], { ...mode.env, IPCBOX_WAITER_THREADS: '1' });
      const [, started, code] = (await child.line('rejected ')).split(' ');
      assert.equal(code, 'NATIVE_UNAVAILABLE');
      assert.equal(Number(started), mode.name === 'futex_waitv' ? 127 : 1, 'waits one thread serves');
      await child.waitForLine('restarted');
      assert.equal(await child.exited, 0);
    });
  });
}

describe('timeouts beyond what a timespec holds wait forever', () => {
  for (const timeout of ['1e12', '1e19', '1e22', '1e300']) {
    test(`futexWaitAsync with timeout ${timeout} ms sleeps until woken (both pool modes)`, async () => {
      for (const mode of modes.filter((m) => m.skip === false)) {
        const child = spawnScript(CHILD, ['long-async', timeout], mode.env);
        const [, result, ms] = (await child.line('woke ')).split(' ');
        assert.equal(result, 'ok', mode.name);
        assert.ok(Number(ms) >= 250, `${mode.name}: woke after ${ms} ms, before anyone woke it`);
        assert.equal(await child.exited, 0);
      }
    });

    test(`futexWaitSync with timeout ${timeout} ms is still asleep after 500 ms`, async () => {
      const child = spawnScript(CHILD, ['long-sync', timeout]);
      await child.waitForLine('waiting');
      await sleep(500);
      assert.deepEqual(
        child.lines.filter((l) => l.startsWith('woke')),
        [],
      );
      child.kill();
      assert.equal(await child.exited, null);
    });
  }
});
