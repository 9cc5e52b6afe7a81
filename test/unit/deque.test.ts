import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Deque } from '../../src/core/deque.js';

/** One operation on a deque, applied to the Deque and to a plain array model side by side. */
type Op =
  | { kind: 'push'; value: number }
  | { kind: 'unshift'; value: number }
  | { kind: 'shift' }
  | { kind: 'removeAt'; index: number }
  | { kind: 'remove'; value: number }
  | { kind: 'clear' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('push' as const), value: fc.integer({ min: 0, max: 50 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('unshift' as const), value: fc.integer({ min: 0, max: 50 }) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('shift' as const) }) },
  // Indexes run past the end on purpose: out-of-range removeAt must return undefined and change nothing.
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('removeAt' as const), index: fc.integer({ min: -2, max: 70 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('remove' as const), value: fc.integer({ min: 0, max: 50 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
);

function apply(d: Deque<number>, model: number[], op: Op): void {
  switch (op.kind) {
    case 'push':
      d.push(op.value);
      model.push(op.value);
      break;
    case 'unshift':
      d.unshift(op.value);
      model.unshift(op.value);
      break;
    case 'shift':
      assert.equal(d.shift(), model.shift());
      break;
    case 'removeAt': {
      const expected = op.index >= 0 && op.index < model.length ? model.splice(op.index, 1)[0] : undefined;
      assert.equal(d.removeAt(op.index), expected);
      break;
    }
    case 'remove': {
      const i = model.indexOf(op.value);
      if (i >= 0) model.splice(i, 1);
      assert.equal(d.remove(op.value), i >= 0);
      break;
    }
    case 'clear':
      assert.deepEqual(d.clear(), model.splice(0));
      break;
  }
}

function assertSame(d: Deque<number>, model: number[]): void {
  assert.equal(d.length, model.length);
  assert.deepEqual([...d], model);
  assert.equal(d.peek(), model[0]);
  for (let i = 0; i < model.length; i++) assert.equal(d.at(i), model[i]);
  assert.equal(d.at(-1), undefined);
  assert.equal(d.at(model.length), undefined);
}

describe('Deque', () => {
  it('behaves like an array under random push/unshift/shift/removeAt/remove/clear sequences', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20 }),
        fc.array(opArb, { maxLength: 300 }),
        (initialCapacity, ops) => {
          const d = new Deque<number>(initialCapacity);
          const model: number[] = [];
          for (const op of ops) {
            apply(d, model, op);
            assertSame(d, model);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps order when growing past its initial capacity with the head wrapped around', () => {
    const d = new Deque<number>(4);
    const model: number[] = [];
    // Move the head off index 0 so that the ring wraps before it grows.
    for (let i = 0; i < 3; i++) d.push(-1);
    for (let i = 0; i < 3; i++) d.shift();
    for (let i = 0; i < 100; i++) {
      if (i % 3 === 0) {
        d.unshift(i);
        model.unshift(i);
      } else {
        d.push(i);
        model.push(i);
      }
      assert.deepEqual([...d], model);
    }
    assert.equal(d.length, 100);
  });

  it('returns undefined from shift and peek when empty', () => {
    const d = new Deque<string>();
    assert.equal(d.shift(), undefined);
    assert.equal(d.peek(), undefined);
    assert.equal(d.length, 0);
    d.push('a');
    assert.equal(d.shift(), 'a');
    assert.equal(d.shift(), undefined);
    assert.equal(d.length, 0);
  });

  it('remove() takes out only the first element identical to the argument', () => {
    const a = { n: 1 };
    const b = { n: 1 };
    const d = new Deque<{ n: number }>();
    d.push(a);
    d.push(b);
    d.push(a);
    assert.equal(d.remove({ n: 1 }), false);
    assert.equal(d.remove(a), true);
    assert.deepEqual(
      [...d].map((x) => (x === a ? 'a' : 'b')),
      ['b', 'a'],
    );
  });
});
