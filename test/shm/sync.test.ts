import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { Condvar } from '../../src/shm/condvar.js';
import { Mutex } from '../../src/shm/mutex.js';
import { Semaphore } from '../../src/shm/semaphore.js';
import { hasCode } from './fixtures/has-code.js';
import { allExitCleanly, spawnScript, startScriptWorker, stopScripts } from './fixtures/process-harness.js';
import { CONDVAR, COUNTER, FLAG, GATE, MUTEX, SEGMENT_SIZE, SEMAPHORE } from './fixtures/test-layout.js';
import { createSegment, openGate, type TestSegment, unlinkSegments } from './fixtures/test-segments.js';

const CHILD = new URL('./fixtures/shm-child.js', import.meta.url);

function freshSegment(tag: string): TestSegment {
  const made = createSegment(tag, SEGMENT_SIZE);
  Mutex.init(made.seg.buffer, MUTEX);
  Semaphore.init(made.seg.buffer, SEMAPHORE, 1);
  Condvar.init(made.seg.buffer, CONDVAR);
  return made;
}

afterEach(stopScripts);
after(unlinkSegments);

const N = 5000;

describe('mutual exclusion across processes: no lost updates', () => {
  for (const mode of ['mutex-count', 'mutex-count-sync', 'sem-count', 'sem-count-sync']) {
    test(`${mode}: 3 processes × ${N} increments`, async () => {
      const { name, seg } = freshSegment(mode);
      const children = [0, 1, 2].map(() => spawnScript(CHILD, [mode, name, String(N)]));
      await openGate(seg, GATE, children);
      await allExitCleanly(children);
      assert.equal(Atomics.load(new Int32Array(seg.buffer, COUNTER, 1), 0), 3 * N);
    });
  }

  test(`mutex: 2 worker threads (lockSync) + 1 process (async lock) × ${N}`, async () => {
    const { name, seg } = freshSegment('mixed');
    const children = [
      startScriptWorker(CHILD, ['mutex-count-sync', name, String(N)]),
      startScriptWorker(CHILD, ['mutex-count-sync', name, String(N)]),
      spawnScript(CHILD, ['mutex-count', name, String(N)]),
    ];
    await openGate(seg, GATE, children);
    await allExitCleanly(children);
    assert.equal(Atomics.load(new Int32Array(seg.buffer, COUNTER, 1), 0), 3 * N);
  });
});

describe('Semaphore', () => {
  test('tryWait, timeout, abort and post waking an async waiter', async () => {
    const { seg } = freshSegment('sem');
    const sem = Semaphore.init(seg.buffer, SEMAPHORE, 0);
    assert.equal(sem.tryWait(), false);
    await assert.rejects(sem.wait({ timeout: 20 }), hasCode('TIMEOUT'));
    assert.throws(() => sem.waitSync(10), hasCode('TIMEOUT'));
    const ac = new AbortController();
    const aborted = sem.wait({ signal: ac.signal });
    ac.abort();
    await assert.rejects(aborted, hasCode('ABORTED'));
    const waiting = sem.wait({ timeout: 30_000 });
    sem.post();
    await waiting;
    assert.equal(sem.value, 0);
    sem.post(2);
    assert.equal(sem.tryWait(), true);
    assert.equal(sem.tryWait(), true);
    assert.equal(sem.tryWait(), false);
    assert.throws(() => sem.post(-1), hasCode('INVALID_ARGUMENT'));
  });

  test('a post that would overflow the i32 count throws and adds nothing', () => {
    const { seg } = freshSegment('sem-max');
    const sem = Semaphore.init(seg.buffer, SEMAPHORE, 2);
    assert.throws(() => sem.post(0x7fffffff), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => sem.post(0x3fffffff * 2), hasCode('INVALID_ARGUMENT'));
    assert.equal(sem.value, 2);
    sem.post(0x7fffffff - 2);
    assert.equal(sem.value, 0x7fffffff);
    assert.throws(() => sem.post(1), hasCode('INVALID_ARGUMENT'));
    assert.equal(sem.value, 0x7fffffff, 'never wraps negative');
  });

  test('a waiter on a count found below zero parks (no spinning, timers run) until posts bring it above', async () => {
    const { seg } = freshSegment('sem-neg');
    const sem = Semaphore.init(seg.buffer, SEMAPHORE, 0);
    Atomics.store(new Int32Array(seg.buffer, SEMAPHORE, 1), 0, -3);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const cpu0 = process.cpuUsage();
    const waiting = sem.wait({ timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 300));
    const cpu = process.cpuUsage(cpu0);
    clearInterval(timer);
    assert.ok(ticks >= 10, `the event loop ran (${ticks} ticks)`);
    assert.ok(
      cpu.user + cpu.system < 150_000,
      `parked, not spinning (${cpu.user + cpu.system} µs CPU in 300 ms)`,
    );
    sem.post(3);
    assert.equal(sem.tryWait(), false);
    sem.post(1);
    await waiting;
    assert.equal(sem.value, 0);
  });
});

describe('Mutex', () => {
  test('tryLock/timeout/abort/unlock ownership in one process', async () => {
    const { seg } = freshSegment('mtx');
    const m = new Mutex(seg.buffer, MUTEX);
    assert.deepEqual(m.tryLock(), { ownerDied: false });
    assert.throws(() => m.lockSync(10), hasCode('INVALID_ARGUMENT'));
    await assert.rejects(m.lock({ timeout: 20 }), hasCode('TIMEOUT'));
    const ac = new AbortController();
    const pending = m.lock({ signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await assert.rejects(pending, hasCode('ABORTED'));
    const next = m.lock({ timeout: 30_000 });
    m.unlock();
    assert.deepEqual(await next, { ownerDied: false });
    m.unlock();
    assert.throws(() => m.unlock(), hasCode('INVALID_ARGUMENT'));
    assert.equal(m.owner, 0);
  });

  test('a holder SIGKILLed while a locker is parked: the locker gets ownerDied', async () => {
    const { name, seg } = freshSegment('dead1');
    const holder = spawnScript(CHILD, ['mutex-hold', name]);
    await holder.waitForLine('locked');
    const m = new Mutex(seg.buffer, MUTEX, { livenessCheckMs: 20 });
    assert.equal(m.tryLock(), null);
    const waiting = m.lock({ timeout: 30_000 });
    holder.kill();
    assert.equal(await holder.exited, null);
    assert.deepEqual(await waiting, { ownerDied: true });
    m.unlock();
    assert.deepEqual(await m.lock({ timeout: 1000 }), { ownerDied: false });
    m.unlock();
  });

  test('a holder SIGKILLed before anyone waits: lockSync and tryLock recover', async () => {
    const { name, seg } = freshSegment('dead2');
    const holder = spawnScript(CHILD, ['mutex-hold', name]);
    await holder.waitForLine('locked');
    holder.kill();
    await holder.exited;
    const m = new Mutex(seg.buffer, MUTEX);
    assert.deepEqual(m.lockSync(30_000), { ownerDied: true });
    m.unlock();

    const holder2 = spawnScript(CHILD, ['mutex-hold', name]);
    await holder2.waitForLine('locked');
    holder2.kill();
    await holder2.exited;
    assert.deepEqual(m.tryLock(), { ownerDied: true });
    m.unlock();
  });
});

describe('Condvar', () => {
  test('broadcast wakes waiters in two processes; they see the flag set under the mutex', async () => {
    const { name, seg } = freshSegment('cv');
    const m = new Mutex(seg.buffer, MUTEX);
    const cv = new Condvar(seg.buffer, CONDVAR);
    const waiters = [spawnScript(CHILD, ['condvar-wait', name]), spawnScript(CHILD, ['condvar-wait', name])];
    await Promise.all(waiters.map((w) => w.waitForLine('waiting')));
    await m.lock({ timeout: 30_000 });
    Atomics.store(new Int32Array(seg.buffer, FLAG, 1), 0, 7);
    cv.broadcast();
    m.unlock();
    await Promise.all(waiters.map((w) => w.waitForLine('saw 7')));
    await allExitCleanly(waiters);
  });

  test('wait times out with the mutex re-acquired; signal wakes a same-process waiter', async () => {
    const { seg } = freshSegment('cv2');
    const m = new Mutex(seg.buffer, MUTEX);
    const cv = new Condvar(seg.buffer, CONDVAR);
    await m.lock();
    await assert.rejects(cv.wait(m, { timeout: 20 }), hasCode('TIMEOUT'));
    assert.notEqual(m.owner, 0, 'mutex held again after the timeout');
    const flag = new Int32Array(seg.buffer, FLAG, 1);
    const waiter = (async () => {
      while (Atomics.load(flag, 0) === 0) await cv.wait(m, { timeout: 30_000 });
      m.unlock();
    })();
    await m.lock({ timeout: 30_000 });
    Atomics.store(flag, 0, 1);
    cv.signal();
    m.unlock();
    await waiter;
  });
});
