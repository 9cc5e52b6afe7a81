/**
 * A hostile CALL whose target is on another node: the process's kernel forwards it by serializing
 * its arguments again, so arguments that parse but cannot be serialized (nested 100 000 deep:
 * JSON.stringify overflows the stack) used to break that kernel's handling of the frame (a warning
 * on its stderr, the connection dropped as PROTOCOL). They are refused on the way in now:
 * INVALID_ARGUMENT for that request, the connection and the target undisturbed. Found by the
 * cross-node fuzz campaign (npm run fuzz -- --cluster).
 *
 * A frame that breaks the protocol by its shape (a RECV without a request id, a credited SEND with
 * flags, a DEMAND without a count), or a RECV or SEND reusing a request id still pending, on a
 * mailbox of another node is the same protocol error it is on a local one: the sender's own kernel
 * ends that connection with PROTOCOL. It used to be forwarded and the home ended the whole route
 * over it: the client was told CLUSTER_UNAVAILABLE for its requests (at request id 0 for a RECV
 * without one: found by the same campaign) and its connection went on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess } from '../../src/index.js';
import { errorCodeFromWire } from '../../src/wire/error-codes.js';
import { Op, SendFlag } from '../../src/wire/protocol.js';
import { destroyAllRaw, errorCode, frame, RawClient } from '../fixtures/hardening-support.js';
import { startTwoNodes, type TwoNodes } from '../helpers/cluster-harness.js';
import { waitFor } from '../helpers/kernel-harness.js';

describe('hostile calls across nodes', () => {
  let nodes: TwoNodes;
  let target: IpcProcess;

  before(async () => {
    nodes = await startTwoNodes('h');
    target = await connect({ socketPath: nodes.a.socketPath, name: 'far-target' });
  });
  after(async () => {
    destroyAllRaw();
    await target?.close().catch(() => undefined);
    await nodes?.stop();
  });

  test('a signal to a process on another node, its payload nested 100 000 deep: INVALID_ARGUMENT, nothing else disturbed', async () => {
    const raw = await RawClient.hello(nodes.b.socketPath, 'deep-caller');
    const call = (reqId: number, body: string) => raw.write(frame(Op.CALL, { reqId }, Buffer.from(body)));
    // The name must have reached kernel B, or the call is answered there without forwarding.
    let known = false;
    for (let reqId = 10; !known && reqId < 200; reqId++) {
      call(reqId, JSON.stringify({ m: 'signal', a: { to: 'far-target', type: 'ping', payload: 1 } }));
      const r = await raw.next((f) => f.reqId === reqId, 10_000, `answer ${reqId}`);
      known = r.op === Op.RESULT;
      if (!known) await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(known, 'far-target is reachable from kernel B');
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    call(2, `{"m": "signal", "a": {"to": "far-target", "type": "deep", "payload": ${deep}}}`);
    call(3, JSON.stringify({ m: 'signal', a: { to: 'far-target', type: 'after', payload: 2 } }));
    const refused = await raw.next((f) => f.reqId === 2, 10_000, 'the answer to the deep call');
    assert.equal(refused.op, Op.ERROR);
    assert.equal(errorCodeFromWire(refused.body.readUInt32LE(0)), 'INVALID_ARGUMENT');
    const next = await raw.next((f) => f.reqId === 3, 10_000, 'the answer to the next call');
    assert.equal(next.op, Op.RESULT, 'the same connection is served on');
    assert.equal(raw.closed, false);
    // The target got the well-formed signals and not the deep one.
    const types: string[] = [];
    target.on('signal', (e) => types.push(e.type));
    await waitFor(() => types.includes('after'), 10_000, "far-target's 'after' signal");
    assert.ok(!types.includes('deep'));
  });

  // The first frame stays pending at the home (an empty mailbox; a synchronous send with no
  // receiver), the second is the offence.
  const pendingRecv = (id: number) => frame(Op.RECV, { reqId: 7, target: id });
  const pendingSend = (id: number) =>
    frame(Op.SEND, { reqId: 7, target: id, flags: SendFlag.SYNC }, Buffer.from('a'));
  for (const [tag, what, first, second] of [
    [
      'r0',
      'a RECV without a request id',
      pendingRecv,
      (id: number) => frame(Op.RECV, { reqId: 0, target: id }),
    ],
    [
      'r7',
      'a RECV reusing the request id of a receive still pending',
      pendingRecv,
      (id: number) => frame(Op.RECV, { reqId: 7, target: id }),
    ],
    [
      's7',
      'a SEND reusing the request id of a send still pending',
      pendingSend,
      (id: number) => frame(Op.SEND, { reqId: 7, target: id }, Buffer.from('b')),
    ],
    [
      'c0',
      'a credited SEND with a flag',
      pendingRecv,
      (id: number) => frame(Op.SEND, { reqId: 0, target: id, flags: SendFlag.NONBLOCK }, Buffer.from('b')),
    ],
    [
      'd9',
      'a DEMAND without a count',
      pendingRecv,
      (id: number) => frame(Op.DEMAND, { reqId: 9, target: id }),
    ],
  ] as const) {
    test(`${what} on a mailbox of another node: PROTOCOL from its own kernel, the mailbox served on`, async () => {
      const box = `far-box-${tag}`;
      const owner = await connect({ socketPath: nodes.a.socketPath, name: `owner-${tag}` });
      const mb = await owner.createMailbox(box);
      const raw = await RawClient.hello(nodes.b.socketPath, `caller-${tag}`);
      let id: number | undefined;
      for (let reqId = 10; id === undefined && reqId < 200; reqId++) {
        raw.write(
          frame(Op.CALL, { reqId }, Buffer.from(JSON.stringify({ m: 'mailbox.open', a: { name: box } }))),
        );
        const r = await raw.next((f) => f.reqId === reqId, 10_000, `answer ${reqId}`);
        if (r.op === Op.RESULT) id = (JSON.parse(r.body.toString()) as { id: number }).id;
        else await new Promise((res) => setTimeout(res, 50));
      }
      assert.ok(id !== undefined, `${box} is reachable from kernel B`);
      raw.write(first(id));
      raw.write(second(id));
      const err = await raw.next(
        (f) => f.op === Op.ERROR && f.reqId === 0,
        10_000,
        'the connection-level error',
      );
      assert.equal(errorCode(err), 'PROTOCOL');
      await raw.closedWithin(10_000);
      // The home is undisturbed: another process on B sends, the owner on A receives.
      const other = await connect({ socketPath: nodes.b.socketPath, name: `other-${tag}` });
      const far = await other.openMailbox(box);
      await far.send('after', { timeout: 10_000 });
      // (The pending synchronous send was taken by the home before the connection ended: it stays
      // queued, like any accepted message. The offending second frame never arrives.)
      const got: string[] = [];
      while (!got.includes('after')) {
        const m = await mb.receive({ timeout: 10_000 });
        got.push(typeof m.data === 'string' ? m.data : Buffer.from(m.data as Uint8Array).toString());
      }
      assert.ok(!got.includes('b'), `received ${JSON.stringify(got)}`);
      await other.close();
      await owner.close();
    });
  }
});
