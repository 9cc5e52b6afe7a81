/**
 * Ping-pong round trip between two processes over one shared segment.
 * Run: node dist/bench/shm-pingpong.js [rounds]
 * Scenarios: pure spinning on a word; futex park every time (no spin), with
 * both sides blocking (futex) or parking via the async waiter thread
 * (futex-async);
 * Semaphore.waitSync (spin then park); Semaphore.wait (async, event loop free).
 * Prints the median and p10/p90 round trip in µs per scenario.
 */
import { spawn } from 'node:child_process';
import { futexWaitAsync, futexWaitSync, futexWake } from '../src/shm/futex.js';
import { Segment } from '../src/shm/segment.js';
import { Semaphore } from '../src/shm/semaphore.js';

const PING = 0;
const PONG = 16;
const SEM_PING = 64;
const SEM_PONG = 128;
const SCENARIOS = ['spin', 'futex', 'futex-async', 'semaphore-sync', 'semaphore-async'] as const;
type Scenario = (typeof SCENARIOS)[number];

async function answer(scenario: Scenario, name: string, rounds: number): Promise<void> {
  const seg = Segment.open(name);
  const w = new Int32Array(seg.buffer);
  const ping = new Semaphore(seg.buffer, SEM_PING);
  const pong = new Semaphore(seg.buffer, SEM_PONG);
  for (let i = 1; i <= rounds; i++) {
    switch (scenario) {
      case 'spin':
        while (Atomics.load(w, PING / 4) !== i);
        Atomics.store(w, PONG / 4, i);
        break;
      case 'futex':
        while (Atomics.load(w, PING / 4) !== i) futexWaitSync(w, PING / 4, i - 1);
        Atomics.store(w, PONG / 4, i);
        futexWake(w, PONG / 4, 1);
        break;
      case 'futex-async':
        while (Atomics.load(w, PING / 4) !== i) await futexWaitAsync(w, PING / 4, i - 1);
        Atomics.store(w, PONG / 4, i);
        futexWake(w, PONG / 4, 1);
        break;
      case 'semaphore-sync':
        ping.waitSync();
        pong.post();
        break;
      case 'semaphore-async':
        await ping.wait();
        pong.post();
        break;
    }
  }
}

async function ask(scenario: Scenario, seg: Segment, rounds: number): Promise<number[]> {
  const w = new Int32Array(seg.buffer);
  const ping = new Semaphore(seg.buffer, SEM_PING);
  const pong = new Semaphore(seg.buffer, SEM_PONG);
  const samples: number[] = [];
  for (let i = 1; i <= rounds; i++) {
    const t0 = process.hrtime.bigint();
    switch (scenario) {
      case 'spin':
        Atomics.store(w, PING / 4, i);
        while (Atomics.load(w, PONG / 4) !== i);
        break;
      case 'futex':
        Atomics.store(w, PING / 4, i);
        futexWake(w, PING / 4, 1);
        while (Atomics.load(w, PONG / 4) !== i) futexWaitSync(w, PONG / 4, i - 1);
        break;
      case 'futex-async':
        Atomics.store(w, PING / 4, i);
        futexWake(w, PING / 4, 1);
        while (Atomics.load(w, PONG / 4) !== i) await futexWaitAsync(w, PONG / 4, i - 1);
        break;
      case 'semaphore-sync':
        ping.post();
        pong.waitSync();
        break;
      case 'semaphore-async':
        ping.post();
        await pong.wait();
        break;
    }
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return samples;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

async function main(): Promise<void> {
  const [role, scenario, name, roundsArg] = process.argv.slice(2);
  if (role === 'child') return answer(scenario as Scenario, name as string, Number(roundsArg));
  const rounds = Number(role ?? 20000);
  console.log(`node ${process.version}, ${rounds} round trips per scenario`);
  for (const s of SCENARIOS) {
    const segName = `ipcbox-bench-${process.pid}-${s}`;
    const seg = Segment.create(segName, { size: 4096 });
    Semaphore.init(seg.buffer, SEM_PING, 0);
    Semaphore.init(seg.buffer, SEM_PONG, 0);
    try {
      const child = spawn(
        process.execPath,
        [new URL(import.meta.url).pathname, 'child', s, segName, String(rounds)],
        {
          stdio: 'inherit',
        },
      );
      const exited = new Promise((resolve) => child.on('exit', resolve));
      const samples = (await ask(s, seg, rounds)).slice(Math.floor(rounds / 10)).sort((a, b) => a - b);
      await exited;
      console.log(
        `${s.padEnd(16)} median ${pct(samples, 0.5).toFixed(1)} µs  p10 ${pct(samples, 0.1).toFixed(1)}  p90 ${pct(samples, 0.9).toFixed(1)}`,
      );
    } finally {
      Segment.unlink(segName);
    }
  }
}

await main();
