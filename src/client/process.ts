import { EventEmitter } from 'node:events';
import type { MailboxOptions } from '../core/mailbox-options.js';
import { resolveMailboxOptions, validateName } from '../core/mailbox-options.js';
import type { Grantees } from '../core/rights.js';
import type { IpcError, IpcErrorCode } from '../errors.js';
import type { MapOptions } from '../map/map-region.js';
import type { KernelStatus, MailboxInfo, ProcessInfo, SegmentInfo, SegmentRole } from '../wire/info-types.js';
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
import { Mailbox } from './mailbox.js';
import type { Message } from './message.js';
import { type IterateOptions, MessageStream } from './message-stream.js';

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
   * Large messages by map (docs/protocol.md, "Map instead of copy"): payloads from `threshold`
   * bytes up to `chunkBytes` are written once into a shared-memory region of `chunks` chunks
   * and the kernel passes a reference. `false` copies everything. Needs the native addon and a
   * local kernel; otherwise everything is copied.
   */
  map?: MapOptions | false;
}

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
/** Signals kept for a process that has no 'signal' listener yet (beyond it, the oldest are kept). */
const MAX_EARLY_SIGNALS = 1024;

export class IpcProcess extends EventEmitter<ProcessEvents> {
  private readonly inbox: Target;
  private readonly links = new Map<string, Promise<Target>>();
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
    conn.onLost = (e) => this.emit('disconnect', e);
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
    return new IpcProcess(conn);
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
    const target = await this.link(to);
    return this.conn.send(target, value, options);
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
    if (from === undefined) return this.conn.receive(this.inbox, rest);
    const bare = bareName(from);
    // A sender that has already exited may still have messages queued here: use the pid we learned.
    const pid = this.conn.knownPid(bare) ?? ((await this.link(bare)) as Target & { pid: number }).pid;
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
      return this.conn.peek(this.inbox, peekCount(options.count));
    } catch (e) {
      return Promise.reject(e);
    }
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
    if (this.inbox.consumer !== undefined) throw new TypeError('the inbox is already being iterated');
    return new MessageStream(this.conn, this.inbox, options);
  }

  private link(name: string): Promise<Target> {
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
        }>('process.lookup', { name: bare })
        .then((r) => {
          const target: Target & { pid: number } = {
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
            pid: r.pid,
          };
          if (target.id !== this.inbox.id) this.conn.registerTarget(target);
          return target;
        });
      t.catch(() => this.links.delete(bare));
      this.links.set(bare, t);
    }
    return t;
  }

  // ---------------------------------------------------------------- mailboxes

  /** Create a mailbox (fails with MAILBOX_EXISTS if the name is taken). */
  async createMailbox(name: string, options: MailboxOptions = {}): Promise<Mailbox> {
    validateName('mailbox', name);
    resolveMailboxOptions(options, this.maxMessageSize);
    const info = await this.conn.call<MailboxInfo>('mailbox.create', { name, options });
    return this.handle(info);
  }

  /** Open an existing mailbox (NO_SUCH_MAILBOX if there is none). */
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

  private handle(info: MailboxInfo): Mailbox {
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
  close(): Promise<void> {
    this.conn.bye();
    return Promise.resolve();
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
        this.emit('mailbox-closed', { mailbox: name, reason: String(n.reason) });
        return;
      }
      case 'ownership':
        this.emit('ownership', { mailbox: String(n.mailbox), from: String(n.from) });
        return;
      case 'segment-removed':
        this.emit('segment-removed', { name: String(n.name), reason: String(n.reason) });
        return;
      case 'segment-peer-exit':
        this.emit('segment-peer-exit', {
          name: String(n.name),
          process: String(n.process),
          pid: Number(n.pid),
          osPid: Number(n.osPid),
          role: n.role as SegmentRole,
        });
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
