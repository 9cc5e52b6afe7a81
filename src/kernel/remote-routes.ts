/**
 * Remote routes: a local process using something that lives on another node. For each (local
 * session, node) pair there is one route: a cluster channel to a proxy session of this process on
 * that node (proxy-socket.ts there), which carries the process's frames for that node's objects
 * and their answers. The home node's kernel decides everything; this file only forwards frames and
 * translates the ids that are per-kernel:
 * - targets: a remote mailbox id is shown to the local process as an alias id from this kernel's
 *   id space (`aliases`), and rewritten both ways;
 * - pids: a remote process appears here under the pid its proxy session on this kernel has (or
 *   will have: `Kernel.proxyPid`), so `receive({ from })` matches what it sends here;
 * - request ids pass unchanged (they are the process's own); the ones in flight are remembered so
 *   a route that breaks answers each of them.
 *
 * - delivery ids: a delivery from a remote mailbox gets an id from the local session's space
 *   (`Session.remoteDeliveries`), and CONSUMED / ACK / RELEASE of it go back to its route.
 *
 * Across nodes: process lookup, direct sends (request and credited, with the home's credits),
 * signals, monitors (`node-down` when the route dies with its node), and mailboxes homed on another
 * node: open, info, rights, transfer, delete, close, peek, send, receive (timed, non-blocking,
 * abortable), iteration with prefetch, acknowledgement and redelivery.
 *
 * Invariants:
 * - Every request forwarded on a route is answered exactly once: by the home, or by this file when
 *   the route ends first — MAILBOX_CLOSED for a send or receive whose home node is gone (its
 *   mailboxes went with it), CLUSTER_UNAVAILABLE otherwise — or when a timed, non-blocking or
 *   aborted send or receive is still unanswered a margin past its deadline (a receive then fails
 *   as the home would have, and the home's late delivery goes back to the mailbox; a send fails
 *   CLUSTER_UNAVAILABLE, its outcome unknown).
 * - A route that ends tells its process `mailbox-closed` for every alias it used, so the process
 *   drops its credits and looks the name up again; credited sends already on their way are lost
 *   with the route, as sends to a deleted mailbox are.
 */
import type { OpenerChannel } from '../cluster/channels.js';
import type { NameKind } from '../cluster/global-names.js';
import { validateName } from '../core/mailbox-options.js';
import { type Frame, Frame as FrameClass, FrameDecoder, FrameWriter } from '../wire/frame-codec.js';
import { CreditFlag, DeliverFlag, Op, RecvFlag, SendFlag } from '../wire/protocol.js';
import type { ClusterLink } from './cluster-link.js';
import { shapeViolation } from './frame-rules.js';
import type { Kernel } from './kernel.js';
import type { Session } from './session.js';
import { startTimer, type Timer } from './timer.js';

interface Alias {
  node: string;
  remoteId: number;
}

type Rewrite = (result: Record<string, unknown>) => Record<string, unknown>;

/** A delivery from a remote mailbox, as its local session knows it. */
interface RemoteDelivery {
  route: Route;
  remoteId: number;
  /** It needs ACK (else CONSUMED finishes it). */
  ack: boolean;
  /** The receive it answered (0: a push of an iteration). */
  recv: number;
}

/** Calls that name a mailbox: forwarded when it lives on another node. */
const MAILBOX_CALLS_BY_NAME = new Set([
  'mailbox.open',
  'mailbox.info',
  'mailbox.delete',
  'mailbox.grant',
  'mailbox.revoke',
  'mailbox.transfer',
]);
/** Calls that name a process: forwarded when it is connected to another node. */
const PROCESS_CALLS = new Set(['process.lookup', 'process.wait', 'signal', 'monitor', 'demonitor']);
/** Calls that carry a mailbox id: forwarded when the id is an alias. */
const MAILBOX_CALLS_BY_ID = new Set(['mailbox.close', 'mailbox.peek']);

interface Forwarded {
  /** Rewrites a RESULT's JSON (ids of the home kernel into this one's). */
  rewrite: Rewrite | undefined;
  /** Runs when the answer was a RESULT (monitor bookkeeping). */
  onResult: (() => void) | undefined;
  /** A SEND or RECV on a mailbox there (a dead home closes it: MAILBOX_CLOSED), not a call. */
  onMailbox?: boolean;
  /** A SEND (its outcome is unknown if the home goes silent) rather than a RECV or a call. */
  send?: boolean;
  /** A timed, non-blocking or aborted SEND or RECV: answered here if the home has not answered by its deadline. */
  deadline?: Timer;
  /** Answered here already (its deadline passed): the home's late answer is dropped, a message handed back. */
  abandoned?: boolean;
}

/** Frames a proxy may send back that mean nothing to forward (version 2 answers only). */
const MAX_ROUTE_FRAME = 64 * 1024 * 1024;
/** Most requests one route may have in flight (as a session may have pending locally): beyond, KERNEL_FULL. */
const MAX_FORWARDED = 65536;
/**
 * A timed, non-blocking or aborted send or receive on another node is answered by that node; this
 * kernel answers it itself this long after its timeout (or its abort) if the home has not (the
 * home or the way to it is dead, and noticing that takes the membership's down time). The margin
 * leaves a home that is only far away the time to answer first.
 */
const ROUTE_DEADLINE_GRACE_MS = 250;

class Route {
  readonly forwarded = new Map<number, Forwarded>();
  readonly usedAliases = new Set<number>();
  /** Names this process monitors through the route (to report `node-down`). */
  readonly monitors = new Set<string>();
  /** Iterations (DEMAND request ids) attached through the route: ended with an error if it dies. */
  readonly iterations = new Set<number>();
  /** Local delivery id by the home's, for WITHDRAW. */
  readonly byRemoteId = new Map<number, number>();
  /** Sender names by the home kernel's pids (its NOTICE peer). */
  readonly peerNames = new Map<number, string>();
  private readonly writer = new FrameWriter();
  private readonly decoder: FrameDecoder;
  private flushScheduled = false;
  closed = false;
  readonly channel: OpenerChannel;

  /**
   * Remember a request going to the home, to answer it if the route dies; false (and refused
   * KERNEL_FULL) when this process already has MAX_FORWARDED in flight here, so a client that never
   * waits for answers cannot make the kernel keep unbounded state for it.
   */
  track(reqId: number, fw: Forwarded): boolean {
    if (!this.room(this.forwarded, reqId, 'requests in flight')) return false;
    this.forwarded.set(reqId, fw);
    return true;
  }

  /** The same bound for iterations attached through the route (DEMAND request ids). */
  trackIteration(reqId: number): boolean {
    if (!this.room(this.iterations, reqId, 'iterations')) return false;
    this.iterations.add(reqId);
    return true;
  }

  private room(held: Map<number, unknown> | Set<number>, reqId: number, what: string): boolean {
    if (held.size < MAX_FORWARDED || held.has(reqId)) return true;
    this.session.sendError(reqId, 'KERNEL_FULL', `${MAX_FORWARDED} ${what} to node ${this.node}`);
    return false;
  }

  constructor(
    private readonly routes: RemoteRoutes,
    readonly session: Session,
    readonly node: string,
  ) {
    this.decoder = new FrameDecoder(
      MAX_ROUTE_FRAME,
      (f) => routes.fromHome(this, f),
      (e) => this.end(`bad frame from node ${node}: ${e.message}`),
    );
    this.channel = routes.link.openChannel(
      node,
      { name: session.name, uid: session.uid ?? null, gid: session.gid ?? null, osPid: session.osPid },
      {
        data: (b) => this.decoder.push(b),
        closed: (reason) => this.end(reason),
      },
    );
  }

  /** Forward a frame of the process as it came, with `target` in the home kernel's ids. */
  up(f: Frame, target: number): void {
    this.writer.frameFrom(
      f.op,
      f.flags,
      f.priority,
      f.codec,
      f.reqId,
      target,
      0,
      0,
      0,
      f.buf,
      f.start,
      f.end,
    );
    this.schedule();
  }

  /** A frame with only a body (CONSUMED, ACK, RELEASE). */
  upFrame(op: number, body: Buffer): void {
    this.writer.frame(op, 0, 0, 0, 0, 0, 0, 0, 0, body);
    this.schedule();
  }

  /** Ask the home to withdraw request `reqId` (its answer is then dropped here). */
  upCancel(reqId: number): void {
    this.writer.frame(Op.CANCEL, 0, 0, 0, reqId, 0, 0, 0, 0, undefined);
    this.schedule();
  }

  upText(op: number, reqId: number, text: string): void {
    this.writer.textFrame(op, reqId, 0, 0, 0, text);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Write what this turn forwarded. */
  flush(): void {
    const bytes = this.writer.take();
    if (bytes !== undefined && !this.closed) this.channel.write(bytes);
  }

  /** The route is gone: answer what is in flight, tell the process its aliases are stale. */
  end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.close(reason);
    this.routes.ended(this, reason);
  }
}

export class RemoteRoutes {
  private readonly bySession = new Map<Session, Map<string, Route>>();
  private readonly aliases = new Map<number, Alias>();
  private readonly aliasIds = new Map<string, number>();

  constructor(
    private readonly k: Kernel,
    readonly link: ClusterLink,
  ) {}

  /** This kernel's id for mailbox `remoteId` of `node` (made on first use). */
  aliasFor(node: string, remoteId: number): number {
    const key = `${node}/${remoteId}`;
    let id = this.aliasIds.get(key);
    if (id === undefined) {
      id = this.k.newMailboxId();
      this.aliasIds.set(key, id);
      this.aliases.set(id, { node, remoteId });
    }
    return id;
  }

  private route(s: Session, node: string): Route {
    let m = this.bySession.get(s);
    if (m === undefined) {
      m = new Map();
      this.bySession.set(s, m);
    }
    let r = m.get(node);
    if (r === undefined || r.closed) {
      r = new Route(this, s, node);
      m.set(node, r);
    }
    return r;
  }

  /**
   * A SEND, RECV or DEMAND for route `r` that the home would end the whole route over is refused
   * here as the local path refuses it (frame-rules.ts), ending only the connection: true then. A
   * request SEND or a RECV may not reuse any request id in flight on the route.
   */
  private refused(s: Session, r: Route, f: Frame): boolean {
    const tracked = f.op === Op.RECV || (f.op === Op.SEND && f.reqId !== 0);
    const bad =
      tracked && r.forwarded.has(f.reqId)
        ? `${f.op === Op.SEND ? 'SEND' : 'RECV'} reuses request id ${f.reqId} of a request still pending`
        : shapeViolation(f);
    if (bad === undefined) return false;
    this.k.protocolError(s, bad);
    return true;
  }

  /** A frame from local session `s`: true if it was for another node (it is handled then). */
  frame(s: Session, f: Frame): boolean {
    switch (f.op) {
      case Op.SEND:
      case Op.CREDIT_RETURN: {
        const a = this.aliases.get(f.target);
        if (a === undefined) return false;
        const r = this.route(s, a.node);
        r.usedAliases.add(f.target);
        if (this.refused(s, r, f)) return true;
        // A payload sent by map crosses to the other node as bytes: copied out of the region here.
        const up = f.op === Op.SEND && (f.flags & SendFlag.MAPPED) !== 0 ? this.k.maps.materialize(s, f) : f;
        if (typeof up === 'string') {
          this.k.protocolError(s, `MAPPED SEND: ${up}`);
          return true;
        }
        if (f.op === Op.SEND && f.reqId !== 0) {
          const fw: Forwarded = { rewrite: undefined, onResult: undefined, onMailbox: true, send: true };
          if (!r.track(f.reqId, fw)) return true;
          this.armDeadline(r, f, fw);
        }
        r.up(up, a.remoteId);
        return true;
      }
      case Op.RECV:
      case Op.DEMAND: {
        const a = this.aliases.get(f.target);
        if (a === undefined) return false;
        const r = this.route(s, a.node);
        r.usedAliases.add(f.target);
        if (this.refused(s, r, f)) return true;
        if (f.op === Op.RECV) {
          const fw: Forwarded = { rewrite: undefined, onResult: undefined, onMailbox: true };
          if (!r.track(f.reqId, fw)) return true;
          this.armDeadline(r, f, fw);
        } else if (f.reqId !== 0) {
          if (!r.trackIteration(f.reqId)) return true;
        }
        r.up(f, a.remoteId);
        return true;
      }
      case Op.CONSUMED:
      case Op.ACK:
      case Op.RELEASE:
        return s.remoteDeliveries.size > 0 && this.deliveryIds(s, f);
      case Op.CANCEL: {
        for (const r of this.bySession.get(s)?.values() ?? []) {
          const fw = r.forwarded.get(f.reqId);
          if (fw !== undefined) {
            r.up(f, 0);
            if (fw.abandoned !== true) this.armAbort(r, f.reqId, fw);
            return true;
          }
        }
        // Too late here too: the home's answer has passed this kernel on its way to the process,
        // which gave up and will hand it back. The home must still hear the CANCEL, so that until
        // then it gives this receiver nothing else from the mailbox (as for a local receiver):
        // else the next receive overtakes the message handed back, and order is lost.
        if (f.reqId === 0) return false;
        for (const v of s.remoteDeliveries.values()) {
          const d = v as RemoteDelivery;
          if (d.recv === f.reqId) {
            d.route.up(f, 0);
            return true;
          }
        }
        return false;
      }
      default:
        return false;
    }
  }

  /**
   * A send or receive that must end by a time (TIMED, or NONBLOCK: now) ends then also when its
   * home is unreachable: at its timeout plus a margin this kernel answers it and asks the home to
   * withdraw it. A receive is answered as the home would have (TIMEOUT, WOULD_BLOCK); the home's
   * late answer is dropped, and a message it delivered meanwhile goes back to the mailbox (as a
   * client does with a delivery for a receive it abandoned), so nothing is lost. A send is answered
   * CLUSTER_UNAVAILABLE: the home may have taken it, so TIMEOUT ("not sent") could be false.
   */
  private armDeadline(r: Route, f: Frame, fw: Forwarded): void {
    // SendFlag and RecvFlag agree on NONBLOCK and TIMED, and both put the timeout first in the body.
    const nonblock = (f.flags & RecvFlag.NONBLOCK) !== 0;
    let timeout: number;
    if (nonblock) timeout = 0;
    else if ((f.flags & RecvFlag.TIMED) !== 0 && f.bodyLength >= 4) timeout = f.u32(0);
    else return;
    const why = `node ${r.node} did not answer`;
    // The decoder reuses one Frame for every frame: by the time the deadline passes, `f` is another
    // frame, so the request id is taken now (reading f.reqId then answered some other request, or
    // with 0 the whole connection, and left this one unanswered for ever).
    const reqId = f.reqId;
    this.answerLate(r, reqId, fw, timeout, () => {
      if (fw.send === true) return this.unknownSend(r, reqId, `within the send's timeout of ${timeout} ms`);
      if (nonblock) r.session.sendError(reqId, 'WOULD_BLOCK', `no message could be taken now (${why})`);
      else r.session.sendError(reqId, 'TIMEOUT', `receive timed out after ${timeout} ms (${why})`);
    });
  }

  /**
   * The process aborted a request forwarded to the home (CANCEL, passed on): the home answers
   * ABORTED, or the outcome, as it would locally. A home that stays silent past the margin is
   * answered for here — a receive or call ABORTED (a late delivery goes back to the mailbox), a send
   * CLUSTER_UNAVAILABLE, since the home may have taken it — so an AbortSignal ends the wait also
   * when the way to the home is dead.
   */
  private armAbort(r: Route, reqId: number, fw: Forwarded): void {
    fw.deadline?.clear();
    this.answerLate(r, reqId, fw, 0, () => {
      if (fw.send === true) return this.unknownSend(r, reqId, 'after the send was aborted');
      r.session.sendError(reqId, 'ABORTED', `aborted (node ${r.node} did not answer)`);
    });
  }

  /** Run `answer` for request `reqId` `after` ms past the margin unless the home answered first; then drop the home's answer. */
  private answerLate(r: Route, reqId: number, fw: Forwarded, after: number, answer: () => void): void {
    fw.deadline = startTimer(after + ROUTE_DEADLINE_GRACE_MS, () => {
      fw.deadline = undefined;
      if (r.closed || r.forwarded.get(reqId) !== fw || fw.abandoned === true) return;
      fw.abandoned = true;
      answer();
      r.upCancel(reqId);
      this.k.markDirty(r.session);
    });
  }

  private unknownSend(r: Route, reqId: number, when: string): void {
    r.session.sendError(
      reqId,
      'CLUSTER_UNAVAILABLE',
      `node ${r.node}, the mailbox's home, did not answer ${when}: the message may or may not have arrived`,
    );
  }

  /** Delivery ids of remote deliveries go to their routes; the rest stay here (false if none remain). */
  private deliveryIds(s: Session, f: Frame): boolean {
    const n = f.bodyLength >>> 2;
    const local: number[] = [];
    const byRoute = new Map<Route, number[]>();
    for (let i = 0; i < n; i++) {
      const id = f.u32(i * 4);
      const d = s.remoteDeliveries.get(id) as RemoteDelivery | undefined;
      if (d === undefined) {
        local.push(id);
        continue;
      }
      let ids = byRoute.get(d.route);
      if (ids === undefined) {
        ids = [];
        byRoute.set(d.route, ids);
      }
      ids.push(d.remoteId);
      if (f.op !== Op.CONSUMED || !d.ack) {
        s.remoteDeliveries.delete(id);
        d.route.byRemoteId.delete(d.remoteId);
      }
    }
    for (const [r, ids] of byRoute) {
      const body = Buffer.allocUnsafe(ids.length * 4);
      for (let i = 0; i < ids.length; i++) body.writeUInt32LE(ids[i] as number, i * 4);
      r.upFrame(f.op, body);
    }
    if (byRoute.size === 0) return false;
    if (local.length > 0) {
      const rest = new FrameClass();
      rest.op = f.op;
      rest.buf = Buffer.allocUnsafe(local.length * 4);
      for (let i = 0; i < local.length; i++) rest.buf.writeUInt32LE(local[i] as number, i * 4);
      rest.start = 0;
      rest.end = rest.buf.length;
      this.k.path.onDeliveryIds(s, rest);
    }
    return true;
  }

  /** The pid a sender named `name` has for this kernel's processes (local, or its proxy's here). */
  private localPid(name: string, via: string): number {
    const local = this.k.byName.get(name);
    if (local?.ready) return local.pid;
    return this.k.proxyPid(name, this.link.elsewhere('process', name) ?? via);
  }

  /**
   * A CALL of local session `s` that names something on another node: forwarded (true), or not
   * for a remote name (false: the kernel handles it).
   */
  call(s: Session, reqId: number, method: string, args: Record<string, unknown>): boolean {
    if (MAILBOX_CALLS_BY_NAME.has(method)) return this.mailboxCall(s, reqId, method, args);
    if (MAILBOX_CALLS_BY_ID.has(method)) {
      const a = typeof args.id === 'number' ? this.aliases.get(args.id) : undefined;
      if (a === undefined) return false;
      const r = this.route(s, a.node);
      if (!r.track(reqId, { rewrite: undefined, onResult: undefined })) return true;
      r.upText(Op.CALL, reqId, JSON.stringify({ m: method, a: { ...args, id: a.remoteId } }));
      return true;
    }
    const key = method === 'signal' ? 'to' : 'name';
    if (!PROCESS_CALLS.has(method)) return false;
    const name = args[key];
    if (typeof name !== 'string' || this.k.byName.has(name)) return false;
    const node = this.link.elsewhere('process', name);
    if (node === undefined) return false;
    const r = this.route(s, node);
    let rewrite: Rewrite | undefined;
    let onResult: (() => void) | undefined;
    if (method === 'process.wait') {
      rewrite = (v) => ({ ...v, pid: this.k.proxyPid(name, node) });
    } else if (method === 'process.lookup') {
      rewrite = (v) => {
        const inbox = typeof v.inbox === 'number' ? this.aliasFor(node, v.inbox) : 0;
        r.usedAliases.add(inbox);
        return { ...v, inbox, pid: this.k.proxyPid(name, node) };
      };
    } else if (method === 'monitor') {
      rewrite = (v) => ({ ...v, pid: this.k.proxyPid(name, node) });
      onResult = () => r.monitors.add(name);
    } else if (method === 'demonitor') {
      r.monitors.delete(name);
    }
    if (!r.track(reqId, { rewrite, onResult })) return true;
    r.upText(Op.CALL, reqId, JSON.stringify({ m: method, a: args }));
    return true;
  }

  /**
   * The name a CALL is about, when it names a process or mailbox that is neither here nor in the
   * names mirror: a name claimed elsewhere a moment ago may not have reached the mirror yet, so the
   * kernel asks the server before it answers "no such" (see Kernel.onCall).
   */
  unknownName(method: string, args: Record<string, unknown>): { kind: NameKind; name: string } | undefined {
    const kind: NameKind | undefined = MAILBOX_CALLS_BY_NAME.has(method)
      ? 'mailbox'
      : PROCESS_CALLS.has(method)
        ? 'process'
        : undefined;
    if (kind === undefined) return undefined;
    const name = args[method === 'signal' ? 'to' : 'name'];
    if (typeof name !== 'string' || name === '' || !validName(name)) return undefined;
    const local = kind === 'mailbox' ? this.k.mailboxByName.has(name) : this.k.byName.has(name);
    if (local || this.link.elsewhere(kind, name) !== undefined) return undefined;
    return { kind, name };
  }

  private mailboxCall(s: Session, reqId: number, method: string, args: Record<string, unknown>): boolean {
    const name = args.name;
    if (typeof name !== 'string' || this.k.mailboxByName.has(name)) return false;
    const node = this.link.elsewhere('mailbox', name);
    if (node === undefined) return false;
    const r = this.route(s, node);
    const rewrite: Rewrite = (v) => {
      if (typeof v.id !== 'number') return v;
      const id = this.aliasFor(node, v.id);
      r.usedAliases.add(id);
      return { ...v, id };
    };
    if (!r.track(reqId, { rewrite, onResult: undefined })) return true;
    r.upText(Op.CALL, reqId, JSON.stringify({ m: method, a: args }));
    return true;
  }

  /** A remote mailbox's DELIVER: ids and sender pid into this kernel's, tracked until finished. */
  private deliver(r: Route, f: Frame): void {
    const s = r.session;
    if (f.bodyLength < 8) return r.end(`a DELIVER without ids from node ${r.node}`);
    const remoteId = f.u32(0);
    const remotePid = f.u32(4);
    const name = r.peerNames.get(remotePid);
    const pid = name === undefined ? 0 : this.localPid(name, r.node);
    if (name !== undefined) s.introduce(pid, name);
    const peek = (f.flags & DeliverFlag.PEEK) !== 0;
    const fw = f.reqId !== 0 ? r.forwarded.get(f.reqId) : undefined;
    if (fw?.abandoned === true && !peek) {
      // The answer to a receive this kernel already answered (its deadline passed): the message
      // goes back to the mailbox there, for whoever receives next.
      r.forwarded.delete(f.reqId);
      const body = Buffer.allocUnsafe(4);
      body.writeUInt32LE(remoteId, 0);
      r.upFrame(Op.RELEASE, body);
      return;
    }
    fw?.deadline?.clear();
    let id = 0;
    if (!peek) {
      id = s.nextDelivery++;
      if (s.nextDelivery > 0xffffffff) s.nextDelivery = 1;
      while (s.inflight.has(id) || s.remoteDeliveries.has(id)) id = s.nextDelivery++;
      const d: RemoteDelivery = {
        route: r,
        remoteId,
        ack: (f.flags & DeliverFlag.ACK) !== 0,
        recv: fw === undefined ? 0 : f.reqId,
      };
      s.remoteDeliveries.set(id, d);
      r.byRemoteId.set(remoteId, id);
      if (f.reqId !== 0) r.forwarded.delete(f.reqId);
    }
    s.writer.frameFrom(
      Op.DELIVER,
      f.flags,
      f.priority,
      f.codec,
      f.reqId,
      this.aliasFor(r.node, f.target),
      2,
      id,
      pid,
      f.buf,
      f.start + 8,
      f.end,
    );
    this.k.markDirty(s);
  }

  /** A frame from the home of route `r`, for its process. */
  fromHome(r: Route, f: Frame): void {
    const s = r.session;
    if (s.closed) return;
    switch (f.op) {
      case Op.SENT:
      case Op.ERROR:
      case Op.RESULT: {
        if (f.reqId === 0)
          return r.end(`the proxy on node ${r.node} broke the protocol: ${f.bodyFrom(8).toString()}`);
        const fw = r.forwarded.get(f.reqId);
        if (fw === undefined) return;
        r.forwarded.delete(f.reqId);
        fw.deadline?.clear();
        // Answered here already when its deadline passed.
        if (fw.abandoned === true) return;
        if (f.op === Op.RESULT) {
          fw.onResult?.();
          if (fw.rewrite !== undefined) {
            let v: unknown;
            try {
              v = JSON.parse(f.body.toString('utf8'));
            } catch {
              v = null;
            }
            const out = typeof v === 'object' && v !== null ? fw.rewrite(v as Record<string, unknown>) : v;
            s.sendResult(f.reqId, out);
            return;
          }
        }
        s.writer.frameFrom(f.op, f.flags, f.priority, f.codec, f.reqId, 0, 0, 0, 0, f.buf, f.start, f.end);
        this.k.markDirty(s);
        return;
      }
      case Op.CREDIT:
      case Op.REVOKE: {
        const alias = this.aliasFor(r.node, f.target);
        r.usedAliases.add(alias);
        s.writer.frameFrom(
          f.op,
          // Credit on another node counts payload bytes: sends spending it must carry them.
          f.op === Op.CREDIT ? f.flags | CreditFlag.COPY : f.flags,
          f.priority,
          f.codec,
          f.reqId,
          alias,
          0,
          0,
          0,
          f.buf,
          f.start,
          f.end,
        );
        this.k.markDirty(s);
        return;
      }
      case Op.NOTICE:
        return this.notice(r, f);
      case Op.DELIVER:
        return this.deliver(r, f);
      case Op.WITHDRAW: {
        const id = f.bodyLength >= 4 ? r.byRemoteId.get(f.u32(0)) : undefined;
        if (id === undefined) return;
        s.writer.frame(Op.WITHDRAW, 0, 0, 0, 0, 0, 1, id, 0, undefined);
        this.k.markDirty(s);
        return;
      }
      default:
        return r.end(`unexpected op ${f.op} from the proxy on node ${r.node}`);
    }
  }

  private notice(r: Route, f: Frame): void {
    let n: Record<string, unknown>;
    try {
      n = JSON.parse(f.body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
    switch (n.kind) {
      case 'mailbox-closed': {
        const id = typeof n.id === 'number' ? this.aliasIds.get(`${r.node}/${n.id}`) : undefined;
        if (id === undefined) return;
        r.session.sendNotice({ ...n, id });
        return;
      }
      case 'exit': {
        const name = String(n.process);
        r.monitors.delete(name);
        r.session.sendNotice({ ...n, pid: this.k.proxyPid(name, r.node) });
        return;
      }
      case 'peer':
        if (typeof n.pid === 'number' && typeof n.name === 'string') {
          if (r.peerNames.size >= 65536) r.peerNames.clear();
          r.peerNames.set(n.pid, n.name);
        }
        return;
      case 'kernel-shutdown':
        return r.end(`node ${r.node} shut down`);
      default:
        r.session.sendNotice(n);
        return;
    }
  }

  /** Route `r` ended (channel closed, node down): answer its requests, report its monitors. */
  ended(r: Route, reason: string): void {
    const s = r.session;
    const m = this.bySession.get(s);
    if (m?.get(r.node) === r) m.delete(r.node);
    if (s.closed) return;
    const text = `cluster node ${r.node} cannot be reached (${reason})`;
    const down = reason === 'node-down' || reason === 'reset';
    // A home that is gone took its mailboxes with it: what waited on one fails as on a closed mailbox.
    for (const [reqId, fw] of r.forwarded) {
      fw.deadline?.clear();
      if (fw.abandoned === true) continue;
      if (down && fw.onMailbox === true)
        s.sendError(reqId, 'MAILBOX_CLOSED', `${text}: its mailboxes are gone`);
      else s.sendError(reqId, 'CLUSTER_UNAVAILABLE', text);
    }
    r.forwarded.clear();
    for (const reqId of r.iterations)
      s.sendError(reqId, down ? 'MAILBOX_CLOSED' : 'CLUSTER_UNAVAILABLE', text);
    r.iterations.clear();
    // What it held unacknowledged goes back to the mailbox there (the home ended the proxy).
    for (const id of r.byRemoteId.values()) s.remoteDeliveries.delete(id);
    r.byRemoteId.clear();
    for (const id of r.usedAliases) s.sendNotice({ kind: 'mailbox-closed', id, mailbox: '', reason: text });
    for (const name of r.monitors)
      s.sendNotice({
        kind: 'exit',
        process: name,
        pid: this.k.proxyPid(name, r.node),
        reason: down ? 'node-down' : 'lost',
      });
    r.monitors.clear();
    this.k.markDirty(s);
  }

  /** Local session `s` ended: its routes close (the homes end its proxies). */
  sessionEnded(s: Session): void {
    const m = this.bySession.get(s);
    if (m === undefined) return;
    this.bySession.delete(s);
    for (const r of m.values()) {
      // What the process sent in its last turn is still in the route's writer: it goes first (its
      // sends resolved once the bytes were in this kernel's socket), then the close behind it.
      r.flush();
      r.closed = true;
      for (const fw of r.forwarded.values()) fw.deadline?.clear();
      r.channel.close('process exited');
    }
  }
}

/** A name no kernel would give out exists on no node: looking it up would only cost a KV request. */
function validName(name: string): boolean {
  try {
    validateName('name', name);
    return true;
  } catch {
    return false;
  }
}
