/**
 * child_process IPC transport (`cp-json`, `cp-advanced`): the runner starts
 * this host, which is peer 0 and forks the other peers with an IPC channel
 * of the cell's serialization. The channel only joins a parent to its
 * children, so:
 * - star cells (one-way, round trip, fan-out, fan-in) have the host as the
 *   hub: peer 0 is always the sender / pinger / fan-in receiver;
 * - the ring is a chain (each process forks the next; the token goes down
 *   and back up): 2(n-1) hops per lap instead of n; the figure is per hop.
 * JSON carries the payload as a string of `size` ASCII characters (a Buffer
 * would become a JSON array of numbers); 'advanced' carries a Buffer.
 * Sends wait on their callbacks once 1 MiB is in flight (backpressure).
 * Commands from the runner travel down the IPC channels as `{ctl}`; answers
 * come back as `{line}` and the host answers the runner once all have.
 * Usage: node dist/bench/compare/cp-host.js host <cell-json>
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type CellSpec, END_SIZE, now, payloadOf, type RingResult } from './common.js';
import { type Control, type Link, runPeer, stdioControl } from './roles.js';

const IN_FLIGHT_BYTES = 1024 * 1024;

type Channel = {
  send(m: unknown, cb?: (e: Error | null) => void): boolean;
  on(ev: 'message', f: (m: unknown) => void): unknown;
};

const lengthOf = (m: unknown): number => (typeof m === 'string' ? m.length : (m as Uint8Array).byteLength);
const isCtl = (m: unknown): m is { ctl?: string; line?: string } =>
  typeof m === 'object' && m !== null && ('ctl' in m || 'line' in m);

function prepare(cell: CellSpec, size: number): unknown {
  if (cell.transport === 'cp-json')
    return 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(size / 26)).slice(0, size);
  return payloadOf(size);
}

/** Sending with a bound on bytes handed to `send` but not yet written. */
function sender(cell: CellSpec) {
  const limit = Math.max(8, Math.floor(IN_FLIGHT_BYTES / Math.max(cell.size, 1)));
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const written = (): void => {
    inFlight--;
    if (wake !== undefined && inFlight <= limit / 2) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  return {
    send(ch: Channel, m: unknown): undefined | Promise<void> {
      inFlight++;
      ch.send(m, written);
      if (inFlight < limit) return undefined;
      return new Promise<void>((r) => {
        wake = r;
      });
    },
    async flush(): Promise<void> {
      while (inFlight > 0) await new Promise<void>((r) => setImmediate(r));
    },
  };
}

function forkPeer(cell: CellSpec, index: number, mode: 'star' | 'chain'): ChildProcess {
  return fork(fileURLToPath(import.meta.url), [mode, String(index), JSON.stringify(cell)], {
    serialization: cell.transport === 'cp-json' ? 'json' : 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

// ------------------------------------------------------------ star

function starLink(cell: CellSpec, channels: Map<number, Channel>): Link {
  const s = sender(cell);
  return {
    async listen(onMessage) {
      for (const ch of channels.values()) {
        ch.on('message', (m) => {
          if (!isCtl(m)) onMessage(lengthOf(m));
        });
      }
    },
    async connect() {},
    prepare: (size) => prepare(cell, size),
    send: (target, payload) => s.send(channels.get(target)!, payload),
    flush: () => s.flush(),
    async close() {},
  };
}

async function starHost(cell: CellSpec): Promise<void> {
  const children = new Map<number, ChildProcess>();
  for (const p of cell.peers.slice(1)) children.set(p.index, forkPeer(cell, p.index, 'star'));
  const stdio = stdioControl();
  const counts = new Map<string, number>();
  const n = cell.peers.length;
  const answer = (line: string): void => {
    if (line.startsWith('RESULT ') || line.startsWith('ERROR ')) {
      stdio.send(line);
      return;
    }
    const c = (counts.get(line) ?? 0) + 1;
    counts.set(line, c);
    if (c === n) stdio.send(line);
  };
  for (const ch of children.values()) {
    ch.on('message', (m) => {
      if (isCtl(m) && m.line !== undefined) answer(m.line);
    });
  }
  const ctl: Control = {
    send: answer,
    async expect(word) {
      await stdio.expect(word);
      for (const ch of children.values()) if (ch.connected) ch.send({ ctl: word });
    },
  };
  await runPeer(cell, cell.peers[0]!, async () => starLink(cell, children as Map<number, Channel>), ctl);
  await Promise.all(
    [...children.values()].map((c) => new Promise((r) => (c.exitCode !== null ? r(0) : c.once('exit', r)))),
  );
}

function ipcControl(): Control {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  process.on('message', (m) => {
    if (isCtl(m) && m.ctl !== undefined) {
      seen.push(m.ctl);
      wake?.();
    }
  });
  process.on('disconnect', () => {
    seen.push('EXIT');
    wake?.();
  });
  return {
    send: (line) => process.send!({ line }),
    async expect(word) {
      for (;;) {
        const i = seen.indexOf(word);
        if (i >= 0) {
          seen.splice(i, 1);
          return;
        }
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    },
  };
}

async function starChild(cell: CellSpec, index: number): Promise<void> {
  const parent = new Map<number, Channel>([[0, process as unknown as Channel]]);
  await runPeer(cell, cell.peers[index]!, async () => starLink(cell, parent), ipcControl());
  process.disconnect();
}

// ------------------------------------------------------------ chain (ring)

/**
 * One process of the chain. Commands come from `up` (stdin for the root),
 * answers go up once this process and the rest of the chain below have answered.
 */
async function chainNode(cell: CellSpec, index: number): Promise<void> {
  const n = cell.peers.length;
  const root = index === 0;
  const child = index + 1 < n ? forkPeer(cell, index + 1, 'chain') : undefined;
  const down = child as unknown as Channel | undefined;
  const up: Channel | undefined = root ? undefined : (process as unknown as Channel);
  const stdio = root ? stdioControl() : undefined;
  const answerUp = (line: string): void => {
    if (stdio !== undefined) stdio.send(line);
    else up!.send({ line });
  };
  const token = prepare(cell, cell.size);
  const end = prepare(cell, END_SIZE);
  let back: (() => void) | undefined;
  let ended: (() => void) | undefined;
  const endSeen = new Promise<void>((r) => {
    ended = r;
  });
  // Data from above: pass it down, or back up at the end of the chain.
  const fromUp = (m: unknown): void => {
    if (down !== undefined) down.send(m);
    else up!.send(m);
    if (child === undefined && lengthOf(m) === END_SIZE) ended?.();
  };
  // Data from below: pass it up (or, at the root, a lap is complete).
  const fromDown = (m: unknown): void => {
    if (root) {
      if (lengthOf(m) === END_SIZE) ended?.();
      else {
        const b = back;
        back = undefined;
        b?.();
      }
      return;
    }
    up!.send(m);
    if (lengthOf(m) === END_SIZE) ended?.();
  };
  const childAnswers: string[] = [];
  let childWake: (() => void) | undefined;
  child?.on('message', (m) => {
    if (isCtl(m)) {
      if (m.line !== undefined) {
        if (m.line.startsWith('ERROR ')) answerUp(m.line);
        childAnswers.push(m.line);
        childWake?.();
      }
    } else fromDown(m);
  });
  const childSaid = async (word: string): Promise<void> => {
    if (child === undefined) return;
    while (!childAnswers.includes(word)) {
      await new Promise<void>((r) => {
        childWake = r;
      });
    }
  };
  const commands: string[] = [];
  let cmdWake: (() => void) | undefined;
  if (!root) {
    process.on('message', (m) => {
      if (isCtl(m) && m.ctl !== undefined) {
        commands.push(m.ctl);
        cmdWake?.();
      } else if (!isCtl(m)) fromUp(m);
    });
  }
  const expect = async (word: string): Promise<void> => {
    if (stdio !== undefined) await stdio.expect(word);
    else {
      while (!commands.includes(word)) {
        await new Promise<void>((r) => {
          cmdWake = r;
        });
      }
    }
    down?.send({ ctl: word });
  };
  await childSaid('READY');
  answerUp('READY');
  await expect('CONNECT');
  await childSaid('CONNECTED');
  answerUp('CONNECTED');
  await expect('START');
  if (root) {
    const lap = (): Promise<void> =>
      new Promise<void>((resolve) => {
        back = resolve;
        down!.send(token);
      });
    let stop = now() + cell.capMs;
    for (let i = 0; i < cell.warmup && now() < stop; i++) await lap();
    const reps: RingResult['reps'] = [];
    const hopsPerLap = 2 * (n - 1);
    for (let r = 0; r < cell.reps; r++) {
      stop = now() + cell.capMs;
      const t = now();
      let laps = 0;
      while (laps < cell.window && now() < stop) {
        await lap();
        laps++;
      }
      reps.push({ hops: laps * hopsPerLap, seconds: (now() - t) / 1000 });
    }
    down!.send(end);
    await endSeen;
    const result: RingResult = { kind: 'ring', peer: 0, reps, hopsPerLap };
    answerUp(`RESULT ${JSON.stringify(result)}`);
  } else {
    await endSeen;
  }
  await childSaid('DONE');
  answerUp('DONE');
  await expect('EXIT');
  if (child !== undefined) await new Promise((r) => (child.exitCode !== null ? r(0) : child.once('exit', r)));
  if (!root) process.disconnect();
}

const mode = process.argv[2];
try {
  if (mode === 'host') {
    const cell = JSON.parse(process.argv[3]!) as CellSpec;
    if (cell.scenario === 'ring') await chainNode(cell, 0);
    else await starHost(cell);
  } else {
    const index = Number(process.argv[3]);
    const cell = JSON.parse(process.argv[4]!) as CellSpec;
    if (mode === 'chain') await chainNode(cell, index);
    else await starChild(cell, index);
  }
  process.exit(0);
} catch (e) {
  const line = `ERROR ${String((e as Error).stack ?? e).replace(/\n/g, ' | ')}`;
  if (process.send !== undefined) process.send({ line });
  else process.stdout.write(`${line}\n`);
  process.exit(1);
}
