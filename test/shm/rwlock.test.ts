import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { futexWake } from '../../src/shm/futex.js';
import { RwLock } from '../../src/shm/rwlock.js';
import type { Segment } from '../../src/shm/segment.js';
import { hasCode } from './fixtures/has-code.js';
import {
  COUNTER,
  FLAG,
  GATE,
  MAX_READERS,
  READERS_INSIDE,
  RWLOCK,
  SEGMENT_SIZE,
  VIOLATIONS,
} from './fixtures/party-layout.js';
import { allExitCleanly, spawnScript, startScriptWorker, stopScripts } from './fixtures/process-harness.js';
import { createSegment, openGate, type TestSegment, unlinkSegments } from './fixtures/test-segments.js';

const PARTY = new URL('./fixtures/shm-party.js', import.meta.url);

function freshSegment(tag: string): TestSegment {
  const made = createSegment(tag, SEGMENT_SIZE);
  RwLock.init(made.seg.buffer, RWLOCK);
  return made;
}

afterEach(stopScripts);
after(unlinkSegments);

const load = (seg: Segment, offset: number): number => Atomics.load(new Int32Array(seg.buffer, offset, 1), 0);
const store = (seg: Segment, offset: number, v: number): void => {
  const w = new Int32Array(seg.buffer, offset, 1);
  Atomics.store(w, 0, v);
  futexWake(w, 0, 1000);
};

/** Poll with a deadline (never a bare sleep). */
async function until(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('RwLock in one thread', () => {
  test('try forms, writer preference, timeouts, abort and misuse', async () => {
    const { seg } = freshSegment('rw-local');
    const l = new RwLock(seg.buffer, RWLOCK);
    assert.deepEqual(l.tryReadLock(), { ownerDied: false });
    assert.deepEqual(l.tryReadLock(), { ownerDied: false });
    assert.equal(l.readers, 2);
    assert.equal(l.tryWriteLock(), null, 'readers exclude a writer');
    assert.equal(l.writer, 0, 'a failed tryWriteLock leaves no claim behind');
    await assert.rejects(l.writeLock({ timeout: 20 }), hasCode('TIMEOUT'));
    assert.equal(l.writer, 0, 'a timed-out writer gives its claim up');

    // A pending writer blocks new readers (writer preference) and gets the lock once readers leave.
    const writing = l.writeLock({ timeout: 30_000 });
    await until(() => l.writer !== 0, 'the writer to claim');
    assert.equal(l.tryReadLock(), null, 'new readers wait behind a pending writer');
    l.readUnlock();
    l.readUnlock();
    assert.deepEqual(await writing, { ownerDied: false });
    assert.equal(l.tryReadLock(), null);
    assert.equal(l.tryWriteLock(), null);
    assert.throws(() => l.writeLockSync(10), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => l.readLockSync(10), hasCode('INVALID_ARGUMENT'));
    await assert.rejects(l.readLock({ timeout: 20 }), hasCode('TIMEOUT'));
    const ac = new AbortController();
    const aborted = l.readLock({ signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await assert.rejects(aborted, hasCode('ABORTED'));
    const reading = l.readLock({ timeout: 30_000 });
    l.writeUnlock();
    assert.deepEqual(await reading, { ownerDied: false });
    assert.throws(() => l.writeUnlock(), hasCode('INVALID_ARGUMENT'));
    l.readUnlock();
    assert.throws(() => l.readUnlock(), hasCode('INVALID_ARGUMENT'));
    assert.deepEqual(l.writeLockSync(1000), { ownerDied: false });
    l.writeUnlock();
  });
});

describe('RwLock across processes and worker threads', () => {
  test('readers hold the lock together: 2 processes + 1 worker + this thread inside at once', async () => {
    const { name, seg } = freshSegment('rw-overlap');
    const parties = [
      spawnScript(PARTY, ['rw-overlap', name, '4', 'async']),
      spawnScript(PARTY, ['rw-overlap', name, '4', 'sync']),
      startScriptWorker(PARTY, ['rw-overlap', name, '4', 'sync']),
    ];
    const l = new RwLock(seg.buffer, RWLOCK);
    await l.readLock({ timeout: 30_000 });
    Atomics.add(new Int32Array(seg.buffer, READERS_INSIDE, 1), 0, 1);
    // Each party waits, holding its read lock, until all 4 are inside: exclusive readers would deadlock here.
    await Promise.all(parties.map((p) => p.waitForLine('overlapped')));
    assert.equal(load(seg, READERS_INSIDE), 4);
    assert.equal(l.tryWriteLock(), null);
    store(seg, FLAG, 1);
    Atomics.sub(new Int32Array(seg.buffer, READERS_INSIDE, 1), 0, 1);
    l.readUnlock();
    await allExitCleanly(parties);
    assert.deepEqual(l.tryWriteLock(), { ownerDied: false });
    l.writeUnlock();
  });

  const N = 3000;
  test(`no lost updates, writers exclusive: 2 processes (async) + 2 workers (sync) × ${N}, 1 in 4 writes`, async () => {
    const { name, seg } = freshSegment('rw-mix');
    const parties = [
      spawnScript(PARTY, ['rw-mix', name, String(N), 'async', '4']),
      spawnScript(PARTY, ['rw-mix', name, String(N), 'async', '4']),
      startScriptWorker(PARTY, ['rw-mix', name, String(N), 'sync', '4']),
      startScriptWorker(PARTY, ['rw-mix', name, String(N), 'sync', '4']),
    ];
    await openGate(seg, GATE, parties);
    await allExitCleanly(parties);
    assert.equal(load(seg, VIOLATIONS), 0, 'no reader saw a writer inside, no writer saw anyone inside');
    assert.equal(load(seg, COUNTER), 4 * (N / 4), 'every racy increment under the write lock survived');
    assert.ok(load(seg, MAX_READERS) >= 1);
    const l = new RwLock(seg.buffer, RWLOCK);
    assert.equal(l.readers, 0);
    assert.equal(l.writer, 0);
  });

  test('a writer SIGKILLed holding the lock: parked reader and writer proceed, ownerDied until repaired', async () => {
    const { name, seg } = freshSegment('rw-dead-writer');
    const holder = spawnScript(PARTY, ['rw-hold-write', name]);
    await holder.waitForLine('locked false');
    const l = new RwLock(seg.buffer, RWLOCK, { livenessCheckMs: 20 });
    assert.equal(l.tryReadLock(), null);
    const reading = l.readLock({ timeout: 30_000 }); // parks on the writer word
    const worker = startScriptWorker(PARTY, ['rw-write-once', name, '0', 'sync']); // parks too (lockSync in a worker)
    await until(
      () => (Atomics.load(new Int32Array(seg.buffer, RWLOCK, 1), 0) & 0x40000000) !== 0,
      'a waiter to park',
    );
    holder.kill();
    assert.equal(await holder.exited, null);
    const got = await reading;
    // Whoever recovers first: a reader before the repair sees ownerDied and the half-written value,
    // a reader after it sees clean repaired data. The writer always learns it must repair.
    if (got.ownerDied) assert.equal(load(seg, COUNTER), -1);
    else assert.equal(load(seg, COUNTER), 1);
    l.readUnlock();
    await worker.waitForLine('wrote ownerDied=true');
    await allExitCleanly([worker]);
    assert.equal(load(seg, COUNTER), 1, 'the writer repaired and updated the data');
    assert.deepEqual(l.tryReadLock(), { ownerDied: false }, 'a completed write section clears ownerDied');
    l.readUnlock();
  });

  test('a writer SIGKILLed while readers drain: new readers are not blocked, nothing flagged', async () => {
    const { name, seg } = freshSegment('rw-dead-claim');
    const l = new RwLock(seg.buffer, RWLOCK, { livenessCheckMs: 20 });
    await l.readLock();
    const claimer = spawnScript(PARTY, ['rw-claim-write', name]);
    await claimer.waitForLine('claiming');
    await until(() => l.writer === claimer.pid, 'the child to claim the writer word');
    assert.equal(l.tryReadLock(), null, 'the pending writer holds new readers back');
    const reader = spawnScript(PARTY, ['rw-read-once', name, '0', 'sync']);
    claimer.kill();
    await claimer.exited;
    await reader.waitForLine('read 0 ownerDied=false');
    await allExitCleanly([reader]);
    l.readUnlock();
    assert.deepEqual(l.writeLockSync(5000), { ownerDied: false });
    l.writeUnlock();
  });

  test('a reader SIGKILLed holding the lock (documented limit): writers time out, readers continue', async () => {
    const { name, seg } = freshSegment('rw-dead-reader');
    const holder = spawnScript(PARTY, ['rw-hold-read', name]);
    await holder.waitForLine('locked');
    holder.kill();
    await holder.exited;
    const l = new RwLock(seg.buffer, RWLOCK);
    assert.equal(l.readers, 1, "the dead reader's hold leaked");
    await assert.rejects(l.writeLock({ timeout: 50 }), hasCode('TIMEOUT'));
    assert.throws(() => l.writeLockSync(50), hasCode('TIMEOUT'));
    assert.deepEqual(
      l.tryReadLock(),
      { ownerDied: false },
      'readers are not blocked once the writer gave up',
    );
    l.readUnlock();
  });
});
