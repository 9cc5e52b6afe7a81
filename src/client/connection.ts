import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { MAX_PRIORITY } from '../core/priority-queue.js';
import {
  AbortError,
  errorFromCode,
  IpcError,
  KernelUnavailableError,
  MessageTooLargeError,
  NameTakenError,
  NoSuchProcessError,
  ProtocolError,
  TimeoutError,
} from '../errors.js';
import { type MapOptions, MapRegion, mapAvailable, resolveMapOptions } from '../map/map-region.js';
import { errorCodeFromWire } from '../wire/error-codes.js';
import { type Frame, FrameDecoder, FrameWriter, writeParts } from '../wire/frame-codec.js';
import type { PeekReply } from '../wire/info-types.js';
import { codecId, encodePayload, inferCodec } from '../wire/payload-codec.js';
import {
  type CodecName,
  CreditFlag,
  DeliverFlag,
  HEADER_REST,
  HelloFlag,
  MAGIC,
  MAP_REF_BYTES,
  MAX_CONTROL_BODY,
  MAX_TIMEOUT,
  Op,
  PEER_NAMES,
  PROTOCOL_VERSION,
  RecvFlag,
  SendFlag,
  UnmapFlag,
} from '../wire/protocol.js';
import { checkKernelPeer, checkSocketDirectory } from './kernel-trust.js';
import { type DeliveryControl, Message } from './message.js';
import { type Batch, newBatch } from './write-batch.js';

/** Options every operation that can wait accepts. */
export interface WaitOptions {
  /** Give up after this many milliseconds (TIMEOUT). Omit to wait indefinitely. */
  timeout?: number;
  /** Do not wait at all: fail with WOULD_BLOCK if the operation cannot complete now. */
  nonblock?: boolean;
  /** Abort the wait (ABORTED). */
  signal?: AbortSignal;
}

export interface SendOptions extends WaitOptions {
  /** 0..31, higher is delivered first. Default 0. */
  priority?: number;
  /** How the value is encoded. Default: bytes for Uint8Array, string for strings, else json. */
  codec?: CodecName;
  /** Complete only when a receiver has taken the message (whatever the capacity). */
  sync?: boolean;
}

export interface PeekOptions {
  /** How many messages at most, 1..100. Default 1. */
  count?: number;
}

/**
 * What a peek saw: copies of the first queued messages in delivery order, and
 * whether the queue holds more than those (`count` reached, or the byte cap:
 * one answer carries at most the kernel's maxMessageSize of payload, and always
 * the first queued message).
 */
export interface PeekResult {
  messages: Message[];
  more: boolean;
}

export interface ReceiveOptions extends WaitOptions {
  /** Keep the message owned by the kernel until `message.ack()`; if this process dies first it is redelivered. */
  ack?: boolean;
}

/** A mailbox or inbox as this connection sees it. */
export interface Target {
  readonly id: number;
  readonly name: string;
  readonly kind: 'mailbox' | 'inbox';
  readonly capacity: number;
  readonly maxMessageSize: number;
  readonly fixedMessageSize: number | undefined;
  /** Slots the kernel promised to this process (sends without a round trip). */
  credits: number;
  /** Bytes of the kernel's memory budget promised with them. */
  byteCredits: number;
  closed: IpcError | undefined;
  /** Consumer of prefetched deliveries (async iteration), if one is running. */
  consumer: PrefetchConsumer | undefined;
  /**
   * Handles of this process on the mailbox. The link (credits, attachment) is
   * per process in the kernel, so handles share one Target and the kernel
   * hears `mailbox.close` only when the last handle closes.
   */
  handles?: number;
  /** Request sends not yet answered: while any is, later sends must not overtake it on credit. */
  requestSends?: number;
  /**
   * The last send to this target still waiting for a free map chunk, and every send after
   * it waits behind it: FIFO per sender holds whatever a send waits for.
   */
  sendQueue?: Promise<void>;
  /** A mailbox on another node (its CREDIT said COPY): sends to it are never mapped. */
  byCopy?: boolean;
}

export interface PrefetchConsumer {
  /** The request id naming this iteration on the wire (its DEMAND frames; a refusal answers it). */
  readonly reqId: number;
  push(message: Message): void;
  /** Take an unread delivery back out of the buffer; false if the application already has it. */
  withdraw(deliveryId: number): Message | undefined;
  fail(error: IpcError): void;
  /**
   * The kernel detached this process (its receive right was revoked) and took back every
   * delivery not yet consumed: drop the unread ones (they go to other receivers now), then fail.
   */
  revoked?(error: IpcError): void;
  /** End the iteration as if the loop had returned. */
  close(): void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: IpcError): void;
  /** Set when the caller gave up (abort): a late DELIVER is handed back to the kernel. */
  abandoned: boolean;
  target: Target | undefined;
  cleanup: (() => void) | undefined;
  /** A `mailbox.peek`: the copies its DELIVER (PEEK) frames brought, before its RESULT. */
  peeked?: Message[];
  /** A receive: the same receive again (its answer was a lend this process could not map). */
  again?: () => Promise<unknown>;
}

export interface Welcome {
  pid: number;
  name: string;
  inbox: number;
  maxMessageSize: number;
  /** The kernel takes MAPPED sends from this connection and may lend it MAPPED deliveries (protocol 3). */
  map: boolean;
  /** Every process of this kernel can map this host's shared memory as this one can (HelloFlag.HOST_LOCAL). */
  hostLocal: boolean;
}

/** A region this process reads lent payloads from, and how many of its views are out. */
interface LentRegion {
  readonly region: MapRegion;
  /** Views lent and not yet released (or collected). */
  out: number;
  /** Views it may hold at once: half the region's chunks (at least one), see lendView. */
  readonly most: number;
}

/**
 * This connection's map region: large payloads are written once into it and sent by
 * reference (src/map/map-region.ts). Set up on the first large send (that one is copied).
 */
interface MapOut {
  readonly threshold: number;
  readonly chunks: number;
  readonly chunkBytes: number;
  state: 'none' | 'pending' | 'ready' | 'off';
  region: MapRegion | undefined;
  id: number;
}

export type NoticeHandler = (notice: Record<string, unknown>) => void;

const FLUSH_THRESHOLD = 64 * 1024;
/** Shared defaults for the hot path: no allocation per call. */
const NO_OPTIONS: SendOptions = Object.freeze({});
const CREDIT_LOW_WATER = 32;
/** Large messages spend budget bytes before slots: below this many, turn the loop to read the top-up. */
const BYTE_CREDIT_LOW_WATER = 1024 * 1024;

/** Resolve after one full turn of the event loop, including its I/O poll phase. */
function yieldThroughPoll(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/**
 * One connection to the kernel: frames out (batched into one write per turn
 * of the event loop), frames in, request ids, credits, deliveries.
 */
export class Connection implements DeliveryControl {
  private readonly writer = new FrameWriter();
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private readonly targets = new Map<number, Target>();
  private readonly peers = new Map<number, string>();
  /** Names of processes that have sent to us, kept after they exit (their messages may still be queued). */
  private readonly pidsByName = new Map<string, number>();
  private nextReq = 1;
  private flushScheduled = false;
  private microFlushScheduled = false;
  private consumed: number[] = [];
  /** Delivery ids of lent (mapped) payloads the application is done with: UNMAP, batched like CONSUMED. */
  private unmapped: number[] = [];
  /** Where large sends go by map; undefined when this connection sends by copy only. */
  private mapOut: MapOut[] | undefined;
  /** Map regions this process was lent payloads from, by the kernel's region id, with the views it holds. */
  private readonly lentFrom = new Map<number, LentRegion>();
  /** Aborted when the connection is lost: a send waiting for a map chunk stops waiting. */
  private readonly lostSignal = new AbortController();
  /** A MAPPED SEND's reference (u32 region, u32 chunk, u32 length): the frame copies it. */
  private readonly ref = Buffer.allocUnsafe(MAP_REF_BYTES);
  /** Credited sends in the batch being written, not yet in the socket. */
  private batch: Batch | undefined;
  /** Batches handed to the socket whose write has not completed. */
  private readonly writing = new Set<Batch>();
  private lost: IpcError | undefined;
  private welcome: Welcome | undefined;
  private noticeHandler: NoticeHandler | undefined;
  /**
   * Notices that came before anyone took them: right after WELCOME, in the same read, before the
   * process object exists (a peer may signal a process the moment it connects). At most 1024 kept.
   */
  private earlyNotices: Record<string, unknown>[] = [];

  /** Who gets the notices (the process object); the ones that came before it are handed over. */
  set onNotice(h: NoticeHandler) {
    this.noticeHandler = h;
    const early = this.earlyNotices;
    this.earlyNotices = [];
    for (const n of early) h(n);
  }
  onLost: (error: IpcError) => void = () => {};

  private constructor(
    private readonly socket: Socket,
    maxFrame: number,
  ) {
    this.decoder = new FrameDecoder(
      maxFrame,
      (f) => this.onFrame(f),
      (e) => this.fail(e),
    );
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
      } catch (e) {
        // Nothing the kernel sends may throw out of the socket handler and take the process down.
        this.fail(new ProtocolError(`could not process a frame from the kernel: ${String(e)}`));
      }
    });
    socket.on('error', () => {
      // 'close' follows.
    });
    socket.on('close', () =>
      this.fail(new KernelUnavailableError('connection to the ipcbox kernel was lost')),
    );
  }

  static async open(
    place: KernelPlace,
    name: string,
    inboxCapacity: number,
    timeoutMs: number,
    map: MapOptions | false = {},
  ): Promise<Connection> {
    // Map needs a kernel on this host and the addon here; the kernel says in WELCOME if it has it too.
    const mapOptions =
      map === false || place.kind !== 'unix' || !mapAvailable() ? undefined : resolveMapOptions(map);
    const where = place.kind === 'unix' ? place.path : `tls://${place.host}:${place.port}`;
    const trust = place.kind === 'unix' ? checkSocketDirectory(place.path) : undefined;
    const socket =
      place.kind === 'unix'
        ? netConnect(place.path)
        : tlsConnect({
            host: place.host,
            port: place.port,
            servername: /^[\d.:]+$/.test(place.host) ? undefined : place.host,
            ...(place.ca === undefined ? {} : { ca: place.ca }),
          });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new KernelUnavailableError(`no ipcbox kernel answered on ${where} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once(place.kind === 'unix' ? 'connect' : 'secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new KernelUnavailableError(
            `no ipcbox kernel is listening on ${where} (${err.code ?? err.message})`,
            { cause: err },
          ),
        );
      });
    });
    if (place.kind === 'unix') {
      try {
        checkKernelPeer(socket, place.path, trust!);
      } catch (e) {
        socket.destroy();
        throw e;
      }
    }
    // The kernel's frame limit is unknown until WELCOME; accept up to 1 GiB until then.
    const conn = new Connection(socket, HEADER_REST + 1024 * 1024 * 1024 + 8);
    // Over the network the token comes first; a wrong one is PERMISSION_DENIED, and the kernel hangs up.
    if (place.kind === 'tls')
      await conn.handshake(
        Op.AUTH,
        Buffer.from(place.token, 'utf8'),
        timeoutMs,
        `${where} did not answer AUTH`,
      );
    const nameBytes = Buffer.from(name, 'utf8');
    const hello = Buffer.allocUnsafe(16 + nameBytes.length);
    hello.writeUInt32LE(MAGIC, 0);
    hello.writeUInt16LE(PROTOCOL_VERSION, 4);
    hello.writeUInt16LE(mapOptions === undefined ? 0 : HelloFlag.MAP, 6);
    hello.writeUInt32LE(process.pid, 8);
    hello.writeUInt32LE(inboxCapacity === Number.POSITIVE_INFINITY ? 0xffffffff : inboxCapacity, 12);
    nameBytes.copy(hello, 16);
    const welcome = (await conn.handshake(
      Op.HELLO,
      hello,
      timeoutMs,
      `${where} did not answer HELLO`,
    )) as Welcome;
    conn.welcome = welcome;
    if (mapOptions !== undefined && welcome.map)
      conn.mapOut = mapOptions.classes.map((c) => ({
        threshold: mapOptions.threshold,
        ...c,
        state: 'none',
        region: undefined,
        id: 0,
      }));
    return conn;
  }

  /**
   * A request of the handshake (AUTH on a network connection, then HELLO): rejects with the kernel's
   * error; the timeout covers it, so something that accepts but never answers (a wedged or foreign
   * listener) cannot hang connect() forever.
   */
  private handshake(op: number, body: Buffer, timeoutMs: number, silence: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const reqId = this.nextReq++;
      const timer = setTimeout(() => {
        this.fail(new KernelUnavailableError(`the ipcbox kernel on ${silence} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(reqId, {
        resolve,
        reject,
        abandoned: false,
        target: undefined,
        cleanup: () => clearTimeout(timer),
      });
      this.writer.frame(op, 0, 0, 0, reqId, 0, 0, 0, 0, body);
      this.flush();
    });
  }

  get info(): Welcome {
    return this.welcome!;
  }

  get closedError(): IpcError | undefined {
    return this.lost;
  }

  // ---------------------------------------------------------------- output

  /**
   * Frames go out in one write per turn of the event loop (setImmediate), so
   * a streaming sender batches. A request the caller then waits on (`urgent`)
   * goes out at the end of the current job instead: waiting a turn would only
   * add latency.
   */
  private scheduleFlush(urgent = false): void {
    if (this.writer.pending >= FLUSH_THRESHOLD) {
      this.flush();
      return;
    }
    if ((urgent || this.batch !== undefined) && !this.microFlushScheduled) {
      this.microFlushScheduled = true;
      queueMicrotask(() => {
        this.microFlushScheduled = false;
        this.flush();
      });
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.consumed.length > 0) this.writeIds(Op.CONSUMED, this.consumed.splice(0));
    if (this.unmapped.length > 0) this.writeIds(Op.UNMAP, this.unmapped.splice(0));
    const parts = this.writer.takeParts();
    const batch = this.batch;
    this.batch = undefined;
    if (parts === undefined || this.lost !== undefined) {
      if (batch !== undefined) {
        if (this.lost !== undefined) batch.reject(this.lost);
        else batch.resolve();
      }
      return;
    }
    if (batch === undefined) {
      writeParts(this.socket, parts);
      return;
    }
    this.writing.add(batch);
    writeParts(this.socket, parts, (err) => {
      this.writing.delete(batch);
      if (err)
        batch.reject(this.lost ?? new KernelUnavailableError('connection to the ipcbox kernel was lost'));
      else batch.resolve();
    });
  }

  private writeIds(op: number, ids: number[]): void {
    if (op !== Op.CONSUMED) this.out();
    const body = Buffer.allocUnsafe(ids.length * 4);
    for (let i = 0; i < ids.length; i++) body.writeUInt32LE(ids[i]!, i * 4);
    this.writer.frame(op, 0, 0, 0, 0, 0, 0, 0, 0, body);
  }

  /**
   * The writer, after the CONSUMED ids gathered so far: they are batched, but
   * never overtaken by a frame written after them (a `mailbox.close` or a
   * RELEASE must not reach the kernel before it hears the messages were taken).
   */
  private out(): FrameWriter {
    if (this.consumed.length > 0) this.writeIds(Op.CONSUMED, this.consumed.splice(0));
    return this.writer;
  }

  ack(deliveryId: number): void {
    this.writeIds(Op.ACK, [deliveryId]);
    this.scheduleFlush();
  }

  release(deliveryId: number): void {
    this.writeIds(Op.RELEASE, [deliveryId]);
    this.scheduleFlush();
  }

  private newRequest(
    target: Target | undefined,
    signal: AbortSignal | undefined,
    onAbort?: (reqId: number) => void,
  ) {
    if (this.lost !== undefined) throw this.lost;
    let reqId = this.nextReq++;
    if (this.nextReq > 0xffffffff) this.nextReq = 1;
    if (reqId === 0) reqId = this.nextReq++;
    let resolve!: (v: unknown) => void;
    let reject!: (e: IpcError) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const p: Pending = { resolve, reject, abandoned: false, target, cleanup: undefined };
    if (signal !== undefined) {
      const listener = () => onAbort?.(reqId);
      signal.addEventListener('abort', listener, { once: true });
      p.cleanup = () => signal.removeEventListener('abort', listener);
    }
    this.pending.set(reqId, p);
    return { reqId, promise };
  }

  private settle(reqId: number): Pending | undefined {
    const p = this.pending.get(reqId);
    if (p === undefined) return undefined;
    this.pending.delete(reqId);
    p.cleanup?.();
    return p;
  }

  /**
   * A control call (JSON in, JSON out). With `signal`, one the kernel may keep
   * waiting (`process.wait`): an abort rejects at once and asks the kernel to
   * withdraw it; its late answer, whatever it is, is dropped.
   */
  call<T>(method: string, args: Record<string, unknown> = {}, signal?: AbortSignal): Promise<T> {
    try {
      if (signal?.aborted) throw new AbortError();
      const body = Buffer.from(JSON.stringify({ m: method, a: args }), 'utf8');
      if (body.length > MAX_CONTROL_BODY) throw new IpcError('INVALID_ARGUMENT', 'control call too large');
      const { reqId, promise } = this.newRequest(undefined, signal, (id) =>
        this.abandon(id, new AbortError(`${method} aborted`)),
      );
      this.out().frame(Op.CALL, 0, 0, 0, reqId, 0, 0, 0, 0, body);
      this.scheduleFlush(true);
      return promise as Promise<T>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The caller gave up on a request the kernel may still be holding: reject it
   * now and ask the kernel to withdraw it. The request stays known until the
   * kernel answers, so that answer is recognised and dropped (a message on its
   * way is handed back).
   */
  private abandon(reqId: number, error: IpcError): void {
    const p = this.pending.get(reqId);
    if (p === undefined) return;
    p.abandoned = true;
    p.cleanup?.();
    p.reject(error);
    this.cancel(reqId);
  }

  /**
   * Copies of the first `count` messages queued in `target`, in delivery
   * order, left in the queue (`mailbox.peek`; needs the receive right).
   */
  async peek(target: Target, count: number): Promise<PeekResult> {
    if (target.closed !== undefined) throw target.closed;
    const body = Buffer.from(JSON.stringify({ m: 'mailbox.peek', a: { id: target.id, count } }), 'utf8');
    const { reqId, promise } = this.newRequest(target, undefined);
    const peeked: Message[] = [];
    this.pending.get(reqId)!.peeked = peeked;
    this.out().frame(Op.CALL, 0, 0, 0, reqId, 0, 0, 0, 0, body);
    this.scheduleFlush(true);
    const reply = (await promise) as PeekReply;
    if (reply.count !== peeked.length) {
      throw new ProtocolError(`peek answered ${reply.count} messages but sent ${peeked.length}`);
    }
    return { messages: peeked, more: reply.more === true };
  }

  // ---------------------------------------------------------------- targets

  /**
   * A new handle on a mailbox: returns the one Target this process keeps for
   * it (a second handle shares the first's credits and attachment).
   */
  registerTarget(target: Target): Target {
    const existing = this.targets.get(target.id);
    if (existing !== undefined && existing.closed === undefined) {
      existing.handles = (existing.handles ?? 1) + 1;
      return existing;
    }
    target.handles = 1;
    this.targets.set(target.id, target);
    return target;
  }

  /** A handle closed; true if it was the last, and the link is gone (the caller tells the kernel). */
  releaseTarget(target: Target): boolean {
    target.handles = (target.handles ?? 1) - 1;
    if (target.handles > 0) return false;
    if (target.credits > 0 || target.byteCredits > 0) this.returnCredits(target.id, target, 0);
    if (this.targets.get(target.id) === target) this.targets.delete(target.id);
    return true;
  }

  /**
   * CREDIT_RETURN: hand unspent credits back, answering the REVOKE of round
   * `epoch` (0: unasked). The kernel counts credits itself; slots and bytes are informational.
   */
  private returnCredits(id: number, target: Target | undefined, epoch: number): void {
    const body = Buffer.allocUnsafe(12);
    body.writeUInt32LE(target?.credits ?? 0, 0);
    body.writeUInt32LE(target?.byteCredits ?? 0, 4);
    body.writeUInt32LE(epoch >>> 0, 8);
    this.out().frame(Op.CREDIT_RETURN, 0, 0, 0, 0, id, 0, 0, 0, body);
    if (target !== undefined) {
      target.credits = 0;
      target.byteCredits = 0;
    }
    this.scheduleFlush();
  }

  peerName(pid: number): string {
    return this.peers.get(pid) ?? `pid-${pid}`;
  }

  /**
   * The name behind a sender pid, newest last (from the kernel's `peer` notices, and from one-hop
   * links as they are accepted): bounded, oldest out first, as the kernel re-sends names it has not sent lately.
   */
  learnPeer(pid: number, name: string): void {
    this.peers.delete(pid);
    this.peers.set(pid, name);
    this.pidsByName.delete(name);
    this.pidsByName.set(name, pid);
    if (this.peers.size > PEER_NAMES) this.peers.delete(this.peers.keys().next().value as number);
    if (this.pidsByName.size > PEER_NAMES) {
      this.pidsByName.delete(this.pidsByName.keys().next().value as string);
    }
  }

  /** The pid of the process of this name that most recently sent to this one, if any did. */
  knownPid(name: string): number | undefined {
    return this.pidsByName.get(name);
  }

  // ---------------------------------------------------------------- send

  send(target: Target, value: unknown, options: SendOptions = NO_OPTIONS): Promise<void> {
    try {
      if (target.closed !== undefined) throw target.closed;
      if (this.lost !== undefined) throw this.lost;
      const priority = options.priority ?? 0;
      if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
        throw new RangeError(`priority must be an integer from 0 to ${MAX_PRIORITY}`);
      }
      const codec = options.codec === undefined ? inferCodec(value) : codecId(options.codec);
      const payload = encodePayload(value, codec);
      if (payload.byteLength > target.maxMessageSize)
        throw new MessageTooLargeError(payload.byteLength, target.maxMessageSize);
      if (target.fixedMessageSize !== undefined && payload.byteLength !== target.fixedMessageSize) {
        throw new IpcError(
          'WRONG_MESSAGE_SIZE',
          `${target.name} takes messages of exactly ${target.fixedMessageSize} bytes, got ${payload.byteLength}`,
        );
      }
      validateWait(options);
      if (options.signal?.aborted) throw new AbortError();
      if (target.sendQueue !== undefined)
        return this.queueSend(target, () => this.sendNow(target, payload, codec, priority, options, true));
      return this.sendNow(target, payload, codec, priority, options, false);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * A send's way: by map if it is large and a chunk is free (or, a blocking send, once one
   * is: it and the sends after it wait their turn), else by copy. `queued`: it already has
   * its turn in the target's queue.
   */
  private sendNow(
    target: Target,
    payload: Uint8Array,
    codec: number,
    priority: number,
    options: SendOptions,
    queued: boolean,
  ): Promise<void> {
    const m = target.byCopy === true ? undefined : this.mapClass(payload.byteLength);
    let chunk = -1;
    if (m !== undefined) {
      // A region cut short under us (another process truncated it) reads zeros: copy from now on.
      if (m.state === 'ready' && (m.region as MapRegion).damaged) m.state = 'off';
      if (m.state === 'ready') {
        chunk = (m.region as MapRegion).slab.tryAcquire();
        if (chunk < 0 && !options.nonblock) {
          // Every chunk is queued or lent to receivers still holding views: wait for one. A
          // non-blocking send copies instead (the kernel's budget bounds that).
          const wait = () => this.sendWhenChunk(target, payload, codec, priority, options, m);
          return queued ? wait() : this.queueSend(target, wait);
        }
      } else if (m.state === 'none') this.setUpMap(m);
    }
    return this.sendPayload(target, payload, codec, priority, options, chunk, m);
  }

  /** The region (size class) a payload of `size` bytes goes to by map; undefined: copy it. */
  private mapClass(size: number): MapOut | undefined {
    const classes = this.mapOut;
    if (classes === undefined || size < (classes[0] as MapOut).threshold) return undefined;
    for (const c of classes) if (size <= c.chunkBytes) return c;
    return undefined;
  }

  /** Run `send` after the target's queued sends (whatever their outcome); it becomes the last. */
  private queueSend(target: Target, send: () => Promise<void>): Promise<void> {
    const before = target.sendQueue ?? Promise.resolve();
    const p = before.then(send);
    const turn = p.then(
      () => {},
      () => {},
    );
    target.sendQueue = turn;
    void turn.then(() => {
      if (target.sendQueue === turn) target.sendQueue = undefined;
    });
    return p;
  }

  /** A large send waits for a free chunk of the map region (timeout, signal, connection loss end the wait). */
  private async sendWhenChunk(
    target: Target,
    payload: Uint8Array,
    codec: number,
    priority: number,
    options: SendOptions,
    m: MapOut,
  ): Promise<void> {
    const started = performance.now();
    // The wait ends on the caller's signal or on the connection's loss, whichever comes first.
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    const lost = this.lostSignal.signal;
    if (options.signal?.aborted || lost.aborted) stop.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    lost.addEventListener('abort', onAbort, { once: true });
    let chunk: number;
    try {
      chunk = await (m.region as MapRegion).slab.acquire({ timeout: options.timeout, signal: stop.signal });
    } catch (e) {
      if (this.lost !== undefined) throw this.lost;
      if (e instanceof TimeoutError) {
        throw new TimeoutError(
          `send to ${target.name} timed out after ${options.timeout} ms waiting for a free map chunk (all ${m.chunks} hold payloads queued or lent to receivers)`,
          { cause: e },
        );
      }
      if (options.signal?.aborted) throw new AbortError('send aborted', { cause: options.signal.reason });
      throw e;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      lost.removeEventListener('abort', onAbort);
    }
    const timeout =
      options.timeout === undefined
        ? undefined
        : Math.max(0, options.timeout - (performance.now() - started));
    return this.sendPayload(
      target,
      payload,
      codec,
      priority,
      timeout === undefined ? options : { ...options, timeout },
      chunk,
      m,
    );
  }

  /**
   * Write the SEND: credited if it can be, else a request. With `chunk` (held by this
   * process) the payload is written into that chunk of the map region and the frame carries
   * only its reference (MAPPED): from the frame on, the chunk is the kernel's.
   */
  private sendPayload(
    target: Target,
    payload: Uint8Array,
    codec: number,
    priority: number,
    options: SendOptions,
    chunk: number,
    m?: MapOut,
  ): Promise<void> {
    try {
      const refused = target.closed ?? this.lost ?? (options.signal?.aborted ? new AbortError() : undefined);
      if (refused !== undefined) {
        if (chunk >= 0) m?.region?.slab.release(chunk);
        throw refused;
      }
      let body = payload;
      let mapped = 0;
      if (chunk >= 0 && m !== undefined) {
        const region = m.region as MapRegion;
        region.view(chunk, payload.byteLength).set(payload);
        region.slab.markQueued(chunk);
        if (region.damaged) {
          // Cut short while we wrote (the bytes went nowhere): this one and the rest by copy.
          m.state = 'off';
        } else {
          const ref = this.ref;
          ref.writeUInt32LE(m.id, 0);
          ref.writeUInt32LE(chunk, 4);
          ref.writeUInt32LE(payload.byteLength, 8);
          body = ref;
          mapped = SendFlag.MAPPED;
        }
      }
      if (
        target.credits > 0 &&
        target.byteCredits >= body.byteLength &&
        options.sync !== true &&
        !(target.requestSends! > 0)
      ) {
        // Within credit: the slot is already ours, so the send needs no answer. It resolves once
        // its batch is in the socket: from then on the kernel gets it even if this process dies.
        target.credits--;
        target.byteCredits -= body.byteLength;
        this.out().frame(Op.SEND, mapped, priority, codec, 0, target.id, 0, 0, 0, body);
        this.batch ??= newBatch();
        const written = this.batch.promise;
        this.scheduleFlush();
        // Now and then, and more often when running low, let the event loop turn once (through
        // its I/O poll) so the kernel's credit top-up is read before the credits run out and a
        // send must wait a round trip.
        const c = target.credits;
        if (
          (c & 127) === 0 ||
          (c < CREDIT_LOW_WATER && (c & 7) === 0) ||
          target.byteCredits < BYTE_CREDIT_LOW_WATER
        ) {
          return written.then(yieldThroughPoll);
        }
        return written;
      }
      // A request send: later sends from this process to the same target go as requests too
      // until it is answered, so none overtakes it (FIFO per sender).
      target.requestSends = (target.requestSends ?? 0) + 1;
      const { reqId, promise } = this.newRequest(target, options.signal, (id) => this.cancel(id));
      const settled = () => {
        target.requestSends = (target.requestSends ?? 1) - 1;
      };
      promise.then(settled, settled);
      let flags = mapped;
      if (options.nonblock) flags |= SendFlag.NONBLOCK;
      if (options.sync) flags |= SendFlag.SYNC;
      if (options.timeout !== undefined && options.timeout <= MAX_TIMEOUT) flags |= SendFlag.TIMED;
      this.out().frame(
        Op.SEND,
        flags,
        priority,
        codec,
        reqId,
        target.id,
        flags & SendFlag.TIMED ? 1 : 0,
        timeoutWord(options.timeout),
        0,
        body,
      );
      this.scheduleFlush(true);
      return promise as Promise<void>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Create this process's map region and register it with the kernel (in the background:
   * large sends copy until it is ready). A failure leaves the connection copying.
   */
  private setUpMap(m: MapOut): void {
    m.state = 'pending';
    let region: MapRegion;
    try {
      region = MapRegion.create(m.chunks, m.chunkBytes);
    } catch {
      m.state = 'off';
      return;
    }
    const drop = () => {
      m.state = 'off';
      region.unlink();
      region.close();
    };
    this.call<{ id: number }>('map.register', { name: region.name }).then((r) => {
      if (this.lost !== undefined) return drop();
      m.region = region;
      m.id = r.id;
      m.state = 'ready';
    }, drop);
  }

  /**
   * A lease on lent payload `deliveryId` ended (release, dispose, finalizer; or, without
   * `tell`, its delivery was handed back, which returns the lend too).
   */
  private unmap(lent: LentRegion, deliveryId: number, tell: boolean): void {
    lent.out--;
    if (!tell || this.lost !== undefined) return;
    this.unmapped.push(deliveryId);
    this.scheduleFlush();
  }

  /**
   * The payload of a MAPPED delivery: chunk and length from its reference, in the region it
   * names (opened on first use, kept until the kernel says it is gone). Lent as a view while
   * this process holds fewer than half the region's chunks; beyond that copied into private
   * memory and handed back at once, so a receiver that never releases (leaving its views to
   * the garbage collector, which may run rarely) can never stop the sender. Undefined if this
   * process cannot open the region.
   */
  private lendView(
    f: Frame,
    deliveryId: number,
  ): { bytes: Buffer; unmap?: (tell: boolean) => void } | undefined {
    if (f.bodyLength < 20) return undefined;
    const regionId = f.u32(8);
    const chunk = f.u32(12);
    const length = f.u32(16);
    let lent = this.lentFrom.get(regionId);
    if (lent === undefined) {
      let region: MapRegion;
      try {
        region = MapRegion.open(f.buf.toString('utf8', f.start + 20, f.end));
      } catch {
        return undefined;
      }
      lent = { region, out: 0, most: Math.max(1, region.chunks >>> 1) };
      this.lentFrom.set(regionId, lent);
    }
    const r = lent.region;
    if (chunk >= r.chunks || length > r.chunkBytes) return undefined;
    if (lent.out >= lent.most) {
      const bytes = Buffer.from(r.view(chunk, length));
      this.unmapped.push(deliveryId);
      this.scheduleFlush();
      return { bytes };
    }
    lent.out++;
    const held = lent;
    return { bytes: r.lend(chunk, length), unmap: (tell) => this.unmap(held, deliveryId, tell) };
  }

  /** Hand back a MAPPED delivery this process could not map: the kernel redelivers it by copy. */
  private refuseMapped(deliveryId: number): void {
    this.out().frame(Op.UNMAP, UnmapFlag.REFUSE, 0, 0, 0, 0, 1, deliveryId, 0, undefined);
    this.scheduleFlush();
  }

  /** Ask the kernel to withdraw a parked send or receive; its answer settles the request. */
  private cancel(reqId: number): void {
    const p = this.pending.get(reqId);
    if (p === undefined) return;
    this.out().frame(Op.CANCEL, 0, 0, 0, reqId, 0, 0, 0, 0, undefined);
    this.scheduleFlush(true);
  }

  // ---------------------------------------------------------------- receive

  receive(target: Target, options: ReceiveOptions & { from?: number } = {}): Promise<Message> {
    try {
      if (target.closed !== undefined) throw target.closed;
      if (this.lost !== undefined) throw this.lost;
      validateWait(options);
      if (options.signal?.aborted) throw new AbortError();
      const { reqId, promise } = this.newRequest(target, options.signal, (id) =>
        this.abandon(id, new AbortError('receive aborted')),
      );
      let flags = 0;
      let words: 0 | 1 | 2 = 0;
      let w0 = 0;
      let w1 = 0;
      if (options.nonblock) flags |= RecvFlag.NONBLOCK;
      if (options.ack) flags |= RecvFlag.ACK;
      if (options.timeout !== undefined && options.timeout <= MAX_TIMEOUT) {
        flags |= RecvFlag.TIMED;
        w0 = timeoutWord(options.timeout);
        words = 1;
      }
      if (options.from !== undefined) {
        flags |= RecvFlag.FROM;
        if (words === 1) w1 = options.from;
        else w0 = options.from;
        words = (words + 1) as 1 | 2;
      }
      this.pending.get(reqId)!.again = () => this.receive(target, options);
      this.out().frame(Op.RECV, flags, 0, 0, reqId, target.id, words, w0, w1, undefined);
      this.scheduleFlush(true);
      return promise as Promise<Message>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** A request id for an iteration: its DEMAND frames carry it, and a refusal of them answers it. */
  iterationId(): number {
    let reqId = this.nextReq++;
    if (this.nextReq > 0xffffffff) this.nextReq = 1;
    if (reqId === 0) reqId = this.nextReq++;
    return reqId;
  }

  /** Change standing prefetch demand for a target (async iteration `reqId`). */
  demand(target: Target, delta: number, ack: boolean, reqId: number): void {
    if (this.lost !== undefined) return;
    this.out().frame(Op.DEMAND, ack ? RecvFlag.ACK : 0, 0, 0, reqId, target.id, 1, delta | 0, 0, undefined);
    this.scheduleFlush();
  }

  /**
   * Hand back prefetched messages nobody will read (iteration ended), in the
   * order they came: the kernel puts them back in their original order.
   */
  giveBack(messages: readonly Message[]): void {
    if (this.lost !== undefined || messages.length === 0) return;
    // Their lends go back with them.
    for (const m of messages) m.revoke();
    this.writeIds(
      Op.RELEASE,
      messages.map((m) => m.deliveryId),
    );
    this.scheduleFlush();
  }

  /** Tell the kernel the application took a tracked delivery. */
  markConsumed(deliveryId: number): void {
    this.consumed.push(deliveryId);
    this.scheduleFlush();
  }

  bye(): void {
    if (this.lost !== undefined) return;
    this.flush();
    this.out().frame(Op.BYE, 0, 0, 0, 0, 0, 0, 0, 0, undefined);
    this.flush();
    // Sends already written stay valid: their batches resolve as the socket drains.
    this.lost = new IpcError('DISCONNECTED', 'this process closed its connection');
    // A send waiting for a map chunk stops waiting (the kernel unlinks the region once nothing refers to it).
    this.lostSignal.abort(this.lost);
    this.socket.end();
    this.rejectAll(this.lost);
  }

  // ---------------------------------------------------------------- input

  private onFrame(f: Frame): void {
    switch (f.op) {
      case Op.DELIVER:
        return this.onDeliver(f);
      case Op.SENT: {
        const p = this.settle(f.reqId);
        p?.resolve(undefined);
        return;
      }
      case Op.CREDIT: {
        const t = this.targets.get(f.target);
        if (t !== undefined && t.closed === undefined) {
          if ((f.flags & CreditFlag.COPY) !== 0) t.byCopy = true;
          t.credits += f.u32(0);
          if (f.bodyLength >= 8) t.byteCredits += f.u32(4);
        } else {
          this.returnCredits(f.target, undefined, 0);
        }
        return;
      }
      case Op.WITHDRAW: {
        // Its sender gave up: if no loop has taken it yet, it goes back and the sender's send fails.
        const id = f.u32(0);
        for (const t of this.targets.values()) {
          const m = t.consumer?.withdraw(id);
          if (m !== undefined) {
            m.revoke();
            this.release(id);
            return;
          }
        }
        return;
      }
      case Op.REVOKE:
        this.returnCredits(f.target, this.targets.get(f.target), f.bodyLength >= 4 ? f.u32(0) : 0);
        return;
      case Op.RESULT: {
        const p = this.settle(f.reqId);
        if (p === undefined) return;
        try {
          p.resolve(JSON.parse(f.body.toString('utf8')));
        } catch {
          p.reject(new ProtocolError('RESULT body is not valid JSON'));
        }
        return;
      }
      case Op.ERROR:
        return this.onError(f);
      case Op.NOTICE:
        return this.onNoticeFrame(f);
      case Op.WELCOME: {
        const b = f.body;
        const p = this.settle(f.reqId);
        p?.resolve({
          maxMessageSize: b.readUInt32LE(4),
          pid: b.readUInt32LE(8),
          inbox: b.readUInt32LE(12),
          name: b.toString('utf8', 16),
          map: (b.readUInt16LE(2) & HelloFlag.MAP) !== 0,
          hostLocal: (b.readUInt16LE(2) & HelloFlag.HOST_LOCAL) !== 0,
        } satisfies Welcome);
        return;
      }
      default:
        this.fail(new ProtocolError(`unexpected op ${f.op} from the kernel`));
    }
  }

  private onError(f: Frame): void {
    if (f.bodyLength < 4) return this.fail(new ProtocolError('ERROR frame without a code'));
    const code = errorCodeFromWire(f.u32(0));
    const text = f.body.toString('utf8', 4);
    if (f.reqId === 0) {
      this.fail(errorFromCode(code, text));
      return;
    }
    // A refused iteration (no receive right, exclusive mailbox taken): that iteration fails, nothing else.
    for (const t of this.targets.values()) {
      if (t.consumer !== undefined && t.consumer.reqId === f.reqId) {
        t.consumer.fail(errorFromCode(code, text));
        return;
      }
    }
    const p = this.settle(f.reqId);
    if (p === undefined || p.abandoned) return;
    let err = errorFromCode(code, text);
    if (code === 'NAME_TAKEN') err = new NameTakenError(text.replace(/^.*: /, ''));
    const t = p.target;
    if (t !== undefined && t.kind === 'inbox' && (code === 'MAILBOX_CLOSED' || code === 'NO_SUCH_MAILBOX')) {
      err = new NoSuchProcessError(t.name.slice(1));
    } else if (t !== undefined && code === 'NO_SUCH_MAILBOX') {
      // A mailbox this handle had open is gone by its id: it was deleted (closed for everyone) while
      // the request was on its way, which is how a send or receive that waited on it fails too.
      err = errorFromCode('MAILBOX_CLOSED', `${t.name} was closed: ${text}`);
    }
    p.reject(err);
  }

  private onDeliver(f: Frame): void {
    if (f.bodyLength < 8) return this.fail(new ProtocolError('DELIVER frame without a delivery id'));
    const deliveryId = f.u32(0);
    const senderPid = f.u32(4);
    const tracked = (f.flags & DeliverFlag.TRACKED) !== 0;
    const needsAck = (f.flags & DeliverFlag.ACK) !== 0;
    const t = this.targets.get(f.target);
    const mailboxName = t?.name ?? `#${f.target}`;
    if ((f.flags & DeliverFlag.PEEK) !== 0) {
      // A copy answering a peek: the message stays queued, so there is nothing to consume.
      this.pending
        .get(f.reqId)
        ?.peeked?.push(
          new Message(
            f.bodyFrom(8),
            f.codec,
            f.priority,
            this.peerName(senderPid),
            senderPid,
            mailboxName,
            false,
            0,
            false,
            this,
            true,
          ),
        );
      return;
    }
    // A mapped payload is lent in place (the view is made only for a message someone gets).
    const mapped = (f.flags & DeliverFlag.MAPPED) !== 0;
    const make = (): Message | undefined => {
      const lent = mapped ? this.lendView(f, deliveryId) : { bytes: f.bodyFrom(8) };
      if (lent === undefined) return undefined;
      return new Message(
        lent.bytes,
        f.codec,
        f.priority,
        this.peerName(senderPid),
        senderPid,
        mailboxName,
        needsAck,
        deliveryId,
        tracked,
        this,
        false,
        lent.unmap,
      );
    };
    if (f.reqId !== 0 && this.pending.has(f.reqId)) {
      // The answer to a receive().
      const p = this.settle(f.reqId)!;
      if (p.abandoned) {
        this.release(deliveryId);
        return;
      }
      const m = make();
      if (m === undefined) {
        // Not lost: the kernel puts it back, and the receive asks again (it gets a copy now).
        this.refuseMapped(deliveryId);
        if (p.again !== undefined) p.again().then(p.resolve, p.reject);
        else p.reject(new ProtocolError('a MAPPED delivery answered a request that is not a receive'));
        return;
      }
      this.markConsumed(deliveryId);
      p.resolve(m);
      return;
    }
    // A push: it belongs to the iteration whose demand it answers (its request id; 0 from a
    // version 1 kernel). One that answers an iteration that has ended goes back, so nothing is
    // lost and a later iteration never sees it ahead of what the earlier one gave back.
    const c = t?.consumer;
    if (c !== undefined && (f.reqId === 0 || f.reqId === c.reqId)) {
      const m = make();
      if (m === undefined) this.refuseMapped(deliveryId);
      else c.push(m);
      return;
    }
    if (tracked) this.release(deliveryId);
  }

  private onNoticeFrame(f: Frame): void {
    let notice: Record<string, unknown>;
    try {
      notice = JSON.parse(f.body.toString('utf8'));
    } catch {
      return this.fail(new ProtocolError('NOTICE body is not valid JSON'));
    }
    if (notice.kind === 'peer') {
      this.learnPeer(notice.pid as number, notice.name as string);
      return;
    }
    if (notice.kind === 'mailbox-closed') {
      const t = this.targets.get(notice.id as number);
      if (t !== undefined) {
        t.closed =
          t.kind === 'inbox'
            ? new NoSuchProcessError(t.name.slice(1))
            : errorFromCode('MAILBOX_CLOSED', `${t.name} was closed: ${String(notice.reason)}`);
        t.credits = 0;
        t.byteCredits = 0;
        t.consumer?.fail(t.closed);
        this.targets.delete(t.id);
      }
    }
    if (notice.kind === 'rights' && notice.right === 'send') {
      const t = this.targets.get(notice.id as number);
      if (t !== undefined) {
        t.credits = 0;
        t.byteCredits = 0;
      }
    }
    if (notice.kind === 'rights' && notice.right === 'receive') {
      // The kernel detached us: pending receives failed there, but a running iteration only
      // waits for pushes that will not come. It ends with the same error.
      const t = this.targets.get(notice.id as number);
      t?.consumer?.revoked?.(errorFromCode('PERMISSION_DENIED', `${t.name}: the receive right was revoked`));
    }
    const handler = this.noticeHandler;
    if (handler === undefined) {
      if (this.earlyNotices.length < 1024) this.earlyNotices.push(notice);
      return;
    }
    try {
      handler(notice);
    } catch (e) {
      // A listener's exception is the application's: surface it as uncaught, as an event
      // listener's would be, without leaving this connection's frame handling half done.
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  private rejectAll(error: IpcError): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.cleanup?.();
      if (!p.abandoned) p.reject(error);
    }
    for (const t of this.targets.values()) {
      t.closed ??= error;
      t.consumer?.fail(error);
    }
  }

  private fail(error: IpcError): void {
    if (this.lost !== undefined) return;
    this.lost = error;
    this.socket.destroy();
    this.lostSignal.abort(error);
    // The kernel that would unlink the region once nothing refers to it is gone (or has dropped us).
    for (const m of this.mapOut ?? []) m.region?.unlink();
    this.batch?.reject(error);
    this.batch = undefined;
    this.rejectAll(error);
    this.onLost(error);
  }
}

/** Where the kernel is: its Unix socket, or its TLS listener on another host (with its token). */
export type KernelPlace =
  | { kind: 'unix'; path: string }
  | { kind: 'tls'; host: string; port: number; token: string; ca?: string | Buffer };

export function validateWait(o: WaitOptions): void {
  if (o.timeout !== undefined && (!Number.isFinite(o.timeout) || o.timeout < 0)) {
    throw new RangeError('timeout must be a non-negative number of milliseconds');
  }
  if (o.timeout !== undefined && o.nonblock) throw new TypeError('timeout and nonblock cannot be combined');
}

function timeoutWord(timeout: number | undefined): number {
  if (timeout === undefined || timeout > MAX_TIMEOUT) return 0;
  return Math.min(Math.ceil(timeout), MAX_TIMEOUT);
}
