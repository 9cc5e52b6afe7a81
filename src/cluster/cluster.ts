/**
 * The cluster as the kernel sees it: one object that joins NATS as a node, keeps the membership and
 * the global names, and leaves cleanly. The kernel calls only this file's API; NATS subjects, KV
 * buckets and heartbeats stay inside src/cluster/.
 *
 * Buckets (file storage, one value per key): `ipcbox_<cluster>_nodes` (membership.ts) and
 * `ipcbox_<cluster>_names` (global-names.ts). Two cluster names on one NATS share nothing.
 */
import { EventEmitter } from 'node:events';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { IpcError } from '../errors.js';
import { Channels, type HomeChannel, type OpenerChannel, type OpenerSink } from './channels.js';
import {
  type ClusterOptions,
  type ResolvedClusterOptions,
  resolveClusterOptions,
} from './cluster-options.js';
import { DurableRegistry, DurableStore } from './durable-store.js';
import { GlobalNames, type NameHolder, type NameKind } from './global-names.js';
import { Membership, type NodeDownReason, type NodeRecord } from './membership.js';
import { connectNats } from './nats-connection.js';
import { Pipes } from './pipes.js';

/** What a node does with a channel another node opened to it (the kernel makes a proxy session). */
export type ChannelHandler = (from: string, hello: Record<string, unknown>, channel: HomeChannel) => void;

interface ClusterEvents {
  'node-up': [NodeRecord];
  'node-down': [NodeRecord, NodeDownReason];
  fenced: [];
  /** Names this node held that other nodes took while it was counted down (see Membership 'resumed'). */
  'names-lost': [{ kind: NameKind; name: string; node: string }[]];
}

/** How long close() waits for the orderly leave (names released, membership left, connection drained). */
const LEAVE_MS = 2_000;

/** How often a bucket's create is tried again when another kernel is creating it at the same moment. */
const BUCKET_TRIES = 6;

async function bucket(nc: NatsConnection, name: string, replicas: number): Promise<KV> {
  const { Kvm } = await import('@nats-io/kv');
  for (let attempt = 1; ; attempt++) {
    try {
      // create() binds to the bucket when it exists with the same configuration.
      return await new Kvm(nc).create(name, { history: 1, storage: 'file' as never, replicas });
    } catch (e) {
      // Kernels started together race to create the bucket's stream, and JetStream's check of a new
      // stream's subjects against the others is not atomic with its creation: the loser hears
      // "subjects overlap with an existing stream" (or "already in use") for a stream that is the
      // very one it wants. Once the winner's stream exists, the same create binds to it.
      const racing = /overlap|already in use/i.test(e instanceof Error ? e.message : String(e));
      if (!racing || attempt >= BUCKET_TRIES) throw e;
      await new Promise((r) => setTimeout(r, 25 * 2 ** attempt * (0.5 + Math.random())));
    }
  }
}

/**
 * What a failed join tells the user. The server answered (connectNats already reported an unreachable
 * one), so the likely causes are a server without JetStream (the names live in JetStream KV) and an
 * account not allowed to use it; both are the operator's to fix and are said so, with a stable code.
 */
function joinError(e: unknown, o: ResolvedClusterOptions): IpcError {
  if (e instanceof IpcError) return e;
  const why = e instanceof Error ? e.message : String(e);
  const at = `NATS at ${o.servers.join(', ')}`;
  if (/jetstream (is )?not enabled|JetStreamNotEnabled/i.test(`${(e as Error)?.name} ${why}`))
    return new IpcError(
      'CLUSTER_UNAVAILABLE',
      `${at} has no JetStream; ipcbox keeps the cluster's names in JetStream KV: start nats-server with -js (or jetstream {} in its config)`,
      { cause: e },
    );
  if (/permissions? violation|authorization/i.test(why))
    return new IpcError('PERMISSION_DENIED', `${at} does not let this kernel use JetStream KV: ${why}`, {
      cause: e,
    });
  return new IpcError('CLUSTER_UNAVAILABLE', `joining cluster ${o.name} on ${at} failed: ${why}`, {
    cause: e,
  });
}

export class Cluster extends EventEmitter<ClusterEvents> {
  private closed = false;
  private readonly pipes: Pipes;
  private readonly channels: Channels;
  /** Until the kernel says what to do with incoming channels, they are refused. */
  private handler: ChannelHandler = (_from, _hello, ch) => ch.close('not ready');

  private constructor(
    readonly options: ResolvedClusterOptions,
    private readonly nc: NatsConnection,
    readonly membership: Membership,
    private readonly names: GlobalNames,
    /** Definitions of the cluster's durable mailboxes. */
    readonly durables: DurableRegistry,
  ) {
    super();
    // The pipes subscribe here, after Membership announced this node but before any of its names
    // exists: other nodes send to a node only for a name it holds, and a claim goes out on this same
    // connection after these SUBs, so the server has them first (NATS core would drop, and a pipe
    // then reset, batches for a subject nobody had subscribed yet).
    this.pipes = new Pipes(nc, `ipcbox.${options.name}`, options.node, {
      records: (from, records) => this.channels.records(from, records),
      reset: (node) => this.channels.lost(node, 'reset'),
      // Heartbeats travel the same connection as the pipes' data, behind it: a node whose batches
      // keep coming is alive even while megabytes of them hold its heartbeats up.
      heard: (node) => membership.heardFrom(node),
    });
    this.channels = new Channels(this.pipes, (from, hello, ch) => this.handler(from, hello, ch));
    membership.on('node-up', (r) => this.emit('node-up', r));
    membership.on('node-down', (r, why) => {
      names.forget(r.node, r.incarnation);
      // Channels first: forgetting the pipe lets the writes waiting for it finish, and what a
      // channel writes after that must be dropped, not queued on a new pipe to a dead node.
      this.channels.lost(r.node, 'node-down');
      this.pipes.forget(r.node);
      this.emit('node-down', r, why);
    });
    membership.on('fenced', () => this.emit('fenced'));
    membership.on('resumed', () => {
      void names.reclaim().then((lost) => {
        if (lost.length > 0) this.emit('names-lost', lost);
      });
    });
  }

  static async join(options: ClusterOptions): Promise<Cluster> {
    const o = resolveClusterOptions(options);
    const nc = await connectNats(o);
    try {
      const nodes = await bucket(nc, `ipcbox_${o.name}_nodes`, o.replicas);
      const namesKv = await bucket(nc, `ipcbox_${o.name}_names`, o.replicas);
      const membership = await Membership.join(nodes, o.node, o);
      const names = await GlobalNames.open(namesKv, membership);
      const durables = new DurableRegistry(await bucket(nc, `ipcbox_${o.name}_durable`, o.replicas));
      return new Cluster(o, nc, membership, names, durables);
    } catch (e) {
      await nc.close().catch(() => undefined);
      throw joinError(e, o);
    }
  }

  get node(): string {
    return this.options.node;
  }

  claimName(kind: NameKind, name: string, info?: Record<string, unknown>): Promise<void> {
    return this.names.claim(kind, name, info);
  }

  releaseName(kind: NameKind, name: string): Promise<void> {
    return this.names.release(kind, name);
  }

  lookup(kind: NameKind, name: string): Promise<NameHolder | undefined> {
    return this.names.lookup(kind, name);
  }

  cachedHolder(kind: NameKind, name: string): NameHolder | undefined {
    return this.names.cached(kind, name);
  }

  listNames(kind: NameKind): { name: string; holder: NameHolder }[] {
    return this.names.list(kind);
  }

  /** Told when another node claims a name (a process connected there, a mailbox was created). */
  onNameClaimed(listener: (kind: NameKind, name: string, node: string) => void): void {
    this.names.onClaimed = (kind, name, holder) => listener(kind, name, holder.node);
  }

  /** The JetStream store of durable mailbox `name` (made if need be). */
  durableStore(name: string): Promise<DurableStore> {
    return DurableStore.open(this.nc, this.options.name, name, this.options.replicas);
  }

  /** Handle channels other nodes open to this one. */
  onChannel(handler: ChannelHandler): void {
    this.handler = handler;
  }

  /** Open a channel to `node` (it must be up: the caller looked the name up). */
  openChannel(node: string, hello: Record<string, unknown>, sink: OpenerSink): OpenerChannel {
    return this.channels.open(node, hello, sink);
  }

  nodes(): NodeRecord[] {
    return this.membership.nodes();
  }

  /**
   * Release this node's names, leave the membership and close the NATS connection. The orderly
   * leave is bounded by LEAVE_MS: with NATS unreachable its requests would wait for a server that may
   * never come back, and a daemon asked to stop must stop. Names not released are freed by the other
   * nodes' dead-node sweep, as for a crash.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.names.close();
    this.pipes.close();
    const leave = (async () => {
      await this.names.releaseAll();
      await this.membership.leave();
      await this.nc.drain();
    })().then(
      () => true,
      () => false,
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), LEAVE_MS);
    });
    const left = await Promise.race([leave, late]);
    clearTimeout(timer);
    if (!left) await this.nc.close().catch(() => undefined);
  }
}
