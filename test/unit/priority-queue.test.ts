import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_PRIORITY, MIN_PRIORITY, PRIORITY_LEVELS, PriorityQueue } from '../../src/core/priority-queue.js';

interface Item {
  readonly priority: number;
  readonly id: number;
  readonly tag: number;
}

type Op =
  | { kind: 'push'; priority: number; tag: number }
  | { kind: 'unshift'; priority: number; tag: number }
  | { kind: 'shift' }
  | { kind: 'takeFirst'; tag: number }
  | { kind: 'clear' };

// A few priorities used densely (so FIFO-within-priority is exercised) plus the extremes 0 and 31.
const priorityArb = fc.oneof(
  fc.constantFrom(0, 1, 2, 30, 31),
  fc.integer({ min: MIN_PRIORITY, max: MAX_PRIORITY }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('push' as const),
      priority: priorityArb,
      tag: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('unshift' as const),
      priority: priorityArb,
      tag: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('shift' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('takeFirst' as const), tag: fc.integer({ min: 0, max: 4 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
);

/**
 * The model: an array where push appends and unshift prepends; delivery order
 * is that array stably sorted by priority, highest first. Prepending then
 * sorting stably puts an unshifted item at the front of its own priority.
 */
function deliveryOrder(model: Item[]): Item[] {
  return [...model].sort((a, b) => b.priority - a.priority);
}

function removeFromModel(model: Item[], item: Item | undefined): void {
  if (item === undefined) return;
  const i = model.indexOf(item);
  assert.ok(i >= 0, 'item came out of the queue but is not in the model');
  model.splice(i, 1);
}

describe('PriorityQueue', () => {
  it('exports 32 priority levels, 0..31', () => {
    assert.equal(MIN_PRIORITY, 0);
    assert.equal(MAX_PRIORITY, 31);
    assert.equal(PRIORITY_LEVELS, 32);
  });

  it('matches a stable sort by priority (desc) under random push/unshift/shift/takeFirst/clear', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 250 }), (ops) => {
        const pq = new PriorityQueue<Item>();
        const model: Item[] = [];
        let nextId = 0;
        for (const op of ops) {
          switch (op.kind) {
            case 'push': {
              const item = { priority: op.priority, id: nextId++, tag: op.tag };
              pq.push(item);
              model.push(item);
              break;
            }
            case 'unshift': {
              const item = { priority: op.priority, id: nextId++, tag: op.tag };
              pq.unshift(item);
              model.unshift(item);
              break;
            }
            case 'shift': {
              const expected = deliveryOrder(model)[0];
              const got = pq.shift();
              assert.equal(got, expected);
              removeFromModel(model, got);
              break;
            }
            case 'takeFirst': {
              const expected = deliveryOrder(model).find((x) => x.tag === op.tag);
              const got = pq.takeFirst((x) => x.tag === op.tag);
              assert.equal(got, expected);
              removeFromModel(model, got);
              break;
            }
            case 'clear': {
              assert.deepEqual(pq.clear(), deliveryOrder(model));
              model.length = 0;
              break;
            }
          }
          const order = deliveryOrder(model);
          assert.equal(pq.length, model.length);
          assert.equal(pq.peek(), order[0]);
          assert.deepEqual(
            [...pq].map((x) => x.id),
            order.map((x) => x.id),
          );
        }
      }),
      { numRuns: 300 },
    );
  });

  it('grows one priority level far past its initial deque capacity and keeps FIFO order', () => {
    const pq = new PriorityQueue<Item>();
    for (let id = 0; id < 1000; id++) pq.push({ priority: 7, id, tag: 0 });
    for (let id = 0; id < 1000; id++) assert.equal(pq.shift()?.id, id);
    assert.equal(pq.shift(), undefined);
    assert.equal(pq.length, 0);
  });

  it('serves priority 31 (the sign bit of the bitmap) before everything else and empties cleanly', () => {
    const pq = new PriorityQueue<Item>();
    pq.push({ priority: 0, id: 1, tag: 0 });
    pq.push({ priority: 31, id: 2, tag: 0 });
    pq.push({ priority: 30, id: 3, tag: 0 });
    assert.equal(pq.peek()?.id, 2);
    assert.deepEqual([pq.shift()?.id, pq.shift()?.id, pq.shift()?.id], [2, 3, 1]);
    assert.equal(pq.peek(), undefined);
    assert.equal(pq.shift(), undefined);
  });

  it('takeFirst returns undefined and leaves the queue unchanged when nothing matches', () => {
    const pq = new PriorityQueue<Item>();
    pq.push({ priority: 3, id: 1, tag: 0 });
    pq.push({ priority: 5, id: 2, tag: 0 });
    assert.equal(
      pq.takeFirst((x) => x.tag === 9),
      undefined,
    );
    assert.equal(pq.length, 2);
    assert.deepEqual(
      [...pq].map((x) => x.id),
      [2, 1],
    );
  });

  it('unshift puts an item at the front of its own priority, not ahead of higher priorities', () => {
    const pq = new PriorityQueue<Item>();
    pq.push({ priority: 9, id: 1, tag: 0 });
    pq.push({ priority: 4, id: 2, tag: 0 });
    pq.push({ priority: 4, id: 3, tag: 0 });
    pq.unshift({ priority: 4, id: 4, tag: 0 });
    assert.deepEqual(
      [...pq].map((x) => x.id),
      [1, 4, 2, 3],
    );
  });
});
