/**
 * Which kernels (nodes) make up the cluster, and which of them are alive.
 *
 * State lives in the NATS KV bucket `ipcbox_<cluster>_nodes`, one key per node name, whose value is
 * the node's record (its incarnation: a fresh random id per kernel start). Contract:
 * - A node name is held by one live kernel at a time. Joining creates the key atomically; if the key
 *   exists, the join takes it over only when the holder is stale by the server's clock (its last
 *   heartbeat is older than deadAfter) or is a process of this host that no longer exists (a kernel
 *   restarted after a crash rejoins at once), else it fails NAME_TAKEN.
 * - A member heartbeats by a compare-and-set update of its key every heartbeatMs. A failed CAS means
 *   another kernel took the name over (this one was cut off for longer than deadAfter): the member
 *   is fenced ('fenced' event) and must stop acting for the cluster.
 * - An observer counts a node alive from each update it receives, by its own monotonic clock (no
 *   clock agreement needed), and declares it down when deadAfter passes without one: names of a
 *   down node are free (see global-names.ts). A node that leaves deletes its key: down at once.
 * - A node seen with a new incarnation restarted: its old incarnation is down, the new one up.
 *
 * Bounded time: a dead node is declared down by every observer within deadAfter + heartbeatMs/2 of
 * its last heartbeat (the sweep runs every heartbeatMs/2).
 */

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { KV, KvEntry } from '@nats-io/kv';
import { IpcError } from '../errors.js';

export interface NodeRecord {
  node: string;
  /** Random per kernel start: tells a restarted node from the one that died. */
  incarnation: string;
  host: string;
  pid: number;
  /** When this incarnation joined, ms since the epoch (its own clock; informative only). */
  since: number;
}

export type NodeDownReason = 'left' | 'timeout' | 'restarted';

interface MembershipEvents {
  'node-up': [NodeRecord];
  'node-down': [NodeRecord, NodeDownReason];
  /** Another kernel took this node's name while it was cut off: it must stop acting for the cluster. */
  fenced: [];
  /**
   * This node's heartbeats went through again after a silence longer than deadAfter (it was paused
   * or cut off): the others have counted it down and may have taken its names. It must claim them
   * again (global-names.ts `reclaim`).
   */
  resumed: [silentMs: number];
}

interface Seen {
  record: NodeRecord;
  revision: number;
  /** performance.now() when its last update arrived. */
  heard: number;
}

export interface MembershipTiming {
  heartbeatMs: number;
  deadAfterMs: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function parseRecord(e: KvEntry): NodeRecord | undefined {
  if (e.operation !== 'PUT') return undefined;
  try {
    const r = JSON.parse(dec.decode(e.value)) as Partial<NodeRecord>;
    if (typeof r.node === 'string' && typeof r.incarnation === 'string') return r as NodeRecord;
  } catch {}
  return undefined;
}

/** The server's idea of now: the timestamp it gives a write (JetStream stamps every message). */
async function serverNow(kv: KV, me: string): Promise<number> {
  const key = `clock.${me}`;
  const rev = await kv.put(key, enc.encode('now'));
  const e = await kv.get(key, { revision: rev });
  await kv.purge(key).catch(() => undefined);
  if (e === null) throw new IpcError('CLUSTER_UNAVAILABLE', 'NATS KV lost a write it had just acknowledged');
  return e.created.getTime();
}

/** A holder on this host whose pid is gone is dead now: a restarted kernel need not wait out deadAfter. */
function deadHere(r: NodeRecord): boolean {
  if (r.host !== hostname() || !Number.isInteger(r.pid) || r.pid <= 0 || r.pid === process.pid) return false;
  try {
    process.kill(r.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export class Membership extends EventEmitter<MembershipEvents> {
  readonly self: NodeRecord;
  private revision = 0;
  private readonly seen = new Map<string, Seen>();
  private heartbeat: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private watchStop: (() => void) | undefined;
  private closed = false;
  private beating = false;
  /** performance.now() of the last heartbeat NATS took. */
  private lastBeat = performance.now();

  private constructor(
    private readonly kv: KV,
    node: string,
    private readonly timing: MembershipTiming,
  ) {
    super();
    this.self = { node, incarnation: randomUUID(), host: hostname(), pid: process.pid, since: Date.now() };
  }

  static async join(kv: KV, node: string, timing: MembershipTiming): Promise<Membership> {
    const m = new Membership(kv, node, timing);
    await m.claim();
    await m.watch();
    m.heartbeat = setInterval(() => void m.beat(), timing.heartbeatMs);
    m.sweeper = setInterval(() => m.sweep(), Math.max(25, Math.floor(timing.heartbeatMs / 2)));
    return m;
  }

  private async claim(): Promise<void> {
    const value = enc.encode(JSON.stringify(this.self));
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        this.revision = await this.kv.create(this.self.node, value);
        return;
      } catch (createErr) {
        const held = await this.kv.get(this.self.node);
        if (held === null || held.operation !== 'PUT') continue;
        const record = parseRecord(held);
        const age = (await serverNow(this.kv, this.self.incarnation)) - held.created.getTime();
        if (age < this.timing.deadAfterMs && record !== undefined && !deadHere(record))
          throw new IpcError(
            'NAME_TAKEN',
            `node name "${this.self.node}" is held by a live kernel (pid ${record.pid} on ${record.host}); give this kernel another --node`,
            { cause: createErr },
          );
        try {
          this.revision = await this.kv.update(this.self.node, value, held.revision);
          return;
        } catch {
          // Someone else took the stale name first, or it changed: look again.
        }
      }
    }
    throw new IpcError(
      'NAME_TAKEN',
      `node name "${this.self.node}" is contended; try again or use another --node`,
    );
  }

  private async watch(): Promise<void> {
    const it = await this.kv.watch({ key: '>' });
    this.watchStop = () => it.stop();
    void (async () => {
      for await (const e of it) this.observe(e);
    })().catch(() => undefined);
  }

  private observe(e: KvEntry): void {
    if (e.key.startsWith('clock.')) return;
    const prior = this.seen.get(e.key);
    const record = parseRecord(e);
    if (record === undefined) {
      if (prior !== undefined) this.down(e.key, prior.record, 'left');
      return;
    }
    if (prior !== undefined && prior.record.incarnation !== record.incarnation)
      this.down(e.key, prior.record, 'restarted');
    const fresh = !this.seen.has(e.key);
    this.seen.set(e.key, { record, revision: e.revision, heard: performance.now() });
    if (fresh) this.emit('node-up', record);
  }

  /**
   * Traffic from `node` reached this kernel: as good as a heartbeat for its liveness (a node counted
   * down already stays down; its incarnation is the KV's to tell).
   */
  heardFrom(node: string): void {
    const s = this.seen.get(node);
    if (s !== undefined) s.heard = performance.now();
  }

  private down(key: string, record: NodeRecord, reason: NodeDownReason): void {
    this.seen.delete(key);
    this.emit('node-down', record, reason);
  }

  private sweep(): void {
    const now = performance.now();
    for (const [key, s] of this.seen) {
      if (key === this.self.node && s.record.incarnation === this.self.incarnation) continue;
      if (now - s.heard > this.timing.deadAfterMs) this.down(key, s.record, 'timeout');
    }
  }

  private async beat(): Promise<void> {
    if (this.closed || this.beating) return;
    this.beating = true;
    try {
      this.revision = await this.kv.update(
        this.self.node,
        enc.encode(JSON.stringify(this.self)),
        this.revision,
      );
      const now = performance.now();
      const silent = now - this.lastBeat;
      this.lastBeat = now;
      if (silent > this.timing.deadAfterMs && !this.closed) this.emit('resumed', silent);
    } catch (e) {
      // A CAS failure means the key changed under us: another kernel holds this node name now.
      // Anything else (NATS unreachable) is retried by the next beat.
      if (!this.closed && (await this.lostName())) {
        this.closed = true;
        this.stopTimers();
        this.emit('fenced');
      }
      void e;
    } finally {
      this.beating = false;
    }
  }

  private async lostName(): Promise<boolean> {
    try {
      const held = await this.kv.get(this.self.node);
      return held === null || parseRecord(held)?.incarnation !== this.self.incarnation;
    } catch {
      return false;
    }
  }

  /** Whether this observer counts `node` (in that incarnation, if given) alive. */
  isAlive(node: string, incarnation?: string): boolean {
    if (node === this.self.node) return incarnation === undefined || incarnation === this.self.incarnation;
    const s = this.seen.get(node);
    return s !== undefined && (incarnation === undefined || s.record.incarnation === incarnation);
  }

  nodes(): NodeRecord[] {
    const out = [this.self];
    for (const [key, s] of this.seen) if (key !== this.self.node) out.push(s.record);
    return out;
  }

  private stopTimers(): void {
    clearInterval(this.heartbeat);
    clearInterval(this.sweeper);
    this.watchStop?.();
  }

  /** Leave the cluster: the node's key is deleted, so other nodes see it down at once. */
  async leave(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimers();
    await this.kv.delete(this.self.node, { previousSeq: this.revision }).catch(() => undefined);
  }
}
