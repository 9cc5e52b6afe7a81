/**
 * Worker threads are processes too: each worker connect()s with its own name and is a process
 * like any other — it sends and receives by name, can be monitored, and when it is terminated its
 * monitors see it `lost`. Nothing here is specific to threads; the same code works with the
 * workers as separate OS processes.
 *
 * The main thread starts N workers, waits for each by name (no startup race), sends each a few
 * numbers, and collects the squares from whoever answers (message.sender says who). Then it
 * terminates one worker and its monitor reports the exit.
 *
 * Run: node dist/examples/worker-threads.js [workers=3] [jobs=4]
 */
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { connect, type ExitEvent } from '../src/index.js';
import { withKernel } from './example-kernel.js';

interface Job {
  n: number;
}
interface Answer {
  n: number;
  square: number;
}

async function worker(socketPath: string, name: string): Promise<void> {
  const me = await connect({ socketPath, name });
  for (;;) {
    const m = await me.receive({ from: 'boss' });
    const job = m.data as Job | 'stop';
    if (job === 'stop') break;
    await me.send('boss', { n: job.n, square: job.n * job.n } satisfies Answer);
  }
  await me.close();
}

async function boss(socketPath: string, workers: number, jobs: number): Promise<void> {
  const me = await connect({ socketPath, name: 'boss' });
  const url = new URL(import.meta.url);
  const threads = Array.from(
    { length: workers },
    (_, i) => new Worker(url, { workerData: { socketPath, name: `worker-${i + 1}` } }),
  );
  const exits: ExitEvent[] = [];
  me.on('exit', (e) => exits.push(e));
  for (let i = 1; i <= workers; i++) {
    const info = await me.waitForProcess(`worker-${i}`, { timeout: 10_000 });
    await me.monitor(info.name);
    console.log(`${info.name} is up`);
  }
  for (let j = 1; j <= jobs; j++)
    for (let i = 1; i <= workers; i++) await me.send(`worker-${i}`, { n: 10 * i + j } satisfies Job);
  let total = 0;
  for (let k = 0; k < workers * jobs; k++) {
    const m = await me.receive({ timeout: 10_000 });
    const a = m.data as Answer;
    total += a.square;
    console.log(`${m.sender} squared ${a.n} = ${a.square}`);
  }
  // One worker is told to stop (a normal exit), the last one is terminated under its feet (lost).
  for (let i = 1; i < workers; i++) await me.send(`worker-${i}`, 'stop');
  await threads[workers - 1]?.terminate();
  while (exits.length < workers) await new Promise((r) => setTimeout(r, 10));
  for (const e of exits.sort((x, y) => x.process.localeCompare(y.process)))
    console.log(`${e.process} exited: ${e.reason}`);
  console.log(`all ${workers * jobs} answers in, sum of squares ${total}`);
  await Promise.all(threads.map((t) => t.terminate()));
  await me.close();
}

if (isMainThread) {
  const workers = Number(process.argv[2] ?? 3);
  const jobs = Number(process.argv[3] ?? 4);
  await withKernel((socketPath) => boss(socketPath, workers, jobs));
} else {
  const { socketPath, name } = workerData as { socketPath: string; name: string };
  await worker(socketPath, name);
}
