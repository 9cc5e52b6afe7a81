import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { Barrier } from '../../src/shm/barrier.js';
import type { Segment } from '../../src/shm/segment.js';
import { hasCode } from './fixtures/has-code.js';
import {
  ARRIVALS,
  BARRIER,
  GATE,
  MAX_GENERATIONS,
  SEGMENT_SIZE,
  SERIALS,
  VIOLATIONS,
} from './fixtures/party-layout.js';
import {
  allExitCleanly,
  type Script,
  spawnScript,
  startScriptWorker,
  stopScripts,
} from './fixtures/process-harness.js';
import { createSegment, openGate, unlinkSegments } from './fixtures/test-segments.js';

const PARTY = new URL('./fixtures/shm-party.js', import.meta.url);

function freshSegment(tag: string, parties: number): { name: string; seg: Segment; barrier: Barrier } {
  const { name, seg } = createSegment(tag, SEGMENT_SIZE);
  return { name, seg, barrier: Barrier.init(seg.buffer, BARRIER, parties) };
}

afterEach(stopScripts);
after(unlinkSegments);

const word = (seg: Segment, offset: number): Int32Array => new Int32Array(seg.buffer, offset, 1);

describe('Barrier', () => {
  const G = 40;
  test(`releases all 5 parties together for ${G} generations: 2 processes, 2 workers, this thread`, async () => {
    assert.ok(G <= MAX_GENERATIONS);
    const { name, seg, barrier } = freshSegment('barrier-mixed', 5);
    const parties: Script[] = [
      spawnScript(PARTY, ['barrier', name, String(G), 'async']),
      spawnScript(PARTY, ['barrier', name, String(G), 'sync']),
      startScriptWorker(PARTY, ['barrier', name, String(G), 'sync']),
      startScriptWorker(PARTY, ['barrier', name, String(G), 'async']),
    ];
    await openGate(seg, GATE, parties);
    let mySerials = 0;
    for (let g = 0; g < G; g++) {
      const arrivals = word(seg, ARRIVALS + 4 * g);
      Atomics.add(arrivals, 0, 1);
      if (await barrier.wait({ timeout: 30_000 })) mySerials++;
      assert.equal(Atomics.load(arrivals, 0), 5, `generation ${g}: released before all 5 arrived`);
    }
    await allExitCleanly(parties);
    assert.equal(Atomics.load(word(seg, VIOLATIONS), 0), 0, 'no party was released early');
    assert.equal(
      Atomics.load(word(seg, SERIALS), 0) + mySerials,
      G,
      'exactly one serial party per generation',
    );
    assert.equal(barrier.generation, G);
    assert.equal(barrier.arrived, 0);
  });

  test('timeout and abort withdraw the party; the barrier stays usable', async () => {
    const { seg, barrier } = freshSegment('barrier-timeout', 2);
    await assert.rejects(barrier.wait({ timeout: 20 }), hasCode('TIMEOUT'));
    assert.throws(() => barrier.waitSync(10), hasCode('TIMEOUT'));
    const ac = new AbortController();
    const aborted = barrier.wait({ signal: ac.signal });
    setTimeout(() => ac.abort(), 5);
    await assert.rejects(aborted, hasCode('ABORTED'));
    assert.equal(barrier.arrived, 0, 'withdrawn arrivals do not count');
    assert.equal(barrier.generation, 0);
    const other = new Barrier(seg.buffer, BARRIER);
    const first = barrier.wait({ timeout: 30_000 });
    const second = await other.wait({ timeout: 30_000 });
    assert.equal([await first, second].filter(Boolean).length, 1);
    assert.equal(barrier.generation, 1);
    assert.equal(Barrier.init(seg.buffer, BARRIER, 1).waitSync(0), true, 'one party never waits');
    assert.throws(() => Barrier.init(seg.buffer, BARRIER, 0), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => Barrier.init(seg.buffer, BARRIER, 65536), hasCode('INVALID_ARGUMENT'));
  });
});
