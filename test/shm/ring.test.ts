import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { Ring, RingConsumer, RingProducer } from '../../src/shm/ring.js';
import { hasCode } from './fixtures/has-code.js';
import { spawnScript, stopScripts } from './fixtures/process-harness.js';
import { makeRecord, recordMismatch } from './fixtures/ring-records.js';
import { RING, SEGMENT_SIZE } from './fixtures/test-layout.js';
import { createSegment, type TestSegment, unlinkSegments } from './fixtures/test-segments.js';

const CHILD = new URL('./fixtures/shm-child.js', import.meta.url);

function ringSegment(capacity: number): TestSegment {
  const made = createSegment('ring', SEGMENT_SIZE);
  Ring.init(made.seg.buffer, RING, capacity);
  return made;
}

afterEach(stopScripts);
after(unlinkSegments);

describe('Ring in one process', () => {
  test('records come out complete and in order across many wraps', () => {
    const { seg } = ringSegment(4096);
    const p = new RingProducer(seg.buffer, RING);
    const c = new RingConsumer(seg.buffer, RING);
    const scratch = new Uint8Array(2048);
    let written = 0;
    let read = 0;
    while (read < 5000) {
      while (written < 5000 && p.tryWrite(makeRecord(written, scratch))) written++;
      const got = c.readBatch((view) => {
        assert.equal(recordMismatch(read, view), null);
        read++;
      }, 3);
      assert.ok(got > 0, 'a full ring yields records');
    }
    assert.equal(c.tryRead(), null);
  });

  test('tryRead copies; empty and full rings report so; limits are enforced', async () => {
    const { seg } = ringSegment(64);
    const p = new RingProducer(seg.buffer, RING);
    const c = new RingConsumer(seg.buffer, RING);
    assert.equal(p.maxPayload, 24);
    assert.throws(() => p.tryWrite(new Uint8Array(25)), hasCode('MESSAGE_TOO_LARGE'));
    assert.equal(c.tryRead(), null);
    assert.ok(p.tryWrite(new Uint8Array([1, 2, 3])));
    assert.ok(p.tryWrite(new Uint8Array(24)));
    assert.ok(p.tryWrite(new Uint8Array(0)));
    assert.equal(p.tryWrite(new Uint8Array(8)), false, 'full');
    await assert.rejects(p.write(new Uint8Array(8), { timeout: 10 }), hasCode('TIMEOUT'));
    assert.deepEqual(c.tryRead(), new Uint8Array([1, 2, 3]));
    assert.equal(c.tryRead()?.byteLength, 24);
    assert.equal(c.tryRead()?.byteLength, 0);
    await assert.rejects(c.read({ timeout: 10 }), hasCode('TIMEOUT'));
    assert.throws(() => c.readSync(5), hasCode('TIMEOUT'));
    const ac = new AbortController();
    const pending = c.read({ signal: ac.signal });
    await assert.rejects(c.read({ timeout: 10 }), hasCode('RECEIVER_BUSY'));
    ac.abort();
    await assert.rejects(pending, hasCode('ABORTED'));
    const waiting = c.read({ timeout: 30_000 });
    p.tryWrite(new Uint8Array([9]));
    assert.deepEqual(await waiting, new Uint8Array([9]));
  });

  test('bad capacity or placement → INVALID_ARGUMENT', () => {
    const { seg } = ringSegment(4096);
    for (const cap of [0, 32, 100, 3000])
      assert.throws(() => Ring.init(seg.buffer, RING, cap), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => Ring.init(seg.buffer, 4, 64), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => Ring.init(seg.buffer, 0, 1 << 20), hasCode('INVALID_ARGUMENT'));
    assert.throws(
      () => new RingConsumer(seg.buffer, 0),
      hasCode('INVALID_ARGUMENT'),
      'no ring initialised there',
    );
  });
});

describe('Ring between a producer process and a consumer process', () => {
  const COUNT = 20_000;
  for (const [produce, consume] of [
    ['async', 'async'],
    ['sync', 'sync'],
    ['async', 'batch'],
  ] as const) {
    test(`${COUNT} variable-size records, producer ${produce}, consumer ${consume}: no loss, duplication or reordering`, async () => {
      const { name } = ringSegment(4096);
      const consumer = spawnScript(CHILD, ['ring-consume', name, String(COUNT), consume]);
      const producer = spawnScript(CHILD, ['ring-produce', name, String(COUNT), produce]);
      assert.deepEqual(await Promise.all([producer.exited, consumer.exited]), [0, 0]);
      assert.deepEqual(consumer.lines, [`received ${COUNT}`, 'done']);
    });
  }
});
