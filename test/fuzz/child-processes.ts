/**
 * The harness's child processes: the kernel daemon on a private socket, and
 * the well-behaved pair (pair-client.ts) on the IPC channel. Each records
 * its stderr and exit; neither outlives the process that started it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, tempDir, waitFor } from '../helpers/kernel-harness.js';
import type { PairIds } from './hostile-session.js';
import type { PairCommand, PairReport } from './pair-report.js';

const PAIR_SCRIPT = fileURLToPath(new URL('./pair-client.js', import.meta.url));

export interface KernelConfig {
  /** The daemon's --max-message-size. */
  maxMessageSize: number;
  /** The daemon's --memory-budget. */
  memoryBudget: number;
  /** Join this cluster (--cluster, --node, --cluster-name): the cross-node campaign's two kernels. */
  cluster?: { servers: string; node: string; name: string };
}

/** Every daemon and pair process started here, killed if this process exits first (a test timeout, ^C). */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function adopt(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

// ---------------------------------------------------------------- the daemon

export class KernelProcess {
  private stderrText = '';
  private stdoutText = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited = false;

  private constructor(
    readonly child: ChildProcess,
    readonly socketPath: string,
    readonly dir: string,
  ) {
    child.stdout!.on('data', (d) => {
      this.stdoutText += d;
    });
    child.stderr!.on('data', (d) => {
      if (this.stderrText.length < 64 * 1024) this.stderrText += d;
    });
    this.exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exited = true;
        resolve({ code, signal });
      }),
    );
  }

  static async start(config: KernelConfig): Promise<KernelProcess> {
    const dir = tempDir('ipcbox-fuzz-');
    const socketPath = join(dir, 'kernel.sock');
    const child = adopt(
      spawn(
        process.execPath,
        [
          CLI,
          '--socket',
          socketPath,
          'daemon',
          '--max-message-size',
          String(config.maxMessageSize),
          '--memory-budget',
          String(config.memoryBudget),
          ...(config.cluster === undefined
            ? []
            : [
                '--cluster',
                config.cluster.servers,
                '--node',
                config.cluster.node,
                '--cluster-name',
                config.cluster.name,
              ]),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const k = new KernelProcess(child, socketPath, dir);
    await Promise.race([
      waitFor(() => k.stdoutText.includes('listening on'), 15_000, 'the daemon to listen'),
      k.exit.then(({ code }) => {
        throw new Error(`the daemon exited early with ${code}: ${k.stderrText}`);
      }),
    ]);
    return k;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderr(): string {
    return this.stderrText;
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exited) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    const r = await this.exit;
    clearTimeout(timer);
    rmSync(this.dir, { recursive: true, force: true });
    return r;
  }
}

// ---------------------------------------------------------------- the pair

export class PairProcess {
  private stderrText = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited = false;
  stopping = false;
  sent = 0;
  received = 0;
  retries = 0;
  /** When the pair last reported a message more received (the harness's stall check resets it). */
  lastProgressAt = Date.now();
  done: Extract<PairReport, { type: 'done' }> | undefined;

  private constructor(
    readonly child: ChildProcess,
    onReport: (r: PairReport) => void,
  ) {
    child.stderr!.on('data', (d) => {
      if (this.stderrText.length < 64 * 1024) this.stderrText += d;
    });
    child.on('message', (r: PairReport) => {
      if (r.type === 'progress') {
        if (r.received !== this.received) this.lastProgressAt = Date.now();
        this.sent = r.sent;
        this.received = r.received;
        this.retries = r.retries;
      }
      if (r.type === 'done') this.done = r;
      onReport(r);
    });
    this.exit = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exited = true;
        resolve({ code, signal });
      }),
    );
  }

  /** `bSocketPath`: the receiving half connects to this (another node's) kernel instead. */
  static async start(
    socketPath: string,
    seed: number,
    onReport: (r: PairReport) => void,
    bSocketPath?: string,
  ): Promise<{ pair: PairProcess; ids: PairIds }> {
    const args = [PAIR_SCRIPT, socketPath, String(seed), ...(bSocketPath === undefined ? [] : [bSocketPath])];
    const child = adopt(
      spawn(process.execPath, args, {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      }),
    );
    let ready: Extract<PairReport, { type: 'ready' }> | undefined;
    const pair = new PairProcess(child, (r) => {
      if (r.type === 'ready') ready = r;
      else onReport(r);
    });
    await Promise.race([
      waitFor(() => ready !== undefined, 15_000, 'the pair to connect'),
      pair.exit.then(({ code }) => {
        throw new Error(`the pair exited early with ${code}: ${pair.stderr}`);
      }),
    ]);
    return { pair, ids: { targets: ready!.targets, pids: ready!.pids } };
  }

  get stderr(): string {
    return this.stderrText;
  }

  /** Stop sending, let it drain and report; resolves once it has exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.exited) this.child.send({ type: 'stop' } satisfies PairCommand);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exit;
    clearTimeout(timer);
  }

  kill(): void {
    this.stopping = true;
    if (!this.exited) this.child.kill('SIGKILL');
  }
}
