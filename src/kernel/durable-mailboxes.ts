/**
 * Durable mailboxes in the kernel: making one (its name claimed, its store opened, its definition
 * kept), serving the ones this node homes again after a restart, and letting one go when deleted.
 * The store itself (JetStream) is src/cluster/durable-store.ts; the send path that stores before it
 * answers is message-path.ts.
 *
 * Invariants:
 * - A durable mailbox is system-owned and homed on the kernel that made it; its definition names
 *   that node, so only a kernel of that node name serves it again.
 * - Restored messages go back in the order they were accepted (the stream's), each under the name
 *   of its sender as it was; they are admitted whatever the capacity (they were accepted before).
 */
import type { DurableDefinition } from '../cluster/durable-store.js';
import type { MailboxOptions } from '../core/mailbox-options.js';
import type { Principal } from '../core/rights.js';
import { IpcError } from '../errors.js';
import { Chunk } from '../wire/frame-codec.js';
import type { ClusterLink } from './cluster-link.js';
import type { Kernel } from './kernel.js';
import type { KernelMessage, MailboxRecord } from './mailbox-record.js';
import { now } from './mailbox-stats.js';
import type { Session } from './session.js';

export class DurableMailboxes {
  constructor(
    private readonly k: Kernel,
    private readonly link: ClusterLink,
  ) {}

  /** mailbox.create with `durable: true` (after the name was claimed): store, definition, record. */
  async create(s: Session, name: string, options: MailboxOptions): Promise<MailboxRecord> {
    const store = await this.link.durableStore(name);
    const def: DurableDefinition = {
      name,
      node: this.link.node,
      options: { ...options } as Record<string, unknown>,
      owner: { name: s.name, uid: s.uid ?? null },
    };
    await this.link.durables.put(def);
    if (s.closed) throw new IpcError('DISCONNECTED', 'the creator left');
    const rec = this.k.createMailbox(s, name, options);
    rec.durable = store;
    return rec;
  }

  /** At start: the durable mailboxes this node homes are made again, with what they still hold. */
  async restore(): Promise<number> {
    let restored = 0;
    for (const def of await this.link.durables.homedOn(this.link.node)) {
      await this.link.claim('mailbox', def.name, { owner: def.owner.name, durable: true }, () => true);
      const store = await this.link.durableStore(def.name);
      const owner: Principal = { name: def.owner.name, uid: def.owner.uid ?? undefined };
      const rec = this.k.restoreMailbox(def.name, def.options as MailboxOptions, owner);
      rec.durable = store;
      const pids = new Map<string, number>();
      for await (const r of store.replay()) {
        let pid = pids.get(r.sender);
        if (pid === undefined) {
          pid = this.k.allocatePid();
          pids.set(r.sender, pid);
        }
        const m: KernelMessage = {
          priority: r.priority,
          sender: pid,
          senderName: r.sender,
          size: r.bytes.length,
          codec: r.codec,
          seq: this.k.path.nextMessageSeq(),
          queuedAt: now(),
          bytes: r.bytes,
          offset: 0,
          store: new Chunk(r.bytes),
          pending: 1,
          handed: false,
          completion: undefined,
          durable: { store, seq: r.seq },
        };
        this.k.budget.retain(m);
        rec.core.sendForced(m);
        restored++;
      }
    }
    return restored;
  }

  /** Removals of deleted durable mailboxes still on their way to JetStream, by name. */
  private readonly removing = new Map<string, Promise<void>>();

  /** A durable mailbox was deleted: its stream and definition go (see `removal`). */
  deleted(rec: MailboxRecord): void {
    const store = rec.durable;
    if (store === undefined) return;
    const name = rec.name;
    // The definition first: once it is gone, no restart brings the mailbox back.
    const done = this.link.durables
      .remove(name)
      .then(() => store.destroy())
      .finally(() => {
        if (this.removing.get(name) === done) this.removing.delete(name);
      });
    this.removing.set(name, done);
  }

  /** The removal of deleted durable mailbox `name` (a `mailbox.delete` answers once it is done). */
  removal(name: string): Promise<void> | undefined {
    return this.removing.get(name);
  }
}
