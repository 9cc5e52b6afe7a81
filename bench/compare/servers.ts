/**
 * Servers the comparison needs, started and stopped by the runner on
 * loopback / in its temp dir: the ipcbox kernel daemon (its own process, as
 * in production), nats-server and redis-server (Debian packages). Each
 * start either resolves to a running server or rejects with the reason,
 * which the runner reports as SKIPPED.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { sleep } from './common.js';

export interface Server {
  name: string;
  version: string;
  /** TCP port (NATS, Redis) or socket path (kernel). */
  address: string;
  port: number;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    try {
      execFileSync('test', ['-x', join(dir, bin)]);
      return join(dir, bin);
    } catch {
      // not here
    }
  }
  return undefined;
}

function tracked(child: ChildProcess): { output: () => string; exited: Promise<void> } {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { output: () => out, exited };
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
  if (!done) child.kill('SIGKILL');
  await exited;
}

async function startTcp(
  name: string,
  bin: string,
  args: (port: number) => string[],
  versionArgs: string[],
): Promise<Server> {
  const path = which(bin);
  if (path === undefined) throw new Error(`${bin} not found on PATH (apt-get install -y ${name})`);
  const banner = execFileSync(path, versionArgs, { encoding: 'utf8' }).trim().split('\n')[0]!;
  const version = /v=?(\d+\.\d+\.\d+)/.exec(banner)?.[1] ?? banner;
  const port = await freePort();
  const child = spawn(path, args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
  const t = tracked(child);
  const deadline = Date.now() + 10_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopChild(child, t.exited);
      throw new Error(`${bin} did not start: ${t.output().trim().slice(-300)}`);
    }
    await sleep(50);
  }
  return { name, version, address: `127.0.0.1:${port}`, port, stop: () => stopChild(child, t.exited) };
}

export function startNats(dir: string): Promise<Server> {
  const conf = join(dir, 'nats.conf');
  // 1 MiB payloads need max_payload above the 1 MB default; a deep max_pending so a
  // bounded burst never trips the slow-consumer cut-off.
  writeFileSync(conf, 'max_payload: 8388608\nmax_pending: 1073741824\nwrite_deadline: "30s"\n');
  // JetStream on (its own store here): the cross-node transports' kernels keep their names in KV.
  return startTcp(
    'nats-server',
    'nats-server',
    (p) => ['-a', '127.0.0.1', '-p', String(p), '-c', conf, '-js', '-sd', join(dir, 'jetstream')],
    ['--version'],
  );
}

export function startRedis(dir: string): Promise<Server> {
  return startTcp(
    'redis-server',
    'redis-server',
    (p) => ['--port', String(p), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--dir', dir],
    ['--version'],
  );
}

/** The node flags on a script's `#!/usr/bin/env -S node ...` line (none for a plain `node` shebang). */
export function shebangFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env -S node(?<flags>( +--\S+)*) *$/.exec(first);
  return m?.groups?.flags?.trim().split(/ +/).filter(Boolean) ?? [];
}

export async function startKernel(
  cli: string,
  socketPath: string,
  version: string,
  extraArgs: string[] = [],
): Promise<Server> {
  // Run the daemon as the installed command runs it: with the node flags of the CLI's shebang line.
  const child = spawn(
    process.execPath,
    [...shebangFlags(cli), cli, '--socket', socketPath, 'daemon', ...extraArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const t = tracked(child);
  const deadline = Date.now() + 15_000;
  while (!t.output().includes('listening')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopChild(child, t.exited);
      throw new Error(`ipcbox kernel did not start: ${t.output().trim().slice(-300)}`);
    }
    await sleep(20);
  }
  return {
    name: 'ipcbox kernel',
    version,
    address: socketPath,
    port: 0,
    stop: () => stopChild(child, t.exited),
  };
}
