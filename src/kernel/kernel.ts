import { timingSafeEqual } from 'node:crypto';
import { chmodSync, chownSync, unlinkSync } from 'node:fs';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { HomeChannel } from '../cluster/channels.js';
import type { MailboxHooks } from '../core/mailbox-core.js';
import { type MailboxOptions, resolveMailboxOptions, validateName } from '../core/mailbox-options.js';
import type { Principal } from '../core/rights.js';
import type { DashboardServer } from '../dashboard/dashboard-server.js';
import { IpcError, type IpcErrorCode } from '../errors.js';
import { peerCredentialsOf, peerCredentialsSupported } from '../shm/peer-credentials.js';
import { Segment } from '../shm/segment.js';
import type { Frame } from '../wire/frame-codec.js';
import {
  ASSIGNED_NAME,
  HEADER_REST,
  HelloFlag,
  MAGIC,
  MAX_CONTROL_BODY,
  MAX_HELLO_FRAME,
  MIN_PROTOCOL_VERSION,
  Op,
  PROTOCOL_VERSION,
} from '../wire/protocol.js';
import { ClusterLink } from './cluster-link.js';
import { ANSWERED_SEPARATELY, describeProcess, handleCall } from './control.js';
import { DurableMailboxes } from './durable-mailboxes.js';
import { MAX_CALL_NESTING, nestsDeeperThan } from './json-depth.js';
import { type KernelOptions, type ResolvedKernelOptions, resolveKernelOptions } from './kernel-options.js';
import { forgetLinks } from './link-broker.js';
import type { KernelMessage, PendingReceive, SendRequest } from './mailbox-record.js';
import { MailboxRecord } from './mailbox-record.js';
import { MapRegions, reapMapRegions } from './map-regions.js';
import { MessagePath } from './message-path.js';
import { MemoryBudget } from './message-store.js';
import { ProcessWaits } from './process-waits.js';
import { ProxySocket } from './proxy-socket.js';
import { RateSampler } from './rate-sampler.js';
import { RemoteRoutes } from './remote-routes.js';
import type { SegmentRecord } from './segment-record.js';
import { type ExitReason, PUSH_BYTES_MAX, Session } from './session.js';
import { checkMailboxNameFree, checkMailboxRoom, kernelPathOnly } from './shm-mailboxes.js';
import { claimSocketPath } from './socket-path.js';

export type { KernelOptions } from './kernel-options.js';

/** Calls about names unknown here one session may have waiting for the cluster's answer. */
const MAX_CONFIRMING = 1024;

/**
 * The kernel: owns process names, mailboxes, links and the memory budget.
 * It listens on a Unix socket; each connection is a Session. Message frames
 * are handled here; control calls (JSON) in control.ts; credits in
 * credits.ts; what a kept message costs in message-store.ts.
 *
 * No frame can take the kernel down: a frame the handlers cannot process
 * costs its sender the connection (protocol error), never another client
 * anything.
 */
export class Kernel {
  readonly options: ResolvedKernelOptions;
  readonly sessions = new Map<number, Session>();
  readonly byName = new Map<string, Session>();
  readonly mailboxes = new Map<number, MailboxRecord>();
  readonly mailboxByName = new Map<string, MailboxRecord>();
  /** Shared-memory segments registered with the kernel, by name. */
  readonly segments = new Map<string, SegmentRecord>();
  /** The segments that are shared-memory mailboxes in the mailbox namespace, by mailbox name (shm-mailboxes.ts). */
  readonly shmMailboxes = new Map<string, SegmentRecord>();
  /** Bytes of `meta` the registered segments carry (bounded: see control.ts segment.register). */
  segmentMetaBytes = 0;
  /** Bytes queued in mailboxes (the core's count; also part of `budget.held`). */
  readonly ledger = { used: 0 };
  readonly budget: MemoryBudget;
  readonly startedAt = Date.now();
  private server: Server | undefined;
  /** The TLS listener for clients on other hosts (`options.listen`). */
  private network: TlsServer | undefined;
  /** The TLS listener's TCP sockets, handshaking or not (close ends them: server.close waits for them). */
  private readonly networkSockets = new Set<Socket>();
  private readonly dirty = new Set<Session>();
  private flushScheduled = false;
  private nextPid = 1;
  private nextMailboxId = 1;
  private closing: Promise<void> | undefined;
  private readonly maxFrame: number;
  private readonly connections = new Set<Session>();
  /** Connections that have not sent HELLO, oldest first. */
  private readonly handshaking = new Set<Session>();
  private readonly hooks: (rec: MailboxRecord) => MailboxHooks<KernelMessage>;
  /** Map regions of large payloads sent by reference (map-regions.ts). */
  readonly maps = new MapRegions();
  /** Messages: sending, receiving, delivery and redelivery (message-path.ts). */
  readonly path: MessagePath;
  /** `process.wait` calls parked until their name is bound (process-waits.ts). */
  readonly waits = new ProcessWaits((s) => describeProcess(this, s));
  /** This kernel's side of its cluster, once `listen` joined it (cluster-link.ts). */
  cluster: ClusterLink | undefined;
  /** Durable mailboxes (durable-mailboxes.ts); only in a cluster (they live on JetStream). */
  durables: DurableMailboxes | undefined;
  /** What local processes use on other nodes (remote-routes.ts). */
  private routes: RemoteRoutes | undefined;
  /** Settles if the kernel stops by itself (its cluster node name was taken): with why. */
  readonly stoppedByItself: Promise<string>;
  private stopItself: (why: string) => void = () => {};
  /** The pid each remote process has here (its proxy session's, now or when it comes), by name. */
  private readonly proxyPids = new Map<string, { node: string; pid: number }>();
  /** Rates of every mailbox and process, sampled once a second (rate-sampler.ts). */
  readonly sampler = new RateSampler(this.mailboxes, this.sessions);
  /** The HTTP dashboard, when `http` was given (src/dashboard/). */
  dashboard: DashboardServer | undefined;

  constructor(options: KernelOptions = {}) {
    this.stoppedByItself = new Promise((resolve) => {
      this.stopItself = resolve;
    });
    this.options = resolveKernelOptions(options);
    this.budget = new MemoryBudget(this.options.memoryBudget);
    this.budget.dropMapped = (p) => this.maps.drop(p);
    this.maps.onDamaged = (r) =>
      this.protocolError(r.owner, `map region ${r.id} was cut short (its file truncated) under the kernel`);
    this.path = new MessagePath(this);
    this.maxFrame = HEADER_REST + Math.max(this.options.maxMessageSize + 8, MAX_CONTROL_BODY);
    this.hooks = (rec) => ({
      deliver: (receiver, request, message) =>
        this.path.deliverFromCore(rec, receiver, request as PendingReceive | undefined, message),
      admitted: (waiter) => this.path.admitted(waiter as SendRequest),
      writable: (receiver) => {
        const s = this.sessions.get(receiver.id);
        return (
          s !== undefined &&
          !s.choked &&
          s.pushedBytes < PUSH_BYTES_MAX &&
          (s.attached.get(rec)?.draining ?? 0) === 0
        );
      },
      copied: (message, copies) => {
        message.pending += copies - 1;
      },
    });
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  async listen(): Promise<void> {
    const group = this.options.group;
    if (group !== undefined && peerCredentialsSupported() === false) {
      throw new IpcError(
        'NATIVE_UNAVAILABLE',
        'a group daemon tells its users apart by peer credentials, which need the native addon (npm rebuild ipcbox)',
      );
    }
    await claimSocketPath(this.options.socketPath, group);
    // Regions left by a kernel that was killed while their (now dead) senders' messages were queued.
    if (this.maps.enabled) reapMapRegions();
    // Join before listening: no client may bind a name before the cluster can check it.
    if (this.options.cluster !== undefined) {
      const cluster = await ClusterLink.join(this.options.cluster);
      this.cluster = cluster;
      this.routes = new RemoteRoutes(this, cluster);
      this.durables = new DurableMailboxes(this, cluster);
      // Before any client: the durable mailboxes this node homes are served again, with their messages.
      await this.durables.restore();
      cluster.onChannel((from, hello, ch) => this.acceptProxy(from, hello, ch));
      // A wait for a name that has just connected on another node is answered by that node.
      cluster.onNameClaimed((kind, name) => {
        if (kind !== 'process') return;
        for (const w of this.waits.takeAll(name)) {
          if (!w.session.closed && !this.routes?.call(w.session, w.reqId, 'process.wait', { name }))
            this.waits.park(w.session, w.reqId, name, undefined);
        }
        this.flushDirty();
      });
      // Cut off long enough to be counted down, this node may have lost names to others: their
      // holders here must not go on as duplicates.
      cluster.onNamesLost((lost) => {
        for (const l of lost) {
          const why = `the name ${l.name} was taken on cluster node ${l.node} while this kernel was cut off`;
          if (l.kind === 'process') {
            const s = this.byName.get(l.name);
            if (s === undefined || s.closed) continue;
            s.sendError(0, 'NAME_TAKEN', why);
            s.flush();
            s.socket.end();
            this.endSession(s, 'lost');
          } else {
            const rec = this.mailboxByName.get(l.name);
            if (rec !== undefined) this.deleteMailbox(rec, why);
          }
        }
        this.flushDirty();
      });
      // Another kernel holds this node's name now: two kernels must never act as one node, so this
      // one stops, telling its processes why (they reconnect to a kernel that is part of the cluster).
      cluster.onFenced(() => {
        const why = `another kernel took this kernel's cluster node name ${cluster.node} while it was cut off; this kernel stops`;
        process.emitWarning(`ipcbox kernel: ${why}`);
        for (const s of this.sessions.values())
          if (s.remoteNode === undefined) s.sendError(0, 'NAME_TAKEN', why);
        this.flushDirty();
        void this.close().then(() => this.stopItself(why));
      });
      cluster.onNodeDown((node) => {
        for (const [name, p] of this.proxyPids) if (p.node === node) this.proxyPids.delete(name);
      });
    }
    const server = createServer({ allowHalfOpen: false }, (socket) => this.accept(socket));
    this.server = server;
    // The socket is created with no permission for anyone else: there is no window between
    // bind and chmod in which another user could connect.
    const umask = process.umask(group === undefined ? 0o177 : 0o117);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.options.socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    if (group !== undefined) chownSync(this.options.socketPath, process.getuid?.() ?? -1, group);
    chmodSync(this.options.socketPath, group === undefined ? 0o600 : 0o660);
    this.sampler.start();
    const http = this.options.http;
    if (http !== undefined) {
      // Loaded only when asked for: a kernel without a dashboard loads no HTTP server or prom-client.
      const { DashboardServer } = await import('../dashboard/dashboard-server.js');
      try {
        this.dashboard = await DashboardServer.start(this, http);
      } catch (e) {
        await this.close();
        throw e;
      }
    }
    const l = this.options.listen;
    if (l !== undefined) {
      // A stranger gets as long for the TLS handshake as for HELLO (not node's 120 s), and the
      // listener holds at most maxConnections sockets, handshaking or not: otherwise connections
      // that never finish a handshake would pile up without bound.
      const tls = createTlsServer(
        { cert: l.cert, key: l.key, allowHalfOpen: false, handshakeTimeout: this.options.helloTimeout },
        (socket) => this.accept(socket, true),
      );
      tls.maxConnections = this.options.maxConnections;
      tls.on('connection', (socket: Socket) => {
        this.networkSockets.add(socket);
        socket.once('close', () => this.networkSockets.delete(socket));
      });
      // A failed or timed-out TLS handshake is that stranger's problem, never the kernel's; with a
      // listener here node leaves its socket open, so it is destroyed here.
      tls.on('tlsClientError', (_e, socket) => socket.destroy());
      this.network = tls;
      await new Promise<void>((resolve, reject) => {
        tls.once('error', reject);
        tls.listen(l.port, l.host, () => {
          tls.off('error', reject);
          resolve();
        });
      });
    }
  }

  /** Where the TLS listener listens (`options.listen`; port 0 there picks one), if there is one. */
  get networkAddress(): { host: string; port: number } | undefined {
    const a = this.network?.address() as AddressInfo | null | undefined;
    return a == null ? undefined : { host: a.address, port: a.port };
  }

  /** Stop: every client is told and disconnected, the socket file removed. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      this.sampler.stop();
      await this.dashboard?.close();
      const server = this.server;
      const sessions = [...this.connections];
      for (const s of sessions) {
        s.sendNotice({ kind: 'kernel-shutdown' });
        s.flush();
        s.socket.end();
        // A client that does not close its side must not hold the shutdown up.
        setTimeout(() => s.socket.destroy(), 500).unref();
      }
      // Nothing more is written: ending one session must not tell the others
      // MAILBOX_CLOSED (for the mailboxes it owned); every client sees only
      // its connection close, so its pending operations reject KERNEL_UNAVAILABLE.
      for (const s of sessions) s.closed = true;
      for (const s of sessions) this.endSession(s, 'kernel-shutdown');
      // Map regions still referred to by queued messages die with the kernel that held those.
      this.maps.removeAll();
      // So do shared-memory mailboxes, system-owned ones too, as the kernel's own mailboxes do: a
      // segment left in /dev/shm would outlive every name that could reach it (no one is told,
      // sessions are closed already).
      for (const rec of [...this.shmMailboxes.values()]) this.removeSegment(rec, 'kernel shutting down');
      // Leaving frees this node's names across the cluster at once (no waiting for a timeout).
      await this.cluster?.close().catch(() => undefined);
      const network = this.network;
      if (network !== undefined) {
        const closed = new Promise<void>((resolve) => network.close(() => resolve()));
        for (const socket of this.networkSockets) socket.destroy();
        await closed;
      }
      if (server) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        try {
          unlinkSync(this.options.socketPath);
        } catch {
          // already gone (server.close removes it on some platforms)
        }
      }
    })();
    return this.closing;
  }

  // ---------------------------------------------------------------- connections

  /** A new connection: on the Unix socket, or (`network`) on the TLS listener, token first. */
  private accept(socket: Socket, network = false): void {
    if (this.closing !== undefined || this.connections.size >= this.options.maxConnections) {
      socket.destroy();
      return;
    }
    socket.setNoDelay?.(true);
    const session = this.wire(socket, MAX_HELLO_FRAME);
    if (network) {
      // No peer credentials over TCP: the token proves the client is the daemon's user's.
      session.needsToken = true;
      session.uid = process.getuid?.();
      session.gid = process.getgid?.();
    } else {
      session.credentials = peerCredentialsOf(socket);
      session.uid = session.credentials?.uid ?? process.getuid?.();
      session.gid = session.credentials?.gid ?? process.getgid?.();
    }
    this.handshaking.add(session);
    if (this.handshaking.size > this.options.maxHandshakes) {
      // Idle strangers must not lock everyone out: the oldest handshake goes first.
      const oldest = this.handshaking.values().next().value as Session;
      this.dropHandshake(oldest);
    }
    session.helloTimer = setTimeout(() => this.dropHandshake(session), this.options.helloTimeout);
    session.helloTimer.unref();
  }

  /**
   * A process on node `from` uses this kernel: its proxy session is ready at once (its own kernel
   * did the handshake and vouches for its name and uid; kernels of a cluster trust each other).
   * It has no inbox and no name here: its name lives on its node.
   */
  private acceptProxy(from: string, hello: Record<string, unknown>, ch: HomeChannel): void {
    const name = hello.name;
    if (this.closing !== undefined || typeof name !== 'string' || name === '') return ch.close('refused');
    if (this.connections.size >= this.options.maxConnections) return ch.close('too many connections');
    const socket = new ProxySocket(ch);
    const session = this.wire(socket, this.maxFrame);
    const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
    session.remoteNode = from;
    session.name = name;
    session.uid = num(hello.uid);
    session.gid = num(hello.gid);
    session.osPid = num(hello.osPid) ?? 0;
    let pid = this.proxyPid(name, from);
    if (this.sessions.has(pid)) {
      pid = this.nextPid++;
      this.proxyPids.set(name, { node: from, pid });
    }
    session.pid = pid;
    session.version = PROTOCOL_VERSION;
    session.ready = true;
    this.sessions.set(pid, session);
    ch.accept({
      data: (b) => socket.deliver(b),
      // Served once the session has read all it held and ended ('close'): see Channels.lost.
      closed: () => {
        if (socket.destroyed) return;
        const served = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        socket.ended();
        return served;
      },
    });
  }

  /** The pid remote process `name` of `node` has on this kernel (reserved until its proxy comes). */
  proxyPid(name: string, node: string): number {
    const p = this.proxyPids.get(name);
    if (p !== undefined && p.node === node) return p.pid;
    const pid = this.nextPid++;
    this.proxyPids.set(name, { node, pid });
    return pid;
  }

  newMailboxId(): number {
    return this.nextMailboxId++;
  }

  allocatePid(): number {
    return this.nextPid++;
  }

  /** A system-owned mailbox made again at start (a durable one), owned by whom it was before. */
  restoreMailbox(name: string, options: MailboxOptions, owner: Principal): MailboxRecord {
    validateName('mailbox', name);
    if (this.mailboxByName.has(name)) throw new IpcError('MAILBOX_EXISTS', `mailbox already exists: ${name}`);
    const resolved = resolveMailboxOptions(options, this.options.maxMessageSize);
    const rec = this.newRecord(name, 'mailbox', resolved, owner, undefined);
    this.mailboxByName.set(name, rec);
    return rec;
  }

  /** A Session on `socket` with its frames, budget accounting and teardown wired. */
  private wire(socket: Duplex, maxFrame: number): Session {
    let session!: Session;
    session = new Session(
      socket,
      maxFrame,
      (frame) => this.onFrame(session, frame),
      (err) => this.protocolError(session, err.message),
      (s) => this.markDirty(s),
      this.budget,
      (s) => this.unchoked(s),
    );
    this.connections.add(session);
    // A large request SEND that cannot fit the budget is refused without its bytes ever being kept.
    session.decoder.admit = (h, length) =>
      !(h.op === Op.SEND && h.reqId !== 0 && !this.budget.fits(length) && session.ready);
    session.decoder.onSkipped = (h, length) => {
      if (session.closed) return;
      session.sendError(
        h.reqId,
        'KERNEL_FULL',
        `a send of ${length - HEADER_REST} bytes does not fit the kernel memory budget of ${this.options.memoryBudget} bytes`,
      );
    };
    socket.on('data', (chunk: Buffer) => {
      session.read(chunk);
      this.budget.relieve();
      this.flushDirty();
    });
    socket.on('error', () => {
      // 'close' follows; the session ends there.
    });
    socket.on('close', () => {
      this.connections.delete(session);
      this.handshaking.delete(session);
      this.endSession(session, 'lost');
      session.release();
      this.flushDirty();
    });
    return session;
  }

  private dropHandshake(s: Session): void {
    if (!this.handshaking.delete(s)) return;
    s.closed = true;
    s.socket.destroy();
  }

  /** Flush what async work wrote (a stored durable send's answer), on the next turn. */
  flushLater(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushDirty());
    }
  }

  markDirty(s: Session): void {
    this.dirty.add(s);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushDirty());
    }
  }

  private flushDirty(): void {
    this.flushScheduled = false;
    for (const s of this.dirty) s.flush();
    this.dirty.clear();
  }

  /** A slow reader caught up: deliveries may flow to it again. */
  /** A receiver may take deliveries again (it read its backlog, or took its prefetched messages). */
  unchoked(s: Session): void {
    for (const rec of s.attached.keys()) if (!rec.closed) rec.core.pumpNow();
    this.flushDirty();
  }

  protocolError(s: Session, message: string): void {
    if (s.closed) return;
    s.decoder.fail(message);
    s.sendError(0, 'PROTOCOL', message);
    s.flush();
    s.socket.end();
    this.endSession(s, 'protocol-error');
    s.closed = true;
    s.dropBuffers();
    setTimeout(() => s.socket.destroy(), 1000).unref();
  }

  // ---------------------------------------------------------------- frames

  private onFrame(s: Session, f: Frame): void {
    if (s.closed) return;
    try {
      this.dispatch(s, f);
    } catch (e) {
      // A frame no handler anticipated: it costs its sender the connection, and nobody else anything.
      process.emitWarning(
        `ipcbox kernel: frame op ${f.op} from ${s.name || 'a new connection'}: ${String(e)}`,
      );
      this.protocolError(s, `frame op ${f.op} could not be processed`);
    }
  }

  private dispatch(s: Session, f: Frame): void {
    if (!s.ready) {
      if (s.needsToken) return this.authenticate(s, f);
      if (f.op !== Op.HELLO) return this.protocolError(s, `expected HELLO, got op ${f.op}`);
      if (s.name !== '') return this.protocolError(s, 'a second HELLO before WELCOME');
      return this.hello(s, f);
    }
    if (this.routes !== undefined && s.remoteNode === undefined && this.routes.frame(s, f)) return;
    switch (f.op) {
      case Op.SEND:
        return this.path.onSend(s, f);
      case Op.RECV:
        return this.path.onRecv(s, f);
      case Op.DEMAND:
        return this.path.onDemand(s, f);
      case Op.CONSUMED:
      case Op.ACK:
      case Op.RELEASE:
        return this.path.onDeliveryIds(s, f);
      case Op.UNMAP:
        return this.path.onUnmap(s, f);
      case Op.CANCEL:
        if (this.waits.cancel(s, f.reqId)) return;
        return this.path.onCancel(s, f.reqId);
      case Op.CREDIT_RETURN:
        return this.path.onCreditReturn(s, f);
      case Op.CALL:
        return this.onCall(s, f);
      case Op.REQUEUE:
        // Version 1 clients hand back only what looks untracked to them, and every delivery is
        // tracked now, so theirs never carry a message the kernel lacks: nothing to do.
        if (s.version === 1) return;
        return this.protocolError(s, 'REQUEUE is retired: hand deliveries back with RELEASE');
      case Op.BYE:
        s.socket.end();
        return this.endSession(s, 'normal');
      default:
        return this.protocolError(s, `unknown op ${f.op}`);
    }
  }

  /** AUTH on a network connection: the token, compared in constant time; one try. */
  private authenticate(s: Session, f: Frame): void {
    if (f.op !== Op.AUTH)
      return this.protocolError(s, `a network connection must send AUTH first, got op ${f.op}`);
    const token = this.options.listen?.token;
    const given = f.body;
    if (token === undefined || given.length !== token.length || !timingSafeEqual(given, token)) {
      s.sendError(f.reqId, 'PERMISSION_DENIED', 'wrong token');
      s.flush();
      s.socket.end();
      s.closed = true;
      return;
    }
    s.needsToken = false;
    s.sendResult(f.reqId, null);
  }

  private hello(s: Session, f: Frame): void {
    const b = f.body;
    if (b.length < 16 || b.readUInt32LE(0) !== MAGIC) return this.protocolError(s, 'bad HELLO (magic)');
    const version = b.readUInt16LE(4);
    if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
      return this.protocolError(
        s,
        `unsupported protocol version ${version}; this kernel speaks ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`,
      );
    }
    s.version = version;
    // Map needs this host (peer credentials: not TLS, not a proxy), protocol 3 and the addon here.
    s.canMap =
      version >= 3 &&
      (b.readUInt16LE(6) & HelloFlag.MAP) !== 0 &&
      s.credentials !== undefined &&
      this.maps.enabled;
    this.handshaking.delete(s);
    if (s.helloTimer !== undefined) clearTimeout(s.helloTimer);
    // The OS pid from SO_PEERCRED where the platform gives it; the client's word only otherwise.
    s.osPid = s.credentials?.pid ?? b.readUInt32LE(8);
    const inboxCap = b.readUInt32LE(12);
    let name = b.toString('utf8', 16);
    const pid = this.nextPid++;
    // Taken now: the claim below answers later, when the session's decoder has reused `f`.
    const reqId = f.reqId;
    const refuse = (code: IpcErrorCode, text: string) => {
      s.sendError(reqId, code, text);
      s.flush();
      s.socket.end();
      s.closed = true;
    };
    const assigned = name === '';
    if (assigned) name = this.cluster === undefined ? `proc-${pid}` : `proc-${pid}.${this.cluster.node}`;
    else if (ASSIGNED_NAME.test(name)) {
      return refuse(
        'INVALID_ARGUMENT',
        `process names of the form proc-<n> are assigned by the kernel: ${name}`,
      );
    }
    try {
      validateName('process', name);
    } catch (e) {
      return refuse('INVALID_ARGUMENT', (e as Error).message);
    }
    if (this.byName.has(name) || this.cluster?.isPending('process', name))
      return refuse('NAME_TAKEN', `process name already taken: ${name}`);
    if (inboxCap !== 0xffffffff && inboxCap > 0x7fffffff) {
      return refuse('INVALID_ARGUMENT', `inbox capacity ${inboxCap} is out of range`);
    }
    const cluster = this.cluster;
    if (cluster === undefined || assigned) return this.welcome(s, reqId, pid, name, inboxCap, version);
    // Held until WELCOME: the name is claimed across the cluster first.
    s.name = name;
    cluster
      .claim('process', name, { osPid: s.osPid }, () => !s.closed)
      .then(
        (bound) => {
          if (bound) this.welcome(s, reqId, pid, name, inboxCap, version);
        },
        (e: unknown) => {
          if (s.closed) return;
          if (e instanceof IpcError) refuse(e.code, e.message);
          else refuse('CLUSTER_UNAVAILABLE', `the cluster could not check the name ${name}: ${String(e)}`);
        },
      );
  }

  private welcome(
    s: Session,
    reqId: number,
    pid: number,
    name: string,
    inboxCap: number,
    version: number,
  ): void {
    s.pid = pid;
    s.name = name;
    s.ready = true;
    s.decoder.maxFrame = this.maxFrame;
    this.sessions.set(pid, s);
    this.byName.set(name, s);
    const inbox = this.newRecord(
      `@${name}`,
      'inbox',
      {
        capacity: inboxCap === 0xffffffff ? Number.POSITIVE_INFINITY : inboxCap,
        delivery: 'exclusive',
        owner: 'process',
        maxMessageSize: this.options.maxMessageSize,
        fixedMessageSize: undefined,
        senders: 'everyone',
        receivers: [],
        durable: false,
        transport: 'kernel',
      },
      s,
      s,
    );
    s.inbox = inbox;
    inbox.core.attach(pid);
    s.attached.set(inbox, { ack: false, stream: 0, draining: 0, deferred: [] });
    const body = Buffer.allocUnsafe(16 + Buffer.byteLength(name));
    body.writeUInt16LE(version, 0);
    body.writeUInt16LE((s.canMap ? HelloFlag.MAP : 0) | (this.hostLocal(s) ? HelloFlag.HOST_LOCAL : 0), 2);
    body.writeUInt32LE(this.options.maxMessageSize, 4);
    body.writeUInt32LE(pid, 8);
    body.writeUInt32LE(inbox.id, 12);
    body.write(name, 16, 'utf8');
    s.writer.frame(Op.WELCOME, 0, 0, 0, reqId, 0, 0, 0, 0, body);
    this.markDirty(s);
    this.waits.bound(s);
  }

  /**
   * Whether every process that could open a mailbox of `s` maps this host's shared memory as
   * `s` can: `s` reads mapped payloads here, and this kernel has no cluster (processes on other
   * nodes), no TLS listener (processes on other hosts) and no group (other users, whose
   * processes a same-user segment would shut out). A mailbox 'auto' puts on the shared-memory
   * path needs it.
   */
  private hostLocal(s: Session): boolean {
    const o = this.options;
    return s.canMap && o.cluster === undefined && o.listen === undefined && o.group === undefined;
  }

  private newRecord(
    name: string,
    kind: 'mailbox' | 'inbox',
    options: ConstructorParameters<typeof MailboxRecord>[3],
    owner: Principal,
    ownerSession: Session | undefined,
  ): MailboxRecord {
    const rec = new MailboxRecord(
      this.nextMailboxId++,
      name,
      kind,
      options,
      owner,
      ownerSession,
      this.ledger,
      this.hooks,
      this.options.creditWindow,
      (self) => ({
        budget: this.budget,
        revokeTimeout: this.options.revokeTimeout,
        roundEnded: () => this.path.roundEnded(self),
      }),
    );
    this.mailboxes.set(rec.id, rec);
    return rec;
  }

  private onCall(s: Session, f: Frame): void {
    if (f.reqId === 0) return this.protocolError(s, 'CALL needs a request id');
    if (this.waits.has(s, f.reqId)) {
      return this.protocolError(s, `CALL reuses request id ${f.reqId} of a process.wait still parked`);
    }
    if (f.bodyLength > MAX_CONTROL_BODY)
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL body too large');
    let call: { m?: unknown; a?: unknown };
    const text = f.body.toString('utf8');
    if (nestsDeeperThan(text, MAX_CALL_NESTING))
      return s.sendError(
        f.reqId,
        'INVALID_ARGUMENT',
        `CALL body nests deeper than ${MAX_CALL_NESTING} levels`,
      );
    try {
      call = JSON.parse(text);
    } catch {
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL body is not valid JSON');
    }
    if (typeof call !== 'object' || call === null || typeof call.m !== 'string') {
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL body must be {"m": method, "a": args}');
    }
    const args = call.a ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      return s.sendError(f.reqId, 'INVALID_ARGUMENT', 'CALL args must be an object');
    }
    const a = args as Record<string, unknown>;
    const routes = this.routes;
    const cluster = this.cluster;
    // A name on another node: the call goes to that node's kernel (proxies never route further).
    if (routes !== undefined && cluster !== undefined && s.remoteNode === undefined) {
      if (routes.call(s, f.reqId, call.m, a)) return;
      const unknown = routes.unknownName(call.m, a);
      // Bounded: past it a client's calls about unknown names are answered from the mirror alone.
      if (unknown !== undefined && s.confirming < MAX_CONFIRMING) {
        const reqId = f.reqId;
        const method = call.m;
        s.confirming++;
        void cluster
          .confirm(unknown.kind, unknown.name, () => !s.closed)
          .then(() => {
            s.confirming--;
            if (s.closed) return;
            if (!routes.call(s, reqId, method, a)) this.answerCall(s, reqId, method, a);
            this.flushDirty();
          });
        return;
      }
    }
    this.answerCall(s, f.reqId, call.m, a);
  }

  /** Run a control call here and answer it (RESULT, or ERROR with its code). */
  private answerCall(s: Session, reqId: number, method: string, args: Record<string, unknown>): void {
    try {
      const result = handleCall(this, s, reqId, method, args);
      if (result !== ANSWERED_SEPARATELY) s.sendResult(reqId, result);
    } catch (e) {
      if (e instanceof IpcError) s.sendError(reqId, e.code, e.message);
      else if (e instanceof TypeError || e instanceof RangeError)
        s.sendError(reqId, 'INVALID_ARGUMENT', e.message);
      else throw e;
    }
  }

  // ---------------------------------------------------------------- mailboxes

  /** Take back everything `s` holds on `rec` (handle closed, or `s` is gone). */
  dropCredits(rec: MailboxRecord, s: Session): void {
    rec.credits.drop(s);
  }

  /** Throws what `createMailbox` would for a bad name, bad options or a name in use here. */
  checkNewMailbox(name: string, options: MailboxOptions): void {
    validateName('mailbox', name);
    checkMailboxNameFree(this, name);
    kernelPathOnly(resolveMailboxOptions(options, this.options.maxMessageSize));
  }

  createMailbox(s: Session, name: string, options: MailboxOptions): MailboxRecord {
    validateName('mailbox', name);
    if (this.mailboxByName.has(name) || this.shmMailboxes.has(name))
      throw new IpcError('MAILBOX_EXISTS', `mailbox already exists: ${name}`);
    checkMailboxRoom(this);
    const resolved = kernelPathOnly(resolveMailboxOptions(options, this.options.maxMessageSize));
    const rec = this.newRecord(name, 'mailbox', resolved, s, resolved.owner === 'process' ? s : undefined);
    this.bindConnected(rec.rights, resolved.senders);
    this.bindConnected(rec.rights, resolved.receivers);
    this.mailboxByName.set(name, rec);
    rec.openers.add(s);
    return rec;
  }

  /** Bind each named grantee that is connected now to its uid (see core/rights.ts). */
  bindConnected(rights: MailboxRecord['rights'], who: 'everyone' | readonly string[]): void {
    if (who === 'everyone') return;
    for (const name of who) {
      const holder = this.byName.get(name);
      if (holder !== undefined) rights.bind(name, holder.uid);
    }
  }

  /** Delete a mailbox: pending sends and receives fail with MAILBOX_CLOSED; everyone attached is told. */
  deleteMailbox(rec: MailboxRecord, reason: string): void {
    if (rec.closed) return;
    rec.closed = true;
    this.mailboxes.delete(rec.id);
    if (rec.kind === 'mailbox') {
      this.mailboxByName.delete(rec.name);
      this.cluster?.release('mailbox', rec.name);
      this.durables?.deleted(rec);
    }
    const { senders, requests, dropped } = rec.core.close();
    const code: IpcErrorCode = 'MAILBOX_CLOSED';
    const text = `${rec.name} was closed: ${reason}`;
    for (const w of senders) {
      const req = w as SendRequest;
      req.message.completion = undefined;
      this.budget.finish(req.message);
      this.path.answerError(req, code, text);
    }
    for (const w of [...rec.deferred]) this.path.answerError(w, code, text);
    for (const [, req] of requests) this.path.failReceive(req as PendingReceive, code, text);
    for (const m of dropped) {
      const c = m.completion;
      if (c !== undefined) {
        m.completion = undefined;
        this.path.answerError(c, code, text);
      }
      this.budget.finish(m);
    }
    const told = new Set<Session>([...rec.openers, ...rec.credits.holders.keys()]);
    for (const s of this.sessions.values()) if (s.attached.has(rec)) told.add(s);
    for (const s of told) {
      s.attached.delete(rec);
      if (s !== rec.ownerSession || rec.kind === 'mailbox') {
        s.sendNotice({ kind: 'mailbox-closed', mailbox: rec.name, id: rec.id, reason });
      }
    }
    rec.credits.clear();
    rec.openers.clear();
  }

  /** Detach a session's receive side from a mailbox and hand its unconsumed deliveries back. */
  detach(s: Session, rec: MailboxRecord, code: IpcErrorCode = 'MAILBOX_CLOSED'): void {
    const back: { record: MailboxRecord; message: KernelMessage }[] = [];
    for (const [id, e] of s.inflight) {
      if (e.record === rec && !e.consumed) {
        s.inflight.delete(id);
        back.push(e);
      }
    }
    const { requests, dropped } = rec.core.detach(s.pid);
    for (const req of requests)
      this.path.failReceive(req as PendingReceive, code, `receiver detached from ${rec.name}`);
    s.attached.delete(rec);
    this.path.requeueAll(s, back);
    this.path.dropCopies(rec, dropped);
  }

  // ---------------------------------------------------------------- segments

  /**
   * Remove a registered segment: unlink its POSIX name (attached mappings stay
   * valid until unmapped, as with shm_unlink) and tell every attached process.
   */
  removeSegment(rec: SegmentRecord, reason: string): void {
    if (this.segments.get(rec.name) !== rec) return;
    this.segments.delete(rec.name);
    this.segmentMetaBytes -= rec.metaBytes;
    if (rec.mailbox !== undefined) this.shmMailboxes.delete(rec.mailbox);
    try {
      if (rec.unlinkOnRemove && (rec.rights.uid ?? process.getuid?.()) === Segment.stat(rec.name).uid) {
        Segment.unlink(rec.name);
      }
    } catch (e) {
      // Already unlinked by a process, or no native addon here: the name is gone from the registry either way.
      if (!(e instanceof IpcError)) throw e;
    }
    for (const s of rec.attached.keys()) s.sendNotice({ kind: 'segment-removed', name: rec.name, reason });
    if (rec.mailbox !== undefined) {
      const told = new Set([...rec.openers, ...rec.attached.keys()]);
      for (const s of told) s.sendNotice({ kind: 'mailbox-closed', mailbox: rec.mailbox, id: 0, reason });
      rec.openers.clear();
    }
    rec.attached.clear();
  }

  private endSessionSegments(s: Session): void {
    for (const rec of [...this.segments.values()]) {
      rec.openers.delete(s);
      const role = rec.roleOf(s);
      if (role !== undefined) {
        rec.attached.delete(s);
        for (const other of rec.attached.keys()) {
          other.sendNotice({
            kind: 'segment-peer-exit',
            name: rec.name,
            process: s.name,
            pid: s.pid,
            osPid: s.osPid,
            role,
          });
        }
      }
      if (rec.ownerSession === s) this.removeSegment(rec, `owner ${s.name} exited`);
    }
  }

  // ---------------------------------------------------------------- session end

  endSession(s: Session, reason: ExitReason): void {
    if (s.closed && !s.ready) return;
    const wasReady = s.ready;
    s.ready = false;
    s.closed = true;
    if (!wasReady) return;
    this.sessions.delete(s.pid);
    if (s.remoteNode === undefined) {
      this.byName.delete(s.name);
      if (this.cluster !== undefined && !ASSIGNED_NAME.test(s.name)) this.cluster.release('process', s.name);
      this.routes?.sessionEnded(s);
    } else if (this.proxyPids.get(s.name)?.pid === s.pid) {
      this.proxyPids.delete(s.name);
    }
    this.waits.drop(s);
    // Its unanswered sends were never accepted (parked) or wait on a receiver; parked ones go.
    for (const w of s.pendingSends.values()) {
      w.timer?.clear();
      w.timer = undefined;
      w.record.deferred.delete(w);
      if (w.record.core.cancelSend(w)) {
        if (w.message.completion === w) w.message.completion = undefined;
        this.budget.finish(w.message);
      }
    }
    s.pendingSends.clear();
    for (const r of s.pendingReceives.values()) {
      r.timer?.clear();
      r.record.core.cancelReceive(s.pid, r);
    }
    s.pendingReceives.clear();
    for (const rec of this.mailboxes.values()) rec.credits.drop(s);
    // Unacknowledged and unconsumed deliveries go back to their mailboxes: nothing accepted is lost.
    const entries = [...s.inflight.values()];
    s.inflight.clear();
    for (const rec of [...s.attached.keys()]) {
      if (rec.kind === 'mailbox' && !rec.closed) this.path.dropCopies(rec, rec.core.detach(s.pid).dropped);
    }
    this.path.requeueAll(s, entries);
    this.maps.sessionEnded(s);
    for (const rec of [...this.mailboxes.values()]) {
      rec.openers.delete(s);
      if (rec.ownerSession === s) {
        this.deleteMailbox(rec, rec.kind === 'inbox' ? `process ${s.name} exited` : `owner ${s.name} exited`);
      }
    }
    this.endSessionSegments(s);
    for (const w of s.watchers) w.sendNotice({ kind: 'exit', process: s.name, pid: s.pid, reason });
    for (const t of s.watching) t.watchers.delete(s);
    s.watchers.clear();
    s.watching.clear();
    forgetLinks(s);
  }
}

/** Start a kernel listening on its socket (embedded in this process). */
export async function startKernel(options: KernelOptions = {}): Promise<Kernel> {
  const kernel = new Kernel(options);
  await kernel.listen();
  return kernel;
}
