/**
 * A mailbox deleted while a send to it from another node is on its way: the send fails
 * MAILBOX_CLOSED, as every send and receive that waited on the mailbox does, not NO_SUCH_MAILBOX
 * (the handle was open; its id is simply gone at the home). The sender's kernel is stopped while
 * the send leaves its process and the owner deletes, so the send surely reaches the home after.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

describe('a mailbox deleted under a send from another node', () => {
  let nats: NatsServer;
  let a: ClusterKernel;
  let b: ClusterKernel;
  const clients: IpcProcess[] = [];

  before(async () => {
    nats = await startNatsServer();
    const dir = tempDir('ipcbox-deleted-');
    [a, b] = await Promise.all([
      startClusterKernel(dir, 'xa', nats.url),
      startClusterKernel(dir, 'xb', nats.url),
    ]);
  });
  after(async () => {
    b?.child.kill('SIGCONT');
    for (const c of clients) await c.close().catch(() => undefined);
    for (const k of [a, b]) k?.child.kill('SIGKILL');
    await nats?.stop();
  });

  test('the send in flight fails MAILBOX_CLOSED', async () => {
    const owner = await connect({ socketPath: a.socketPath });
    clients.push(owner);
    // Capacity 0: no credits, so the send is a request the home answers.
    const home = await owner.createMailbox('deleted-in-flight', { capacity: 0 });
    const p = await connect({ socketPath: b.socketPath });
    clients.push(p);
    const mb = await p.openMailbox('deleted-in-flight');
    b.child.kill('SIGSTOP');
    let sent: Promise<string>;
    try {
      sent = mb.send('late', { timeout: 5000 }).then(
        () => 'resolved',
        (e: { code?: string }) => String(e.code),
      );
      // Written to the stopped kernel's socket; the owner deletes before it can be forwarded.
      await new Promise((r) => setImmediate(r));
      await home.delete();
    } finally {
      b.child.kill('SIGCONT');
    }
    assert.equal(await sent, 'MAILBOX_CLOSED');
    await assert.rejects(mb.send('after'), { code: 'MAILBOX_CLOSED' });
  });
});
