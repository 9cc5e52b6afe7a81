/**
 * Semaphore, Mutex and Condvar used together by worker threads (blocking
 * sync forms) and the main thread (async forms, event loop kept free), plus
 * a separate process where noted.
 */
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { Condvar } from '../../src/shm/condvar.js';
import { Mutex } from '../../src/shm/mutex.js';
import type { Segment } from '../../src/shm/segment.js';
import { Semaphore } from '../../src/shm/semaphore.js';
import {
  CONDVAR,
  COUNTER,
  FLAG,
  GATE,
  MUTEX,
  SEGMENT_SIZE,
  SEMAPHORE,
  SEMAPHORE2,
  VIOLATIONS,
  WRITERS_INSIDE,
} from './fixtures/party-layout.js';
import { allExitCleanly, spawnScript, startScriptWorker, stopScripts } from './fixtures/process-harness.js';
import { createSegment, openGate, type TestSegment, unlinkSegments } from './fixtures/test-segments.js';

const PARTY = new URL('./fixtures/shm-party.js', import.meta.url);

function freshSegment(tag: string): TestSegment {
  const made = createSegment(tag, SEGMENT_SIZE);
  const { buffer } = made.seg;
  Mutex.init(buffer, MUTEX);
  Semaphore.init(buffer, SEMAPHORE, 0);
  Semaphore.init(buffer, SEMAPHORE2, 0);
  Condvar.init(buffer, CONDVAR);
  return made;
}

afterEach(stopScripts);
after(unlinkSegments);

const word = (seg: Segment, offset: number): Int32Array => new Int32Array(seg.buffer, offset, 1);

/** Counts event-loop turns while `work` runs: proof the main thread never blocked for long. */
async function withTicks<T>(work: Promise<T>): Promise<{ value: T; ticks: number }> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    return { value: await work, ticks };
  } finally {
    clearInterval(timer);
  }
}

describe('shm primitives shared by worker threads and the main thread', () => {
  const N = 4000;
  test(`Mutex: 2 workers (lockSync) + main thread (async lock) + 1 process × ${N}: no lost updates`, async () => {
    const { name, seg } = freshSegment('w-mutex');
    const parties = [
      startScriptWorker(PARTY, ['mutex-count', name, String(N), 'sync']),
      startScriptWorker(PARTY, ['mutex-count', name, String(N), 'sync']),
      spawnScript(PARTY, ['mutex-count', name, String(N), 'async']),
    ];
    await openGate(seg, GATE, parties);
    const m = new Mutex(seg.buffer, MUTEX);
    const counter = word(seg, COUNTER);
    for (let i = 0; i < N; i++) {
      await m.lock({ timeout: 30_000 });
      if (Atomics.add(word(seg, WRITERS_INSIDE), 0, 1) !== 0) Atomics.add(word(seg, VIOLATIONS), 0, 1);
      const v = counter[0] as number;
      await Promise.resolve(); // yield inside the critical section: other threads must still be excluded
      counter[0] = v + 1;
      Atomics.sub(word(seg, WRITERS_INSIDE), 0, 1);
      m.unlock();
    }
    await allExitCleanly(parties);
    assert.equal(Atomics.load(word(seg, VIOLATIONS), 0), 0);
    assert.equal(Atomics.load(counter, 0), 4 * N);
  });

  test('Semaphore: main posts, 2 workers take with waitSync and acknowledge; main waits async for the acks', async () => {
    const { name, seg } = freshSegment('w-sem');
    const K = 2000;
    const parties = [
      startScriptWorker(PARTY, ['sem-consume', name, String(K), 'sync']),
      startScriptWorker(PARTY, ['sem-consume', name, String(K), 'sync']),
    ];
    await Promise.all(parties.map((p) => p.waitForLine('ready')));
    const permits = new Semaphore(seg.buffer, SEMAPHORE);
    const acks = new Semaphore(seg.buffer, SEMAPHORE2);
    for (let i = 0; i < 2 * K; i++) {
      permits.post();
      await acks.wait({ timeout: 30_000 });
    }
    await allExitCleanly(parties);
    assert.equal(Atomics.load(word(seg, COUNTER), 0), 2 * K);
    assert.equal(permits.value, 0);
    assert.equal(acks.value, 0);
  });

  test('Condvar: main broadcasts to workers in waitSync; a worker signals the main thread waiting async', async () => {
    const { name, seg } = freshSegment('w-cv');
    const m = new Mutex(seg.buffer, MUTEX);
    const cv = new Condvar(seg.buffer, CONDVAR);
    const waiters = [
      startScriptWorker(PARTY, ['condvar-wait', name, '0', 'sync']),
      startScriptWorker(PARTY, ['condvar-wait', name, '0', 'sync']),
    ];
    await Promise.all(waiters.map((w) => w.waitForLine('waiting')));
    await m.lock({ timeout: 30_000 });
    Atomics.store(word(seg, FLAG), 0, 7);
    cv.broadcast();
    m.unlock();
    await Promise.all(waiters.map((w) => w.waitForLine('saw 7')));
    await allExitCleanly(waiters);

    // Reverse direction: the main thread parks asynchronously (its event loop keeps turning), a worker wakes it.
    Atomics.store(word(seg, FLAG), 0, 0);
    await m.lock({ timeout: 30_000 });
    const setter = startScriptWorker(PARTY, ['condvar-set', name, '9', 'sync']);
    const { value: seen, ticks } = await withTicks(
      (async () => {
        while (Atomics.load(word(seg, FLAG), 0) === 0) await cv.wait(m, { timeout: 30_000 });
        const v = Atomics.load(word(seg, FLAG), 0);
        m.unlock();
        return v;
      })(),
    );
    assert.equal(seen, 9);
    await allExitCleanly([setter]);
    // The wait outlasted a worker's start-up (many ms), during which the 1 ms timer must have run.
    assert.ok(ticks > 0, 'the event loop kept turning while the main thread waited');
  });
});
