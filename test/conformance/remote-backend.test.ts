/**
 * The mailbox conformance suite on the remote backend: every mailbox is homed on kernel A, and the
 * processes under test are connected to kernel B (separate OS processes, one real nats-server), so
 * each send, receive, wait, acknowledgement and redelivery crosses the cluster. Mailboxes are
 * created by a process on A as system-owned (so the processes on B, of the same user, may delete
 * them) and opened from B at once: kernel B asks the cluster about a name its mirror does not know yet.
 */
import { rmSync } from 'node:fs';
import { connect, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';
import { type ConformanceProcess, runMailboxConformance } from './mailbox-conformance.js';

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
            return p.openMailbox(name);
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
