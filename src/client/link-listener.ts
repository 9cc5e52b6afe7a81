import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { CHUNK_QUEUED } from '../backends/shm/mailbox-layout.js';
import { Deque } from '../core/deque.js';
import { MAX_PRIORITY } from '../core/priority-queue.js';
import { MapRegion } from '../map/map-region.js';
import { peerCredentialsOf } from '../shm/peer-credentials.js';
import { Ring, RingConsumer } from '../shm/ring.js';
import { Segment } from '../shm/segment.js';
import { type Frame, FrameDecoder, FrameWriter, writeParts } from '../wire/frame-codec.js';
import {
  AcceptFlag,
  LINK_TOKEN,
  LinkFlag,
  LinkMap,
  LinkOp,
  LinkRing,
  MAX_LINK_HELLO_FRAME,
} from '../wire/link-protocol.js';
import { HEADER_REST } from '../wire/protocol.js';
import { type LinkOrigin, LOCAL_BYTES_MAX, type LocalInbox } from './local-inbox.js';
import { Message } from './message.js';

/**
 * The receiving end of one-hop links (wire/link-protocol.ts): a listening
 * abstract Unix socket whose connections carry direct messages into this
 * process's LocalInbox.
 *
 * Trust: anyone on the host may connect to an abstract socket, so a
 * connection is nothing until it shows a token the kernel gave this process
 * (NOTICE `link`) and its OS pid (SO_PEERCRED) is the one the kernel named
 * with that token. Each token opens one link. Strangers are bounded: at most
 * MAX_KNOCKING connections wait for their HELLO or its token, each for at most
 * HELLO_TIMEOUT, reading at most MAX_LINK_HELLO_FRAME bytes.
 *
 * A link that breaks (its sender died or closed) loses only what the socket
 * had not delivered whole: a frame cut short is dropped, the messages before
 * it stay queued, as messages of an exited sender stay in a kernel inbox.
 */

const MAX_KNOCKING = 64;
const HELLO_TIMEOUT = 5000;
/** Tokens not used within this long are forgotten (the sender fell back or died). */
const OFFER_TTL = 30_000;
const MAX_OFFERS = 4096;

interface Offer {
  pid: number;
  name: string;
  osPid: number;
  timer: NodeJS.Timeout;
}

interface Knock {
  socket: Socket;
  admit(): void;
}

export class LinkListener {
  private readonly offers = new Map<string, Offer>();
  /** Connections that showed a token the kernel has not told us of yet. */
  private readonly knocking = new Map<string, Knock>();
  private strangers = 0;
  private readonly links = new Set<InboundLink>();
  /** A process linked here: its name and pid (the owner keeps the newest pid per name for `receive({ from })`). */
  onLinked: ((pid: number, name: string) => void) | undefined;
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly address: string,
    private readonly inbox: LocalInbox,
    private readonly mailboxName: string,
    private readonly maxMessageSize: number,
  ) {
    server.on('connection', (socket) => this.knock(socket));
    inbox.pollLinks = () => {
      for (const l of this.links) l.poll();
    };
  }

  /** Listen on a fresh abstract address; undefined where this cannot be done (then no links come here). */
  static async open(
    inbox: LocalInbox,
    mailboxName: string,
    maxMessageSize: number,
  ): Promise<LinkListener | undefined> {
    if (process.platform !== 'linux') return undefined;
    const address = `\0ipcbox-link/${process.pid}-${randomBytes(8).toString('hex')}`;
    const server = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(address, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch {
      server.close();
      return undefined;
    }
    server.unref();
    server.on('error', () => {});
    return new LinkListener(server, address, inbox, mailboxName, maxMessageSize);
  }

  /** The kernel's NOTICE `link`: a sender with this token and OS pid may connect. */
  expect(notice: Record<string, unknown>): void {
    const { token, pid, name, osPid } = notice;
    if (typeof token !== 'string' || !LINK_TOKEN.test(token) || typeof pid !== 'number') return;
    if (typeof name !== 'string' || typeof osPid !== 'number' || this.closed) return;
    if (this.offers.size >= MAX_OFFERS) {
      const [oldest, o] = this.offers.entries().next().value as [string, Offer];
      clearTimeout(o.timer);
      this.offers.delete(oldest);
    }
    const timer = setTimeout(() => this.offers.delete(token), OFFER_TTL);
    timer.unref();
    this.offers.set(token, { pid, name, osPid, timer });
    this.knocking.get(token)?.admit();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
    for (const o of this.offers.values()) clearTimeout(o.timer);
    this.offers.clear();
    for (const k of [...this.knocking.values()]) k.socket.destroy();
    this.knocking.clear();
    for (const l of this.links) l.socket.destroy();
    this.links.clear();
  }

  private knock(socket: Socket): void {
    const creds = peerCredentialsOf(socket);
    if (this.closed || creds === undefined || this.strangers >= MAX_KNOCKING) {
      socket.destroy();
      return;
    }
    this.strangers++;
    let token = '';
    let ringName: string | undefined;
    let regionName: string | undefined;
    let done = false;
    // One deadline for the HELLO and, if its token is not known yet, for the kernel's notice.
    const end = (admit: boolean) => {
      if (done) return;
      done = true;
      this.strangers--;
      clearTimeout(timer);
      if (token !== '' && this.knocking.get(token)?.socket === socket) this.knocking.delete(token);
      socket.removeListener('data', onData);
      if (admit) this.admit(socket, creds.pid, token, ringName, regionName);
      else socket.destroy();
    };
    const timer = setTimeout(() => end(false), HELLO_TIMEOUT);
    timer.unref();
    const decoder = new FrameDecoder(
      MAX_LINK_HELLO_FRAME,
      (f) => {
        if (done || token !== '') return end(false);
        const [t = '', seg, region, extra] =
          f.op === LinkOp.HELLO ? f.body.toString('latin1').split(' ') : [];
        if (!LINK_TOKEN.test(t) || this.knocking.has(t) || extra !== undefined) return end(false);
        token = t;
        ringName = seg;
        regionName = region;
        // Nothing more may come before ACCEPT; stop reading until then.
        socket.pause();
        if (this.offers.has(t)) return end(true);
        this.knocking.set(t, { socket, admit: () => end(true) });
      },
      () => end(false),
    );
    const onData = (chunk: Buffer) => decoder.push(chunk);
    socket.on('data', onData);
    socket.on('error', () => {});
    socket.on('close', () => end(false));
  }

  private admit(
    socket: Socket,
    osPid: number,
    token: string,
    ringName: string | undefined,
    regionName: string | undefined,
  ): void {
    const offer = this.offers.get(token);
    if (offer === undefined || offer.osPid !== osPid || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.offers.delete(token);
    clearTimeout(offer.timer);
    this.onLinked?.(offer.pid, offer.name);
    const link = new InboundLink(
      socket,
      offer.pid,
      offer.name,
      this.mailboxName,
      this.maxMessageSize,
      this.inbox,
      ringName === undefined ? undefined : mapRing(ringName, osPid),
      regionName === undefined ? undefined : openRegion(regionName, osPid),
    );
    this.links.add(link);
    socket.on('close', () => this.links.delete(link));
  }
}

/**
 * The sender's ring, if it is one this receiver may trust with the link: its
 * name carries the connecting OS pid, so no sender can hand over another
 * link's ring, and it has the size and the Ring a link's has. Undefined
 * otherwise (the link then carries everything over the socket).
 */
function mapRing(name: string, osPid: number): Segment | undefined {
  const m = LinkRing.NAME.exec(name);
  if (m === null || Number(m[1]) !== osPid) return undefined;
  try {
    const seg = Segment.open(name);
    if (seg.size !== LinkRing.HEADER_BYTES + Ring.bytesFor(LinkRing.RING_BYTES)) {
      seg.close();
      return undefined;
    }
    return seg;
  } catch {
    return undefined;
  }
}

/**
 * The sender's map region, on the same terms as its ring: named with the connecting OS pid, and
 * laid out as a link's region (its chunks and their size), so a record naming a chunk can be
 * checked against it. Undefined otherwise (large messages then come through the ring or socket).
 */
function openRegion(name: string, osPid: number): MapRegion | undefined {
  const m = LinkMap.NAME.exec(name);
  if (m === null || Number(m[1]) !== osPid) return undefined;
  try {
    const region = MapRegion.open(name);
    if (region.chunks !== LinkMap.CHUNKS || region.chunkBytes !== LinkMap.CHUNK_BYTES) {
      region.close();
      return undefined;
    }
    return region;
  } catch {
    return undefined;
  }
}

/** Most ring records handled in one turn of the event loop before yielding to other work. */
const RECORDS_PER_TURN = 4096;

/**
 * One accepted link: messages in from its ring and its socket, TAKEN,
 * WITHDRAWN and DOORBELL out. The ring is drained in the event loop: when it
 * is empty the link sets SLEEPING and the sender's next record rings the
 * DOORBELL over the socket; when the sender found it full (WAITING), the link
 * rings back once it has made room. What the ring holds when the sender dies
 * is still read: a resolved send is in it.
 */
class InboundLink implements LinkOrigin {
  private readonly writer = new FrameWriter();
  private flushing = false;
  private readonly decoder: FrameDecoder;
  private readonly ring: RingConsumer | undefined;
  private readonly flags: Int32Array | undefined;
  /** The inbox is full: stop taking from the ring and the socket until it has room. */
  private paused = false;
  /** A ring marker said the next message is on the socket, and it has not come yet. */
  private awaitingSocket = false;
  /**
   * Socket DATA frames that came before their ring marker was read; past
   * LOCAL_BYTES_MAX of them the socket is not read until markers catch up.
   */
  private readonly early = new Deque<[Message, number]>();
  private earlyBytes = 0;
  private draining = false;
  private ended = false;
  /** The sender broke the protocol: nothing more is taken from it. */
  private broken = false;
  private segment: Segment | undefined;
  /** The sender's map region (LinkFlag.MAPPED records name its chunks). */
  private region: MapRegion | undefined;

  constructor(
    readonly socket: Socket,
    private readonly pid: number,
    private readonly name: string,
    private readonly mailboxName: string,
    private readonly maxMessageSize: number,
    private readonly inbox: LocalInbox,
    segment: Segment | undefined,
    region: MapRegion | undefined,
  ) {
    socket.setNoDelay?.(true);
    this.decoder = new FrameDecoder(
      HEADER_REST + maxMessageSize,
      (f) => this.onFrame(f),
      () => socket.destroy(),
    );
    if (segment !== undefined) {
      try {
        this.ring = new RingConsumer(segment.buffer, LinkRing.HEADER_BYTES);
        this.flags = new Int32Array(segment.buffer, 0, 2);
        this.segment = segment;
      } catch {
        segment.close();
      }
    }
    if (this.ring !== undefined && region !== undefined) this.region = region;
    else region?.close();
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('close', () => {
      this.ended = true;
      // A large message the ring announced can no longer come (its send never resolved), and what
      // the ring holds after it is the sender's resolved sends: read it all, with the sender gone.
      this.awaitingSocket = false;
      this.drain();
    });
    this.writer.frame(
      LinkOp.ACCEPT,
      (this.ring === undefined ? 0 : AcceptFlag.RING) | (this.region === undefined ? 0 : AcceptFlag.MAP),
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      undefined,
    );
    this.flush();
    socket.resume();
    this.drain();
  }

  private onFrame(f: Frame): void {
    if (f.op === LinkOp.DOORBELL) return this.drain();
    if (f.op === LinkOp.DATA) {
      const sync = (f.flags & LinkFlag.SYNC) !== 0 ? f.reqId : 0;
      if (((f.flags & LinkFlag.SYNC) !== 0 && sync === 0) || f.priority > MAX_PRIORITY)
        return this.violation();
      const m = this.message(f.body, f.codec, f.priority);
      if (this.ring === undefined) return this.deliver(m, sync);
      // With a ring, a socket message is one a ring marker announced: in order once the marker is read.
      if (this.awaitingSocket) {
        this.awaitingSocket = false;
        this.deliver(m, sync);
        return this.drain();
      }
      this.early.push([m, sync]);
      this.earlyBytes += m.bytes.length;
      if (this.earlyBytes > LOCAL_BYTES_MAX) this.socket.pause();
      return;
    }
    if (f.op === LinkOp.WITHDRAW && f.reqId !== 0) {
      // The message may still be in the ring: bring everything in first (the ring bounds it).
      this.drain(true);
      if (this.inbox.withdrawLink(this, f.reqId)) this.answer(LinkOp.WITHDRAWN, f.reqId);
      return;
    }
    this.violation();
  }

  /** The sender broke the link protocol: the link ends, what it delivered stays. */
  private violation(): void {
    this.broken = true;
    this.socket.destroy();
  }

  private deliver(m: Message, sync: number): void {
    if (!this.inbox.pushLink(m, this, sync)) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /**
   * Take what the ring holds into the inbox, until it is empty, the inbox is
   * full (`all` ignores that: a WITHDRAW must see every message), a marker
   * waits for its socket message, or this turn's share is used up.
   */
  private drain(all = false): void {
    const ring = this.ring;
    if (ring === undefined || this.draining || this.segment === undefined) return;
    this.draining = true;
    try {
      let n = 0;
      for (;;) {
        if (this.broken) {
          this.release();
          break;
        }
        if ((this.paused && !all) || this.awaitingSocket) break;
        if (n >= RECORDS_PER_TURN && !all) {
          setImmediate(() => this.drain());
          break;
        }
        if (ring.readBatch((r) => this.onRecord(r), 1) === 1) {
          n++;
          continue;
        }
        if (this.ended) {
          this.release();
          break;
        }
        // Empty: sleep until the sender rings, but look once more after saying so.
        Atomics.store(this.flags!, LinkRing.SLEEPING, 1);
        if (ring.readBatch((r) => this.onRecord(r), 1) === 1) {
          Atomics.store(this.flags!, LinkRing.SLEEPING, 0);
          n++;
          continue;
        }
        break;
      }
      if (
        n > 0 &&
        Atomics.load(this.flags!, LinkRing.WAITING) !== 0 &&
        Atomics.exchange(this.flags!, LinkRing.WAITING, 0) !== 0
      )
        this.answer(LinkOp.DOORBELL, 0);
    } catch {
      this.violation();
    } finally {
      this.draining = false;
    }
  }

  private onRecord(r: Uint8Array): void {
    if (r.length < LinkRing.RECORD_HEADER) return this.violation();
    const flags = r[0]!;
    const priority = r[1]!;
    if (priority > MAX_PRIORITY) return this.violation();
    const sync =
      (flags & LinkFlag.SYNC) !== 0 ? (r[4]! | (r[5]! << 8) | (r[6]! << 16) | (r[7]! << 24)) >>> 0 : 0;
    if ((flags & LinkFlag.SYNC) !== 0 && sync === 0) return this.violation();
    if ((flags & LinkFlag.ON_SOCKET) !== 0) {
      const e = this.early.shift();
      if (e === undefined) {
        // After the sender's death no such message can come: its send never resolved.
        if (!this.ended) this.awaitingSocket = true;
        return;
      }
      this.earlyBytes -= e[0].bytes.length;
      if (this.earlyBytes <= LOCAL_BYTES_MAX / 2 && !this.paused && !this.socket.destroyed)
        this.socket.resume();
      return this.deliver(e[0], e[1]);
    }
    if ((flags & LinkFlag.MAPPED) !== 0) return this.onMapped(r, priority, sync);
    // The kernel's limit holds over a link too (the ring alone would allow 2 MiB).
    if (r.length - LinkRing.RECORD_HEADER > this.maxMessageSize) return this.violation();
    const bytes = Buffer.allocUnsafe(r.length - LinkRing.RECORD_HEADER);
    bytes.set(r.subarray(LinkRing.RECORD_HEADER));
    this.deliver(this.message(bytes, r[2]!, priority), sync);
  }

  /**
   * A MAPPED record: the payload stays in the sender's chunk, lent to the application until the
   * message is released (or its views are collected), then given back into the region's free
   * ring. The record must name a chunk of the region that the sender marked QUEUED, with a
   * length that fits it; anything else is a protocol violation, and nothing of it is delivered.
   */
  private onMapped(r: Uint8Array, priority: number, sync: number): void {
    const region = this.region;
    if (region === undefined || r.length !== LinkRing.RECORD_HEADER + 8) return this.violation();
    const at = LinkRing.RECORD_HEADER;
    const chunk = (r[at]! | (r[at + 1]! << 8) | (r[at + 2]! << 16) | (r[at + 3]! << 24)) >>> 0;
    const length = (r[at + 4]! | (r[at + 5]! << 8) | (r[at + 6]! << 16) | (r[at + 7]! << 24)) >>> 0;
    if (chunk >= region.chunks || length === 0 || length > region.chunkBytes || length > this.maxMessageSize)
      return this.violation();
    // Ours from here (the sender frees only chunks of a dead holder); a chunk not QUEUED is not a message.
    if (Atomics.compareExchange(region.states, chunk, CHUNK_QUEUED, process.pid) !== CHUNK_QUEUED)
      return this.violation();
    const bytes = region.lend(chunk, length);
    const slab = region.slab;
    let back = false;
    // Must not refer to `bytes` (it is held until their buffer is collected): the slab only.
    const m = this.message(bytes, r[2]!, priority, () => {
      if (back) return;
      back = true;
      slab.release(chunk);
    });
    this.deliver(m, sync);
  }

  /** A message from this link's sender as the inbox keeps it (a lent one with its `unmap`). */
  private message(bytes: Buffer, codec: number, priority: number, unmap?: () => void): Message {
    return new Message(
      bytes,
      codec,
      priority,
      this.name,
      this.pid,
      this.mailboxName,
      false,
      0,
      false,
      this.inbox,
      false,
      unmap,
    );
  }

  private release(): void {
    this.segment?.close();
    this.segment = undefined;
    // Views still lent keep the memory mapped (they are aliases); the region's handle can go.
    this.region?.close();
    this.region = undefined;
  }

  /** Take in what the ring holds now (a receive found nothing queued). */
  poll(): void {
    this.drain();
  }

  taken(syncId: number): void {
    this.answer(LinkOp.TAKEN, syncId);
  }

  resume(): void {
    this.paused = false;
    if (!this.socket.destroyed) this.socket.resume();
    this.drain();
  }

  private answer(op: number, reqId: number): void {
    if (this.socket.destroyed) return;
    this.writer.frame(op, 0, 0, 0, reqId, 0, 0, 0, 0, undefined);
    if (!this.flushing) {
      this.flushing = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    const parts = this.writer.takeParts();
    if (parts !== undefined && !this.socket.destroyed) writeParts(this.socket, parts);
  }
}
