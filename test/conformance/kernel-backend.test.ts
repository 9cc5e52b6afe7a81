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
