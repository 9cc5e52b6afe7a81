/**
 * Shared-memory bench peer: one side of one measurement, run as a separate
 * node process (`node dist/bench/shm/peer.js <role> <config-json>`) or, for
 * the in-process scenarios, as a worker thread of a `threads-*` process
 * (workerData = { role, config, sab }). The measuring side prints one line
 * `RESULT <json>` (a worker posts it to its parent instead).
 *
 * One-way rules (every transport): the sender streams for warmupMs, sends a
 * 1-byte START marker, streams for measureMs, then sends a 1-byte END marker;
 * the receiver counts data messages between the markers on its own clock.
 * Round trips: the pinger times batches of rounds (per-round clock reads
 * would cost as much as a spinning round trip) and reports the median and
 * p10/p90 of the per-round averages of the batches; for parked round trips,
 * which take microseconds, every round is timed.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ShmMailbox, type ShmMailboxOptions, type ShmQueueKind } from '../../src/backends/shm/shm-mailbox.js';
import { connect } from '../../src/index.js';
import { futexWaitSync, futexWake } from '../../src/shm/futex.js';
import { Ring, RingConsumer, RingProducer } from '../../src/shm/ring.js';
import { Segment } from '../../src/shm/segment.js';
import { Semaphore } from '../../src/shm/semaphore.js';

export interface PeerConfig {
  /** Segment holding the structures (process scenarios). */
  segment?: string;
  /** Ring offsets: the one-way ring or the ping ring, and the pong ring. */
  ring?: number;
  pongRing?: number;
  size: number;
  warmupMs: number;
  measureMs: number;
  rounds?: number;
  warmupRounds?: number;
  /** Variant of the role, e.g. 'per-message' / 'batch-publish', 'futex' / 'sem-sync'. */
  style?: string;
  socketPath?: string;
  mailbox?: string;
  /** By-map scenarios: where the slots start, how many, each `size` bytes. */
  slots?: number;
  slotBase?: number;
}

export interface OneWay {
  kind: 'one-way';
  messages: number;
  seconds: number;
  msgsPerSec: number;
  bytesPerSec: number;
}

export interface RoundTrip {
  kind: 'round-trip';
  rounds: number;
  p50us: number;
  p10us: number;
  p90us: number;
}

export type PeerResult = OneWay | RoundTrip;

const START = 1;
const END = 2;
const START_MARK = new Uint8Array([START]);
const END_MARK = new Uint8Array([END]);
/** Clock reads are ~40 ns: check the time only every this many messages. */
const CLOCK_EVERY = 1024;

function emit(result: PeerResult): void {
  if (parentPort !== null) parentPort.postMessage({ result });
  else process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

function ready(): void {
  if (parentPort !== null) parentPort.postMessage({ ready: true });
  else process.stdout.write('READY\n');
}

function payloadOf(size: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

/** Call `send` until `ms` have passed (checking the clock every CLOCK_EVERY sends). */
function streamSync(ms: number, send: () => void): void {
  const end = performance.now() + ms;
  do {
    for (let i = 0; i < CLOCK_EVERY; i++) send();
  } while (performance.now() < end);
}

async function streamAsync(ms: number, every: number, send: () => Promise<void>): Promise<void> {
  const end = performance.now() + ms;
  do {
    for (let i = 0; i < every; i++) await send();
  } while (performance.now() < end);
}

/** Counts data messages between START and END markers. */
class OneWayMeter {
  #t0 = 0;
  #count = 0;
  #counting = false;
  result: OneWay | undefined;
  constructor(readonly size: number) {}
  /** Feed one message; true once END was seen. */
  onMessage(length: number, first: number): boolean {
    if (length !== 1) {
      if (this.#counting) this.#count++;
      return false;
    }
    if (first === START) {
      this.#counting = true;
      this.#t0 = performance.now();
      return false;
    }
    const seconds = (performance.now() - this.#t0) / 1000;
    this.result = {
      kind: 'one-way',
      messages: this.#count,
      seconds,
      msgsPerSec: this.#count / seconds,
      bytesPerSec: (this.#count * this.size) / seconds,
    };
    return true;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

function roundTripOf(samplesUs: number[], rounds: number): RoundTrip {
  const s = [...samplesUs].sort((a, b) => a - b);
  return {
    kind: 'round-trip',
    rounds,
    p50us: percentile(s, 0.5),
    p10us: percentile(s, 0.1),
    p90us: percentile(s, 0.9),
  };
}

/** Run `round` warmup + rounds times, timing batches of `batch` rounds. */
function timeBatches(rounds: number, warmup: number, batch: number, round: () => void): RoundTrip {
  for (let i = 0; i < warmup; i++) round();
  const samples: number[] = [];
  for (let done = 0; done < rounds; done += batch) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) round();
    samples.push(Number(process.hrtime.bigint() - t0) / 1000 / batch);
  }
  return roundTripOf(samples, samples.length * batch);
}

// ---------------------------------------------------------------- SPSC ring

/**
 * A producer that publishes many records with one tail store, written
 * against the Ring layout documented in src/shm/ring.ts (tail at +64,
 * consumerParked at +68, head at +128, data at +256, 8-byte record headers,
 * -1 = padding to the end). It shows what a batch-write API on RingProducer
 * would reach; the ring's consumer reads it unchanged.
 */
class BatchPublisher {
  readonly #ctl: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #words: Int32Array;
  readonly #cap: number;
  #tail: number;
  #free = 0;
  constructor(buffer: SharedArrayBuffer, offset: number) {
    this.#ctl = new Int32Array(buffer, offset, 64);
    this.#cap = Atomics.load(this.#ctl, 1);
    this.#bytes = new Uint8Array(buffer, offset + 256, this.#cap);
    this.#words = new Int32Array(buffer, offset + 256, this.#cap / 4);
    this.#tail = Atomics.load(this.#ctl, 16) >>> 0;
  }
  /** Stage one record without publishing; false if there is no room. */
  stage(payload: Uint8Array): boolean {
    const cap = this.#cap;
    const need = 8 + ((payload.byteLength + 7) & ~7);
    let off = this.#tail & (cap - 1);
    const toEnd = cap - off;
    if (need > toEnd) {
      if (this.#free < toEnd + need) return false;
      this.#words[off >> 2] = -1;
      this.#tail = (this.#tail + toEnd) >>> 0;
      this.#free -= toEnd;
      off = 0;
    } else if (this.#free < need) {
      return false;
    }
    this.#words[off >> 2] = payload.byteLength;
    this.#words[(off >> 2) + 1] = 0;
    this.#bytes.set(payload, off + 8);
    this.#tail = (this.#tail + need) >>> 0;
    this.#free -= need;
    return true;
  }
  /** Refresh the free space from the consumer's head. */
  refresh(): void {
    this.#free = this.#cap - ((this.#tail - (Atomics.load(this.#ctl, 32) >>> 0)) >>> 0);
  }
  publish(): void {
    Atomics.store(this.#ctl, 16, this.#tail | 0);
    if (Atomics.load(this.#ctl, 17) !== 0) futexWake(this.#ctl, 16, 1);
  }
  /** Stage `n` copies (fewer if full), publish once; returns how many. */
  writeMany(payload: Uint8Array, n: number): number {
    this.refresh();
    let i = 0;
    while (i < n && this.stage(payload)) i++;
    if (i > 0) this.publish();
    return i;
  }
  writeOne(payload: Uint8Array): void {
    for (;;) {
      this.refresh();
      if (this.stage(payload)) {
        this.publish();
        return;
      }
    }
  }
}

const BATCH = 64;

function ringProducer(buffer: SharedArrayBuffer, c: PeerConfig): void {
  const payload = payloadOf(c.size);
  if (c.style === 'batch-publish') {
    const pub = new BatchPublisher(buffer, c.ring ?? 0);
    const send = (): void => {
      let left = BATCH;
      while (left > 0) left -= pub.writeMany(payload, left);
    };
    const every = Math.max(1, CLOCK_EVERY / BATCH);
    const run = (ms: number): void => {
      const end = performance.now() + ms;
      do {
        for (let i = 0; i < every; i++) send();
      } while (performance.now() < end);
    };
    run(c.warmupMs);
    pub.writeOne(START_MARK);
    run(c.measureMs);
    pub.writeOne(END_MARK);
    return;
  }
  const p = new RingProducer(buffer, c.ring ?? 0);
  const send = (m: Uint8Array): void => {
    while (!p.tryWrite(m));
  };
  streamSync(c.warmupMs, () => send(payload));
  send(START_MARK);
  streamSync(c.measureMs, () => send(payload));
  send(END_MARK);
}

function ringConsumer(buffer: SharedArrayBuffer, c: PeerConfig): void {
  const consumer = new RingConsumer(buffer, c.ring ?? 0);
  const meter = new OneWayMeter(c.size);
  let done = false;
  ready();
  if (c.style === 'per-message') {
    while (!done) {
      const m = consumer.tryRead();
      if (m !== null) done = meter.onMessage(m.byteLength, m[0] as number);
    }
  } else {
    const onRecord = (v: Uint8Array): void => {
      if (meter.onMessage(v.byteLength, v[0] as number)) done = true;
    };
    while (!done) consumer.readBatch(onRecord);
  }
  emit(meter.result as OneWay);
}

/** Ping over one ring, pong over the other, both sides spinning on try* calls. */
function ringPinger(buffer: SharedArrayBuffer, c: PeerConfig): void {
  const ping = new RingProducer(buffer, c.ring ?? 0);
  const pong = new RingConsumer(buffer, c.pongRing ?? 0);
  const payload = payloadOf(c.size);
  let got = 0;
  const onRecord = (): void => {
    got++;
  };
  const round = (): void => {
    while (!ping.tryWrite(payload));
    got = 0;
    while (got === 0) pong.readBatch(onRecord, 1);
  };
  const result = timeBatches(c.rounds ?? 100_000, c.warmupRounds ?? 10_000, 100, round);
  while (!ping.tryWrite(END_MARK));
  emit(result);
}

function ringPonger(buffer: SharedArrayBuffer, c: PeerConfig): void {
  const ping = new RingConsumer(buffer, c.ring ?? 0);
  const pong = new RingProducer(buffer, c.pongRing ?? 0);
  let stop = false;
  const echo = (v: Uint8Array): void => {
    if (v.byteLength === 1) {
      stop = true;
      return;
    }
    while (!pong.tryWrite(v));
  };
  ready();
  while (!stop) ping.readBatch(echo);
}

// ---------------------------------------------------------------- 1 MiB by map vs copy

/** Handle records: by-map records are [slot offset u32, length u32]; copy records carry the bytes. */
function mapProducer(buffer: SharedArrayBuffer, c: PeerConfig): void {
  const p = new RingProducer(buffer, c.ring ?? 0);
  const send = (m: Uint8Array): void => {
    while (!p.tryWrite(m));
  };
  if (c.style === 'copy') {
    const payload = payloadOf(c.size);
    streamSync(c.warmupMs, () => send(payload));
    send(START_MARK);
    streamSync(c.measureMs, () => send(payload));
    send(END_MARK);
    return;
  }
  // By map: fill each slot once, then hand over offsets only.
  const slots = c.slots ?? 8;
  const base = c.slotBase ?? 0;
  const payload = payloadOf(c.size);
  const whole = new Uint8Array(buffer);
  for (let s = 0; s < slots; s++) whole.set(payload, base + s * c.size);
  const handles: Uint8Array[] = [];
  for (let s = 0; s < slots; s++) {
    const h = new Uint8Array(8);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, base + s * c.size, true);
    dv.setUint32(4, c.size, true);
    handles.push(h);
  }
  let next = 0;
  const sendNext = (): void => {
    send(handles[next] as Uint8Array);
    next = (next + 1) % slots;
  };
  streamSync(c.warmupMs, sendNext);
  send(START_MARK);
  streamSync(c.measureMs, sendNext);
  send(END_MARK);
}

function mapConsumer(buffer: SharedArrayBuffer, c: PeerConfig): void {
  const consumer = new RingConsumer(buffer, c.ring ?? 0);
  const meter = new OneWayMeter(c.size);
  const whole = new Uint8Array(buffer);
  const words = new Int32Array(buffer);
  const last = c.size - 1;
  const expectLast = (last * 31 + 7) & 0xff;
  const touch = c.style === 'map-touch';
  let done = false;
  let bad = 0;
  let sink = 0;
  const onRecord = (v: Uint8Array): void => {
    if (v.byteLength === 1) {
      if (meter.onMessage(1, v[0] as number)) done = true;
      return;
    }
    let start: number;
    let view: Uint8Array;
    if (v.byteLength === 8) {
      start = v[0]! | (v[1]! << 8) | (v[2]! << 16) | (v[3]! << 24);
      view = whole;
    } else {
      start = 0;
      view = v;
    }
    // Check the payload really arrived: first and last byte.
    if (view[start] !== 7 || view[start + last] !== expectLast) bad++;
    if (touch) {
      // Read one word per 64-byte cache line of the slot.
      for (let i = start >> 2, end = (start + c.size) >> 2; i < end; i += 16) sink ^= words[i] as number;
    }
    meter.onMessage(c.size, 0);
  };
  ready();
  while (!done) consumer.readBatch(onRecord);
  if (bad !== 0) throw new Error(`${bad} payloads arrived corrupt`);
  if (sink === 0.5) throw new Error('unreachable');
  emit(meter.result as OneWay);
}

// ---------------------------------------------------------------- parked round trips

const PING = 0;
const PONG = 16;
const SEM_PING = 64;
const SEM_PONG = 128;

function parkedPinger(buffer: SharedArrayBuffer, c: PeerConfig): void {
  const w = new Int32Array(buffer, 0, 64);
  const ping = new Semaphore(buffer, SEM_PING);
  const pong = new Semaphore(buffer, SEM_PONG);
  const rounds = c.rounds ?? 20_000;
  const warm = c.warmupRounds ?? 1000;
  const samples: number[] = [];
  for (let i = 1; i <= rounds + warm; i++) {
    const t0 = process.hrtime.bigint();
    if (c.style === 'futex') {
      Atomics.store(w, PING / 4, i);
      futexWake(w, PING / 4, 1);
      while (Atomics.load(w, PONG / 4) !== i) futexWaitSync(w, PONG / 4, i - 1);
    } else {
      ping.post();
      pong.waitSync();
    }
    if (i > warm) samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  emit(roundTripOf(samples, rounds));
}

async function parkedPonger(buffer: SharedArrayBuffer, c: PeerConfig): Promise<void> {
  const w = new Int32Array(buffer, 0, 64);
  const ping = new Semaphore(buffer, SEM_PING);
  const pong = new Semaphore(buffer, SEM_PONG);
  const total = (c.rounds ?? 20_000) + (c.warmupRounds ?? 1000);
  ready();
  for (let i = 1; i <= total; i++) {
    if (c.style === 'futex') {
      while (Atomics.load(w, PING / 4) !== i) futexWaitSync(w, PING / 4, i - 1);
      Atomics.store(w, PONG / 4, i);
      futexWake(w, PONG / 4, 1);
    } else if (c.style === 'sem-async') {
      await ping.wait();
      pong.post();
    } else {
      ping.waitSync();
      pong.post();
    }
  }
}

// ---------------------------------------------------------------- kernel socket path

async function kernelReceiver(c: PeerConfig): Promise<void> {
  const proc = await connect({ name: 'bench-shm-receiver', socketPath: c.socketPath as string });
  try {
    const mb = await proc.createMailbox(c.mailbox ?? 'bench', { capacity: 1024 });
    const meter = new OneWayMeter(c.size);
    ready();
    for await (const m of mb.messages({ prefetch: 512 })) {
      if (meter.onMessage(m.bytes.length, m.bytes[0] as number)) break;
    }
    emit(meter.result as OneWay);
  } finally {
    await proc.close();
  }
}

async function kernelSender(c: PeerConfig): Promise<void> {
  const proc = await connect({ name: 'bench-shm-sender', socketPath: c.socketPath as string });
  try {
    const mb = await proc.openMailbox(c.mailbox ?? 'bench');
    const payload = Buffer.from(payloadOf(c.size));
    const send = (): Promise<void> => mb.send(payload);
    await streamAsync(c.warmupMs, 256, send);
    await mb.send(Buffer.from(START_MARK));
    await streamAsync(c.measureMs, 256, send);
    await mb.send(Buffer.from(END_MARK));
  } finally {
    await proc.close();
  }
}

// ---------------------------------------------------------------- shared-memory mailbox (ShmMailbox)
// style: the message store, 'ring' or 'priority'. The receiver creates the
// mailbox (one-way) or both mailboxes (round trip: the ponger).

function shmOptions(c: PeerConfig, role: 'receive' | 'both'): ShmMailboxOptions {
  return { queue: c.style as ShmQueueKind, capacity: 1024, maxMessageSize: 1024, role };
}

async function shmMailboxReceiver(c: PeerConfig): Promise<void> {
  const proc = await connect({ name: 'bench-shm-mb-receiver', socketPath: c.socketPath as string });
  try {
    const mb = await ShmMailbox.create(proc, c.mailbox as string, shmOptions(c, 'receive'));
    const meter = new OneWayMeter(c.size);
    ready();
    for (;;) {
      const m = await mb.receive();
      if (meter.onMessage(m.bytes.length, m.bytes[0] as number)) break;
    }
    emit(meter.result as OneWay);
    await mb.delete();
  } finally {
    await proc.close();
  }
}

async function shmMailboxSender(c: PeerConfig): Promise<void> {
  const proc = await connect({ name: 'bench-shm-mb-sender', socketPath: c.socketPath as string });
  try {
    const mb = await ShmMailbox.open(proc, c.mailbox as string, 'send');
    const payload = Buffer.from(payloadOf(c.size));
    const send = (): Promise<void> => mb.send(payload);
    await streamAsync(c.warmupMs, 256, send);
    await mb.send(Buffer.from(START_MARK));
    await streamAsync(c.measureMs, 256, send);
    await mb.send(Buffer.from(END_MARK));
    await mb.close();
  } finally {
    await proc.close();
  }
}

async function shmMailboxPonger(c: PeerConfig): Promise<void> {
  const proc = await connect({ name: 'bench-shm-mb-ponger', socketPath: c.socketPath as string });
  try {
    const ping = await ShmMailbox.create(proc, `${c.mailbox}-ping`, shmOptions(c, 'both'));
    const pong = await ShmMailbox.create(proc, `${c.mailbox}-pong`, shmOptions(c, 'both'));
    const total = (c.rounds ?? 20_000) + (c.warmupRounds ?? 1000);
    ready();
    for (let i = 0; i < total; i++) await pong.send((await ping.receive()).bytes);
    // The pinger's goodbye: it has read every pong, so the mailboxes may go.
    await ping.receive();
  } finally {
    await proc.close();
  }
}

async function shmMailboxPinger(c: PeerConfig): Promise<void> {
  const proc = await connect({ name: 'bench-shm-mb-pinger', socketPath: c.socketPath as string });
  try {
    const ping = await ShmMailbox.open(proc, `${c.mailbox}-ping`, 'send');
    const pong = await ShmMailbox.open(proc, `${c.mailbox}-pong`, 'receive');
    const payload = Buffer.from(payloadOf(c.size));
    const rounds = c.rounds ?? 20_000;
    const warm = c.warmupRounds ?? 1000;
    const samples: number[] = [];
    for (let i = 1; i <= rounds + warm; i++) {
      const t0 = process.hrtime.bigint();
      await ping.send(payload);
      await pong.receive();
      if (i > warm) samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    emit(roundTripOf(samples, rounds));
    await ping.send(Buffer.from(END_MARK));
  } finally {
    await proc.close();
  }
}

// ---------------------------------------------------------------- worker_threads

/** postMessage sender with a credit window, so the receiver's queue stays bounded. */
async function pmSender(c: PeerConfig): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('pm-sender runs in a worker');
  const WINDOW = 8192;
  let acked = 0;
  let sent = 0;
  let wake: (() => void) | undefined;
  port.on('message', (m: { acked: number }) => {
    acked = m.acked;
    wake?.();
  });
  const payload = payloadOf(c.size);
  const send = async (m: Uint8Array): Promise<void> => {
    while (sent - acked >= WINDOW) await new Promise<void>((r) => (wake = r));
    port.postMessage(m);
    sent++;
  };
  await streamAsync(c.warmupMs, CLOCK_EVERY, () => send(payload));
  await send(START_MARK);
  await streamAsync(c.measureMs, CLOCK_EVERY, () => send(payload));
  await send(END_MARK);
  port.close();
}

function pmEcho(): void {
  const port = parentPort;
  if (port === null) throw new Error('pm-echo runs in a worker');
  port.on('message', (m: Uint8Array) => {
    if (m.byteLength === 1) port.close();
    else port.postMessage(m);
  });
}

function startThread(role: string, c: PeerConfig, sab?: SharedArrayBuffer): Worker {
  return new Worker(new URL(import.meta.url), { workerData: { role, config: c, sab } });
}

function resultOf(w: Worker): Promise<PeerResult> {
  return new Promise((resolve, reject) => {
    w.on('message', (m: { result?: PeerResult }) => {
      if (m.result !== undefined) resolve(m.result);
    });
    w.on('error', reject);
    w.on('exit', (code) => reject(new Error(`worker exited (${code}) without a result`)));
  });
}

function readyOf(w: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    w.on('message', (m: { ready?: boolean }) => {
      if (m.ready === true) resolve();
    });
    w.on('error', reject);
  });
}

async function threads(kind: string, c: PeerConfig): Promise<PeerResult> {
  switch (kind) {
    case 'threads-pm-oneway': {
      const w = startThread('pm-sender', c);
      const meter = new OneWayMeter(c.size);
      let n = 0;
      return await new Promise((resolve, reject) => {
        w.on('error', reject);
        w.on('message', (m: Uint8Array) => {
          if ((++n & 255) === 0) w.postMessage({ acked: n });
          if (meter.onMessage(m.byteLength, m[0] as number)) {
            void w.terminate();
            resolve(meter.result as OneWay);
          }
        });
      });
    }
    case 'threads-pm-rt': {
      const w = startThread('pm-echo', c);
      const payload = payloadOf(c.size);
      let reply: (() => void) | undefined;
      w.on('message', () => reply?.());
      const round = (): Promise<void> =>
        new Promise<void>((r) => {
          reply = r;
          w.postMessage(payload);
        });
      const rounds = c.rounds ?? 20_000;
      const warm = c.warmupRounds ?? 1000;
      const samples: number[] = [];
      for (let i = 0; i < rounds + warm; i++) {
        const t0 = process.hrtime.bigint();
        await round();
        if (i >= warm) samples.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      w.postMessage(END_MARK);
      return roundTripOf(samples, rounds);
    }
    case 'threads-sab-oneway':
    case 'threads-sab-rt': {
      // A plain SharedArrayBuffer (no segment, no addon calls: only try*/readBatch, which never park).
      const cap = 1 << 14; // as the process rings: fits L1/L2
      const sab = new SharedArrayBuffer(Ring.bytesFor(cap) * 2);
      Ring.init(sab, 0, cap);
      Ring.init(sab, Ring.bytesFor(cap), cap);
      const cfg = { ...c, ring: 0, pongRing: Ring.bytesFor(cap) };
      const oneWay = kind === 'threads-sab-oneway';
      const receiver = startThread(oneWay ? 'ring-consumer' : 'ring-ponger', cfg, sab);
      const got = oneWay ? resultOf(receiver) : undefined;
      await readyOf(receiver);
      const sender = startThread(oneWay ? 'ring-producer' : 'ring-pinger', cfg, sab);
      const result = oneWay ? await (got as Promise<PeerResult>) : await resultOf(sender);
      await Promise.all([receiver.terminate(), sender.terminate()]);
      return result;
    }
    default:
      throw new Error(`unknown threads scenario ${kind}`);
  }
}

// ---------------------------------------------------------------- dispatch

async function runRole(role: string, c: PeerConfig, sab: SharedArrayBuffer | undefined): Promise<void> {
  if (role.startsWith('threads-')) {
    emit(await threads(role, c));
    return;
  }
  if (role === 'kernel-receiver') return kernelReceiver(c);
  if (role === 'kernel-sender') return kernelSender(c);
  if (role === 'shm-mailbox-receiver') return shmMailboxReceiver(c);
  if (role === 'shm-mailbox-sender') return shmMailboxSender(c);
  if (role === 'shm-mailbox-ponger') return shmMailboxPonger(c);
  if (role === 'shm-mailbox-pinger') return shmMailboxPinger(c);
  if (role === 'pm-sender') return pmSender(c);
  if (role === 'pm-echo') return pmEcho();
  const segment = sab === undefined ? Segment.open(c.segment as string) : undefined;
  const buffer = sab ?? (segment as Segment).buffer;
  try {
    switch (role) {
      case 'ring-producer':
        return ringProducer(buffer, c);
      case 'ring-consumer':
        return ringConsumer(buffer, c);
      case 'ring-pinger':
        return ringPinger(buffer, c);
      case 'ring-ponger':
        return ringPonger(buffer, c);
      case 'map-producer':
        return mapProducer(buffer, c);
      case 'map-consumer':
        return mapConsumer(buffer, c);
      case 'parked-pinger':
        return parkedPinger(buffer, c);
      case 'parked-ponger':
        return await parkedPonger(buffer, c);
      default:
        throw new Error(`unknown role ${role}`);
    }
  } finally {
    segment?.close();
  }
}

if (isMainThread) {
  const [role = '', json = '{}'] = process.argv.slice(2);
  await runRole(role, JSON.parse(json) as PeerConfig, undefined);
} else {
  const data = workerData as { role: string; config: PeerConfig; sab?: SharedArrayBuffer };
  await runRole(data.role, data.config, data.sab);
}
