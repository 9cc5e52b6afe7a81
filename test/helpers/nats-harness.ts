/**
 * Real nats-server processes for tests (Debian's nats-server, installed by .ci/run): loopback only,
 * JetStream in a temp dir, a random port unless one is given (a restart reuses its port). Readiness
 * is the server's own "ready" log line, raced against its exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  url: string;
  port: number;
  child: ChildProcess;
  storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its store unless `keepStore`. */
  stop(keepStore?: boolean): Promise<void>;
  /** SIGKILL, keeping the store (for a restart on the same port). */
  kill(): Promise<void>;
}

export interface NatsServerOptions {
  port?: number;
  storeDir?: string;
  /** false: a server without JetStream (nats-server's default), which a cluster cannot use. */
  jetstream?: boolean;
  /** Extra nats-server arguments (auth, TLS, cluster routes, a config file). */
  args?: string[];
}

export async function startNatsServer(o: NatsServerOptions = {}): Promise<NatsServer> {
  const storeDir = o.storeDir ?? mkdtempSync(join(tmpdir(), 'ipcbox-nats-'));
  const js = o.jetstream === false ? [] : ['-js', '-sd', storeDir];
  const args = ['-a', '127.0.0.1', '-p', String(o.port ?? -1), ...js, ...(o.args ?? [])];
  const child = spawn('nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server not ready in 15 s:\n${log}`)), 15_000);
    let listening: number | undefined;
    const onData = (d: Buffer) => {
      log += d.toString();
      const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
      if (m) listening = Number(m[1]);
      if (listening !== undefined && /Server is ready/.test(log)) {
        clearTimeout(timer);
        resolve(listening);
      }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${code}) before it was ready:\n${log}`));
    });
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    child,
    storeDir,
    async stop(keepStore = false) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      if (!keepStore) rmSync(storeDir, { recursive: true, force: true });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  return server;
}

/** A free loopback TCP port (bound and released: good enough for a test's servers). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface NatsCluster {
  servers: NatsServer[];
  urls: string[];
  /** Restart server `i` (after a kill) on its ports with its store. */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** `n` nats-servers routed into one NATS cluster with clustered JetStream (server names s0..). */
export async function startNatsCluster(n: number): Promise<NatsCluster> {
  const client = await Promise.all(Array.from({ length: n }, () => freePort()));
  const routes = await Promise.all(Array.from({ length: n }, () => freePort()));
  const args = (i: number) => [
    '--server_name',
    `s${i}`,
    '--cluster_name',
    'ipcbox-test',
    '--cluster',
    `nats://127.0.0.1:${routes[i]}`,
    '--routes',
    routes
      .filter((_, j) => j !== i)
      .map((p) => `nats://127.0.0.1:${p}`)
      .join(','),
  ];
  const servers = await Promise.all(
    Array.from({ length: n }, (_, i) => startNatsServer({ port: client[i] as number, args: args(i) })),
  );
  const cluster: NatsCluster = {
    servers,
    urls: client.map((p) => `nats://127.0.0.1:${p}`),
    async restart(i) {
      const old = servers[i] as NatsServer;
      servers[i] = await startNatsServer({ port: old.port, storeDir: old.storeDir, args: args(i) });
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
  return cluster;
}
