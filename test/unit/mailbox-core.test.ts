import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type CoreMessage,
  type DeliveryPolicy,
  type Ledger,
  MailboxCore,
  type ReceiveRequest,
  ReceiverBusyError,
  type SendWaiter,
} from '../../src/core/mailbox-core.js';

interface Msg extends CoreMessage {
  readonly id: number;
}

interface Delivery {
  receiver: number;
  request: ReceiveRequest | undefined;
  message: Msg;
}

interface Harness {
  core: MailboxCore<Msg>;
  deliveries: Delivery[];
  admitted: SendWaiter<Msg>[];
  ledger: Ledger;
  /** A fresh message; ids count up from 1 per harness. */
  msg(sender?: number, priority?: number, size?: number): Msg;
  /** Ids of the messages delivered to `receiver` through the deliver hook, in order. */
  deliveredTo(receiver: number): number[];
}

function harness(
  capacity: number,
  delivery: DeliveryPolicy = 'round-robin',
  random?: () => number,
  ledger: Ledger = { used: 0 },
): Harness {
  const deliveries: Delivery[] = [];
  const admitted: SendWaiter<Msg>[] = [];
  const core = new MailboxCore<Msg>(
    random === undefined ? { capacity, delivery, ledger } : { capacity, delivery, ledger, random },
    {
      deliver: (receiver, request, message) => deliveries.push({ receiver: receiver.id, request, message }),
      admitted: (waiter) => admitted.push(waiter),
    },
  );
  let nextId = 1;
  return {
    core,
    deliveries,
    admitted,
    ledger,
    msg: (sender = 100, priority = 0, size = 10) => ({ id: nextId++, sender, priority, size }),
    deliveredTo: (receiver) => deliveries.filter((d) => d.receiver === receiver).map((d) => d.message.id),
  };
}

/** Receive (nonblocking, unfiltered) until empty; returns the ids in the order taken. */
function drain(core: MailboxCore<Msg>, receiver: number): number[] {
  const out: number[] = [];
  for (let m = core.receive(receiver, {}, false); m !== undefined; m = core.receive(receiver, {}, false))
    out.push(m.id);
  return out;
}

describe('MailboxCore: capacity 0 (rendezvous)', () => {
  it('send hands the message to a receiver whose specific request is parked', () => {
    const h = harness(0);
    h.core.attach(1);
    const q: ReceiveRequest = {};
    assert.equal(h.core.receive(1, q, true), undefined);
    assert.equal(h.core.waitingReceivers, 1);
    const m = h.msg();
    assert.equal(h.core.send(m, true), 'handed');
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: q, message: m }]);
    assert.equal(h.deliveries[0]!.request, q);
    assert.equal(h.core.waitingReceivers, 0);
    assert.equal(h.core.depth(), 0);
    assert.equal(h.ledger.used, 0);
    assert.deepEqual(h.admitted, []);
  });

  it('send hands the message to a receiver with prefetch demand, spending one unit of it', () => {
    const h = harness(0);
    h.core.attach(1);
    h.core.addPrefetch(1, 1);
    const m = h.msg();
    assert.equal(h.core.send(m, false), 'handed');
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: undefined, message: m }]);
    assert.equal(h.core.send(h.msg(), false), 'would-block');
    assert.equal(h.deliveries.length, 1);
  });

  it('a nonblocking send with no receiver waiting reports would-block and leaves nothing behind', () => {
    const h = harness(0);
    h.core.attach(1);
    assert.equal(h.core.send(h.msg(), false), 'would-block');
    assert.equal(h.core.depth(), 0);
    assert.equal(h.core.waitingSenders, 0);
    assert.equal(h.core.receive(1, {}, false), undefined);
    assert.equal(h.ledger.used, 0);
  });

  it('a blocking send reports blocked; once parked, a later receive takes its message and admitted fires', () => {
    const h = harness(0);
    const m = h.msg();
    assert.equal(h.core.send(m, true), 'blocked');
    const w: SendWaiter<Msg> = { message: m };
    h.core.park(w);
    assert.equal(h.core.waitingSenders, 1);
    assert.equal(h.core.depth(), 0, 'a rendezvous message never waits in the queue');
    assert.equal(h.ledger.used, 0);
    assert.deepEqual(h.admitted, []);
    h.core.attach(1);
    assert.deepEqual(h.admitted, [], 'attaching without demand takes nothing');
    assert.equal(h.core.receive(1, {}, false), m);
    assert.equal(h.admitted.length, 1);
    assert.equal(h.admitted[0], w);
    assert.equal(h.core.waitingSenders, 0);
    assert.deepEqual(h.deliveries, [], 'a message returned by receive() does not also go through deliver');
  });

  it('a parked sender is handed over (admitted, then delivered) when a receiver later adds prefetch demand', () => {
    const h = harness(0);
    h.core.attach(1);
    const m = h.msg();
    assert.equal(h.core.send(m, true), 'blocked');
    const w = { message: m };
    h.core.park(w);
    assert.deepEqual(h.admitted, []);
    h.core.addPrefetch(1, 1);
    assert.deepEqual(h.admitted, [w]);
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: undefined, message: m }]);
    assert.equal(h.core.waitingSenders, 0);
  });

  it('a nonblocking receive succeeds only while a sender is parked, and never parks itself', () => {
    const h = harness(0);
    h.core.attach(1);
    assert.equal(h.core.receive(1, {}, false), undefined);
    assert.equal(h.core.waitingReceivers, 0);
    const m = h.msg();
    h.core.park({ message: m });
    assert.equal(h.core.receive(1, {}, false), m);
    assert.equal(h.core.receive(1, {}, false), undefined);
  });

  it('parked senders are taken in the order they parked; park(front) goes ahead of the others', () => {
    const h = harness(0);
    h.core.attach(1);
    const [a, b, c] = [h.msg(), h.msg(), h.msg()];
    h.core.park({ message: a });
    h.core.park({ message: b });
    h.core.park({ message: c }, true);
    assert.deepEqual(drain(h.core, 1), [c.id, a.id, b.id]);
    assert.deepEqual(
      h.admitted.map((w) => w.message.id),
      [c.id, a.id, b.id],
    );
  });

  it('a receive filtered by sender takes that sender’s parked message past earlier senders', () => {
    const h = harness(0);
    h.core.attach(1);
    const fromA = h.msg(7);
    const fromB = h.msg(8);
    h.core.park({ message: fromA });
    h.core.park({ message: fromB });
    assert.equal(h.core.receive(1, { from: 8 }, false), fromB);
    assert.equal(h.core.receive(1, { from: 8 }, false), undefined);
    assert.equal(h.core.waitingSenders, 1);
    assert.equal(h.core.receive(1, {}, false), fromA);
  });

  it('a parked filtered request is not answered by another sender, only by the named one', () => {
    const h = harness(0);
    h.core.attach(1);
    const q = { from: 8 };
    h.core.receive(1, q, true);
    assert.equal(h.core.send(h.msg(7), false), 'would-block');
    const m = h.msg(8);
    assert.equal(h.core.send(m, false), 'handed');
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: q, message: m }]);
  });

  it('cancelSend withdraws a parked sender; a second cancel reports false', () => {
    const h = harness(0);
    h.core.attach(1);
    const w = { message: h.msg() };
    h.core.park(w);
    assert.equal(h.core.cancelSend(w), true);
    assert.equal(h.core.cancelSend(w), false);
    assert.equal(h.core.receive(1, {}, false), undefined);
    assert.deepEqual(h.admitted, []);
  });

  it('reserve grants no credits at capacity 0', () => {
    const h = harness(0);
    assert.equal(h.core.reserve(5), 0);
    assert.equal(h.core.promised, 0);
    assert.equal(h.core.free(), 0);
  });

  it('refuses capacity 0 with broadcast delivery (RangeError)', () => {
    assert.throws(() => harness(0, 'broadcast'), RangeError);
  });

  it('rendezvous: a receive takes the highest-priority parked sender first', () => {
    const h = harness(0);
    h.core.attach(1);
    const low = h.msg(1, 0);
    const high = h.msg(2, 9);
    h.core.park({ message: low });
    h.core.park({ message: high });
    assert.equal(h.core.receive(1, {}, false), high);
  });
});

describe('MailboxCore: capacity N', () => {
  it('queues up to N messages, then reports would-block (nonblocking) or blocked (blocking)', () => {
    const h = harness(3);
    for (let i = 0; i < 3; i++) assert.equal(h.core.send(h.msg(), false), 'queued');
    assert.equal(h.core.depth(), 3);
    assert.equal(h.core.free(), 0);
    assert.equal(h.core.send(h.msg(), false), 'would-block');
    assert.equal(h.core.send(h.msg(), true), 'blocked');
    assert.equal(h.core.depth(), 3);
    assert.equal(h.core.waitingSenders, 0, 'send itself never parks; the caller parks');
  });

  it('admits parked senders in FIFO order, one per slot a receiver frees', () => {
    const h = harness(2);
    h.core.attach(1);
    const queued = [h.msg(), h.msg()];
    for (const m of queued) h.core.send(m, true);
    const waiters = [h.msg(), h.msg(), h.msg()].map((message) => ({ message }));
    for (const w of waiters) {
      assert.equal(h.core.send(w.message, true), 'blocked');
      h.core.park(w);
    }
    assert.deepEqual(h.admitted, []);
    assert.equal(h.core.receive(1, {}, false), queued[0]);
    assert.deepEqual(h.admitted, [waiters[0]]);
    assert.equal(h.core.depth(), 2);
    assert.equal(h.core.waitingSenders, 2);
    assert.deepEqual(drain(h.core, 1), [queued[1]!.id, ...waiters.map((w) => w.message.id)]);
    assert.deepEqual(h.admitted, waiters);
  });

  it('a nonblocking send is refused while earlier senders are parked, even as slots free', () => {
    const h = harness(1);
    h.core.attach(1);
    h.core.send(h.msg(), false);
    const w = { message: h.msg() };
    h.core.park(w);
    assert.equal(h.core.send(h.msg(), false), 'would-block');
    h.core.receive(1, {}, false);
    assert.deepEqual(h.admitted, [w], 'the freed slot went to the parked sender');
    assert.equal(h.core.send(h.msg(), false), 'would-block');
  });

  it('delivers the highest priority first and FIFO within a priority', () => {
    const h = harness(10);
    h.core.attach(1);
    const sent = [h.msg(1, 1), h.msg(1, 5), h.msg(1, 1), h.msg(1, 5), h.msg(1, 3), h.msg(1, 0), h.msg(1, 31)];
    for (const m of sent) assert.equal(h.core.send(m, false), 'queued');
    const expected = [...sent].sort((a, b) => b.priority - a.priority).map((m) => m.id);
    assert.deepEqual(drain(h.core, 1), expected);
  });

  it('an admitted sender’s message takes its place by priority ahead of lower-priority queued ones', () => {
    const h = harness(2);
    h.core.attach(1);
    const a = h.msg(1, 0);
    const b = h.msg(1, 0);
    h.core.send(a, false);
    h.core.send(b, false);
    const urgent = { message: h.msg(2, 9) };
    h.core.park(urgent);
    assert.equal(h.core.receive(1, {}, false), a);
    assert.deepEqual(h.admitted, [urgent]);
    assert.equal(h.core.receive(1, {}, false), urgent.message);
    assert.equal(h.core.receive(1, {}, false), b);
  });

  it('a cancelled sender is never admitted', () => {
    const h = harness(1);
    h.core.attach(1);
    h.core.send(h.msg(), false);
    const w1 = { message: h.msg() };
    const w2 = { message: h.msg() };
    h.core.park(w1);
    h.core.park(w2);
    assert.equal(h.core.cancelSend(w1), true);
    h.core.receive(1, {}, false);
    assert.deepEqual(h.admitted, [w2]);
    assert.equal(h.core.cancelSend(w2), false, 'already admitted');
  });

  it('a parked specific request gets the next message sent, through the deliver hook', () => {
    const h = harness(4);
    h.core.attach(1);
    const q: ReceiveRequest = {};
    assert.equal(h.core.receive(1, q, true), undefined);
    const m = h.msg();
    assert.equal(h.core.send(m, false), 'queued');
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: q, message: m }]);
    assert.equal(h.core.depth(), 0);
    assert.equal(h.core.waitingReceivers, 0);
  });

  it('cancelReceive withdraws a parked request so a later message stays queued', () => {
    const h = harness(4);
    h.core.attach(1);
    const q: ReceiveRequest = {};
    h.core.receive(1, q, true);
    assert.equal(h.core.cancelReceive(1, q), true);
    assert.equal(h.core.cancelReceive(1, q), false);
    h.core.send(h.msg(), false);
    assert.deepEqual(h.deliveries, []);
    assert.equal(h.core.depth(), 1);
  });

  it('receive by a receiver that is not attached throws', () => {
    const h = harness(4);
    assert.throws(() => h.core.receive(9, {}, false));
  });
});

describe('MailboxCore: unbounded', () => {
  it('never blocks a sender and reports Infinity free slots', () => {
    const h = harness(Number.POSITIVE_INFINITY);
    for (let i = 0; i < 5000; i++) assert.equal(h.core.send(h.msg(), false), 'queued');
    assert.equal(h.core.depth(), 5000);
    assert.equal(h.core.free(), Number.POSITIVE_INFINITY);
    assert.equal(h.core.reserve(1000), 1000);
    assert.equal(h.core.send(h.msg(), true), 'queued');
    assert.equal(h.ledger.used, 5001 * 10);
  });
});

describe('MailboxCore: credits', () => {
  it('reserve promises at most the free slots, and promised slots count as taken', () => {
    const h = harness(4);
    h.core.send(h.msg(), false);
    assert.equal(h.core.reserve(2), 2);
    assert.equal(h.core.reserve(10), 1);
    assert.equal(h.core.reserve(1), 0);
    assert.equal(h.core.promised, 3);
    assert.equal(h.core.free(), 0);
    assert.equal(h.core.send(h.msg(), false), 'would-block');
    assert.equal(h.core.send(h.msg(), true), 'blocked');
  });

  it('a credited send spends a promised slot and is queued though uncredited senders see a full mailbox', () => {
    const h = harness(2);
    assert.equal(h.core.reserve(2), 2);
    assert.equal(h.core.send(h.msg(), false, true), 'queued');
    assert.equal(h.core.promised, 1);
    assert.equal(h.core.depth(), 1);
    assert.equal(h.core.send(h.msg(), false, true), 'queued');
    assert.equal(h.core.promised, 0);
    assert.equal(h.core.depth(), 2);
    assert.equal(h.core.free(), 0);
  });

  it('a credited send goes straight to a receiver that is waiting', () => {
    const h = harness(2);
    h.core.attach(1, 1);
    assert.equal(h.core.reserve(1), 1);
    const m = h.msg();
    assert.equal(h.core.send(m, false, true), 'queued');
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: undefined, message: m }]);
    assert.equal(h.core.depth(), 0);
    assert.equal(h.core.free(), 2);
  });

  it('unreserve returns slots and admits parked senders into them', () => {
    const h = harness(2);
    assert.equal(h.core.reserve(2), 2);
    const w1 = { message: h.msg() };
    const w2 = { message: h.msg() };
    assert.equal(h.core.send(w1.message, true), 'blocked');
    h.core.park(w1);
    h.core.park(w2);
    assert.deepEqual(h.admitted, []);
    h.core.unreserve(1);
    assert.deepEqual(h.admitted, [w1]);
    assert.equal(h.core.promised, 1);
    assert.equal(h.core.depth(), 1);
    h.core.unreserve(5);
    assert.equal(h.core.promised, 0, 'never below zero');
    assert.deepEqual(h.admitted, [w1, w2]);
  });

  it('reserve grants nothing while senders are parked (they are first in line)', () => {
    const h = harness(1);
    h.core.attach(1);
    h.core.send(h.msg(), false);
    h.core.park({ message: h.msg() });
    assert.equal(h.core.reserve(1), 0);
    h.core.receive(1, {}, false);
    assert.equal(h.core.waitingSenders, 0);
    assert.equal(h.core.reserve(1), 0, 'the freed slot went to the parked sender');
    h.core.receive(1, {}, false);
    assert.equal(h.core.reserve(1), 1);
  });
});

describe('MailboxCore: delivery policies', () => {
  it('round-robin rotates over receivers with prefetch demand exactly r1, r2, r3, r1, ...', () => {
    const h = harness(10, 'round-robin');
    for (const id of [1, 2, 3]) {
      h.core.attach(id);
      h.core.addPrefetch(id, 100);
    }
    for (let i = 0; i < 7; i++) h.core.send(h.msg(), false);
    assert.deepEqual(
      h.deliveries.map((d) => d.receiver),
      [1, 2, 3, 1, 2, 3, 1],
    );
  });

  it('round-robin rotates over receivers with specific requests', () => {
    const h = harness(10, 'round-robin');
    const requests = new Map<number, ReceiveRequest[]>();
    for (const id of [1, 2, 3]) {
      h.core.attach(id);
      const qs = [{}, {}];
      requests.set(id, qs);
      for (const q of qs) h.core.receive(id, q, true);
    }
    for (let i = 0; i < 6; i++) h.core.send(h.msg(), false);
    assert.deepEqual(
      h.deliveries.map((d) => d.receiver),
      [1, 2, 3, 1, 2, 3],
    );
    for (const d of h.deliveries) {
      assert.ok(requests.get(d.receiver)!.includes(d.request!), 'answered one of its own requests');
    }
    assert.equal(h.deliveries[0]!.request, requests.get(1)![0], 'a receiver’s requests are answered FIFO');
    assert.equal(h.deliveries[3]!.request, requests.get(1)![1]);
  });

  it('round-robin skips receivers without demand', () => {
    const h = harness(10, 'round-robin');
    for (const id of [1, 2, 3]) h.core.attach(id);
    h.core.addPrefetch(1, 10);
    h.core.addPrefetch(3, 10);
    for (let i = 0; i < 4; i++) h.core.send(h.msg(), false);
    assert.deepEqual(
      h.deliveries.map((d) => d.receiver),
      [1, 3, 1, 3],
    );
  });

  it('round-robin continues with the next receiver after one detaches', () => {
    const h = harness(10, 'round-robin');
    for (const id of [1, 2, 3]) h.core.attach(id, 100);
    h.core.send(h.msg(), false);
    h.core.detach(2);
    for (let i = 0; i < 3; i++) h.core.send(h.msg(), false);
    assert.deepEqual(
      h.deliveries.map((d) => d.receiver),
      [1, 3, 1, 3],
    );
  });

  it('arbitrary picks the ready receiver the injected random chooses, spreading over all of them', () => {
    const draws = [0.1, 0.5, 0.9, 0.4, 0.0, 0.99, 0.7, 0.2];
    let i = 0;
    const h = harness(10, 'arbitrary', () => draws[i++ % draws.length]!);
    for (const id of [1, 2, 3]) h.core.attach(id, 100);
    for (let n = 0; n < draws.length; n++) h.core.send(h.msg(), false);
    const expected = draws.map((r) => [1, 2, 3][Math.floor(r * 3)]);
    assert.deepEqual(
      h.deliveries.map((d) => d.receiver),
      expected,
    );
    assert.deepEqual(new Set(h.deliveries.map((d) => d.receiver)), new Set([1, 2, 3]));
  });

  it('arbitrary only chooses among receivers that are ready', () => {
    const h = harness(10, 'arbitrary', () => 0.99);
    for (const id of [1, 2, 3]) h.core.attach(id);
    h.core.addPrefetch(1, 10);
    h.core.addPrefetch(2, 10);
    for (let n = 0; n < 3; n++) h.core.send(h.msg(), false);
    assert.deepEqual(
      h.deliveries.map((d) => d.receiver),
      [2, 2, 2],
    );
  });

  it('exclusive refuses a second receiver with ReceiverBusyError, re-attach of the same id is idempotent', () => {
    const h = harness(10, 'exclusive');
    const r = h.core.attach(1);
    assert.throws(() => h.core.attach(2), ReceiverBusyError);
    assert.equal(h.core.attach(1), r);
    assert.deepEqual(h.core.receiverIds(), [1]);
    h.core.detach(1);
    assert.doesNotThrow(() => h.core.attach(2));
    assert.deepEqual(h.core.receiverIds(), [2]);
  });

  it('exclusive delivers every message to its one receiver', () => {
    const h = harness(10, 'exclusive');
    h.core.attach(1, 5);
    for (let n = 0; n < 3; n++) h.core.send(h.msg(), false);
    assert.deepEqual(h.deliveredTo(1), [1, 2, 3]);
  });

  it('broadcast gives each attached receiver its own copy of every message', () => {
    const h = harness(10, 'broadcast');
    for (const id of [1, 2, 3]) h.core.attach(id, 100);
    const a = h.msg();
    const b = h.msg();
    h.core.send(a, false);
    h.core.send(b, false);
    for (const id of [1, 2, 3]) assert.deepEqual(h.deliveredTo(id), [a.id, b.id]);
    assert.equal(h.deliveries.length, 6);
    assert.equal(h.ledger.used, 0);
  });

  it('broadcast charges one copy per receiver and each receiver takes its own', () => {
    const h = harness(10, 'broadcast');
    for (const id of [1, 2, 3]) h.core.attach(id);
    const m = h.msg(100, 0, 7);
    h.core.send(m, false);
    assert.equal(h.ledger.used, 21);
    assert.equal(h.core.bytes, 21);
    for (const id of [1, 2, 3]) {
      assert.equal(h.core.receive(id, {}, false), m);
      assert.equal(h.core.receive(id, {}, false), undefined);
    }
    assert.equal(h.ledger.used, 0);
    assert.equal(h.core.bytes, 0);
  });

  it('broadcast capacity applies to each receiver’s copy queue: a slow receiver fills it', () => {
    const h = harness(2, 'broadcast');
    h.core.attach(1, 100);
    h.core.attach(2);
    const m1 = h.msg();
    const m2 = h.msg();
    assert.equal(h.core.send(m1, false), 'queued');
    assert.equal(h.core.send(m2, false), 'queued');
    assert.deepEqual(h.deliveredTo(1), [m1.id, m2.id]);
    assert.equal(h.core.depth(), 2);
    assert.equal(h.core.send(h.msg(), false), 'would-block');
    assert.equal(h.core.receive(2, {}, false), m1);
    assert.equal(h.core.depth(), 1);
    const m3 = h.msg();
    assert.equal(h.core.send(m3, false), 'queued');
    assert.deepEqual(h.deliveredTo(1), [m1.id, m2.id, m3.id]);
    assert.deepEqual(drain(h.core, 2), [m2.id, m3.id]);
  });

  it('broadcast: messages sent with no receiver attached form a backlog that goes to the first receiver that attaches', () => {
    const h = harness(5, 'broadcast');
    const a = h.msg(100, 0, 10);
    const b = h.msg(100, 0, 10);
    h.core.send(a, false);
    h.core.send(b, false);
    assert.equal(h.core.depth(), 2);
    assert.equal(h.ledger.used, 20, 'the backlog is charged once');
    h.core.attach(1);
    h.core.attach(2);
    assert.equal(h.ledger.used, 20);
    assert.equal(h.core.receive(2, {}, false), undefined, 'the second receiver gets none of the backlog');
    assert.deepEqual(drain(h.core, 1), [a.id, b.id]);
    assert.equal(h.ledger.used, 0);
  });

  it('broadcast: the backlog is pushed to the first receiver at once when it attaches with prefetch', () => {
    const h = harness(5, 'broadcast');
    const a = h.msg();
    h.core.send(a, false);
    h.core.attach(1, 3);
    assert.deepEqual(h.deliveredTo(1), [a.id]);
    assert.equal(h.core.depth(), 0);
  });

  it('detach returns the receiver’s parked requests and stops deliveries to it', () => {
    const h = harness(5, 'round-robin');
    h.core.attach(1);
    const q1: ReceiveRequest = {};
    const q2: ReceiveRequest = { from: 4 };
    h.core.receive(1, q1, true);
    h.core.receive(1, q2, true);
    const out = h.core.detach(1);
    assert.equal(out.requests.length, 2);
    assert.equal(out.requests[0], q1);
    assert.equal(out.requests[1], q2);
    assert.deepEqual(out.dropped, []);
    assert.equal(h.core.waitingReceivers, 0);
    assert.equal(h.core.isAttached(1), false);
    assert.equal(h.core.send(h.msg(4), false), 'queued');
    assert.deepEqual(h.deliveries, []);
    assert.equal(h.core.depth(), 1);
  });

  it('detach in broadcast returns the receiver’s undelivered copies and uncharges them', () => {
    const h = harness(5, 'broadcast');
    h.core.attach(1);
    h.core.attach(2);
    const a = h.msg(100, 0, 10);
    const b = h.msg(100, 0, 10);
    h.core.send(a, false);
    h.core.send(b, false);
    assert.equal(h.ledger.used, 40);
    const out = h.core.detach(2);
    assert.deepEqual(
      out.dropped.map((m) => m.id),
      [a.id, b.id],
    );
    assert.equal(h.ledger.used, 20);
    assert.equal(h.core.bytes, 20);
    assert.deepEqual(drain(h.core, 1), [a.id, b.id]);
  });

  it('detaching a slow broadcast receiver frees its room and admits parked senders', () => {
    const h = harness(1, 'broadcast');
    h.core.attach(1, 100);
    h.core.attach(2);
    h.core.send(h.msg(), false);
    const w = { message: h.msg() };
    assert.equal(h.core.send(w.message, true), 'blocked');
    h.core.park(w);
    h.core.detach(2);
    assert.deepEqual(h.admitted, [w]);
    assert.deepEqual(h.deliveredTo(1), [1, w.message.id]);
  });

  it('detach of a receiver that is not attached returns nothing', () => {
    const h = harness(5);
    assert.deepEqual(h.core.detach(42), { requests: [], dropped: [] });
  });
});

describe('MailboxCore: selective receive (from)', () => {
  it('a receive filtered by sender takes a matching message from behind the head', () => {
    const h = harness(10);
    h.core.attach(1);
    const a = h.msg(1);
    const b = h.msg(2);
    const c = h.msg(1);
    for (const m of [a, b, c]) h.core.send(m, false);
    assert.equal(h.core.receive(1, { from: 2 }, false), b);
    assert.equal(h.core.receive(1, { from: 2 }, false), undefined);
    assert.equal(h.core.waitingReceivers, 0, 'nonblocking: not parked');
    assert.deepEqual(drain(h.core, 1), [a.id, c.id]);
  });

  it('a filtered receive still honours priority among that sender’s messages', () => {
    const h = harness(10);
    h.core.attach(1);
    const low = h.msg(2, 1);
    const other = h.msg(1, 9);
    const high = h.msg(2, 5);
    for (const m of [low, other, high]) h.core.send(m, false);
    assert.equal(h.core.receive(1, { from: 2 }, false), high);
    assert.equal(h.core.receive(1, { from: 2 }, false), low);
  });

  it('a parked filtered request is answered by a matching send even while another sender’s message is at the head', () => {
    const h = harness(10);
    h.core.attach(1);
    const head = h.msg(1);
    h.core.send(head, false);
    const q = { from: 2 };
    assert.equal(h.core.receive(1, q, true), undefined);
    assert.equal(h.core.waitingReceivers, 1);
    const wanted = h.msg(2);
    h.core.send(wanted, false);
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: q, message: wanted }]);
    assert.equal(h.core.depth(), 1);
    assert.equal(h.core.receive(1, {}, false), head);
  });

  it('a parked filtered request is not answered by messages from other senders', () => {
    const h = harness(10);
    h.core.attach(1);
    h.core.receive(1, { from: 2 }, true);
    h.core.send(h.msg(3), false);
    h.core.send(h.msg(4), false);
    assert.deepEqual(h.deliveries, []);
    assert.equal(h.core.depth(), 2);
    assert.equal(h.core.waitingReceivers, 1);
  });

  it('broadcast: a parked filtered request is answered by a matching copy queued behind another sender’s', () => {
    const h = harness(10, 'broadcast');
    h.core.attach(1);
    h.core.send(h.msg(1), false);
    const q = { from: 2 };
    assert.equal(h.core.receive(1, q, true), undefined);
    const wanted = h.msg(2);
    h.core.send(wanted, false);
    assert.deepEqual(h.deliveries, [{ receiver: 1, request: q, message: wanted }]);
  });
});

describe('MailboxCore: requeue', () => {
  it('puts a message back at the front of its priority, behind higher priorities', () => {
    const h = harness(10);
    h.core.attach(1);
    const a = h.msg(1, 3);
    const b = h.msg(1, 3);
    h.core.send(a, false);
    h.core.send(b, false);
    assert.equal(h.core.receive(1, {}, false), a);
    const urgent = h.msg(1, 7);
    h.core.send(urgent, false);
    h.core.requeue(a);
    assert.deepEqual(drain(h.core, 1), [urgent.id, a.id, b.id]);
  });

  it('charges the requeued message to the ledger again', () => {
    const h = harness(10);
    h.core.attach(1);
    const a = h.msg(1, 0, 25);
    h.core.send(a, false);
    h.core.receive(1, {}, false);
    assert.equal(h.ledger.used, 0);
    h.core.requeue(a);
    assert.equal(h.ledger.used, 25);
    assert.equal(h.core.bytes, 25);
  });

  it('redelivers a requeued message at once to a receiver with demand', () => {
    const h = harness(10);
    h.core.attach(1);
    const a = h.msg();
    h.core.send(a, false);
    h.core.receive(1, {}, false);
    h.core.addPrefetch(1, 1);
    h.core.requeue(a);
    assert.deepEqual(h.deliveredTo(1), [a.id]);
    assert.equal(h.ledger.used, 0);
  });

  it('broadcast: requeue goes back into the named receiver’s copies only; an unknown receiver drops it', () => {
    const h = harness(10, 'broadcast');
    h.core.attach(1);
    h.core.attach(2);
    const a = h.msg();
    h.core.send(a, false);
    assert.equal(h.core.receive(1, {}, false), a);
    h.core.requeue(a, 1);
    assert.deepEqual(drain(h.core, 1), [a.id]);
    assert.deepEqual(drain(h.core, 2), [a.id]);
    h.core.requeue(a, 99);
    assert.equal(h.core.depth(), 0);
    assert.equal(h.ledger.used, 0);
  });
});

describe('MailboxCore: queued (peek)', () => {
  it('lists queued messages in the order receives take them, and changes nothing', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ priority: fc.integer({ min: 0, max: 31 }), requeue: fc.boolean() }), {
          maxLength: 40,
        }),
        (plan) => {
          const h = harness(Number.POSITIVE_INFINITY, 'exclusive');
          h.core.attach(1);
          const given: Msg[] = [];
          for (const p of plan) {
            const m = { ...h.msg(100, p.priority), seq: given.length + 1 };
            if (p.requeue) h.core.requeue(m, 1);
            else h.core.send(m, false);
            given.push(m);
          }
          const bytes = h.core.bytes;
          const seen = [...h.core.queued(1)].map((m) => m.id);
          assert.deepEqual(
            [...h.core.queued(1)].map((m) => m.id),
            seen,
            'a second look sees the same',
          );
          assert.equal(h.core.depth(), plan.length);
          assert.equal(h.core.bytes, bytes);
          assert.deepEqual(drain(h.core, 1), seen);
        },
      ),
    );
  });

  it('broadcast: a receiver sees its own copies; with nobody attached, the backlog', () => {
    const h = harness(10, 'broadcast');
    const early = h.msg();
    h.core.send(early, false);
    assert.deepEqual([...h.core.queued(7)], [early], 'the backlog, before any receiver attaches');
    h.core.attach(1);
    h.core.attach(2);
    assert.deepEqual([...h.core.queued(1)], [early], 'the first receiver took the backlog');
    const late = h.msg(100, 3);
    h.core.send(late, false);
    assert.deepEqual([...h.core.queued(1)], [late, early]);
    assert.deepEqual([...h.core.queued(2)], [late]);
    assert.deepEqual([...h.core.queued(7)], [], 'not attached: only the backlog, empty now');
  });

  it('capacity 0 queues nothing: a parked sender’s message is not shown', () => {
    const h = harness(0);
    h.core.attach(1);
    const m = h.msg();
    assert.equal(h.core.send(m, true), 'blocked');
    h.core.park({ message: m });
    assert.deepEqual([...h.core.queued(1)], []);
  });
});

describe('MailboxCore: close', () => {
  it('returns every parked sender, parked request (with its receiver) and queued message, and uncharges the ledger', () => {
    const h = harness(2);
    h.core.attach(1);
    h.core.attach(2);
    const queued = [h.msg(1, 0, 5), h.msg(1, 4, 5)];
    for (const m of queued) h.core.send(m, false);
    const w = { message: h.msg() };
    h.core.park(w);
    assert.equal(h.ledger.used, 10);
    // A filtered request that does not match anything queued stays parked.
    const q = { from: 77 };
    h.core.receive(2, q, true);
    const out = h.core.close();
    assert.equal(out.senders.length, 1);
    assert.equal(out.senders[0], w);
    assert.equal(out.requests.length, 1);
    assert.equal(out.requests[0]![0], 2);
    assert.equal(out.requests[0]![1], q);
    assert.deepEqual(
      out.dropped.map((m) => m.id),
      [queued[1]!.id, queued[0]!.id],
    );
    assert.equal(h.ledger.used, 0);
    assert.equal(h.core.bytes, 0);
    assert.equal(h.core.depth(), 0);
    assert.equal(h.core.waitingSenders, 0);
    assert.equal(h.core.waitingReceivers, 0);
    assert.deepEqual(h.core.receiverIds(), []);
  });

  it('broadcast: returns the backlog and every receiver’s copies', () => {
    const h = harness(5, 'broadcast');
    h.core.attach(1);
    h.core.attach(2);
    h.core.send(h.msg(), false);
    const out = h.core.close();
    assert.equal(out.dropped.length, 2);
    assert.equal(h.ledger.used, 0);
  });

  it('capacity 0: returns parked senders and parked requests', () => {
    const h = harness(0);
    h.core.attach(1);
    const q = { from: 5 };
    h.core.receive(1, q, true);
    const w = { message: h.msg(6) };
    h.core.park(w);
    const out = h.core.close();
    assert.deepEqual(out.senders, [w]);
    assert.deepEqual(out.requests, [[1, q]]);
    assert.deepEqual(out.dropped, []);
  });
});

describe('MailboxCore: ledger', () => {
  it('a ledger shared by two mailboxes goes back to 0 when everything is taken', () => {
    const ledger: Ledger = { used: 0 };
    const x = harness(10, 'round-robin', undefined, ledger);
    const y = harness(10, 'broadcast', undefined, ledger);
    x.core.attach(1);
    y.core.attach(1);
    y.core.attach(2);
    for (let i = 1; i <= 5; i++) {
      x.core.send(x.msg(1, i % 3, i * 100), false);
      y.core.send(y.msg(1, i % 3, i), false);
    }
    assert.equal(ledger.used, 1500 + 2 * 15);
    assert.equal(x.core.bytes, 1500);
    assert.equal(y.core.bytes, 30);
    drain(x.core, 1);
    drain(y.core, 1);
    assert.equal(ledger.used, 15);
    drain(y.core, 2);
    assert.equal(ledger.used, 0);
    assert.equal(x.core.bytes, 0);
    assert.equal(y.core.bytes, 0);
  });
});

type Step =
  | { kind: 'send'; sender: number; priority: number; size: number; block: boolean }
  | { kind: 'receive'; block: boolean }
  | { kind: 'prefetch'; delta: number }
  | { kind: 'cancel'; pick: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('send' as const),
      sender: fc.integer({ min: 1, max: 3 }),
      priority: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(31)),
      size: fc.integer({ min: 0, max: 1000 }),
      block: fc.boolean(),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('receive' as const), block: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('prefetch' as const), delta: fc.integer({ min: 1, max: 3 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
);

describe('MailboxCore: property, bounded mailbox with one receiver', () => {
  it('delivers every accepted message exactly once, in priority-then-FIFO order of what is queued, never above capacity', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(stepArb, { maxLength: 120 }),
        (capacity, steps) => {
          // The model follows the hooks: it checks each admission and each delivery when it happens
          // against what should be queued at that moment, and checks after every step that the core
          // has settled (no deliverable message left with demand, no room left with a sender waiting).
          const queue: Msg[] = [];
          const parked: SendWaiter<Msg>[] = [];
          let requests = 0;
          let prefetch = 0;
          const accepted = new Set<number>();
          const cancelled = new Set<number>();
          const delivered: number[] = [];
          let nextId = 1;

          const head = (): Msg | undefined => {
            let best: Msg | undefined;
            for (const m of queue) if (best === undefined || m.priority > best.priority) best = m;
            return best;
          };
          const take = (m: Msg): void => {
            queue.splice(queue.indexOf(m), 1);
            delivered.push(m.id);
          };

          const ledger: Ledger = { used: 0 };
          const core = new MailboxCore<Msg>(
            { capacity, delivery: 'exclusive', ledger },
            {
              deliver: (receiver, request, message) => {
                assert.equal(receiver.id, 1);
                assert.equal(
                  message,
                  head(),
                  'delivered message is the priority-then-FIFO head of the queue',
                );
                if (request !== undefined) {
                  assert.ok(requests > 0);
                  requests--;
                } else {
                  assert.ok(prefetch > 0);
                  prefetch--;
                }
                take(message);
              },
              admitted: (waiter) => {
                assert.equal(waiter, parked[0], 'senders are admitted in the order they parked');
                assert.ok(queue.length < capacity, 'a sender is admitted only into a free slot');
                parked.shift();
                queue.push(waiter.message);
              },
            },
          );
          core.attach(1);

          for (const step of steps) {
            switch (step.kind) {
              case 'send': {
                const m: Msg = {
                  id: nextId++,
                  sender: step.sender,
                  priority: step.priority,
                  size: step.size,
                };
                if (parked.length === 0 && queue.length < capacity) {
                  queue.push(m);
                  accepted.add(m.id);
                  assert.equal(core.send(m, step.block), 'queued');
                } else if (step.block) {
                  assert.equal(core.send(m, true), 'blocked');
                  const w = { message: m };
                  parked.push(w);
                  accepted.add(m.id);
                  core.park(w);
                } else {
                  assert.equal(core.send(m, false), 'would-block');
                }
                break;
              }
              case 'receive': {
                const expected = head();
                if (expected !== undefined) take(expected);
                const got = core.receive(1, {}, step.block);
                assert.equal(got, expected);
                if (expected === undefined && step.block) requests++;
                break;
              }
              case 'prefetch':
                prefetch += step.delta;
                core.addPrefetch(1, step.delta);
                break;
              case 'cancel': {
                if (parked.length === 0) break;
                const w = parked.splice(step.pick % parked.length, 1)[0]!;
                cancelled.add(w.message.id);
                assert.equal(core.cancelSend(w), true);
                break;
              }
            }
            assert.ok(core.depth() <= capacity, 'depth never exceeds capacity');
            assert.equal(core.depth(), queue.length);
            assert.equal(core.waitingSenders, parked.length);
            assert.equal(core.waitingReceivers, requests);
            assert.equal(
              ledger.used,
              queue.reduce((n, m) => n + m.size, 0),
            );
            assert.ok(
              queue.length === 0 || requests + prefetch === 0,
              'no message waits while the receiver has demand',
            );
            assert.ok(
              parked.length === 0 || queue.length === capacity,
              'no sender waits while there is room',
            );
          }

          // Drain: enough demand for everything still queued or parked.
          const rest = queue.length + parked.length;
          prefetch += rest;
          core.addPrefetch(1, rest);
          assert.equal(queue.length, 0);
          assert.equal(parked.length, 0);
          assert.equal(core.depth(), 0);
          assert.equal(ledger.used, 0);
          assert.equal(core.bytes, 0);
          assert.equal(new Set(delivered).size, delivered.length, 'no message is delivered twice');
          const expected = [...accepted].filter((id) => !cancelled.has(id)).sort((a, b) => a - b);
          assert.deepEqual(
            [...delivered].sort((a, b) => a - b),
            expected,
            'every accepted, uncancelled message is delivered',
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('mailbox core: holding a receiver back (writable hook), requeue by accept order, withdrawal', () => {
  function held(capacity: number) {
    const deliveries: Array<{ receiver: number; id: number }> = [];
    let open = false;
    const core = new MailboxCore<Msg>(
      { capacity, delivery: 'round-robin' },
      {
        deliver: (receiver, _request, message) => deliveries.push({ receiver: receiver.id, id: message.id }),
        admitted: () => {},
        writable: () => open,
      },
    );
    return { core, deliveries, open: () => (open = true) };
  }

  it('a held-back receiver gets nothing, receive-from requests and pushes included, until pumpNow', () => {
    const h = held(8);
    h.core.attach(1, 4);
    h.core.send({ id: 1, sender: 7, priority: 0, size: 1 }, true);
    h.core.parkReceive(1, { from: 7 });
    h.core.parkReceive(1, {});
    assert.equal(h.deliveries.length, 0, 'nothing is delivered while the hook says no');
    h.open();
    h.core.pumpNow();
    assert.deepEqual(
      h.deliveries.map((d) => d.id),
      [1],
      'the queued message goes out once the receiver may take it',
    );
  });

  it('messages given back in any order are requeued in their accept order', () => {
    const h = harness(8);
    const m = (seq: number) => ({ id: seq, sender: 1, priority: 0, size: 1, seq });
    h.core.send(m(4), true);
    for (const seq of [2, 3, 1]) h.core.requeue(m(seq));
    h.core.attach(9);
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push(h.core.receive(9, {}, false)!.id);
    assert.deepEqual(got, [1, 2, 3, 4]);
  });

  it('withdraw takes a queued message back out and frees its slot; a parked sender is admitted', () => {
    const h = harness(1);
    const first = h.msg();
    assert.equal(h.core.send(first, true), 'queued');
    const second = { message: h.msg() };
    assert.equal(h.core.send(second.message, true), 'blocked');
    h.core.park(second);
    assert.equal(h.core.withdraw(first), 1);
    assert.deepEqual(h.admitted, [second], 'the freed slot admits the parked sender');
    assert.equal(h.core.withdraw(first), 0, 'a message no longer queued is not withdrawn twice');
  });

  it('withdrawing one of many parked senders is O(1) and keeps the others in FIFO order', () => {
    const h = harness(1);
    h.core.send(h.msg(), true);
    const waiters = Array.from({ length: 5000 }, () => ({ message: h.msg() }));
    for (const w of waiters) h.core.park(w);
    for (let i = 0; i < waiters.length; i += 2) assert.equal(h.core.cancelSend(waiters[i]!), true);
    assert.equal(h.core.waitingSenders, 2500);
    h.core.attach(3);
    h.core.receive(3, {}, false);
    assert.deepEqual(h.admitted, [waiters[1]], 'the first waiter still parked is admitted first');
  });
});
