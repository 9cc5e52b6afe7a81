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
  /** Extra nats-server arguments (auth, TLS, cluster routes, a config file). */
  args?: string[];
}

export async function startNatsServer(o: NatsServerOptions = {}): Promise<NatsServer> {
  const storeDir = o.storeDir ?? mkdtempSync(join(tmpdir(), 'ipcbox-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(o.port ?? -1), '-js', '-sd', storeDir, ...(o.args ?? [])];
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
