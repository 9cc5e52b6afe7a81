/**
 * The kernel's side of a cluster (src/cluster/): the names this kernel hands out are claimed
 * cluster-wide before they are used, and released when they go; what lives on another node is told
 * apart from what does not exist. The kernel knows nothing of NATS: only this file's methods.
 *
 * Invariants:
 * - A process name is bound locally (WELCOME) only after its cluster claim succeeded; while the
 *   claim is out the name is `pending` here, so a second local HELLO for it is refused at once.
 * - A claim that completes after its session or mailbox is gone is released at once.
 * - Kernel-assigned names carry the node (`proc-<n>.<node>`) and are unique without a claim.
 */
import type { OpenerChannel, OpenerSink } from '../cluster/channels.js';
import { type ChannelHandler, Cluster } from '../cluster/cluster.js';
import type { ClusterOptions } from '../cluster/cluster-options.js';
import type { DurableRegistry, DurableStore } from '../cluster/durable-store.js';
import type { NameKind } from '../cluster/global-names.js';
import { Deque } from '../core/deque.js';
import { IpcError } from '../errors.js';
import type { ClusterStatus } from '../wire/info-types.js';

/**
 * Name claims and lookups out to NATS at once, kernel-wide. Each one keeps its requester referred
 * to until NATS answers, and a client that connects, names itself and hangs up at once would
 * otherwise have this kernel hold thousands of them while the KV bucket catches up.
 */
const MAX_NAME_OPS = 128;
/** Name operations waiting for one of those. Past it, a claim fails and a lookup is skipped. */
const MAX_WAITING = 4096;

interface WaitingOp {
  wanted: () => boolean;
  start: () => void;
  /** The requester went before its turn: settle without asking NATS. */
  drop: () => void;
  /** Started or dropped (an op dropped out of turn stays in the queue until it reaches the head). */
  done: boolean;
}

/** A claim in flight: `waiting` once it had to wait its turn (until `done`, it has not gone out to NATS). */
interface PendingClaim {
  waiting: WaitingOp | undefined;
}

export class ClusterLink {
  /** Names with a claim in flight, by kind. */
  private readonly pending: Record<NameKind, Map<string, PendingClaim>> = {
    process: new Map(),
    mailbox: new Map(),
  };
  private inFlight = 0;
  private readonly waiting = new Deque<WaitingOp>();

  private constructor(private readonly cluster: Cluster) {}

  /** Another kernel took this node's name while this one was cut off (membership.ts 'fenced'). */
  onFenced(listener: () => void): void {
    this.cluster.on('fenced', listener);
  }

  static async join(options: ClusterOptions): Promise<ClusterLink> {
    return new ClusterLink(await Cluster.join(options));
  }

  get node(): string {
    return this.cluster.node;
  }

  isPending(kind: NameKind, name: string): boolean {
    const p = this.pending[kind].get(name);
    if (p === undefined) return false;
    // A claim still waiting for its turn whose requester has gone holds nothing: a process coming
    // back under its name must not wait for the queue to reach it.
    if (p.waiting !== undefined && !p.waiting.done && !p.waiting.wanted()) {
      p.waiting.drop();
      this.pending[kind].delete(name);
      return false;
    }
    return true;
  }

  /**
   * Claim `name` across the cluster, then run `bind` (unless `stillWanted` says the requester went
   * meanwhile, in which case the name is released). Rejects NAME_TAKEN / MAILBOX_EXISTS when another
   * node holds it.
   */
  async claim(
    kind: NameKind,
    name: string,
    info: Record<string, unknown>,
    stillWanted: () => boolean,
  ): Promise<boolean> {
    const mine: PendingClaim = { waiting: undefined };
    this.pending[kind].set(name, mine);
    try {
      const asked = await this.limited(
        stillWanted,
        () => this.cluster.claimName(kind, name, info),
        (w) => {
          mine.waiting = w;
        },
      );
      if (!asked) {
        if (stillWanted())
          throw new IpcError(
            'CLUSTER_UNAVAILABLE',
            `this kernel has ${MAX_WAITING} cluster name operations waiting; try again`,
          );
        return false;
      }
    } catch (e) {
      if (e instanceof IpcError && e.code === 'NAME_TAKEN' && kind === 'mailbox')
        throw new IpcError('MAILBOX_EXISTS', e.message.replace(/^mailbox name/, 'mailbox'), { cause: e });
      throw e;
    } finally {
      // Unless a claim that came after took the name over (this one was dropped while waiting).
      if (this.pending[kind].get(name) === mine) this.pending[kind].delete(name);
    }
    if (stillWanted()) return true;
    void this.cluster.releaseName(kind, name);
    return false;
  }

  release(kind: NameKind, name: string): void {
    void this.cluster.releaseName(kind, name);
  }

  /** Ask the server who holds `name` (the mirror learns the answer): for a name the mirror lacks. */
  async confirm(kind: NameKind, name: string, stillWanted: () => boolean): Promise<void> {
    await this.limited(stillWanted, () => this.cluster.lookup(kind, name)).catch(() => undefined);
  }

  /**
   * Run `op` when fewer than MAX_NAME_OPS are out; true once it has run, false if it never ran
   * (the requester went first, or too many wait: `stillWanted` tells which). `queued` is told of
   * the op if it has to wait its turn.
   */
  private limited(
    stillWanted: () => boolean,
    op: () => Promise<unknown>,
    queued?: (w: WaitingOp) => void,
  ): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const w: WaitingOp = {
        wanted: stillWanted,
        done: false,
        start: () => {
          w.done = true;
          this.inFlight++;
          op().then(
            () => {
              this.finished();
              resolve(true);
            },
            (e: unknown) => {
              this.finished();
              reject(e);
            },
          );
        },
        drop: () => {
          w.done = true;
          resolve(false);
        },
      };
      if (this.inFlight < MAX_NAME_OPS) return w.start();
      if (this.waiting.length >= MAX_WAITING) this.purge();
      if (this.waiting.length >= MAX_WAITING) return resolve(false);
      this.waiting.push(w);
      queued?.(w);
    });
  }

  private finished(): void {
    this.inFlight--;
    while (this.inFlight < MAX_NAME_OPS && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      if (next.done) continue;
      if (next.wanted()) next.start();
      else next.drop();
    }
  }

  /** Settle the waiting operations whose requesters have gone. */
  private purge(): void {
    for (const w of this.waiting.clear()) {
      if (w.done) continue;
      if (w.wanted()) this.waiting.push(w);
      else w.drop();
    }
  }

  /** The node that holds `name`, if another node does (by the local mirror: no round trip). */
  elsewhere(kind: NameKind, name: string): string | undefined {
    const h = this.cluster.cachedHolder(kind, name);
    return h !== undefined && h.node !== this.cluster.node ? h.node : undefined;
  }

  /**
   * The error for a name that is not here: it lives on another node (which this kernel cannot reach
   * yet: messaging between nodes is the cluster's next step), or it does not exist.
   */
  notHere(kind: NameKind, name: string, missing: IpcError): IpcError {
    const node = this.elsewhere(kind, name);
    if (node === undefined) return missing;
    return new IpcError(
      'NOT_SUPPORTED',
      `${kind} ${name} lives on cluster node ${node}; operations across nodes are not available yet`,
    );
  }

  /** The cluster's durable mailboxes: their definitions, and each one's store. */
  get durables(): DurableRegistry {
    return this.cluster.durables;
  }

  durableStore(name: string): Promise<DurableStore> {
    return this.cluster.durableStore(name);
  }

  /** Serve channels other nodes open here (proxy sessions of their processes). */
  onChannel(handler: ChannelHandler): void {
    this.cluster.onChannel(handler);
  }

  openChannel(node: string, hello: Record<string, unknown>, sink: OpenerSink): OpenerChannel {
    return this.cluster.openChannel(node, hello, sink);
  }

  onNameClaimed(listener: (kind: 'process' | 'mailbox', name: string, node: string) => void): void {
    this.cluster.onNameClaimed(listener);
  }

  /** Names this node's processes or mailboxes held that another node took while this one was cut off. */
  onNamesLost(listener: (lost: { kind: NameKind; name: string; node: string }[]) => void): void {
    this.cluster.on('names-lost', listener);
  }

  onNodeDown(listener: (node: string) => void): void {
    this.cluster.on('node-down', (r) => listener(r.node));
  }

  status(): ClusterStatus {
    const self = this.cluster.membership.self;
    const remote: ClusterStatus['remote'] = [];
    for (const kind of ['process', 'mailbox'] as const) {
      for (const { name, holder } of this.cluster.listNames(kind))
        if (holder.node !== self.node) remote.push({ kind, name, node: holder.node });
    }
    return {
      name: this.cluster.options.name,
      node: self.node,
      nodes: this.cluster.nodes().map((n) => ({
        node: n.node,
        host: n.host,
        pid: n.pid,
        since: n.since,
        self: n.incarnation === self.incarnation,
      })),
      remote,
    };
  }

  close(): Promise<void> {
    return this.cluster.close();
  }
}
