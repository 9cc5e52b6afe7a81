import { EventEmitter } from 'node:events';
import { resolve as resolvePath } from 'node:path';
import type { ShmMailbox } from '../backends/shm/shm-mailbox.js';
import type { MailboxOptions } from '../core/mailbox-options.js';
import { resolveMailboxOptions, validateName } from '../core/mailbox-options.js';
import type { Grantees } from '../core/rights.js';
import { IpcError, type IpcErrorCode } from '../errors.js';
import type { MapOptions } from '../map/map-region.js';
import { peerCredentialsSupported } from '../shm/peer-credentials.js';
import type { KernelStatus, MailboxInfo, ProcessInfo, SegmentInfo, SegmentRole } from '../wire/info-types.js';
import type { LinkOffer } from '../wire/link-protocol.js';
import { MAX_TIMEOUT, peekCount } from '../wire/protocol.js';
import { defaultSocketPath } from '../wire/socket-path.js';
import {
  Connection,
  type KernelPlace,
  type PeekOptions,
  type PeekResult,
  type ReceiveOptions,
  type SendOptions,
  type Target,
  validateWait,
} from './connection.js';
import { LinkListener } from './link-listener.js';
import { type LinkCounts, LinkSender } from './link-sender.js';
import { LocalInbox } from './local-inbox.js';
import { Mailbox } from './mailbox.js';
import { choosePath } from './mailbox-path.js';
import type { Message } from './message.js';
import { type IterateOptions, MessageStream } from './message-stream.js';
import { createShmMailbox, ShmPath } from './shm-mailbox-path.js';

export interface ConnectOptions {
  /** This process's unique name. Default: one the kernel assigns (proc-<n>). */
  name?: string;
  /** Kernel socket. Default: $IPCBOX_SOCKET, $XDG_RUNTIME_DIR/ipcbox/kernel.sock, /tmp/ipcbox-<uid>/kernel.sock. */
  socketPath?: string;
  /** How long to wait for the kernel to answer. Default 5000 ms. */
  timeout?: number;
  /** Capacity of this process's own inbox (direct messages). Default 'unbounded'. */
  inboxCapacity?: number | 'unbounded';
  /**
   * A kernel on another host, by its TLS listener (`tls://HOST:PORT`, `ipcbox daemon --listen`),
   * instead of a local socket. Needs `token`; `ca` if its certificate is not signed by a CA Node
   * trusts. The process then acts with the daemon's user's rights.
   */
  url?: string;
  /** The kernel's token (its `--token-file`), for `url`. */
  token?: string;
  /** CA certificate(s), PEM, that signed the kernel's certificate, for `url`. */
  ca?: string | Buffer;
  /**
   * One-hop links for direct naming (docs/architecture.md, "Which path a message takes"): direct
   * messages between two processes of one host go over a Unix socket between them, not through
   * the kernel. Default true; used where both ends can (Linux, the native addon, a local kernel,
   * an unbounded inbox at the receiving end). false keeps every message on the kernel path.
   */
  links?: boolean;
  /**
   * Large messages by map (docs/protocol.md, "Map instead of copy"): payloads from `threshold`
   * bytes up to `chunkBytes` are written once into a shared-memory region of `chunks` chunks
   * and the kernel passes a reference. `false` copies everything. Needs the native addon and a
   * local kernel; otherwise everything is copied.
   */
  map?: MapOptions | false;
}

/** Where direct sends to one process go: its kernel inbox, or a one-hop link to it. */
type Route =
  | { kind: 'kernel'; target: Target; pid: number }
  | { kind: 'link'; link: LinkSender; pid: number };

export interface SignalEvent {
  from: string;
  type: string;
  payload: unknown;
}

export interface ExitEvent {
  process: string;
  pid: number;
  /** 'normal' (closed its connection), 'lost' (vanished: crashed or killed), 'protocol-error', 'kernel-shutdown'. */
  reason: string;
}

export interface MailboxClosedEvent {
  mailbox: string;
  reason: string;
}

export interface WaitForProcessOptions {
  /** Give up after this many milliseconds (TIMEOUT). Omit to wait until the process connects. */
  timeout?: number;
  /** Abort the wait (ABORTED). */
  signal?: AbortSignal;
}

export interface ReceiveFromOptions extends ReceiveOptions {
  /** Only a message from this process (symmetric direct naming). Default: from anyone. */
  from?: string;
}

export interface RegisterSegmentOptions {
  /** Size in bytes (informational for others; the creator sizes the POSIX segment itself). */
  size: number;
  /** 'mailbox' for a shared-memory mailbox, else 'segment'. Default 'segment'. */
  kind?: 'segment' | 'mailbox';
  /** 'process' (default): removed when this process exits. 'system': lives until removed. */
  ownership?: 'process' | 'system';
  /** Free-form JSON others get on attach (layout, options). */
  meta?: unknown;
  senders?: Grantees;
  receivers?: Grantees;
  /** This process's own role. Default 'both'. */
  role?: SegmentRole;
  /**
   * This process created the segment (exclusively): the kernel may unlink it
   * when the registration is removed. Without it the kernel only forgets the
   * name and never deletes a segment it did not see created.
   */
  created?: boolean;
  /**
   * The segment is this shared-memory mailbox in the mailbox namespace: `openMailbox(mailbox)`
   * finds it, and the name is refused to a kernel mailbox (MAILBOX_EXISTS) while it is here.
   */
  mailbox?: string;
}

export interface SegmentRemovedEvent {
  name: string;
  reason: string;
}

export interface SegmentPeerExitEvent {
  name: string;
  process: string;
  pid: number;
  osPid: number;
  role: SegmentRole;
}

/** A process may be named with or without the '@' that marks a process in a TARGET. */
function bareName(name: string): string {
  return name.startsWith('@') ? name.slice(1) : name;
}

interface ProcessEvents {
  'segment-removed': [SegmentRemovedEvent];
  'segment-peer-exit': [SegmentPeerExitEvent];
  signal: [SignalEvent];
  exit: [ExitEvent];
  'mailbox-closed': [MailboxClosedEvent];
  ownership: [{ mailbox: string; from: string }];
  disconnect: [IpcError];
}

/**
 * This process as the kernel knows it: a unique name, an inbox for direct
 * messages, and the door to mailboxes, signals and monitors.
 *
 * Events: 'signal', 'exit' (a monitored process ended), 'mailbox-closed',
 * 'ownership' (a mailbox was passed to us), 'disconnect' (kernel gone).
 */
/** How often a process with links reports their counts to the kernel (status), when they changed. */
const LINK_REPORT_MS = 1000;

/** Signals kept for a process that has no 'signal' listener yet (beyond it, the oldest are kept). */
const MAX_EARLY_SIGNALS = 1024;

export class IpcProcess extends EventEmitter<ProcessEvents> {
  private readonly inbox: Target;
  private readonly links = new Map<string, Promise<Route>>();
  /** The kernel's socket, absolute (names this kernel's shared-memory mailbox segments); unset over TLS. */
  private kernelPlace: string | undefined;
  /** Handles of this process on shared-memory mailboxes (closed when it leaves). */
  private readonly shmPaths = new Set<ShmPath>();
  /** The inbox served here (one-hop links and the kernel's pushes meet in it), where links are on. */
  private local: LocalInbox | undefined;
  /** Messages sent over this process's links, reported to the kernel for `status` (reportLinks). */
  private readonly linkCounts: LinkCounts = { sent: 0 };
  private linkReport: NodeJS.Timeout | undefined;
  /** Set once the process left or lost its kernel: no report timer starts again. */
  private linkReportsStopped = false;
  private lastReport = '';
  private listener: LinkListener | undefined;
  private linksOut = false;
  private iterating = false;
  /**
   * Signals that came before anyone listened (a peer may signal the moment it sees this process
   * connected, before `connect()` has even returned): kept, at most MAX_EARLY_SIGNALS, and handed to
   * the first 'signal' listener.
   */
  private early: SignalEvent[] | undefined = [];

  private constructor(private readonly conn: Connection) {
    super();
    // 'newListener' is Node's, not one of ours: the typed emitter does not list it.
    (this as unknown as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event !== 'signal' || this.early === undefined) return;
      const early = this.early;
      this.early = undefined;
      // After the listener is in place (newListener runs before it is added).
      if (early.length > 0)
        queueMicrotask(() => {
          for (const e of early) this.emit('signal', e);
        });
    });
    const w = conn.info;
    this.inbox = {
      id: w.inbox,
      name: `@${w.name}`,
      kind: 'inbox',
      capacity: Number.POSITIVE_INFINITY,
      maxMessageSize: w.maxMessageSize,
      fixedMessageSize: undefined,
      credits: 0,
      byteCredits: 0,
      closed: undefined,
      consumer: undefined,
    };
    conn.registerTarget(this.inbox);
    conn.onNotice = (n) => this.onNotice(n);
    conn.onLost = (e) => {
      // Links live only as long as the kernel that vouched for them: their messages are lost with it.
      this.closeLinks();
      // So do shared-memory mailbox handles (the kernel kept their names, rights and cleanup).
      for (const p of this.shmPaths) p.lost(e);
      this.stopLinkReports();
      this.emit('disconnect', e);
    };
  }

  static async connect(options: ConnectOptions = {}): Promise<IpcProcess> {
    const name = options.name === undefined ? '' : validateName('process', options.name);
    const timeout = options.timeout ?? 5000;
    if (!Number.isFinite(timeout) || timeout <= 0)
      throw new RangeError('timeout must be a positive number of milliseconds');
    const cap = options.inboxCapacity ?? 'unbounded';
    const inboxCapacity = resolveMailboxOptions({ capacity: cap }, 1).capacity;
    let place: KernelPlace;
    if (options.url !== undefined) {
      const m = /^tls:\/\/(\[[^\]]+\]|[^:/\s]+):(\d{1,5})$/.exec(options.url);
      if (m === null) throw new TypeError(`url must be tls://HOST:PORT, not ${options.url}`);
      if (typeof options.token !== 'string' || options.token === '')
        throw new TypeError("a url needs the kernel's token");
      place = {
        kind: 'tls',
        host: (m[1] as string).replace(/^\[|\]$/g, ''),
        port: Number(m[2]),
        token: options.token,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
      };
    } else {
      place = { kind: 'unix', path: options.socketPath ?? defaultSocketPath() };
    }
    const conn = await Connection.open(place, name, inboxCapacity, timeout, options.map);
    const p = new IpcProcess(conn);
    if (place.kind === 'unix') p.kernelPlace = resolvePath(place.path);
    if (options.links !== false && place.kind === 'unix' && peerCredentialsSupported()) {
      p.linksOut = true;
      if (inboxCapacity === Number.POSITIVE_INFINITY) await p.listenForLinks();
    }
    return p;
  }

  /**
   * Serve the inbox here and listen for links. The kernel offers links to this
   * process only after `link.listen`, so a failure here just keeps the kernel path.
   */
  private async listenForLinks(): Promise<void> {
    this.local = new LocalInbox(this.conn, this.inbox);
    const listener = await LinkListener.open(this.local, this.inbox.name, this.maxMessageSize);
    if (listener === undefined) return;
    try {
      await this.conn.call('link.listen', { address: listener.address });
      this.listener = listener;
      listener.onLinked = (pid, name) => {
        this.conn.learnPeer(pid, name);
        this.reportLinks();
      };
    } catch {
      listener.close();
    }
  }

  /**
   * Tell the kernel, about once a second while this process has links, what went over them (the
   * kernel never sees those messages): sent, arrived, and waiting here untaken. `status` adds
   * them to the process's counts. Only changes are sent; the timer does not keep the process alive.
   */
  private reportLinks(): void {
    if (this.linkReport !== undefined || this.linkReportsStopped) return;
    this.linkReport = setInterval(() => {
      const report = {
        sent: this.linkCounts.sent,
        received: this.local?.linkArrived ?? 0,
        waiting: this.local?.linkWaiting ?? 0,
      };
      const text = JSON.stringify(report);
      if (text === this.lastReport) return;
      this.lastReport = text;
      this.conn.call('link.counts', report).catch(() => {
        // Gone, or a kernel without the call: the counts are only for status.
      });
    }, LINK_REPORT_MS);
    this.linkReport.unref();
  }

  get name(): string {
    return this.conn.info.name;
  }

  get pid(): number {
    return this.conn.info.pid;
  }

  /** Largest message the kernel accepts. */
  get maxMessageSize(): number {
    return this.conn.info.maxMessageSize;
  }

  // ---------------------------------------------------------------- direct naming

  /** Send to a process by name (direct naming). The link is set up on first use. */
  async send(to: string, value: unknown, options?: SendOptions): Promise<void> {
    const route = await this.link(to);
    if (route.kind === 'link') return route.link.send(value, options ?? {});
    return this.conn.send(route.target, value, options);
  }

  trySend(
    to: string,
    value: unknown,
    options: Omit<SendOptions, 'nonblock' | 'timeout'> = {},
  ): Promise<void> {
    return this.send(to, value, { ...options, nonblock: true });
  }

  /** Receive a direct message: from anyone (the message names its sender) or, with `from`, from one process. */
  async receive(options: ReceiveFromOptions = {}): Promise<Message> {
    const { from, ...rest } = options;
    const local = this.local;
    if (from === undefined)
      return local === undefined ? this.conn.receive(this.inbox, rest) : local.receive(rest);
    const bare = bareName(from);
    // A sender that has already exited may still have messages queued here: use the pid we learned.
    const pid = this.conn.knownPid(bare) ?? (await this.link(bare)).pid;
    if (local !== undefined) return local.receive({ ...rest, from: pid });
    return this.conn.receive(this.inbox, { ...rest, from: pid });
  }

  tryReceive(options: Omit<ReceiveFromOptions, 'nonblock' | 'timeout'> = {}): Promise<Message> {
    return this.receive({ ...options, nonblock: true });
  }

  /**
   * Copies of the first messages waiting in this process's own inbox, in the
   * order `receive()` would take them, left where they are. Messages already
   * delivered (in flight, or prefetched by a running `messages()` loop) are not
   * queued and not shown. See `Mailbox.peek` for the byte cap.
   */
  peek(options: PeekOptions = {}): Promise<PeekResult> {
    try {
      const count = peekCount(options.count);
      if (this.local === undefined) return this.conn.peek(this.inbox, count);
      return this.peekBoth(count);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** What is here first (receive() takes it first), then what the kernel still holds. */
  private async peekBoth(count: number): Promise<PeekResult> {
    const here = this.local!.peekLocal(count);
    if (here.length === count)
      return { messages: here, more: this.local!.depth > count || (await this.kernelHolds()) };
    const there = await this.conn.peek(this.inbox, count - here.length);
    return { messages: [...here, ...there.messages], more: there.more };
  }

  private async kernelHolds(): Promise<boolean> {
    return (await this.conn.peek(this.inbox, 1)).messages.length > 0;
  }

  /**
   * Wait until a process of this name is connected: resolves at once if one
   * is, else when one completes its handshake. The kernel parks the wait and
   * runs its timeout (TIMEOUT); an abort rejects at once (ABORTED) and
   * withdraws it. An invalid name fails INVALID_ARGUMENT; a kernel-assigned
   * name (proc-<n>) that is not connected fails NO_SUCH_PROCESS at once (the
   * kernel never gives one out twice). A process may have at most 1024 waits
   * parked; beyond that the kernel refuses with KERNEL_FULL.
   */
  waitForProcess(name: string, options: WaitForProcessOptions = {}): Promise<ProcessInfo> {
    try {
      validateWait({ timeout: options.timeout });
      const args: Record<string, unknown> = { name: bareName(name) };
      // As for sends: a timeout past what the wire carries (~49.7 days) is no deadline.
      if (options.timeout !== undefined && options.timeout <= MAX_TIMEOUT) args.timeout = options.timeout;
      return this.conn.call<ProcessInfo>('process.wait', args, options.signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Iterate over direct messages from anyone. */
  messages(options: IterateOptions = {}): AsyncIterableIterator<Message> {
    if (this.local !== undefined) return this.localStream(options);
    if (this.inbox.consumer !== undefined) throw new TypeError('the inbox is already being iterated');
    return new MessageStream(this.conn, this.inbox, options);
  }

  /** Iteration over an inbox served here: each step is a local receive (no prefetch needed). */
  private localStream(options: IterateOptions): AsyncIterableIterator<Message> {
    if (this.iterating) throw new TypeError('the inbox is already being iterated');
    if (
      options.prefetch !== undefined &&
      (!Number.isInteger(options.prefetch) || options.prefetch < 1 || options.prefetch > 65536)
    )
      throw new RangeError('prefetch must be an integer from 1 to 65536');
    this.iterating = true;
    const local = this.local!;
    const o: ReceiveOptions = {};
    if (options.ack !== undefined) o.ack = options.ack;
    if (options.signal !== undefined) o.signal = options.signal;
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        this.iterating = false;
      }
    };
    const it: AsyncIterableIterator<Message> = {
      [Symbol.asyncIterator]: () => it,
      next: async () => {
        if (done) return { value: undefined, done: true };
        try {
          return { value: await local.receive(o), done: false };
        } catch (e) {
          finish();
          throw e;
        }
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
    };
    return it;
  }

  private link(name: string): Promise<Route> {
    const bare = bareName(name);
    let t = this.links.get(bare);
    if (t === undefined) {
      t = this.conn
        .call<{
          pid: number;
          name: string;
          inbox: number;
          capacity: number | 'unbounded';
          maxMessageSize: number;
          link?: LinkOffer | null;
        }>('process.lookup', this.linksOut ? { name: bare, link: true } : { name: bare })
        .then(async (r): Promise<Route> => {
          if (r.link !== undefined && r.link !== null) {
            try {
              const link = await LinkSender.open(r.link, r.name, r.maxMessageSize, this.linkCounts);
              this.reportLinks();
              link.onClose = () => {
                if (this.links.get(bare) === t) this.links.delete(bare);
              };
              return { kind: 'link', link, pid: r.pid };
            } catch {
              // Nothing went over it: the kernel path keeps every promise too.
            }
          }
          const target: Target = {
            id: r.inbox,
            name: `@${r.name}`,
            kind: 'inbox',
            capacity: r.capacity === 'unbounded' ? Number.POSITIVE_INFINITY : r.capacity,
            maxMessageSize: r.maxMessageSize,
            fixedMessageSize: undefined,
            credits: 0,
            byteCredits: 0,
            closed: undefined,
            consumer: undefined,
          };
          if (target.id !== this.inbox.id) this.conn.registerTarget(target);
          return { kind: 'kernel', target, pid: r.pid };
        });
      const p = t;
      p.catch(() => {
        if (this.links.get(bare) === p) this.links.delete(bare);
      });
      this.links.set(bare, p);
    }
    return t;
  }

  // ---------------------------------------------------------------- mailboxes

  /** Create a mailbox (fails with MAILBOX_EXISTS if the name is taken). */
  async createMailbox(name: string, options: MailboxOptions = {}): Promise<Mailbox> {
    validateName('mailbox', name);
    const resolved = resolveMailboxOptions(options, this.maxMessageSize);
    if (choosePath(resolved, this.conn.info) === 'shm') {
      if (this.kernelPlace === undefined)
        throw new IpcError(
          'NOT_SUPPORTED',
          `a shared-memory mailbox needs the kernel on this host (this process reaches it over TLS): create ${name} with transport 'kernel'`,
        );
      const shm = await createShmMailbox(this, name, resolved, this.kernelPlace);
      try {
        const info = await this.conn.call<MailboxInfo>('mailbox.info', { name });
        return this.handle(info, shm);
      } catch (e) {
        await shm.close().catch(() => undefined);
        throw e;
      }
    }
    const { transport: _path, ...kernelOptions } = options;
    const info = await this.conn.call<MailboxInfo>('mailbox.create', { name, options: kernelOptions });
    return this.handle(info);
  }

  /** Open an existing mailbox (NO_SUCH_MAILBOX if there is none), on whichever path it uses. */
  async openMailbox(name: string): Promise<Mailbox> {
    const info = await this.conn.call<MailboxInfo>('mailbox.open', { name });
    return this.handle(info);
  }

  /** Delete a mailbox by name. Only its owner may, unless `force` (the administrator's ipcrm). */
  async deleteMailbox(name: string, options: { force?: boolean } = {}): Promise<void> {
    await this.conn.call('mailbox.delete', { name, force: options.force === true });
  }

  listMailboxes(): Promise<MailboxInfo[]> {
    return this.conn.call<MailboxInfo[]>('mailbox.list');
  }

  listProcesses(): Promise<ProcessInfo[]> {
    return this.conn.call<ProcessInfo[]>('process.list');
  }

  /** Everything the kernel holds, as `ipcbox status` shows it. */
  status(): Promise<KernelStatus> {
    return this.conn.call<KernelStatus>('status');
  }

  private handle(info: MailboxInfo, created?: ShmMailbox): Mailbox {
    if (info.transport === 'shm') {
      const path = new ShmPath(this, this.conn, info, created, () => this.shmPaths.delete(path));
      this.shmPaths.add(path);
      const target = { id: 0, name: info.name } as Target;
      return new Mailbox(this.conn, target, info, path);
    }
    const target: Target = {
      id: info.id,
      name: info.name,
      kind: 'mailbox',
      capacity: info.capacity === 'unbounded' ? Number.POSITIVE_INFINITY : info.capacity,
      maxMessageSize: info.maxMessageSize,
      fixedMessageSize: info.fixedMessageSize ?? undefined,
      credits: 0,
      byteCredits: 0,
      closed: undefined,
      consumer: undefined,
    };
    return new Mailbox(this.conn, this.conn.registerTarget(target), info);
  }

  // ---------------------------------------------------------------- shared-memory segments

  /**
   * Register a shared-memory segment with the kernel, which then tracks who is
   * attached, enforces rights on attach, and unlinks it on removal or when its
   * owning process exits. The data never passes through the kernel.
   */
  registerSegment(name: string, options: RegisterSegmentOptions): Promise<SegmentInfo> {
    return this.conn.call<SegmentInfo>('segment.register', { name, ...options });
  }

  /** Attach to a registered segment in a role the rights allow (PERMISSION_DENIED, RECEIVER_BUSY). */
  attachSegment(name: string, role: SegmentRole = 'attach'): Promise<SegmentInfo> {
    return this.conn.call<SegmentInfo>('segment.attach', { name, role });
  }

  /** Drop one attachment (the one made with `role`, if given); the last one detaches this process. */
  async detachSegment(name: string, role?: SegmentRole): Promise<void> {
    await this.conn.call('segment.detach', role === undefined ? { name } : { name, role });
  }

  /** Remove (unlink) a registered segment; owner only unless `force`. Attached processes get 'segment-removed'. */
  async removeSegment(name: string, options: { force?: boolean } = {}): Promise<void> {
    await this.conn.call('segment.remove', { name, force: options.force === true });
  }

  listSegments(): Promise<SegmentInfo[]> {
    return this.conn.call<SegmentInfo[]>('segment.list');
  }

  // ---------------------------------------------------------------- signals and monitors

  /** Send an asynchronous notice to a process; it arrives there as a 'signal' event. */
  async signal(to: string, type: string, payload?: unknown): Promise<void> {
    await this.conn.call('signal', {
      to: bareName(to),
      type,
      payload: payload ?? null,
    });
  }

  /** Watch a process: an 'exit' event comes when it ends, with its exit reason. */
  async monitor(name: string): Promise<void> {
    await this.conn.call('monitor', { name: bareName(name) });
  }

  async demonitor(name: string): Promise<void> {
    await this.conn.call('demonitor', { name: bareName(name) });
  }

  /** Leave: the kernel removes this process, its inbox and the mailboxes it owns. */
  /** No more link reports (the process left, or its kernel is gone). */
  private stopLinkReports(): void {
    this.linkReportsStopped = true;
    clearInterval(this.linkReport);
    this.linkReport = undefined;
  }

  async close(): Promise<void> {
    this.stopLinkReports();
    // Shared-memory handles first: leaving hands their unacknowledged messages back (as the
    // kernel does for a connection that ends), which the segment cannot see while this process lives.
    const shm = [...this.shmPaths];
    this.shmPaths.clear();
    await Promise.all(shm.map((p) => p.close().catch(() => undefined)));
    this.closeLinks();
    this.local?.close();
    this.conn.bye();
    return Promise.resolve();
  }

  private closeLinks(): void {
    this.listener?.close();
    for (const r of this.links.values())
      r.then(
        (x) => x.kind === 'link' && x.link.close(),
        () => {},
      );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private onNotice(n: Record<string, unknown>): void {
    switch (n.kind) {
      case 'signal': {
        const e: SignalEvent = { from: String(n.from), type: String(n.type), payload: n.payload };
        if (this.early === undefined) this.emit('signal', e);
        else if (this.early.length < MAX_EARLY_SIGNALS) this.early.push(e);
        return;
      }
      case 'exit':
        this.links.delete(String(n.process));
        this.emit('exit', { process: String(n.process), pid: Number(n.pid), reason: String(n.reason) });
        return;
      case 'mailbox-closed': {
        const name = String(n.mailbox);
        if (name.startsWith('@')) this.links.delete(name.slice(1));
        if (n.id === 0) for (const p of this.shmPaths) if (p.info.name === name) p.closedBy(String(n.reason));
        this.emit('mailbox-closed', { mailbox: name, reason: String(n.reason) });
        return;
      }
      case 'ownership':
        this.emit('ownership', { mailbox: String(n.mailbox), from: String(n.from) });
        return;
      case 'segment-removed':
        this.emit('segment-removed', { name: String(n.name), reason: String(n.reason) });
        return;
      case 'segment-rights': {
        const right = n.right === 'send' ? 'send' : 'receive';
        for (const p of this.shmPaths) if (p.segment === n.name) p.revoked(right);
        return;
      }
      case 'segment-peer-exit':
        this.emit('segment-peer-exit', {
          name: String(n.name),
          process: String(n.process),
          pid: Number(n.pid),
          osPid: Number(n.osPid),
          role: n.role as SegmentRole,
        });
        return;
      case 'link':
        this.listener?.expect(n);
        return;
      case 'kernel-shutdown':
        return;
      default:
        return;
    }
  }
}

/** Connect this process to the ipcbox kernel. */
export function connect(options?: ConnectOptions): Promise<IpcProcess> {
  return IpcProcess.connect(options);
}

export type { IpcErrorCode };
