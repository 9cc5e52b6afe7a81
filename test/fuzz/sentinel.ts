/**
 * A well-behaved raw connection (raw, so nothing a hostile input sends it can
 * crash the harness): it makes control calls for the harness (pings,
 * clean-up, status), drains its inbox of whatever hostile inputs send it, and
 * records the first sign that the kernel turned on it (`lost`): its
 * connection closed, a connection-level ERROR, output that does not decode.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { errorCodeFromWire } from '../../src/wire/error-codes.js';
import { type Frame, FrameDecoder } from '../../src/wire/frame-codec.js';
import {
  DeliverFlag,
  HEADER_REST,
  MAGIC,
  MAX_CONTROL_BODY,
  Op,
  PROTOCOL_VERSION,
} from '../../src/wire/protocol.js';

export const SENTINEL = 'fuzz-sentinel';
const MiB = 1024 * 1024;

/** A control call the kernel refused (or that got no answer: TIMEOUT, DISCONNECTED). */
export class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export class Sentinel {
  lost: string | undefined;
  private readonly decoder: FrameDecoder;
  private readonly waiting = new Map<number, (f: { op: number; body: Buffer }) => void>();
  private nextReq = 1;
  private inbox = 0;
  private delivered = 0;

  private constructor(private readonly socket: Socket) {
    this.decoder = new FrameDecoder(
      64 * MiB,
      (f) => this.onFrame(f),
      (e) => {
        this.lost ??= `the kernel's output to ${SENTINEL} does not decode: ${e.message}`;
      },
    );
    socket.on('data', (d: Buffer) => this.decoder.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.lost ??= `the kernel closed ${SENTINEL}'s connection`;
      for (const w of this.waiting.values()) w({ op: -1, body: Buffer.alloc(0) });
      this.waiting.clear();
    });
  }

  static async connect(socketPath: string): Promise<Sentinel> {
    const socket = netConnect(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const s = new Sentinel(socket);
    const name = Buffer.from(SENTINEL);
    const hello = Buffer.alloc(16 + name.length);
    hello.writeUInt32LE(MAGIC, 0);
    hello.writeUInt16LE(PROTOCOL_VERSION, 4);
    hello.writeUInt32LE(process.pid, 8);
    hello.writeUInt32LE(0xffffffff, 12);
    name.copy(hello, 16);
    const w = await s.request(Op.HELLO, hello, 0, 5000);
    if (w.op !== Op.WELCOME) throw new Error(`${SENTINEL}: no WELCOME (${s.lost ?? w.op})`);
    s.inbox = w.body.readUInt32LE(12);
    s.demand(1_000_000);
    return s;
  }

  private write(op: number, reqId: number, target: number, body: Buffer): void {
    const b = Buffer.allocUnsafe(16 + body.length);
    b.writeUInt32LE(HEADER_REST + body.length, 0);
    b[4] = op;
    b[5] = 0;
    b[6] = 0;
    b[7] = 0;
    b.writeUInt32LE(reqId, 8);
    b.writeUInt32LE(target, 12);
    body.copy(b, 16);
    if (!this.socket.destroyed) this.socket.write(b);
  }

  private demand(n: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n, 0);
    this.write(Op.DEMAND, 0, this.inbox, b);
  }

  private onFrame(f: Frame): void {
    if (f.op === Op.DELIVER) {
      // Whatever hostile inputs send here is taken and dropped; tracked ones are answered.
      if ((f.flags & DeliverFlag.TRACKED) !== 0) {
        const id = Buffer.alloc(4);
        id.writeUInt32LE(f.u32(0), 0);
        this.write(Op.CONSUMED, 0, 0, id);
        if ((f.flags & DeliverFlag.ACK) !== 0) this.write(Op.ACK, 0, 0, id);
      }
      if (++this.delivered % 500_000 === 0) this.demand(500_000);
      return;
    }
    if (f.op === Op.REVOKE) {
      const back = Buffer.alloc(12);
      if (f.bodyLength >= 4) back.writeUInt32LE(f.u32(0), 8);
      this.write(Op.CREDIT_RETURN, 0, f.target, back);
      return;
    }
    if (f.op === Op.ERROR && f.reqId === 0) {
      this.lost ??= `the kernel told ${SENTINEL} off with a connection-level ERROR: ${f.body.toString('utf8', 4)}`;
      return;
    }
    const w = this.waiting.get(f.reqId);
    if (w !== undefined && (f.op === Op.RESULT || f.op === Op.ERROR || f.op === Op.WELCOME)) {
      this.waiting.delete(f.reqId);
      w({ op: f.op, body: Buffer.from(f.body) });
    }
  }

  private request(
    op: number,
    body: Buffer,
    target: number,
    timeoutMs: number,
  ): Promise<{ op: number; body: Buffer }> {
    const reqId = this.nextReq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(reqId);
        reject(new CallError('TIMEOUT', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(reqId, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.write(op, reqId, target, body);
    });
  }

  async call<T>(method: string, args: Record<string, unknown> = {}, timeoutMs = 5000): Promise<T> {
    const body = Buffer.from(JSON.stringify({ m: method, a: args }));
    if (body.length > MAX_CONTROL_BODY) throw new Error('call too large');
    const f = await this.request(Op.CALL, body, 0, timeoutMs);
    if (f.op === Op.RESULT) return JSON.parse(f.body.toString('utf8')) as T;
    if (f.op === Op.ERROR)
      throw new CallError(errorCodeFromWire(f.body.readUInt32LE(0)), f.body.toString('utf8', 4));
    throw new CallError('DISCONNECTED', this.lost ?? 'connection closed');
  }

  close(): void {
    this.lost ??= 'closed by the harness';
    this.socket.destroy();
  }
}
