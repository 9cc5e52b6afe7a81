/**
 * SharedQueue (the 'priority' store of a shared-memory mailbox) against a
 * model, under random operations: delivery is highest priority first, FIFO
 * (accept order) within a priority; a requeued (redelivered) message goes
 * back ahead of every later-accepted one; withdrawal removes exactly its
 * message; the capacity is exactly the slot count; and repair() — what runs
 * after a lock holder died — changes nothing in a consistent queue.
 * Runs in one process on a plain SharedArrayBuffer (the addon is needed for
 * its wake calls).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SharedQueue, sharedQueueBytes } from '../../src/backends/shm/shared-queue.js';

const SLOTS = 12;
const INLINE = 8;
const me = { pid: process.pid, token: 1 };

interface Item {
  readonly id: number;
  readonly priority: number;
  slot: number;
  gen: number;
}

type Op =
  | { kind: 'send'; priority: number }
  | { kind: 'take' }
  | { kind: 'takeHeld' }
  | { kind: 'requeue'; pick: number }
  | { kind: 'ack'; pick: number }
  | { kind: 'withdraw'; pick: number }
  | { kind: 'repair' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('send' as const), priority: fc.constantFrom(0, 0, 1, 31) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('take' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('takeHeld' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('requeue' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('repair' as const) }) },
);

const order = (xs: Item[]): Item[] => [...xs].sort((a, b) => b.priority - a.priority || a.id - b.id);

function idIn(q: SharedQueue, slot: number): number {
  return new DataView(q.inline(slot, 4).slice().buffer).getInt32(0, true);
}

describe('SharedQueue', () => {
  it('delivers by priority then accept order under random send/take/hold/requeue/ack/withdraw/repair', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const q = SharedQueue.init(new SharedArrayBuffer(sharedQueueBytes(SLOTS, INLINE)), 0, SLOTS, INLINE);
        const queued: Item[] = [];
        const held: Item[] = [];
        let nextId = 0;
        const take = (): Item | undefined => {
          const slot = q.takeNext();
          const expected = order(queued)[0];
          if (expected === undefined) {
            assert.equal(slot, -1, 'an empty queue gives nothing');
            return undefined;
          }
          assert.equal(idIn(q, slot), expected.id, 'highest priority, oldest first');
          assert.equal(
            q.read(slot, { priority: 0, sender: 0, codec: 0, flags: 0, length: 0, chunk: 0 }).priority,
            expected.priority,
          );
          queued.splice(queued.indexOf(expected), 1);
          return expected;
        };
        for (const op of ops) {
          switch (op.kind) {
            case 'send': {
              const slot = q.alloc();
              if (queued.length + held.length === SLOTS) {
                assert.equal(slot, -1, 'no slot beyond the capacity');
                break;
              }
              assert.ok(slot >= 0, 'a free slot while below the capacity');
              const id = nextId++;
              new DataView(q.inline(slot, 4).buffer, q.inline(slot, 4).byteOffset, 4).setInt32(0, id, true);
              const gen = q.write(
                slot,
                { priority: op.priority, sender: 1, codec: 0, flags: 0, length: 4, chunk: 0 },
                0,
              );
              queued.push({ id, priority: op.priority, slot, gen });
              break;
            }
            case 'take': {
              const it = take();
              if (it !== undefined) q.free(it.slot);
              break;
            }
            case 'takeHeld': {
              const it = take();
              if (it !== undefined) {
                q.hold(it.slot, me);
                held.push(it);
              }
              break;
            }
            case 'requeue':
            case 'ack': {
              if (held.length === 0) break;
              const [it] = held.splice(op.pick % held.length, 1) as [Item];
              assert.ok(q.heldBy(it.slot, me));
              if (op.kind === 'ack') q.free(it.slot);
              else {
                q.requeue(it.slot, false);
                // Taking it bumped its gen (its synchronous sender, if any, saw it taken).
                const [w, at] = q.genWord(it.slot);
                it.gen = Atomics.load(w, at);
                queued.push(it);
              }
              break;
            }
            case 'withdraw': {
              if (queued.length === 0) break;
              const [it] = queued.splice(op.pick % queued.length, 1) as [Item];
              assert.equal(q.withdraw(it.slot, it.gen), true, 'a queued message is withdrawn');
              break;
            }
            case 'repair':
              q.repair();
              break;
          }
          assert.equal(q.queued, queued.length, 'the queued count');
          assert.equal(q.taken, held.length, 'the taken count');
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('withdraw refuses a message a receiver took, even once its slot is reused', () => {
    const q = SharedQueue.init(new SharedArrayBuffer(sharedQueueBytes(2, INLINE)), 0, 2, INLINE);
    const slot = q.alloc();
    const gen = q.write(slot, { priority: 0, sender: 1, codec: 0, flags: 0, length: 0, chunk: 0 }, 0);
    assert.equal(q.takeNext(), slot);
    q.free(slot);
    const again = q.alloc();
    assert.equal(again, slot, 'the freed slot is reused');
    q.write(again, { priority: 0, sender: 1, codec: 0, flags: 0, length: 0, chunk: 0 }, 0);
    assert.equal(q.withdraw(slot, gen), false, 'the first message was taken: nothing to withdraw');
    assert.equal(q.queued, 1);
  });
});
