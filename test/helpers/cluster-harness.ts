/**
 * Clustered kernels in their own OS processes (test/fixtures/cluster-kernel.ts) for tests: started
 * on a socket in `dir`, joined to the NATS at `servers` as `node` of cluster `name` (default 'kn').
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES, tempDir } from './kernel-harness.js';
import { type NatsServer, startNatsServer } from './nats-harness.js';

export interface ClusterKernel {
  child: ChildProcess;
  socketPath: string;
  node: string;
}

export async function startClusterKernel(
  dir: string,
  node: string,
  servers: string,
  extra: Record<string, unknown> = {},
): Promise<ClusterKernel> {
  const socketPath = join(dir, `${node}.sock`);
  const child = spawn(
    process.execPath,
    [
      join(FIXTURES, 'cluster-kernel.js'),
      socketPath,
      JSON.stringify({ servers, node, name: 'kn', ...extra }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`kernel ${node} exited ${code} before ready`)));
  });
  return { child, socketPath, node };
}

export interface TwoNodes {
  nats: NatsServer;
  a: ClusterKernel;
  b: ClusterKernel;
  /** SIGKILL both kernels (resuming a stopped one first) and stop the nats-server. */
  stop(): Promise<void>;
}

/** A nats-server and two clustered kernels on it, nodes `${prefix}a` and `${prefix}b`. */
export async function startTwoNodes(prefix: string, extra: Record<string, unknown> = {}): Promise<TwoNodes> {
  const nats = await startNatsServer();
  const dir = tempDir(`ipcbox-${prefix}-`);
  const [a, b] = await Promise.all([
    startClusterKernel(dir, `${prefix}a`, nats.url, extra),
    startClusterKernel(dir, `${prefix}b`, nats.url, extra),
  ]);
  return {
    nats,
    a,
    b,
    async stop() {
      for (const k of [a, b]) {
        k.child.kill('SIGCONT');
        k.child.kill('SIGKILL');
      }
      await nats.stop();
    },
  };
}
