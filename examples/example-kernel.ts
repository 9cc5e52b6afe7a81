/**
 * What every example shares: a kernel to talk to, and participant processes
 * started from the example's own compiled file with a role argument.
 *
 * - If IPCBOX_SOCKET is set (an `ipcbox daemon` is running), the example uses
 *   that kernel; otherwise it embeds one (`startKernel`) on a private
 *   temporary socket for as long as the example runs.
 * - Participants are real OS processes. Their stdout lines are relayed as
 *   `[<name>] <line>`; a participant says it is ready by printing `ready`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startKernel } from '../src/index.js';

/**
 * Run `main` with the sockets of two kernels that are one cluster: a private `nats-server` (from
 * PATH; Debian: apt-get install nats-server) on a free loopback port, and two kernels embedded here
 * as nodes `east` and `west` of it, for as long as `main` runs. Their processes reach each other
 * only through NATS.
 */
export async function withTwoNodes<T>(main: (sockets: [string, string]) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'ipcbox-example-'));
  const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', join(dir, 'js')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let log = '';
      nats.once('error', (e) =>
        reject(new Error(`cannot start nats-server (is it installed?): ${e.message}`)),
      );
      nats.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        const port = /Listening for client connections on [^\s]+:(\d+)/.exec(log)?.[1];
        if (port !== undefined && log.includes('Server is ready')) resolve(`nats://127.0.0.1:${port}`);
      });
      nats.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${log}`)));
    });
    const kernels = await Promise.all(
      (['east', 'west'] as const).map((node) =>
        startKernel({
          socketPath: join(dir, `${node}.sock`),
          cluster: { servers: url, node, name: 'example' },
        }),
      ),
    );
    try {
      return await main([kernels[0]!.socketPath, kernels[1]!.socketPath]);
    } finally {
      await Promise.all(kernels.map((k) => k.close()));
    }
  } finally {
    nats.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Run `main` with the socket of a kernel: $IPCBOX_SOCKET's, or one embedded for the duration. */
export async function withKernel<T>(main: (socketPath: string) => Promise<T>): Promise<T> {
  const existing = process.env.IPCBOX_SOCKET;
  if (existing !== undefined && existing !== '') return main(existing);
  const dir = mkdtempSync(join(tmpdir(), 'ipcbox-example-'));
  const kernel = await startKernel({ socketPath: join(dir, 'kernel.sock') });
  try {
    return await main(kernel.socketPath);
  } finally {
    await kernel.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Participant {
  readonly name: string;
  /** Every line it printed so far (without the `ready` line). */
  readonly lines: string[];
  /** Resolves when the participant printed `ready`; rejects if it exits first. */
  readonly ready: Promise<void>;
  /** Resolves when it exits with code 0; rejects otherwise. */
  readonly done: Promise<void>;
}

/**
 * Start `node <exampleFile> <role> ...args` as a participant connected to
 * the kernel at `socketPath` (passed as IPCBOX_SOCKET).
 */
export function startParticipant(
  exampleUrl: string,
  name: string,
  args: string[],
  socketPath: string,
): Participant {
  const child = spawn(process.execPath, [fileURLToPath(exampleUrl), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, IPCBOX_SOCKET: socketPath },
  });
  let markReady!: () => void;
  let failReady!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  // A participant that never needed to announce readiness must not leave a dangling rejection.
  ready.catch(() => {});
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'ready') return markReady();
    lines.push(line);
    process.stdout.write(`[${name}] ${line}\n`);
  });
  const done = new Promise<void>((resolve, reject) => {
    // 'close' (not 'exit'): every line the participant printed has been relayed by then.
    child.once('close', (code, signal) => {
      const failure = new Error(`${name} exited with ${code ?? signal}`);
      failReady(failure);
      if (code === 0) resolve();
      else reject(failure);
    });
  });
  return { name, lines, ready, done };
}

/** The role argument a participant was started with, or undefined in the example's main process. */
export function roleOf(argv: string[] = process.argv): string | undefined {
  return argv[2];
}
