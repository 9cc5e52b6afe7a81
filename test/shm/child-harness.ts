/**
 * Spawns fixtures/shm-child.js as real processes or worker threads and lets
 * tests wait for their output lines with a deadline. `stopAll` kills anything
 * still running; call it from `after`/`finally` so failures leave no orphans.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';

export const CHILD_SCRIPT = new URL('./fixtures/shm-child.js', import.meta.url);

export interface Child {
  readonly lines: string[];
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  waitForLine(line: string, timeoutMs?: number): Promise<void>;
  kill(): void;
}

const running = new Set<Child>();

function track(
  lines: string[],
  exited: Promise<number | null>,
  kill: () => void,
  onLine: (cb: () => void) => void,
): Child {
  const child: Child = {
    lines,
    exited,
    kill,
    waitForLine(line, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no line "${line}" within ${timeoutMs} ms; got ${JSON.stringify(lines)}`)),
          timeoutMs,
        );
        const check = (): void => {
          if (lines.includes(line)) {
            clearTimeout(timer);
            resolve();
          }
        };
        onLine(check);
        check();
        void exited.then(() => {
          if (!lines.includes(line)) {
            clearTimeout(timer);
            reject(new Error(`child exited before "${line}"; got ${JSON.stringify(lines)}`));
          }
        });
      });
    },
  };
  running.add(child);
  void exited.finally(() => running.delete(child));
  return child;
}

export function spawnChild(args: string[]): Child {
  const proc: ChildProcess = spawn(process.execPath, [CHILD_SCRIPT.pathname, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const listeners: Array<() => void> = [];
  let partial = '';
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const l of listeners) l();
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return track(
    lines,
    exited,
    () => proc.kill('SIGKILL'),
    (cb) => listeners.push(cb),
  );
}

export function startWorker(args: string[]): Child {
  const worker = new Worker(CHILD_SCRIPT, { workerData: args });
  const lines: string[] = [];
  const listeners: Array<() => void> = [];
  worker.on('message', (line: string) => {
    lines.push(line);
    for (const l of listeners) l();
  });
  const exited = new Promise<number | null>((resolve) => {
    worker.on('error', () => undefined);
    worker.on('exit', (code) => resolve(code));
  });
  return track(
    lines,
    exited,
    () => void worker.terminate(),
    (cb) => listeners.push(cb),
  );
}

export async function stopAll(): Promise<void> {
  const all = [...running];
  for (const c of all) c.kill();
  await Promise.all(all.map((c) => c.exited));
}

let seq = 0;
/** A segment name unique to this test process. */
export function uniqueName(tag: string): string {
  seq += 1;
  return `ipcbox-test-${tag}-${process.pid}-${seq}`;
}
