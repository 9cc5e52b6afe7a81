/**
 * Clustered kernels in their own OS processes (test/fixtures/cluster-kernel.ts) for tests: started
 * on a socket in `dir`, joined to the NATS at `servers` as `node` of cluster `name` (default 'kn').
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES } from './kernel-harness.js';

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
