/**
 * The mailbox conformance suite against the kernel backend: once with the
 * kernel embedded in this process (startKernel), once with the real daemon
 * in its own process.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, startKernel } from '../../src/index.js';
import { startDaemon, tempDir } from '../helpers/kernel-harness.js';
import { type ConformanceProcess, runMailboxConformance } from './mailbox-conformance.js';

runMailboxConformance({
  name: 'kernel (embedded)',
  async setup() {
    const dir = tempDir();
    const kernel = await startKernel({ socketPath: join(dir, 'kernel.sock') });
    return {
      connect: (): Promise<ConformanceProcess> => connect({ socketPath: kernel.socketPath }),
      async teardown() {
        await kernel.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});

runMailboxConformance({
  name: 'kernel (daemon process)',
  async setup() {
    const daemon = await startDaemon();
    return {
      connect: (): Promise<ConformanceProcess> => connect({ socketPath: daemon.socketPath }),
      async teardown() {
        await daemon.stop();
      },
    };
  },
});

// The same contract through the same Mailbox API on the other path: `transport: 'shm'` puts the
// queue in a shared-memory segment (the kernel keeps the name only), and every behaviour must hold.
runMailboxConformance({
  name: "Mailbox API, transport 'shm'",
  async setup() {
    const dir = tempDir();
    const kernel = await startKernel({ socketPath: join(dir, 'kernel.sock') });
    return {
      async connect(): Promise<ConformanceProcess> {
        const p = await connect({ socketPath: kernel.socketPath });
        return {
          async createMailbox(name, options) {
            const mb = await p.createMailbox(name, { ...options, transport: 'shm' });
            if (mb.transport !== 'shm') throw new Error(`${name} is on the ${mb.transport} path`);
            return mb;
          },
          async openMailbox(name) {
            const mb = await p.openMailbox(name);
            if (mb.transport !== 'shm') throw new Error(`${name} opened on the ${mb.transport} path`);
            return mb;
          },
          deleteMailbox: (name) => p.deleteMailbox(name),
          close: () => p.close(),
        };
      },
      async teardown() {
        await kernel.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});
