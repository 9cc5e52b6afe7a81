/**
 * One hostile connection: runs a generated input (frame-fuzzer.ts) on a raw
 * socket, learns from the kernel's answers what the input's symbolic refs
 * resolve to, and checks what this connection can see of the kernel's
 * contract:
 * - every frame the kernel sends is well formed: a kernel->client op, a
 *   DELIVER with priority 0..31, a known codec and known flags, JSON bodies
 *   on RESULT and NOTICE, a known error code on ERROR, and ERROR with
 *   request id 0 only as PROTOCOL;
 * - the kernel closes an established connection (one it welcomed) only after
 *   telling it why (an ERROR), or after the connection itself said BYE or
 *   closed its side.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { errorCodeFromWire, errorCodeToWire } from '../../src/wire/error-codes.js';
import { type Frame, FrameDecoder } from '../../src/wire/frame-codec.js';
import { DeliverFlag, Op } from '../../src/wire/protocol.js';
import {
  type AwaitWhat,
  encodeFrame,
  type FuzzInput,
  type Knowledge,
  newKnowledge,
  type Step,
} from './frame-fuzzer.js';

/** What the pair's ids look like to hostile inputs (their `pair` pool). */
export interface PairIds {
  targets: readonly number[];
  pids: readonly number[];
}

export interface HostileOutcome {
  seed: number;
  /** Kernel contract broken as seen from this connection (empty when all is well). */
  violations: string[];
  /** The kernel closed the connection with a connection-level ERROR (PROTOCOL). */
  protocolError: boolean;
  /** Bytes written, and, when recording, the writes themselves. */
  bytesWritten: number;
  writes: Buffer[];
}

export interface HostileOptions {
  /** Keep every write (for the report of a minimized input). */
  record?: boolean;
  /** Deadline for an input's steps (default 30 s): one that takes longer is reported as stalled by the kernel. */
  deadlineMs?: number;
  /**
   * Called when the steps are done and the connection only lingers: the
   * caller's slot is free, and `done` settles once the connection is gone.
   */
  onLinger?: (done: Promise<HostileOutcome>) => void;
}

/** Ops only a client sends; the kernel sending one (or an op the protocol does not define) breaks the protocol. */
const CLIENT_ONLY = new Set<number>([
  Op.HELLO,
  Op.CALL,
  Op.SEND,
  Op.RECV,
  Op.DEMAND,
  Op.CANCEL,
  Op.CONSUMED,
  Op.ACK,
  Op.RELEASE,
  Op.REQUEUE,
  Op.CREDIT_RETURN,
  Op.BYE,
  Op.AUTH,
]);
const KERNEL_OPS = new Set<number>(Object.values(Op).filter((op) => !CLIENT_ONLY.has(op)));
const KNOWN_DELIVER_FLAGS = DeliverFlag.TRACKED | DeliverFlag.ACK | DeliverFlag.PEEK;
const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([n, c]) => [c, n]));
/** Largest delivery payload kept for give-backs. */
const KEEP_PAYLOAD = 1024 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Mailbox ids in a RESULT: mailbox infos (create, open, info, list, grant). */
function mailboxIds(value: unknown, out: number[]): void {
  if (Array.isArray(value)) {
    for (const v of value) mailboxIds(v, out);
    return;
  }
  if (typeof value === 'object' && value !== null) {
    const o = value as { id?: unknown; name?: unknown; capacity?: unknown };
    if (
      typeof o.id === 'number' &&
      typeof o.name === 'string' &&
      o.capacity !== undefined &&
      !out.includes(o.id)
    ) {
      out.push(o.id);
    }
  }
}

class HostileConnection {
  readonly k: Knowledge;
  readonly outcome: HostileOutcome;
  private readonly socket: Socket;
  private readonly decoder: FrameDecoder;
  private pending: Buffer[] = [];
  private closed = false;
  private weEnded = false;
  /**
   * Every byte written so far was whole, honest frames: the kernel reads the
   * stream as the input meant it. A lying length, a cut frame or raw bytes
   * desynchronise it, and then any byte may read as a BYE.
   */
  private aligned = true;
  private errorSeen = false;
  private readonly counts = new Map<AwaitWhat, number>();
  private waiters: Array<{ what: AwaitWhat; target: number; resolve: () => void }> = [];
  readonly closedPromise: Promise<void>;

  constructor(
    socketPath: string,
    readonly input: FuzzInput,
    pair: PairIds,
    private readonly record: boolean,
  ) {
    this.k = newKnowledge(pair.targets, pair.pids);
    this.outcome = { seed: input.seed, violations: [], protocolError: false, bytesWritten: 0, writes: [] };
    this.decoder = new FrameDecoder(
      64 * 1024 * 1024,
      (f) => this.onFrame(f),
      (e) => this.violation(`the kernel's output does not decode: ${e.message}`),
    );
    this.socket = netConnect(socketPath);
    this.socket.on('data', (d: Buffer) => this.decoder.push(d));
    let socketError: NodeJS.ErrnoException | undefined;
    this.socket.on('error', (e: NodeJS.ErrnoException) => {
      socketError = e;
    });
    this.closedPromise = new Promise((resolve) => {
      this.socket.once('close', () => {
        this.closed = true;
        // A reset can swallow the ERROR that preceded it, and a refused connect is the harness's business.
        const clean = socketError === undefined;
        // Strangers (no WELCOME yet) may be dropped silently: handshake timeout, handshake cap.
        if (clean && this.aligned && !this.weEnded && !this.errorSeen && this.k.ownPid !== 0) {
          this.violation('the kernel closed the connection without an ERROR frame saying why');
        }
        this.bump('close');
        for (const w of this.waiters) w.resolve();
        this.waiters = [];
        resolve();
      });
    });
  }

  violation(text: string): void {
    if (this.outcome.violations.length < 8) this.outcome.violations.push(text);
  }

  private bump(what: AwaitWhat): void {
    const n = (this.counts.get(what) ?? 0) + 1;
    this.counts.set(what, n);
    if (what !== 'close') this.counts.set('any', (this.counts.get('any') ?? 0) + 1);
    this.waiters = this.waiters.filter((w) => {
      const c = this.counts.get(w.what) ?? 0;
      if (c < w.target) return true;
      w.resolve();
      return false;
    });
  }

  private onFrame(f: Frame): void {
    const name = OP_NAMES.get(f.op) ?? `op ${f.op}`;
    if (!KERNEL_OPS.has(f.op))
      return this.violation(`the kernel sent ${name}, which is not a kernel->client op`);
    const body = f.body;
    switch (f.op) {
      case Op.WELCOME:
        if (body.length < 16) return this.violation(`WELCOME body of ${body.length} bytes`);
        this.k.ownPid = body.readUInt32LE(8);
        this.k.ownInbox = body.readUInt32LE(12);
        return this.bump('welcome');
      case Op.RESULT: {
        let value: unknown;
        try {
          value = JSON.parse(body.toString('utf8'));
        } catch {
          return this.violation('RESULT body is not JSON');
        }
        mailboxIds(value, this.k.created);
        return this.bump('result');
      }
      case Op.NOTICE: {
        let n: { kind?: unknown; pid?: unknown };
        try {
          n = JSON.parse(body.toString('utf8'));
        } catch {
          return this.violation('NOTICE body is not JSON');
        }
        if (typeof n !== 'object' || n === null || typeof n.kind !== 'string')
          return this.violation('NOTICE without a kind');
        if (n.kind === 'peer' && typeof n.pid === 'number' && !this.k.senders.includes(n.pid))
          this.k.senders.push(n.pid);
        return this.bump('any');
      }
      case Op.ERROR: {
        this.errorSeen = true;
        if (body.length < 4) return this.violation(`ERROR body of ${body.length} bytes`);
        const code = body.readUInt32LE(0);
        if (errorCodeToWire(errorCodeFromWire(code)) !== code)
          this.violation(`ERROR with unknown code ${code}`);
        if (f.reqId === 0) {
          this.outcome.protocolError = true;
          // Before WELCOME a refused HELLO (NAME_TAKEN, INVALID_ARGUMENT) answers the HELLO's own request id, which may be 0.
          if (code !== 0 && this.k.ownPid !== 0)
            this.violation(
              `connection-level ERROR (request id 0) with code ${errorCodeFromWire(code)}, not PROTOCOL`,
            );
        }
        return this.bump('result');
      }
      case Op.SENT:
        return this.bump('sent');
      case Op.CREDIT: {
        if (body.length < 8) return this.violation(`CREDIT body of ${body.length} bytes`);
        const c = this.k.credits.get(f.target) ?? { slots: 0, bytes: 0 };
        c.slots += body.readUInt32LE(0);
        c.bytes += body.readUInt32LE(4);
        this.k.credits.set(f.target, c);
        return this.bump('credit');
      }
      case Op.REVOKE: {
        const epoch = body.length >= 4 ? body.readUInt32LE(0) : 0;
        this.k.epoch = epoch;
        if (this.input.answerRevoke && !this.closed) {
          const c = this.k.credits.get(f.target);
          this.k.credits.delete(f.target);
          const r = Buffer.alloc(28);
          r.writeUInt32LE(24, 0);
          r[4] = Op.CREDIT_RETURN;
          r.writeUInt32LE(f.target, 12);
          r.writeUInt32LE(Math.max(0, c?.slots ?? 0), 16);
          r.writeUInt32LE(Math.max(0, c?.bytes ?? 0), 20);
          r.writeUInt32LE(epoch, 24);
          this.write(r);
        }
        return this.bump('any');
      }
      case Op.DELIVER: {
        if (body.length < 8) return this.violation(`DELIVER body of ${body.length} bytes`);
        if (f.priority > 31)
          this.violation(`DELIVER with priority ${f.priority} (the protocol allows 0..31)`);
        if (f.codec > 3) this.violation(`DELIVER with unknown payload codec ${f.codec}`);
        if ((f.flags & ~KNOWN_DELIVER_FLAGS) !== 0) this.violation(`DELIVER with unknown flags ${f.flags}`);
        if ((f.flags & DeliverFlag.PEEK) !== 0) {
          // A copy answering a mailbox.peek: never tracked, delivery id 0, nothing to answer.
          if ((f.flags & DeliverFlag.TRACKED) !== 0 || f.u32(0) !== 0 || f.reqId === 0)
            this.violation(`a PEEK DELIVER with flags ${f.flags}, delivery id ${f.u32(0)}, reqId ${f.reqId}`);
          return this.bump('deliver');
        }
        const payload = f.bodyFrom(8);
        this.k.delivered.push({
          deliveryId: f.u32(0),
          target: f.target,
          sender: f.u32(4),
          priority: f.priority,
          codec: f.codec,
          payload: Buffer.from(payload.subarray(0, KEEP_PAYLOAD)),
        });
        return this.bump('deliver');
      }
    }
  }

  write(b: Buffer): void {
    if (this.closed || b.length === 0) return;
    this.outcome.bytesWritten += b.length;
    if (this.record) this.outcome.writes.push(Buffer.from(b));
    this.socket.write(b);
  }

  async flush(cuts: readonly number[] = [], spaced = false): Promise<void> {
    if (this.pending.length === 0) return;
    if (cuts.length === 0) {
      // One gathered write; no copy into one buffer (inputs may hold megabytes).
      const parts = this.pending;
      this.pending = [];
      this.socket.cork();
      for (const p of parts) this.write(p);
      this.socket.uncork();
      return;
    }
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    let from = 0;
    for (const c of cuts) {
      const at = Math.floor((c / 65536) * all.length);
      if (at <= from) continue;
      this.write(all.subarray(from, at));
      from = at;
      if (spaced) await new Promise((r) => setImmediate(r));
    }
    this.write(all.subarray(from));
  }

  /** Wait until `count` frames of a kind have arrived since `base` were counted, or `ms` passed. */
  private awaitFrames(what: AwaitWhat, base: number, count: number, ms: number): Promise<void> {
    if (this.closed || (this.counts.get(what) ?? 0) >= base + count) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push({ what, target: base + count, resolve: done });
    });
  }

  /** Resolves true once connected; false if the connection closed or was not accepted within 5 s. */
  async connected(): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve(false);
      }, 5000);
      this.socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
  }

  async step(s: Step): Promise<void> {
    switch (s.t) {
      case 'frame':
        if (s.op === Op.BYE) this.weEnded = true;
        if (s.lengthDelta !== 0 || s.truncate >= 0) this.aligned = false;
        this.pending.push(encodeFrame(this.k, s));
        return;
      case 'bytes':
        this.aligned = false;
        this.pending.push(s.bytes);
        return;
      case 'flush':
        return this.flush(s.cuts, s.spaced);
      case 'await': {
        const base = this.counts.get(s.what) ?? 0;
        await this.flush();
        return this.awaitFrames(s.what, base, s.count, s.ms);
      }
      case 'pause':
        this.socket.pause();
        return;
      case 'resume':
        this.socket.resume();
        return;
      case 'sleep':
        await this.flush();
        return sleep(s.ms);
    }
  }

  /** End the connection the way the input says, and wait (briefly) until it is closed. */
  async finish(): Promise<void> {
    await this.flush();
    if (this.closed) return;
    const how = this.input.end;
    if (how === 'destroy') {
      this.weEnded = true;
      this.socket.destroy();
    } else {
      if (how === 'bye') {
        const bye = Buffer.alloc(16);
        bye.writeUInt32LE(12, 0);
        bye[4] = Op.BYE;
        this.write(bye);
      }
      this.weEnded = true;
      this.socket.resume();
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), 500);
      await this.closedPromise;
      clearTimeout(timer);
    }
    await this.closedPromise;
  }
}

/**
 * Run one input on a fresh connection. Resolves with what the connection saw
 * once it is closed (or, with `onLinger`, as soon as only lingering is left).
 */
export async function runHostile(
  socketPath: string,
  input: FuzzInput,
  pair: PairIds,
  options: HostileOptions = {},
): Promise<HostileOutcome> {
  const c = new HostileConnection(socketPath, input, pair, options.record === true);
  const deadline = setTimeout(
    () =>
      c.violation(
        `the kernel let an input stall: its steps (waits of at most 25 ms each) took over ${(options.deadlineMs ?? 30_000) / 1000} s`,
      ),
    options.deadlineMs ?? 30_000,
  );
  try {
    if (!(await c.connected())) {
      c.outcome.violations.push('could not connect to the kernel');
      return c.outcome;
    }
    for (const s of input.steps) {
      await c.step(s);
    }
    await c.flush();
    const rest = async (): Promise<HostileOutcome> => {
      if (input.linger > 0) await sleep(input.linger);
      await c.finish();
      return c.outcome;
    };
    if (input.linger > 0 && options.onLinger !== undefined) {
      const done = rest();
      options.onLinger(done);
      return c.outcome;
    }
    return await rest();
  } finally {
    clearTimeout(deadline);
  }
}
