import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { MpmcRing } from '../../src/shm/mpmc-ring.js';
import { hasCode } from './fixtures/has-code.js';
import {
  CONSUMED,
  GATE,
  RING,
  RING_BYTES,
  SEEN,
  SLOT_SIZE,
  SLOTS,
  segmentSize,
} from './fixtures/mpmc-layout.js';
import {
  allExitCleanly,
  type Script,
  spawnScript,
  startScriptWorker,
  stopScripts,
} from './fixtures/process-harness.js';
import { createSegment, openGate, type TestSegment, unlinkSegments } from './fixtures/test-segments.js';

const CHILD = new URL('./fixtures/mpmc-child.js', import.meta.url);

afterEach(stopScripts);
after(unlinkSegments);

function ringSegment(size: number, slots: number, slotSize: number): TestSegment & { ring: MpmcRing } {
  const made = createSegment('mpmc', size);
  return { ...made, ring: MpmcRing.init(made.seg.buffer, RING, { slots, slotSize }) };
}

describe('MpmcRing in one thread', () => {
  test('layout: cells are whole cache lines and the ring fits the test layout', () => {
    assert.equal(MpmcRing.bytesFor({ slots: 4, slotSize: 56 }), MpmcRing.HEADER_BYTES + 4 * 64);
    assert.equal(MpmcRing.bytesFor({ slots: 4, slotSize: 57 }), MpmcRing.HEADER_BYTES + 4 * 128);
    assert.ok(MpmcRing.bytesFor({ slots: SLOTS, slotSize: SLOT_SIZE }) <= RING_BYTES);
  });

  test('records come out once and in order across many laps, singly and in batches', () => {
    const { ring } = ringSegment(RING + 65536, 8, 32);
    let written = 0;
    let read = 0;
    const rec = (i: number): Uint8Array => new Uint8Array(i % 33).fill(i & 0xff);
    while (read < 3000) {
      if (written % 2 === 0) {
        while (written < 3000 && ring.tryWrite(rec(written))) written++;
      } else {
        const batch = Array.from({ length: 5 }, (_, k) => rec(written + k)).slice(0, 3000 - written);
        written += ring.tryWriteBatch(batch);
      }
      const got = ring.readBatch((view) => {
        assert.deepEqual(view, rec(read));
        read++;
      }, 3);
      assert.ok(got > 0, 'a non-empty ring yields records');
    }
    assert.equal(ring.tryRead(), null);
    assert.equal(ring.size, 0);
  });

  test('capacity below the cell count: the ring is full at capacity, lap after lap, single and batch', () => {
    const made = createSegment('mpmc-cap', RING + 65536);
    const ring = MpmcRing.init(made.seg.buffer, RING, { slots: 8, slotSize: 8, capacity: 5 });
    assert.equal(new MpmcRing(made.seg.buffer, RING).capacity, 5, 'another handle reads it from the header');
    assert.throws(
      () => MpmcRing.init(made.seg.buffer, RING, { slots: 8, slotSize: 8, capacity: 9 }),
      hasCode('INVALID_ARGUMENT'),
    );
    let next = 0;
    let expect = 0;
    for (let lap = 0; lap < 20; lap++) {
      const room = 5 - ring.size;
      const batch = Array.from({ length: 7 }, (_, k) => Uint8Array.of((next + k) & 0xff));
      assert.equal(ring.tryWriteBatch(batch), room);
      next += room;
      assert.equal(ring.size, 5);
      assert.equal(ring.tryWrite(Uint8Array.of(0)), false, 'full at capacity 5 with 8 cells');
      const take = 1 + (lap % 5);
      for (let i = 0; i < take; i++) assert.deepEqual(ring.tryRead(), Uint8Array.of(expect++ & 0xff));
    }
  });

  test('tryWriteWith writes in place; full and empty rings say so; limits are enforced', async () => {
    const { ring } = ringSegment(RING + 65536, 2, 8);
    assert.throws(() => ring.tryWrite(new Uint8Array(9)), hasCode('MESSAGE_TOO_LARGE'));
    assert.throws(
      () => ring.tryWriteBatch([new Uint8Array(1), new Uint8Array(9)]),
      hasCode('MESSAGE_TOO_LARGE'),
    );
    assert.equal(ring.size, 0, 'an oversize batch writes nothing');
    assert.equal(ring.tryRead(), null);
    assert.ok(ring.tryWriteWith(3, (bytes, off) => bytes.set([7, 8, 9], off)));
    assert.ok(ring.tryWrite(new Uint8Array(8)));
    assert.equal(ring.tryWrite(new Uint8Array(1)), false, 'full');
    assert.equal(ring.tryWriteBatch([new Uint8Array(1)]), 0);
    await assert.rejects(ring.write(new Uint8Array(1), { timeout: 10 }), hasCode('TIMEOUT'));
    assert.throws(() => ring.writeSync(new Uint8Array(1), 5), hasCode('TIMEOUT'));
    assert.deepEqual(ring.tryRead(), new Uint8Array([7, 8, 9]));
    assert.equal(ring.tryRead()?.byteLength, 8);
    await assert.rejects(ring.read({ timeout: 10 }), hasCode('TIMEOUT'));
    assert.throws(() => ring.readSync(5), hasCode('TIMEOUT'));
  });

  test('several reads may be pending at once; abort rejects only its own', async () => {
    const { ring } = ringSegment(RING + 65536, 4, 8);
    const ac = new AbortController();
    const aborted = ring.read({ signal: ac.signal });
    const a = ring.read({ timeout: 30_000 });
    const b = ring.read({ timeout: 30_000 });
    ac.abort();
    await assert.rejects(aborted, hasCode('ABORTED'));
    ring.tryWriteBatch([new Uint8Array([1]), new Uint8Array([2])]);
    const got = (await Promise.all([a, b])).map((r) => r[0]).sort();
    assert.deepEqual(got, [1, 2]);
  });

  test('a callback that throws does not lose the rest of its batch', () => {
    const { ring } = ringSegment(RING + 65536, 4, 8);
    ring.tryWriteBatch([new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
    const seen: number[] = [];
    assert.throws(
      () =>
        ring.readBatch((v) => {
          seen.push(v[0] as number);
          if (v[0] === 1) throw new Error('boom');
        }),
      /boom/,
    );
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(ring.tryRead(), null);
  });

  test('close: pending and later writes fail, reads drain then fail, all with MAILBOX_CLOSED', async () => {
    const { ring } = ringSegment(RING + 65536, 2, 8);
    ring.tryWrite(new Uint8Array([1]));
    ring.tryWrite(new Uint8Array([2]));
    const blockedWrite = ring.write(new Uint8Array([3]), { timeout: 30_000 });
    ring.close();
    await assert.rejects(blockedWrite, hasCode('MAILBOX_CLOSED'));
    assert.throws(() => ring.tryWrite(new Uint8Array(1)), hasCode('MAILBOX_CLOSED'));
    assert.deepEqual(await ring.read(), new Uint8Array([1]));
    assert.deepEqual(ring.readSync(), new Uint8Array([2]));
    await assert.rejects(ring.read({ timeout: 30_000 }), hasCode('MAILBOX_CLOSED'));
    assert.throws(() => ring.tryRead(), hasCode('MAILBOX_CLOSED'));
  });

  test('bad options or placement → INVALID_ARGUMENT', () => {
    const { seg } = ringSegment(RING + 65536, 2, 8);
    for (const slots of [0, 1, 3, 100, 2 ** 25])
      assert.throws(() => MpmcRing.bytesFor({ slots, slotSize: 8 }), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => MpmcRing.bytesFor({ slots: 4, slotSize: -1 }), hasCode('INVALID_ARGUMENT'));
    assert.throws(
      () => MpmcRing.init(seg.buffer, 32, { slots: 2, slotSize: 8 }),
      hasCode('INVALID_ARGUMENT'),
    );
    assert.throws(
      () => MpmcRing.init(seg.buffer, 0, { slots: 4096, slotSize: 64 }),
      hasCode('INVALID_ARGUMENT'),
    );
    assert.throws(() => new MpmcRing(seg.buffer, 0), hasCode('INVALID_ARGUMENT'), 'no ring there');
  });
});

async function runGroup(
  start: (args: string[]) => Script,
  producers: number,
  consumers: number,
  per: number,
  produceStyle: string,
  consumeStyles: readonly string[],
): Promise<void> {
  const { seg } = ringSegment(segmentSize(producers, per), SLOTS, SLOT_SIZE);
  const name = seg.name;
  const cons = Array.from({ length: consumers }, (_, i) =>
    start([
      'consume',
      name,
      consumeStyles[i % consumeStyles.length] as string,
      String(producers),
      String(per),
    ]),
  );
  const prods = Array.from({ length: producers }, (_, p) =>
    start(['produce', name, produceStyle, String(p), String(per)]),
  );
  const all = [...cons, ...prods];
  await openGate(seg, GATE, all);
  // Every producer and consumer exits cleanly; consumers check per-producer order.
  await allExitCleanly(all);
  const total = producers * per;
  assert.equal(Atomics.load(new Int32Array(seg.buffer, CONSUMED, 1), 0), total);
  const took = await Promise.all(cons.map(async (c) => Number((await c.line('took ')).slice(5))));
  assert.equal(
    took.reduce((a, b) => a + b, 0),
    total,
  );
  const seen = new Uint8Array(seg.buffer, SEEN, total);
  const bad = seen.findIndex((n) => n !== 1);
  assert.equal(
    bad,
    -1,
    bad === -1 ? '' : `record ${Math.floor(bad / per)}/${bad % per} seen ${seen[bad]} times`,
  );
}

describe('MpmcRing across real processes: 3 producers × 2 consumers', () => {
  const PER = 8000;
  for (const [produce, consume] of [
    ['async', ['async', 'async']],
    ['sync', ['sync', 'async']],
    ['batch', ['batch', 'sync']],
  ] as const) {
    test(`producers ${produce}, consumers ${consume.join('+')}: no loss, no duplication, per-producer order`, async () => {
      await runGroup((args) => spawnScript(CHILD, args), 3, 2, PER, produce, consume);
    });
  }
});

describe('MpmcRing across worker threads: 3 producers × 2 consumers', () => {
  test('sync producers, async and batch consumers: no loss, no duplication, per-producer order', async () => {
    await runGroup((args) => startScriptWorker(CHILD, args), 3, 2, 8000, 'sync', ['async', 'batch']);
  });
});
