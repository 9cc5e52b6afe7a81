/**
 * worker_threads transport: one process, one thread per peer, a
 * MessageChannel per directed edge. `copy` posts a Uint8Array (structured
 * clone copies it); `transfer` copies the payload into a fresh ArrayBuffer
 * and transfers it (what a producer that builds each message does). There
 * is no native broadcast: fan-out posts to each receiver's port.
 * The host relays the runner's commands to every thread and answers READY /
 * CONNECTED / DONE once all threads have.
 * Usage: node dist/bench/compare/worker-host.js <cell-json>   (transport worker-copy | worker-transfer)
 */
import { fileURLToPath } from 'node:url';
import {
  isMainThread,
  MessageChannel,
  type MessagePort,
  parentPort,
  Worker,
  workerData,
} from 'node:worker_threads';
import { type CellSpec, readEvery } from './common.js';
import { type Control, type Link, runPeer } from './roles.js';

interface ThreadData {
  cell: CellSpec;
  index: number;
  inPorts: MessagePort[];
  outPorts: { target: number; port: MessagePort }[];
}

function portLink(d: ThreadData): Link {
  const transfer = d.cell.transport === 'worker-transfer';
  const out = new Map(d.outPorts.map((o) => [o.target, o.port]));
  return {
    async listen(onMessage) {
      for (const p of d.inPorts) {
        p.on('message', (m: ArrayBuffer | Uint8Array) => {
          readEvery(m);
          onMessage(m.byteLength);
        });
      }
    },
    async connect() {},
    prepare(size) {
      const u = new Uint8Array(size); // never a view on a pooled buffer: cloning would copy the pool
      for (let i = 0; i < size; i++) u[i] = 0x61 + (i % 26);
      return u;
    },
    send(target, payload) {
      const port = out.get(target)!;
      if (transfer) {
        const u = payload as Uint8Array;
        const ab = new ArrayBuffer(u.byteLength);
        new Uint8Array(ab).set(u);
        port.postMessage(ab, [ab]);
      } else port.postMessage(payload);
      return undefined;
    },
    async close() {
      for (const p of d.inPorts) p.close();
      for (const p of out.values()) p.close();
    },
  };
}

function threadControl(): Control {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  parentPort!.on('message', (cmd: string) => {
    seen.push(cmd);
    wake?.();
  });
  return {
    send: (line) => parentPort!.postMessage(line),
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

async function host(cell: CellSpec): Promise<void> {
  const n = cell.peers.length;
  const inPorts: MessagePort[][] = Array.from({ length: n }, () => []);
  const outPorts: { target: number; port: MessagePort }[][] = Array.from({ length: n }, () => []);
  for (const p of cell.peers) {
    for (const t of p.targets) {
      const ch = new MessageChannel();
      outPorts[p.index]!.push({ target: t, port: ch.port1 });
      inPorts[t]!.push(ch.port2);
    }
  }
  const counts = new Map<string, number>();
  const workers = cell.peers.map((p) => {
    const data: ThreadData = {
      cell,
      index: p.index,
      inPorts: inPorts[p.index]!,
      outPorts: outPorts[p.index]!,
    };
    const w = new Worker(fileURLToPath(import.meta.url), {
      workerData: data,
      transferList: [...data.inPorts, ...data.outPorts.map((o) => o.port)],
    });
    w.on('message', (line: string) => {
      if (line.startsWith('RESULT ') || line.startsWith('ERROR ')) {
        process.stdout.write(`${line}\n`);
        return;
      }
      const c = (counts.get(line) ?? 0) + 1;
      counts.set(line, c);
      if (c === n) process.stdout.write(`${line}\n`);
    });
    w.on('error', (e) => process.stdout.write(`ERROR thread ${p.index}: ${String(e)}\n`));
    return w;
  });
  let partial = '';
  process.stdin.setEncoding('utf8');
  const relay = (cmd: string): void => {
    for (const w of workers) w.postMessage(cmd);
  };
  process.stdin.on('data', (d: string) => {
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) relay(l);
  });
  process.stdin.on('end', () => relay('EXIT'));
  await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
  process.exit(0);
}

if (isMainThread) {
  await host(JSON.parse(process.argv[2]!) as CellSpec);
} else {
  const d = workerData as ThreadData;
  await runPeer(d.cell, d.cell.peers[d.index]!, async () => portLink(d), threadControl());
  process.exit(0);
}
