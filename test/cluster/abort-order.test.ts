/**
 * An aborted receive on another node's mailbox keeps the mailbox's order. When the abort comes
 * as the home's answer is already on its way (past the receiver's kernel, not yet read by the
 * process), the process hands the message back and it must come next: the home has to hold the
 * receiver's next receive until it is back, as it does for a local receiver. Found by the
 * cross-node fuzz campaign (the answer had passed kernel B, which then kept the CANCEL to itself,
 * so the next receive overtook the message handed back: 26 before 25).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, IpcError, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startTwoNodes, type TwoNodes } from '../helpers/cluster-harness.js';
import { waitFor } from '../helpers/kernel-harness.js';

describe('aborted receives across nodes', () => {
  let nodes: TwoNodes;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];

  before(async () => {
    nodes = await startTwoNodes('o');
    ({ a, b } = nodes);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await nodes?.stop();
  });

  for (const ack of [false, true]) {
    test(`receives${ack ? ' with ack' : ''} aborted within milliseconds lose nothing and keep the order`, async () => {
      const sender = await connect({ socketPath: a.socketPath });
      const receiver = await connect({ socketPath: b.socketPath });
      clients.push(sender, receiver);
      const name = `ordered-${ack ? 'ack' : 'plain'}`;
      const box = await sender.createMailbox(name, { capacity: 16 });
      let inbox: Awaited<ReturnType<IpcProcess['openMailbox']>> | undefined;
      await waitFor(async () => {
        inbox = await receiver.openMailbox(name).catch(() => undefined);
        return inbox !== undefined;
      }, 5000);
      const n = 1500;
      const sending = (async () => {
        // Paced now and then, so receives park at the home and their answers race the aborts.
        for (let i = 0; i < n; i++) {
          await box.send(i);
          if (i % 8 === 0) await new Promise((r) => setImmediate(r));
        }
      })();
      const got: number[] = [];
      let aborted = 0;
      let k = 0;
      while (got.length < n) {
        try {
          const m = await inbox!.receive({ ack, signal: AbortSignal.timeout([1, 2, 3][k++ % 3]!) });
          got.push(m.data as number);
          if (ack) m.ack();
        } catch (e) {
          assert.ok(e instanceof IpcError && e.code === 'ABORTED', String(e));
          aborted++;
        }
        const last = got.length - 1;
        if (last >= 0 && got[last] !== last)
          assert.fail(
            `message ${got[last]} arrived when ${last} was next (after ${aborted} aborted receives)`,
          );
      }
      await sending;
      assert.ok(aborted > 0, 'some receives were aborted (else the test tested nothing)');
      assert.deepEqual(
        got,
        Array.from({ length: n }, (_, i) => i),
      );
    });
  }
});
