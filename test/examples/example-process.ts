/**
 * Runs a compiled example (`node dist/examples/<name>.js ...args`) to
 * completion as a child process and collects its stdout lines. The example
 * embeds its own kernel unless IPCBOX_SOCKET is set, so it is removed from
 * the child's environment. A run that overstays `timeoutMs` is killed
 * (with its process group's children left to notice the kernel is gone).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/kernel-harness.js';

export interface ExampleRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
  stderr: string;
}

export function runExample(name: string, args: string[] = [], timeoutMs = 60_000): Promise<ExampleRun> {
  const env = { ...process.env };
  delete env.IPCBOX_SOCKET;
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'examples', `${name}.js`), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, lines: stdout.split('\n').filter((l) => l !== ''), stderr });
    });
  });
}

/** Lines a participant printed, without the `[name] ` prefix the example adds. */
export function linesOf(run: ExampleRun, participant: string): string[] {
  const prefix = `[${participant}] `;
  return run.lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}
