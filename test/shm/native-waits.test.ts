/**
 * The addon's futex waits in real processes: the waiter threads are bounded
 * and go away when idle, a wait that finds no thread rejects instead of
 * aborting the process, and timeouts too large for a timespec wait forever
 * instead of returning at once.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { spawnScript, stopScripts } from './fixtures/process-harness.js';

const CHILD = new URL('./fixtures/native-child.js', import.meta.url);

afterEach(stopScripts);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('async futex waits: a bounded pool of waiter threads', () => {
  test('300 pending waits add a few threads, not 300, and the threads exit once idle', async () => {
    const child = spawnScript(CHILD, ['pending', '300']);
    const [, before, during] = (await child.line('threads ')).split(' ').map(Number);
    assert.ok(during !== undefined && before !== undefined);
    assert.ok(during - before <= 8, `300 waits took ${during - before} extra threads`);
    const [, after] = (await child.line('idle ')).split(' ').map(Number);
    assert.equal(after, before, 'the waiter threads exited after the waits were cancelled');
    assert.equal(await child.exited, 0);
  });

  test('a wait that finds no waiter thread rejects with NATIVE_UNAVAILABLE; the process lives on', async () => {
    const child = spawnScript(CHILD, ['cap'], { IPCBOX_WAITER_THREADS: '1' });
    const [, started, code] = (await child.line('rejected ')).split(' ');
    assert.equal(code, 'NATIVE_UNAVAILABLE');
    assert.ok(Number(started) >= 1 && Number(started) <= 127, `one thread served ${started} waits`);
    await child.waitForLine('restarted');
    assert.equal(await child.exited, 0);
  });
});

describe('timeouts beyond what a timespec holds wait forever', () => {
  for (const timeout of ['1e12', '1e19', '1e22', '1e300']) {
    test(`futexWaitAsync with timeout ${timeout} ms sleeps until woken`, async () => {
      const child = spawnScript(CHILD, ['long-async', timeout]);
      const [, result, ms] = (await child.line('woke ')).split(' ');
      assert.equal(result, 'ok');
      assert.ok(Number(ms) >= 250, `woke after ${ms} ms, before anyone woke it`);
      assert.equal(await child.exited, 0);
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
