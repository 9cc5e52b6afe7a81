/**
 * The transport-independent half of a peer: the roles (send, recv, ping,
 * echo, ring) written against a small `Link` interface, and the control
 * sequence every peer follows:
 *
 *   listen (bind/subscribe/create)  → READY
 *   CONNECT: open the sending side  → CONNECTED
 *   START: run the role             → RESULT <json> (measuring peers), DONE
 *   EXIT: close and exit
 *
 * Only complete phases are acknowledged, so a sender never starts before
 * every receiver is listening and every sender is connected.
 */
import {
  type CellSpec,
  END_SIZE,
  now,
  type PeerResult,
  type PeerSpec,
  percentile,
  type RingResult,
  type RttResult,
  type SentResult,
  type StreamResult,
  yieldToLoop,
} from './common.js';

/** One peer's view of a transport. Payloads are opaque values made by `prepare`. */
export interface Link {
  /** Receiving side (bind, listen, subscribe, create a mailbox); `onMessage` gets each message's length. */
  listen(onMessage: (length: number) => void): Promise<void>;
  /** Sending side: connect to `me.targets` (broadcast receivers: attach to their source). */
  connect(): Promise<void>;
  prepare(size: number): unknown;
  /** Send to one peer; a returned promise is awaited before the next send (backpressure). */
  send(target: number, payload: unknown): undefined | Promise<unknown>;
  /** Native one-to-many send to every target (fan-out with `broadcast`). */
  publish?(payload: unknown): undefined | Promise<unknown>;
  /** Best effort: wait until what was sent has left this process. */
  flush?(): Promise<void>;
  close(): Promise<void>;
}

export type LinkFactory = (cell: CellSpec, me: PeerSpec) => Promise<Link>;

export interface Control {
  send(line: string): void;
  expect(word: string): Promise<void>;
}

interface RoleRun {
  onMessage(length: number): void;
  run(): Promise<PeerResult | undefined>;
}

const IDLE_MS = 2000;

function makeRole(cell: CellSpec, me: PeerSpec, link: Link): RoleRun {
  switch (me.role) {
    case 'send':
      return sender(cell, me, link);
    case 'recv':
      return receiver(cell, me);
    case 'ping':
      return pinger(cell, me, link);
    case 'echo':
      return echoer(cell, me, link);
    case 'ring':
      return ringMember(cell, me, link);
  }
}

function sender(cell: CellSpec, me: PeerSpec, link: Link): RoleRun {
  return {
    onMessage() {},
    async run() {
      const data = link.prepare(cell.size);
      const end = link.prepare(END_SIZE);
      const publish = cell.broadcast && link.publish !== undefined ? link.publish.bind(link) : undefined;
      const sendAll = async (p: unknown): Promise<void> => {
        if (publish !== undefined) {
          const w = publish(p);
          if (w !== undefined) await w;
          return;
        }
        for (const t of me.targets) {
          const w = link.send(t, p);
          if (w !== undefined) await w;
        }
      };
      const total = cell.warmup + cell.count;
      const deadline = now() + cell.capMs;
      let k = 1;
      for (; k <= total; k++) {
        if (publish !== undefined) {
          const w = publish(data);
          if (w !== undefined) await w;
        } else {
          for (const t of me.targets) {
            const w = link.send(t, data);
            if (w !== undefined) await w;
          }
        }
        // Let I/O run now and then (every transport alike) and respect the time cap.
        if ((k & 255) === 0) {
          await yieldToLoop();
          if (now() > deadline) break;
        }
      }
      await sendAll(end);
      await link.flush?.();
      const sent: SentResult = { kind: 'sent', peer: me.index, messages: Math.min(k, total) };
      return sent;
    },
  };
}

function receiver(cell: CellSpec, me: PeerSpec): RoleRun {
  const senders = me.sources.length;
  const warm = cell.warmup * senders;
  const windows: { messages: number; seconds: number }[] = [];
  const windowMs = cell.windowMs;
  let count = 0;
  let ends = 0;
  let windowStart = 0;
  let inWindow = 0;
  let lastData = 0;
  let firstData = 0;
  // Until the first measured message: it starts the first window (at once with no warm-up).
  let warming = true;
  let lastAny = now();
  let finish: ((idle: boolean) => void) | undefined;
  const finished = new Promise<boolean>((r) => {
    finish = r;
  });
  return {
    onMessage(length) {
      const t = now();
      lastAny = t;
      if (length === END_SIZE) {
        if (++ends === senders) finish?.(false);
        return;
      }
      count++;
      lastData = t;
      if (count === 1) firstData = t;
      if (warming) {
        // Warm-up ends at its count, or after a quarter of the time cap for a transport too slow to
        // reach that count before its senders' cap runs out (else no window would ever be measured).
        if (count < warm && t - firstData < cell.capMs / 4) return;
        warming = false;
        windowStart = t;
        if (count <= warm) return;
      }
      inWindow++;
      if (t - windowStart >= windowMs) {
        windows.push({ messages: inWindow, seconds: (t - windowStart) / 1000 });
        windowStart = t;
        inWindow = 0;
      }
    },
    async run() {
      lastAny = now();
      const timer = setInterval(() => {
        if (now() - lastAny > IDLE_MS + cell.capMs / 4) finish?.(true);
      }, 100);
      const idle = await finished;
      clearInterval(timer);
      const tail = lastData - windowStart;
      if (inWindow > 0 && tail > 0 && (windows.length === 0 || tail >= windowMs / 2)) {
        windows.push({ messages: inWindow, seconds: tail / 1000 });
      }
      const expected = senders * (cell.warmup + cell.count);
      const r: StreamResult = { kind: 'stream', peer: me.index, windows, received: count, expected, idle };
      return r;
    },
  };
}

function pinger(cell: CellSpec, me: PeerSpec, link: Link): RoleRun {
  let answer: (() => void) | undefined;
  return {
    onMessage() {
      const a = answer;
      answer = undefined;
      a?.();
    },
    async run() {
      const data = link.prepare(cell.size);
      const peer = me.targets[0]!;
      const round = (): Promise<void> =>
        new Promise<void>((resolve, reject) => {
          answer = resolve;
          const w = link.send(peer, data);
          if (w !== undefined) w.catch(reject);
        });
      let end = now() + cell.capMs;
      for (let i = 0; i < cell.warmup && now() < end; i++) await round();
      const reps: RttResult['reps'] = [];
      for (let r = 0; r < cell.reps; r++) {
        const samples: number[] = [];
        end = now() + cell.capMs;
        for (let i = 0; i < cell.window && now() < end; i++) {
          const t = now();
          await round();
          samples.push(now() - t);
        }
        const s = Float64Array.from(samples).sort();
        reps.push({
          rounds: s.length,
          p50us: percentile(s, 0.5) * 1000,
          p99us: percentile(s, 0.99) * 1000,
          p999us: percentile(s, 0.999) * 1000,
        });
      }
      const w = link.send(peer, link.prepare(END_SIZE));
      if (w !== undefined) await w;
      await link.flush?.();
      const result: RttResult = { kind: 'rtt', peer: me.index, reps };
      return result;
    },
  };
}

function echoer(cell: CellSpec, me: PeerSpec, link: Link): RoleRun {
  let data: unknown;
  let done: (() => void) | undefined;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const peer = me.targets[0]!;
  return {
    onMessage(length) {
      if (length === END_SIZE) {
        done?.();
        return;
      }
      data ??= link.prepare(cell.size);
      const w = link.send(peer, data);
      if (w !== undefined) w.catch(() => {});
    },
    async run() {
      await finished;
      return undefined;
    },
  };
}

function ringMember(cell: CellSpec, me: PeerSpec, link: Link): RoleRun {
  const next = me.targets[0]!;
  const n = cell.peers.length;
  let token: unknown;
  let end: unknown;
  let back: (() => void) | undefined;
  let done: (() => void) | undefined;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const forward = (p: unknown): void => {
    const w = link.send(next, p);
    if (w !== undefined) w.catch(() => {});
  };
  return {
    onMessage(length) {
      if (me.index === 0) {
        if (length === END_SIZE) done?.();
        else {
          const b = back;
          back = undefined;
          b?.();
        }
        return;
      }
      token ??= link.prepare(cell.size);
      end ??= link.prepare(END_SIZE);
      if (length === END_SIZE) {
        forward(end);
        done?.();
      } else forward(token);
    },
    async run() {
      if (me.index !== 0) {
        await finished;
        return undefined;
      }
      token = link.prepare(cell.size);
      const lap = (): Promise<void> =>
        new Promise<void>((resolve) => {
          back = resolve;
          forward(token);
        });
      let stop = now() + cell.capMs;
      for (let i = 0; i < cell.warmup && now() < stop; i++) await lap();
      const reps: RingResult['reps'] = [];
      for (let r = 0; r < cell.reps; r++) {
        stop = now() + cell.capMs;
        const t = now();
        let laps = 0;
        while (laps < cell.window && now() < stop) {
          await lap();
          laps++;
        }
        reps.push({ hops: laps * n, seconds: (now() - t) / 1000 });
      }
      forward(link.prepare(END_SIZE));
      await finished;
      const result: RingResult = { kind: 'ring', peer: 0, reps, hopsPerLap: n };
      return result;
    },
  };
}

/** The control sequence of one peer (see the header). */
export async function runPeer(
  cell: CellSpec,
  me: PeerSpec,
  factory: LinkFactory,
  ctl: Control,
): Promise<void> {
  const link = await factory(cell, me);
  const role = makeRole(cell, me, link);
  await link.listen((length) => role.onMessage(length));
  ctl.send('READY');
  await ctl.expect('CONNECT');
  await link.connect();
  ctl.send('CONNECTED');
  await ctl.expect('START');
  const result = await role.run();
  if (result !== undefined) ctl.send(`RESULT ${JSON.stringify(result)}`);
  ctl.send('DONE');
  await ctl.expect('EXIT');
  await link.close();
}

/** Control over a line protocol (stdin commands, stdout answers). */
export function stdioControl(): Control {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  let partial = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    seen.push(...lines);
    wake?.();
  });
  process.stdin.on('end', () => {
    seen.push('EXIT');
    wake?.();
  });
  return {
    send(line) {
      process.stdout.write(`${line}\n`);
    },
    async expect(word) {
      for (;;) {
        const i = seen.indexOf(word);
        if (i >= 0) {
          seen.splice(i, 1);
          return;
        }
        if (seen.includes('EXIT')) throw new Error(`told to exit while waiting for ${word}`);
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    },
  };
}
