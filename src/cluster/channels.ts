/**
 * Channels: byte streams between a process's kernel (the opener) and another node (the home of
 * what the process uses there), multiplexed over the two nodes' pipes (pipes.ts). The home runs a
 * proxy session for the process; the channel carries that session's protocol frames both ways, so
 * the home kernel's core decides everything about its own mailboxes and processes.
 *
 * Records (pipe record type, channel id chosen by the opener):
 *   OPEN (opener → home: JSON hello), UP (opener → home bytes), DOWN (home → opener bytes),
 *   CLOSE_UP / CLOSE_DOWN (JSON reason; the other side's end closes). The opener may write right
 *   after OPEN: the home holds what comes before it has accepted.
 * Invariants:
 * - A channel's bytes arrive in order and exactly once while both nodes' pipes last; a pipe reset
 *   or the other node going down closes every channel between the two ('reset', 'node-down'),
 *   like a broken connection: nothing is silently skipped.
 * - Writes respect the pipe's window: `whenWritable` waits while the pipe to that node is full.
 */
import type { PipeRecord, Pipes } from './pipes.js';

export enum ChannelRecord {
  Open = 1,
  Up = 3,
  Down = 4,
  CloseUp = 5,
  CloseDown = 6,
}

/** What the opener's side is told. */
export interface OpenerSink {
  data(bytes: Buffer): void;
  closed(reason: string): void;
}

/** What the home side is told once it accepted a channel. */
export interface HomeSink {
  data(bytes: Buffer): void;
  /** The channel ended; the promise (if any) settles once everything that came before it is served. */
  closed(reason: string): void | Promise<void>;
}

/**
 * How long a lost node's opened channels wait for its homed ones to be served before they end
 * anyway (a bound, so a monitor always hears of the node; in practice the homed ones finish
 * within a turn or two of their sessions resuming).
 */
const LOST_DRAIN_MS = 10_000;

const json = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');
function parse(b: Buffer): Record<string, unknown> {
  try {
    const v = JSON.parse(b.toString('utf8')) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

abstract class ChannelEnd {
  closed = false;
  constructor(
    protected readonly hub: Channels,
    readonly node: string,
    readonly id: number,
  ) {}
  protected abstract readonly dataType: ChannelRecord;
  protected abstract readonly closeType: ChannelRecord;

  write(bytes: Buffer): void {
    if (!this.closed) this.hub.pipes.send(this.node, this.dataType, this.id, bytes);
  }

  whenWritable(cb: () => void): void {
    // A closed channel drops its writes: nothing to wait for (and no pipe to make for it).
    if (this.closed) cb();
    else this.hub.pipes.whenWritable(this.node, cb);
  }

  /** Close this end and tell the other side why. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.pipes.send(this.node, this.closeType, this.id, json({ reason }));
    this.hub.forgetEnd(this);
  }

  /** The other side closed, or the link broke. */
  abstract ended(reason: string): void;
}

export class OpenerChannel extends ChannelEnd {
  protected readonly dataType = ChannelRecord.Up;
  protected readonly closeType = ChannelRecord.CloseUp;
  constructor(
    hub: Channels,
    node: string,
    id: number,
    readonly sink: OpenerSink,
  ) {
    super(hub, node, id);
  }
  ended(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.sink.closed(reason);
  }
}

export class HomeChannel extends ChannelEnd {
  protected readonly dataType = ChannelRecord.Down;
  protected readonly closeType = ChannelRecord.CloseDown;
  sink: HomeSink | undefined;
  /** Bytes that came before the home accepted (the opener may write right after OPEN). */
  private early: Buffer[] = [];

  accept(sink: HomeSink): void {
    this.sink = sink;
    for (const b of this.early) sink.data(b);
    this.early = [];
  }

  data(b: Buffer): void {
    if (this.sink === undefined) this.early.push(b);
    else this.sink.data(b);
  }

  ended(reason: string): void | Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.early = [];
    return this.sink?.closed(reason);
  }
}

export type OnChannel = (from: string, hello: Record<string, unknown>, channel: HomeChannel) => void;

export class Channels {
  private nextId = 1;
  /** Channels this node opened, by node then id. */
  private readonly opened = new Map<string, Map<number, OpenerChannel>>();
  /** Channels other nodes opened here, by node then id. */
  private readonly homed = new Map<string, Map<number, HomeChannel>>();

  constructor(
    readonly pipes: Pipes,
    private readonly onChannel: OnChannel,
  ) {}

  open(node: string, hello: Record<string, unknown>, sink: OpenerSink): OpenerChannel {
    const id = this.nextId++;
    const ch = new OpenerChannel(this, node, id, sink);
    this.table(this.opened, node).set(id, ch);
    this.pipes.send(node, ChannelRecord.Open, id, json(hello));
    return ch;
  }

  private table<T>(m: Map<string, Map<number, T>>, node: string): Map<number, T> {
    let t = m.get(node);
    if (t === undefined) {
      t = new Map();
      m.set(node, t);
    }
    return t;
  }

  forgetEnd(end: ChannelEnd): void {
    const m = end instanceof OpenerChannel ? this.opened : this.homed;
    m.get(end.node)?.delete(end.id);
  }

  /** Records from a pipe (pipes.ts calls this in order). */
  records(from: string, records: PipeRecord[]): void {
    for (const r of records) {
      switch (r.type) {
        case ChannelRecord.Open: {
          const ch = new HomeChannel(this, from, r.channel);
          this.table(this.homed, from).set(r.channel, ch);
          this.onChannel(from, parse(r.bytes), ch);
          break;
        }
        case ChannelRecord.Up:
          this.homed.get(from)?.get(r.channel)?.data(r.bytes);
          break;
        case ChannelRecord.CloseUp:
          this.closedBy(this.homed, from, r);
          break;
        case ChannelRecord.Down: {
          const ch = this.opened.get(from)?.get(r.channel);
          if (ch !== undefined && !ch.closed) ch.sink.data(r.bytes);
          break;
        }
        case ChannelRecord.CloseDown:
          this.closedBy(this.opened, from, r);
          break;
      }
    }
  }

  /** The other side closed channel `r.channel` of `from`: it leaves `m` and ends with the reason given. */
  private closedBy(m: Map<string, Map<number, ChannelEnd>>, from: string, r: PipeRecord): void {
    const ch = m.get(from)?.get(r.channel);
    if (ch === undefined) return;
    m.get(from)?.delete(r.channel);
    ch.ended(String(parse(r.bytes).reason ?? 'closed'));
  }

  /**
   * Every channel with `node` ends (its pipe was reset, or the node is down). The channels it
   * opened here end first; those this node opened to it only once those are served (or after
   * LOST_DRAIN_MS): a proxy session here may still hold, unread, sends its process made before
   * the end (paused while its output waited for the pipe), and a monitor, which hears through an
   * opened channel, must see `node-down` only after every one of them was delivered (Erlang's
   * guarantee for nodedown). Meanwhile the opened channels drop writes (nothing reaches a lost node).
   */
  lost(node: string, reason: string): void {
    const homed = this.homed.get(node);
    const opened = this.opened.get(node);
    this.homed.delete(node);
    this.opened.delete(node);
    const served: Promise<void>[] = [];
    for (const ch of homed?.values() ?? []) {
      const p = ch.ended(reason);
      if (p !== undefined) served.push(p);
    }
    const ends = [...(opened?.values() ?? [])].filter((ch) => !ch.closed);
    for (const ch of ends) ch.closed = true;
    const endOpened = () => {
      for (const ch of ends) ch.sink.closed(reason);
    };
    if (served.length === 0 || ends.length === 0) return endOpened();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, LOST_DRAIN_MS);
      timer.unref();
    });
    void Promise.race([Promise.all(served), bound]).then(() => {
      clearTimeout(timer);
      endOpened();
    });
  }

  /** How many channels are open with each node (status). */
  count(): number {
    let n = 0;
    for (const m of [this.opened, this.homed]) for (const t of m.values()) n += t.size;
    return n;
  }
}
