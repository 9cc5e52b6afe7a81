/**
 * Raw Unix-socket bench peer: the floor any socket-based IPC pays. Frames are
 * a u32 little-endian length followed by the payload.
 * - `server` listens on the scenario's socketPath; one-way it counts frames
 *   (measuring), round trip it echoes each frame back.
 * - `client` connects; one-way it copies frames into 256 KiB batches and
 *   writes them, waiting for 'drain' when the socket says so; round trip it
 *   pings and waits for each echo (measuring).
 * Usage: node dist/bench/workers/socket-peer.js <role> <scenario-json>
 */
import { createServer, connect as netConnect, type Socket } from 'node:net';
import {
  MARKER_SIZE,
  OneWayMeter,
  payloadOf,
  pingFor,
  ready,
  report,
  type ScenarioConfig,
  streamFor,
  workerArgs,
} from '../scenario.js';

const BATCH = 256 * 1024;

/** Incremental length-prefixed frame decoder; `onFrame` gets a view of each whole frame's payload. */
class FrameReader {
  private partial: Buffer | undefined;
  private filled = 0;
  private stub: Buffer | undefined;

  constructor(private readonly onFrame: (payload: Buffer) => void) {}

  push(input: Buffer): void {
    let chunk = input;
    let off = 0;
    if (this.partial !== undefined) {
      const p = this.partial;
      const n = Math.min(p.length - this.filled, chunk.length);
      chunk.copy(p, this.filled, 0, n);
      this.filled += n;
      off = n;
      if (this.filled < p.length) return;
      this.partial = undefined;
      this.onFrame(p);
    }
    if (this.stub !== undefined) {
      chunk = Buffer.concat([this.stub, chunk.subarray(off)]);
      off = 0;
      this.stub = undefined;
    }
    while (off + 4 <= chunk.length) {
      const len = chunk.readUInt32LE(off);
      const start = off + 4;
      if (start + len <= chunk.length) {
        this.onFrame(chunk.subarray(start, start + len));
        off = start + len;
        continue;
      }
      this.partial = Buffer.allocUnsafe(len);
      this.filled = chunk.copy(this.partial, 0, start);
      return;
    }
    if (off < chunk.length) this.stub = Buffer.from(chunk.subarray(off));
  }
}

function framed(payload: Buffer): Buffer {
  const f = Buffer.allocUnsafe(4 + payload.length);
  f.writeUInt32LE(payload.length, 0);
  payload.copy(f, 4);
  return f;
}

function server(config: ScenarioConfig): void {
  const srv = createServer((sock) => {
    srv.close();
    if (config.mode === 'one-way') {
      const meter = new OneWayMeter(config.size);
      const reader = new FrameReader((p) => {
        const result = meter.onMessage(p.length, p[0]!);
        if (result !== undefined) {
          report(result);
          sock.end();
        }
      });
      sock.on('data', (c: Buffer) => reader.push(c));
    } else {
      const reader = new FrameReader((p) => {
        if (p.length === MARKER_SIZE) sock.end();
        else sock.write(framed(p));
      });
      sock.on('data', (c: Buffer) => reader.push(c));
    }
    sock.on('error', () => sock.destroy());
  });
  srv.listen(config.socketPath!, ready);
}

async function client(config: ScenarioConfig): Promise<void> {
  const sock = netConnect(config.socketPath!);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const payload = payloadOf(config.size);
  if (config.mode === 'one-way') await oneWay(sock, config, payload);
  else report(await roundTrip(sock, config, payload));
  sock.end();
}

async function oneWay(sock: Socket, config: ScenarioConfig, payload: Buffer): Promise<void> {
  const capacity = Math.max(BATCH, payload.length + 4);
  let batch = Buffer.allocUnsafe(capacity);
  let pos = 0;
  const flush = (): undefined | Promise<void> => {
    if (pos === 0) return undefined;
    const ok = sock.write(batch.subarray(0, pos));
    batch = Buffer.allocUnsafe(capacity);
    pos = 0;
    if (ok) return undefined;
    return new Promise<void>((r) => sock.once('drain', r));
  };
  const append = (p: Buffer): undefined | Promise<void> => {
    const wait = pos + 4 + p.length > capacity ? flush() : undefined;
    batch.writeUInt32LE(p.length, pos);
    p.copy(batch, pos + 4);
    pos += 4 + p.length;
    return wait;
  };
  const sendOne = (): undefined | Promise<void> => append(payload);
  // A marker leaves at once (with the batch before it) so the measured window is exact.
  await streamFor(config, sendOne, async (marker) => {
    await append(marker);
    await flush();
  });
}

async function roundTrip(sock: Socket, config: ScenarioConfig, payload: Buffer) {
  let answer: (() => void) | undefined;
  const reader = new FrameReader(() => {
    const a = answer;
    answer = undefined;
    a?.();
  });
  sock.on('data', (c: Buffer) => reader.push(c));
  const frame = framed(payload);
  const result = await pingFor(
    config,
    () =>
      new Promise<void>((resolve) => {
        answer = resolve;
        sock.write(frame);
      }),
  );
  sock.write(framed(Buffer.from([0])));
  return result;
}

const { role, config } = workerArgs();
if (role === 'server') server(config);
else if (role === 'client') await client(config);
else throw new Error(`unknown role ${role}`);
