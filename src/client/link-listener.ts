import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { peerCredentialsOf } from '../shm/peer-credentials.js';
import { type Frame, FrameDecoder, FrameWriter, writeParts } from '../wire/frame-codec.js';
import { LINK_TOKEN, LinkFlag, LinkOp, MAX_LINK_HELLO_FRAME } from '../wire/link-protocol.js';
import { HEADER_REST } from '../wire/protocol.js';
import type { LinkOrigin, LocalInbox } from './local-inbox.js';
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
  /** Pids of processes that linked here, by name, newest last (bounded like the offers). */
  private readonly pids = new Map<string, number>();
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly address: string,
    private readonly inbox: LocalInbox,
    private readonly mailboxName: string,
    private readonly maxMessageSize: number,
  ) {
    server.on('connection', (socket) => this.knock(socket));
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

  /** The pid of a process that linked here under `name` (its messages may outlive it). */
  pidOf(name: string): number | undefined {
    return this.pids.get(name);
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
    let done = false;
    // One deadline for the HELLO and, if its token is not known yet, for the kernel's notice.
    const end = (admit: boolean) => {
      if (done) return;
      done = true;
      this.strangers--;
      clearTimeout(timer);
      if (token !== '' && this.knocking.get(token)?.socket === socket) this.knocking.delete(token);
      socket.removeListener('data', onData);
      if (admit) this.admit(socket, creds.pid, token);
      else socket.destroy();
    };
    const timer = setTimeout(() => end(false), HELLO_TIMEOUT);
    timer.unref();
    const decoder = new FrameDecoder(
      MAX_LINK_HELLO_FRAME,
      (f) => {
        if (done || token !== '') return end(false);
        const t = f.op === LinkOp.HELLO ? f.body.toString('latin1') : '';
        if (!LINK_TOKEN.test(t) || this.knocking.has(t)) return end(false);
        token = t;
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

  private admit(socket: Socket, osPid: number, token: string): void {
    const offer = this.offers.get(token);
    if (offer === undefined || offer.osPid !== osPid || socket.destroyed) {
      socket.destroy();
      return;
    }
    this.offers.delete(token);
    clearTimeout(offer.timer);
    this.pids.delete(offer.name);
    this.pids.set(offer.name, offer.pid);
    if (this.pids.size > MAX_OFFERS) this.pids.delete(this.pids.keys().next().value as string);
    const link = new InboundLink(
      socket,
      offer.pid,
      offer.name,
      this.mailboxName,
      this.maxMessageSize,
      this.inbox,
    );
    this.links.add(link);
    socket.on('close', () => this.links.delete(link));
  }
}

/** One accepted link: DATA in, TAKEN and WITHDRAWN out. */
class InboundLink implements LinkOrigin {
  private readonly writer = new FrameWriter();
  private flushing = false;
  private readonly decoder: FrameDecoder;

  constructor(
    readonly socket: Socket,
    private readonly pid: number,
    private readonly name: string,
    private readonly mailboxName: string,
    maxMessageSize: number,
    private readonly inbox: LocalInbox,
  ) {
    socket.setNoDelay?.(true);
    this.decoder = new FrameDecoder(
      HEADER_REST + maxMessageSize,
      (f) => this.onFrame(f),
      () => socket.destroy(),
    );
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    this.writer.frame(LinkOp.ACCEPT, 0, 0, 0, 0, 0, 0, 0, 0, undefined);
    this.flush();
    socket.resume();
  }

  private onFrame(f: Frame): void {
    if (f.op === LinkOp.DATA) {
      const sync = (f.flags & LinkFlag.SYNC) !== 0 ? f.reqId : 0;
      if ((f.flags & LinkFlag.SYNC) !== 0 && sync === 0) return void this.socket.destroy();
      const m = new Message(
        f.body,
        f.codec,
        f.priority,
        this.name,
        this.pid,
        this.mailboxName,
        false,
        0,
        false,
        this.inbox,
      );
      if (!this.inbox.pushLink(m, this, sync)) this.socket.pause();
      return;
    }
    if (f.op === LinkOp.WITHDRAW && f.reqId !== 0) {
      const op = this.inbox.withdrawLink(this, f.reqId) ? LinkOp.WITHDRAWN : 0;
      if (op !== 0) this.answer(op, f.reqId);
      return;
    }
    // Anything else breaks the link protocol: the link ends, what it delivered stays.
    this.socket.destroy();
  }

  taken(syncId: number): void {
    this.answer(LinkOp.TAKEN, syncId);
  }

  resume(): void {
    this.socket.resume();
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
