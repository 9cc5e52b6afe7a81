import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Test harness: run the real kernel daemon (`ipcbox daemon`) as a child
 * process on a private socket, wait until it is ready (racing an early exit),
 * and always clean up. Fixtures are compiled scripts under dist/test/fixtures.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (this file runs from dist/test/helpers). */
export const ROOT = resolve(here, '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const FIXTURES = join(ROOT, 'dist', 'test', 'fixtures');

export interface Daemon {
  socketPath: string;
  dir: string;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function tempDir(prefix = 'ipcbox-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Wait until `predicate` holds, polling every `intervalMs`, or throw after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what: string | (() => string) = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`,
      );
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A daemon process on a given socket path, ready (it has announced that it listens). */
export interface DaemonProcess {
  child: ChildProcess;
  exit: Promise<number | null>;
  output(): string;
}

/** Spawn `ipcbox daemon` on `socketPath` and wait until it listens, racing an early exit. */
export async function spawnDaemon(socketPath: string, extraArgs: string[] = []): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [CLI, '--socket', socketPath, 'daemon', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await Promise.race([
    waitFor(() => out.includes('listening on'), 15_000, 'the daemon to listen'),
    exit.then((code) => {
      throw new Error(`daemon exited early with ${code}: ${out}`);
    }),
  ]);
  return { child, exit, output: () => out };
}

/** A daemon on a private socket in a fresh temporary directory, removed again by `stop()`. */
export async function startDaemon(extraArgs: string[] = []): Promise<Daemon> {
  const dir = tempDir();
  const socketPath = join(dir, 'kernel.sock');
  const { child, exit, output } = await spawnDaemon(socketPath, extraArgs);
  return {
    socketPath,
    dir,
    child,
    output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exit;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface Spawned {
  child: ChildProcess;
  /** Lines the child printed on stdout so far. */
  lines: string[];
  stderr(): string;
  /** Resolves with the first stdout line for which `match` holds. */
  line(match: (l: string) => boolean, timeoutMs?: number): Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Spawn a fixture script (name without .js) with the kernel socket in IPCBOX_SOCKET. */
export function spawnFixture(
  name: string,
  args: string[],
  socketPath: string,
  env: NodeJS.ProcessEnv = {},
): Spawned {
  const child = spawn(process.execPath, [join(FIXTURES, `${name}.js`), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, IPCBOX_SOCKET: socketPath, ...env },
  });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return {
    child,
    lines,
    stderr: () => err,
    async line(match, timeoutMs = 15_000) {
      await Promise.race([
        waitFor(() => lines.some(match), timeoutMs, `a line from ${name}`),
        exit.then(({ code, signal }) => {
          if (!lines.some(match)) throw new Error(`${name} exited (${code ?? signal}) first; stderr: ${err}`);
        }),
      ]);
      return lines.find(match)!;
    },
    exit,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Run the CLI to completion; returns its exit code and output. */
export function runCli(
  args: string[],
  socketPath: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runScript(CLI, ['--socket', socketPath, ...args]);
}

/** Run a compiled script with this Node to completion; returns its exit code and output. */
export function runScript(
  script: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('exit', (code) => resolveRun({ code, stdout, stderr }));
  });
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Run the CLI to completion with `input` on its stdin (empty if none) and extra environment; stdout as bytes. */
export function runCliWith(
  args: string[],
  socketPath: string,
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
): Promise<CliRun> {
  const c = spawnCli(args, socketPath, options.env);
  c.child.stdin!.on('error', () => {});
  c.child.stdin!.end(options.input ?? '');
  return c.exit.then(({ code, signal }) => ({ code, signal, stdout: c.stdout(), stderr: c.stderr() }));
}

export interface SpawnedCli {
  child: ChildProcess;
  /** Everything the CLI printed on stdout so far. */
  stdout(): Buffer;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start the CLI (on `socketPath`) without waiting for it: stdin, stdout and stderr are pipes. */
export function spawnCli(args: string[], socketPath: string, env: NodeJS.ProcessEnv = {}): SpawnedCli {
  const child = spawn(process.execPath, [CLI, '--socket', socketPath, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('close', (code, signal) => r({ code, signal })),
  );
  return { child, stdout: () => Buffer.concat(out), stderr: () => err, exit };
}
