/**
 * Process and mailbox names, unique across the cluster.
 *
 * State lives in the NATS KV bucket `ipcbox_<cluster>_names`: key `<kind>.<name as base64url>`
 * (base64url keeps any name a valid key), value the holder `{ node, incarnation, ...info }`.
 * Contract:
 * - A claim creates the key atomically. If it exists and its holder's node incarnation is alive
 *   (membership.ts), the claim fails NAME_TAKEN; if the holder is down, the claim replaces it by
 *   compare-and-set on the entry's revision, so of two racing claimants exactly one wins.
 * - So a down node's names are free as soon as membership declares it down, with no cleanup pass.
 *   Their stale entries are deleted lazily: by the next claim, or by `forget` a grace time after
 *   this node counted their node down. Not at once: another kernel may count the node down later
 *   (each observer's `deadAfterMs` is its own), and for it the names are still held; deleting them
 *   from the bucket would empty its mirror, so calls it should forward to that node would be
 *   answered as if the name did not exist.
 * - A release deletes the key only at the revision this node wrote, so it can never remove a name
 *   someone else claimed meanwhile.
 * - Lookups read a local mirror kept by a KV watch, and fall back to the server for a name the
 *   mirror does not have (a process that connected elsewhere a moment ago).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { IpcError } from '../errors.js';
import type { Membership } from './membership.js';

export type NameKind = 'process' | 'mailbox';

export interface NameHolder {
  node: string;
  incarnation: string;
  /** What the holder chose to publish with the name (pid, mailbox options, …). */
  info: Record<string, unknown>;
}

interface Mirrored {
  holder: NameHolder;
  revision: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const PREFIX: Record<NameKind, string> = { process: 'p', mailbox: 'm' };
/**
 * How long after counting a node down its entries are deleted from the bucket: well past any
 * other kernel's `deadAfterMs` as usually set (the default is 4 s).
 */
const FORGET_AFTER_MS = 60_000;
/** How often doubtful keys are looked at again, and how many are kept (past it, a later claim here still takes one over). */
const SWEEP_MS = 2000;
const MAX_DOUBTFUL = 65_536;

/** A live node holds the name (tryClaim to claim). */
class TakenError extends Error {
  constructor(readonly holder: NameHolder) {
    super('taken');
  }
}

export function nameKey(kind: NameKind, name: string): string {
  return `${PREFIX[kind]}.${Buffer.from(name, 'utf8').toString('base64url')}`;
}

function parseHolder(e: KvEntry): NameHolder | undefined {
  if (e.operation !== 'PUT') return undefined;
  try {
    const h = JSON.parse(dec.decode(e.value)) as Partial<NameHolder>;
    if (typeof h.node === 'string' && typeof h.incarnation === 'string')
      return { node: h.node, incarnation: h.incarnation, info: h.info ?? {} };
  } catch {}
  return undefined;
}

export class GlobalNames {
  private readonly mirror = new Map<string, Mirrored>();
  /** Pending `forget` tidy-ups (cleared on close). */
  private readonly forgetting = new Set<NodeJS.Timeout>();
  /** Names this node holds: key → the revision it wrote. */
  private readonly mine = new Map<string, number>();
  /** What it wrote for each, to claim it again after a silence (`reclaim`). */
  private readonly claims = new Map<string, { kind: NameKind; name: string; value: Uint8Array }>();
  private watchStop: (() => void) | undefined;
  /**
   * Keys this node may have left in the bucket without holding them: a create or update whose
   * answer never came (NATS may have applied it), a delete that did not get through. The others
   * would see such a name held by this live node for as long as it runs; `sweep` deletes them.
   */
  private readonly doubtful = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  /** Told of every name another node claims (as its claim shows up in the watch). */
  onClaimed: ((kind: NameKind, name: string, holder: NameHolder) => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly membership: Membership,
  ) {}

  static async open(kv: KV, membership: Membership): Promise<GlobalNames> {
    const g = new GlobalNames(kv, membership);
    const it = await kv.watch({ key: '>' });
    g.watchStop = () => it.stop();
    void (async () => {
      for await (const e of it) g.observe(e);
    })().catch(() => undefined);
    return g;
  }

  private observe(e: KvEntry): void {
    const holder = parseHolder(e);
    if (holder === undefined) {
      this.mirror.delete(e.key);
      return;
    }
    this.mirror.set(e.key, { holder, revision: e.revision });
    if (holder.node === this.membership.self.node || this.onClaimed === undefined) return;
    const dot = e.key.indexOf('.');
    const kind: NameKind = e.key.slice(0, dot) === PREFIX.process ? 'process' : 'mailbox';
    this.onClaimed(kind, Buffer.from(e.key.slice(dot + 1), 'base64url').toString('utf8'), holder);
  }

  private live(h: NameHolder): boolean {
    return this.membership.isAlive(h.node, h.incarnation);
  }

  /** Claim `name` for this node; NAME_TAKEN if a live node holds it. */
  async claim(kind: NameKind, name: string, info: Record<string, unknown> = {}): Promise<void> {
    const key = nameKey(kind, name);
    const self = this.membership.self;
    const value = enc.encode(JSON.stringify({ node: self.node, incarnation: self.incarnation, info }));
    try {
      if (await this.tryClaim(kind, name, key, value)) return;
    } catch (e) {
      const holder = e instanceof TakenError ? e.holder : undefined;
      // Taken by a live holder, nothing was written; otherwise a create may have timed out after the
      // server applied it.
      if (holder === undefined) this.doubt(key);
      throw holder === undefined
        ? e
        : new IpcError('NAME_TAKEN', `${kind} name "${name}" is taken (on node ${holder.node})`);
    }
    this.doubt(key);
    throw new IpcError('NAME_TAKEN', `${kind} name "${name}" is contended; try again`);
  }

  /** True once claimed; false if contended five times; throws TakenError for a live holder. */
  private async tryClaim(kind: NameKind, name: string, key: string, value: Uint8Array): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        this.mine.set(key, await this.kv.create(key, value));
        this.claims.set(key, { kind, name, value });
        return true;
      } catch {
        const held = await this.kv.get(key);
        if (held === null || held.operation !== 'PUT') continue;
        const holder = parseHolder(held);
        // A ghost is taken over like a stale holder's entry. Left alone, the name would stay taken
        // until this node goes.
        if (holder !== undefined && this.live(holder) && !this.ghost(key, holder))
          throw new TakenError(holder);
        try {
          this.mine.set(key, await this.kv.update(key, value, held.revision));
          this.claims.set(key, { kind, name, value });
          return true;
        } catch {
          // Another claimant replaced the stale holder first: look again.
        }
      }
    }
    return false;
  }

  /** Give a name up (a process exited, a mailbox was deleted). Never removes someone else's claim. */
  async release(kind: NameKind, name: string): Promise<void> {
    const key = nameKey(kind, name);
    const revision = this.mine.get(key);
    if (revision === undefined) return;
    this.mine.delete(key);
    this.claims.delete(key);
    await this.kv.delete(key, { previousSeq: revision }).catch(() => this.doubt(key));
  }

  /**
   * An entry of this very node that it does not know it holds: a claim of its own whose answer never
   * came (the create timed out after the server took it), or a release that did not get through.
   * Nobody holds it.
   */
  private ghost(key: string, holder: NameHolder): boolean {
    const self = this.membership.self;
    return holder.node === self.node && holder.incarnation === self.incarnation && !this.claims.has(key);
  }

  private doubt(key: string): void {
    if (this.closed || this.doubtful.size >= MAX_DOUBTFUL) return;
    this.doubtful.add(key);
    this.sweepLater();
  }

  private sweepLater(): void {
    if (this.sweeper !== undefined || this.closed || this.doubtful.size === 0) return;
    this.sweeper = setTimeout(() => {
      void this.sweep().finally(() => {
        this.sweeper = undefined;
        this.sweepLater();
      });
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  /**
   * Delete the doubtful keys that turn out to be this node's without its holding them. A claim of
   * the same name racing the delete is settled by the revision both name: one of them wins, and a
   * claim that loses looks again (the key is gone, so it creates it).
   */
  private async sweep(): Promise<void> {
    for (const key of [...this.doubtful]) {
      if (this.closed) return;
      if (this.claims.has(key)) {
        this.doubtful.delete(key);
        continue;
      }
      try {
        const e = await this.kv.get(key);
        const holder = e === null ? undefined : parseHolder(e);
        if (e !== null && holder !== undefined && this.ghost(key, holder))
          await this.kv.delete(key, { previousSeq: e.revision });
        this.doubtful.delete(key);
      } catch {
        // NATS is not answering yet, or a claim here took the key first: the next sweep settles it.
      }
    }
  }

  /** Who holds `name` now, if a live node does. */
  async lookup(kind: NameKind, name: string): Promise<NameHolder | undefined> {
    const key = nameKey(kind, name);
    const m = this.mirror.get(key);
    if (m !== undefined && this.live(m.holder)) return m.holder;
    const e = await this.kv.get(key);
    const holder = e === null ? undefined : parseHolder(e);
    // The server knew it before our watch did: the mirror learns it now (the watch brings the same entry).
    if (e !== null && holder !== undefined) this.mirror.set(key, { holder, revision: e.revision });
    return holder !== undefined && this.live(holder) ? holder : undefined;
  }

  /** Who holds `name` by the local mirror only (no round trip; may lag the server by a watch update). */
  cached(kind: NameKind, name: string): NameHolder | undefined {
    const m = this.mirror.get(nameKey(kind, name));
    return m !== undefined && this.live(m.holder) ? m.holder : undefined;
  }

  /** Every live name of a kind, from the mirror. */
  list(kind: NameKind): { name: string; holder: NameHolder }[] {
    const prefix = `${PREFIX[kind]}.`;
    const out: { name: string; holder: NameHolder }[] = [];
    for (const [key, m] of this.mirror) {
      if (!key.startsWith(prefix) || !this.live(m.holder)) continue;
      out.push({
        name: Buffer.from(key.slice(prefix.length), 'base64url').toString('utf8'),
        holder: m.holder,
      });
    }
    return out;
  }

  /**
   * Delete the entries a down node left, `FORGET_AFTER_MS` from now if it is still down then
   * (tidiness only: for this node they are already free).
   */
  forget(node: string, incarnation: string): void {
    const timer = setTimeout(() => {
      this.forgetting.delete(timer);
      if (this.membership.isAlive(node, incarnation)) return;
      void (async () => {
        for (const [key, m] of [...this.mirror]) {
          if (m.holder.node !== node || m.holder.incarnation !== incarnation) continue;
          await this.kv.delete(key, { previousSeq: m.revision }).catch(() => undefined);
        }
      })();
    }, FORGET_AFTER_MS);
    timer.unref();
    this.forgetting.add(timer);
  }

  /**
   * After a silence in which the others counted this node down: claim every name it held again.
   * A name still at our revision, or freed, is ours again; one a live node took meanwhile is lost,
   * and returned so its holder here can be told.
   */
  async reclaim(): Promise<{ kind: NameKind; name: string; node: string }[]> {
    const lost: { kind: NameKind; name: string; node: string }[] = [];
    for (const [key, c] of [...this.claims]) {
      // Its holder may give the name up (and another claim here take it) while we wait on NATS: what
      // is written for a claim no longer current is doubtful, never recorded as held.
      const current = () => this.claims.get(key) === c;
      const wrote = (revision: number) => {
        if (current()) this.mine.set(key, revision);
        else this.doubt(key);
      };
      const rev = this.mine.get(key);
      if (rev === undefined) continue;
      try {
        wrote(await this.kv.update(key, c.value, rev));
        continue;
      } catch {}
      if (!current()) continue;
      try {
        wrote(await this.kv.create(key, c.value));
        continue;
      } catch {}
      if (!current()) continue;
      const held = await this.kv.get(key).catch(() => null);
      if (!current()) continue;
      const holder = held === null ? undefined : parseHolder(held);
      if (
        holder !== undefined &&
        holder.incarnation !== this.membership.self.incarnation &&
        this.live(holder)
      ) {
        this.mine.delete(key);
        this.claims.delete(key);
        lost.push({ kind: c.kind, name: c.name, node: holder.node });
      } else if (held !== null) {
        // Held by a node that is down (or a stale entry): take it back.
        try {
          wrote(await this.kv.update(key, c.value, held.revision));
        } catch {}
      }
    }
    return lost;
  }

  /** Release every name this node holds (leaving the cluster). */
  async releaseAll(): Promise<void> {
    const held = [...this.mine];
    this.mine.clear();
    this.claims.clear();
    await Promise.all(
      held.map(([key, rev]) => this.kv.delete(key, { previousSeq: rev }).catch(() => undefined)),
    );
  }

  close(): void {
    this.closed = true;
    if (this.sweeper !== undefined) clearTimeout(this.sweeper);
    this.watchStop?.();
    for (const t of this.forgetting) clearTimeout(t);
    this.forgetting.clear();
  }
}
