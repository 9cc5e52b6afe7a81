/**
 * Pipes: an ordered, loss-free stream of records from this node to each other node, over NATS core
 * (at-most-once) publish/subscribe. NATS gives order per publisher and subject; what it can lose (a
 * server restart, a reconnect, a slow consumer) a pipe puts back by sequence numbers and cumulative
 * acknowledgements, go-back-N. This is transport glue over NATS, not a new engine: no persistence,
 * no routing, no membership (membership.ts says when a node is gone).
 *
 * Subjects: `ipcbox.<cluster>.pipe.<to>.<from>` carries batches, `ipcbox.<cluster>.ack.<to>.<from>`
 * carries acknowledgements. A NATS message is one batch:
 *   u8 kind (1 batch, 2 ack, 3 reset), u8 0, u16 0, u32 epoch, u32 seq, then for a batch the records:
 *   u8 type, u32 channel, u32 length, bytes — as many as fit in the server's max_payload.
 * Invariants:
 * - A sender's epoch is random per pipe instance; batches of one epoch are numbered from 1. Records
 *   are handed to the receiver exactly once and in order, for as long as the epoch lasts.
 * - The sender keeps every unacknowledged batch (at most `window` bytes: beyond it `writable` is
 *   false until acks drain it) and resends them all, in order, when the oldest is older than the
 *   retransmit time or the receiver reports a gap.
 * - A receiver that meets an epoch it does not know at a sequence other than 1 (it restarted, or
 *   the sender's earlier batches are gone) answers `reset`: the sender starts a new epoch and tells
 *   its owner that everything in flight to that node is lost (`onReset`), so channels over it fail
 *   as a broken connection would instead of silently missing bytes.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';

export enum BatchKind {
  Batch = 1,
  Ack = 2,
  Reset = 3,
}

const HEADER = 12;
const RECORD_HEADER = 9;
/** Unacknowledged bytes one pipe may hold before its writers wait. */
const WINDOW = 8 * 1024 * 1024;
/** Resend what is unacknowledged when its oldest batch is this old. */
const RETRANSMIT_MS = 300;
/** A receiver acknowledges at least this often while batches arrive. */
const ACK_DELAY_MS = 5;

export interface PipeRecord {
  type: number;
  channel: number;
  bytes: Buffer;
}

interface Unacked {
  seq: number;
  data: Uint8Array;
  sentAt: number;
}

class OutPipe {
  epoch = (Math.random() * 0xffffffff) >>> 0 || 1;
  nextSeq = 1;
  readonly unacked: Unacked[] = [];
  unackedBytes = 0;
  /** Records waiting for the next batch. */
  pending: PipeRecord[] = [];
  pendingBytes = 0;
  flushScheduled = false;
  readonly waiting: (() => void)[] = [];

  constructor(readonly to: string) {}

  renew(): void {
    this.epoch = (Math.random() * 0xffffffff) >>> 0 || 1;
    this.nextSeq = 1;
    this.unacked.length = 0;
    this.unackedBytes = 0;
    this.pending = [];
    this.pendingBytes = 0;
  }
}

interface InPipe {
  epoch: number;
  expected: number;
  ackTimer: NodeJS.Timeout | undefined;
}

export interface PipeEvents {
  /** Records from `from`, in order, each exactly once. */
  records(from: string, records: PipeRecord[]): void;
  /** Everything in flight between this node and `node` is lost (either side restarted its pipe). */
  reset(node: string): void;
  /** Something came from `node` (a batch, an ack): it is alive, whatever its heartbeats' delay. */
  heard?(node: string): void;
}

export class Pipes {
  private readonly out = new Map<string, OutPipe>();
  private readonly in = new Map<string, InPipe>();
  private readonly subs: Subscription[] = [];
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly self: string,
    private readonly events: PipeEvents,
  ) {
    this.subs.push(
      nc.subscribe(`${prefix}.pipe.${self}.*`, {
        callback: (err, msg) => {
          if (err === null) this.onBatch(msg.subject, msg.data);
        },
      }),
      nc.subscribe(`${prefix}.ack.${self}.*`, {
        callback: (err, msg) => {
          if (err === null) this.onAck(msg.subject, msg.data);
        },
      }),
    );
    this.timer = setInterval(() => this.retransmit(), RETRANSMIT_MS / 2);
  }

  private get maxPayload(): number {
    return this.nc.info?.max_payload ?? 1024 * 1024;
  }

  /** Whether `to`'s pipe has room: when false, wait for `whenWritable`. */
  writable(to: string): boolean {
    const p = this.out.get(to);
    return p === undefined || p.unackedBytes + p.pendingBytes < WINDOW;
  }

  whenWritable(to: string, cb: () => void): void {
    const p = this.pipeTo(to);
    if (this.writable(to)) cb();
    else p.waiting.push(cb);
  }

  private pipeTo(to: string): OutPipe {
    let p = this.out.get(to);
    if (p === undefined) {
      p = new OutPipe(to);
      this.out.set(to, p);
    }
    return p;
  }

  /** Queue a record for `to`; large ones are split (a channel's bytes are a stream). */
  send(to: string, type: number, channel: number, bytes: Buffer): void {
    if (this.closed) return;
    const p = this.pipeTo(to);
    const room = Math.max(1024, this.maxPayload - HEADER - RECORD_HEADER);
    if (bytes.length <= room) this.queue(p, { type, channel, bytes });
    else
      for (let off = 0; off < bytes.length; off += room)
        this.queue(p, { type, channel, bytes: bytes.subarray(off, off + room) });
  }

  private queue(p: OutPipe, r: PipeRecord): void {
    p.pending.push(r);
    p.pendingBytes += RECORD_HEADER + r.bytes.length;
    if (p.pendingBytes >= this.maxPayload - HEADER) this.flush(p);
    else if (!p.flushScheduled) {
      p.flushScheduled = true;
      setImmediate(() => this.flush(p));
    }
  }

  private flush(p: OutPipe): void {
    p.flushScheduled = false;
    const max = this.maxPayload - HEADER;
    while (p.pending.length > 0) {
      let size = 0;
      let n = 0;
      while (n < p.pending.length) {
        const add = RECORD_HEADER + (p.pending[n] as PipeRecord).bytes.length;
        if (n > 0 && size + add > max) break;
        size += add;
        n++;
      }
      const batch = p.pending.splice(0, n);
      p.pendingBytes -= size;
      const data = Buffer.allocUnsafe(HEADER + size);
      data.writeUInt8(BatchKind.Batch, 0);
      data.writeUInt8(0, 1);
      data.writeUInt16LE(0, 2);
      data.writeUInt32LE(p.epoch, 4);
      const seq = p.nextSeq++;
      data.writeUInt32LE(seq, 8);
      let off = HEADER;
      for (const r of batch) {
        data.writeUInt8(r.type, off);
        data.writeUInt32LE(r.channel, off + 1);
        data.writeUInt32LE(r.bytes.length, off + 5);
        r.bytes.copy(data, off + RECORD_HEADER);
        off += RECORD_HEADER + r.bytes.length;
      }
      p.unacked.push({ seq, data, sentAt: performance.now() });
      p.unackedBytes += data.length;
      this.publish(`${this.prefix}.pipe.${p.to}.${this.self}`, data);
    }
  }

  private publish(subject: string, data: Uint8Array): void {
    try {
      this.nc.publish(subject, data);
    } catch {
      // A closed or draining connection: the retransmit timer tries again, or the pipe is reset.
    }
  }

  private control(kind: BatchKind, to: string, epoch: number, seq: number): void {
    const data = Buffer.alloc(HEADER);
    data.writeUInt8(kind, 0);
    data.writeUInt32LE(epoch, 4);
    data.writeUInt32LE(seq, 8);
    this.publish(`${this.prefix}.ack.${to}.${this.self}`, data);
  }

  private onBatch(subject: string, raw: Uint8Array): void {
    const from = subject.slice(subject.lastIndexOf('.') + 1);
    if (raw.length < HEADER || this.closed) return;
    this.events.heard?.(from);
    const data = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const epoch = data.readUInt32LE(4);
    const seq = data.readUInt32LE(8);
    let st = this.in.get(from);
    if (st === undefined || st.epoch !== epoch) {
      if (seq !== 1) {
        // We do not have this epoch's start: whatever came before is lost to us.
        this.control(BatchKind.Reset, from, epoch, 0);
        return;
      }
      if (st !== undefined) {
        clearTimeout(st.ackTimer);
        this.events.reset(from);
      }
      st = { epoch, expected: 1, ackTimer: undefined };
      this.in.set(from, st);
    }
    if (seq !== st.expected) {
      // A gap (ask again from expected) or a duplicate (already had it): say where we are now.
      this.control(BatchKind.Ack, from, epoch, st.expected - 1);
      return;
    }
    st.expected++;
    const records: PipeRecord[] = [];
    for (let off = HEADER; off + RECORD_HEADER <= data.length; ) {
      const len = data.readUInt32LE(off + 5);
      records.push({
        type: data.readUInt8(off),
        channel: data.readUInt32LE(off + 1),
        bytes: Buffer.from(data.subarray(off + RECORD_HEADER, off + RECORD_HEADER + len)),
      });
      off += RECORD_HEADER + len;
    }
    const s = st;
    if (s.ackTimer === undefined)
      s.ackTimer = setTimeout(() => {
        s.ackTimer = undefined;
        if (this.in.get(from) === s) this.control(BatchKind.Ack, from, s.epoch, s.expected - 1);
      }, ACK_DELAY_MS);
    this.events.records(from, records);
  }

  private onAck(subject: string, raw: Uint8Array): void {
    const from = subject.slice(subject.lastIndexOf('.') + 1);
    if (raw.length < HEADER) return;
    this.events.heard?.(from);
    const data = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const p = this.out.get(from);
    if (p === undefined || data.readUInt32LE(4) !== p.epoch) return;
    const kind = data.readUInt8(0);
    if (kind === BatchKind.Reset) {
      p.renew();
      this.wake(p);
      this.events.reset(from);
      return;
    }
    const upto = data.readUInt32LE(8);
    let freed = false;
    while (p.unacked.length > 0 && (p.unacked[0] as Unacked).seq <= upto) {
      p.unackedBytes -= (p.unacked.shift() as Unacked).data.length;
      freed = true;
    }
    // An ack below what we sent while nothing new was freed reports a gap: resend from there.
    if (!freed && p.unacked.length > 0) this.resend(p);
    if (freed) this.wake(p);
  }

  private wake(p: OutPipe): void {
    while (p.waiting.length > 0 && this.writable(p.to)) (p.waiting.shift() as () => void)();
  }

  private resend(p: OutPipe): void {
    const now = performance.now();
    for (const u of p.unacked) {
      u.sentAt = now;
      this.publish(`${this.prefix}.pipe.${p.to}.${this.self}`, u.data);
    }
  }

  private retransmit(): void {
    const now = performance.now();
    for (const p of this.out.values()) {
      const oldest = p.unacked[0];
      if (oldest !== undefined && now - oldest.sentAt >= RETRANSMIT_MS) this.resend(p);
    }
  }

  /** `node` is gone (membership): drop both directions' state; nothing in flight to it will arrive. */
  forget(node: string): void {
    const p = this.out.get(node);
    if (p !== undefined) {
      this.out.delete(node);
      for (const w of p.waiting) w();
    }
    const st = this.in.get(node);
    if (st !== undefined) {
      clearTimeout(st.ackTimer);
      this.in.delete(node);
    }
  }

  /** Bytes sent to `node` and not yet acknowledged (status, tests). */
  inFlight(node: string): number {
    return this.out.get(node)?.unackedBytes ?? 0;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const s of this.subs) s.unsubscribe();
    for (const st of this.in.values()) clearTimeout(st.ackTimer);
  }
}
