/**
 * The mailbox conformance suite on the remote backend: every mailbox is homed on kernel A, and the
 * processes under test are connected to kernel B (separate OS processes, one real nats-server), so
 * each send, receive, wait, acknowledgement and redelivery crosses the cluster. Mailboxes are
 * created by a process on A as system-owned (so the processes on B, of the same user, may delete
 * them) and opened from B.
 */
import { rmSync } from 'node:fs';
import { connect, IpcError, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';
import {
  type ConformanceMailbox,
  type ConformanceProcess,
  runMailboxConformance,
} from './mailbox-conformance.js';

/** Open `name` from `p`, waiting for the cluster's names mirror on B to learn it. */
async function openWhenKnown(p: IpcProcess, name: string): Promise<ConformanceMailbox> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return await p.openMailbox(name);
    } catch (e) {
      if (!(e instanceof IpcError) || e.code !== 'NO_SUCH_MAILBOX' || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

runMailboxConformance({
  name: 'remote (mailbox on kernel A, processes on kernel B)',
  async setup() {
    const nats: NatsServer = await startNatsServer();
    const dir = tempDir('ipcbox-remote-conf-');
    const [a, b]: ClusterKernel[] = await Promise.all([
      startClusterKernel(dir, 'home', nats.url),
      startClusterKernel(dir, 'away', nats.url),
    ]);
    const homer = await connect({ socketPath: (a as ClusterKernel).socketPath, name: 'homer' });
    const opened: IpcProcess[] = [];
    return {
      async connect(): Promise<ConformanceProcess> {
        const p = await connect({ socketPath: (b as ClusterKernel).socketPath });
        opened.push(p);
        return {
          async createMailbox(name, options) {
            await homer.createMailbox(name, { ...options, owner: 'system' });
            return openWhenKnown(p, name);
          },
          openMailbox: (name) => p.openMailbox(name),
          deleteMailbox: (name) => p.deleteMailbox(name),
          close: () => p.close(),
        };
      },
      async teardown() {
        for (const p of opened) await p.close().catch(() => undefined);
        await homer.close();
        for (const k of [a, b]) k?.child.kill('SIGKILL');
        await nats.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});
