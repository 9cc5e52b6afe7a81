/**
 * Durable mailboxes on JetStream: the messages of a mailbox created with `durable: true` are kept
 * in a JetStream stream on disk until they are finished (consumed, or acknowledged in ack mode), so
 * they survive the crash and restart of the home kernel and of the whole host; the definitions of
 * the durable mailboxes are kept in the KV bucket `ipcbox_<cluster>_durable`, so a restarted kernel
 * knows which ones are its own and serves them again.
 *
 * Works with nats-server 2.9: plain streams with limits retention, no per-message TTL, no pinned
 * consumers. Layout:
 * - stream `IPCBOX_<cluster>_MB_<sha256(name) hex, 32>`, subject `ipcbox.<cluster>.durable.<same>`,
 *   one message per accepted message: the payload as sent, headers `Ipcbox-Priority`,
 *   `Ipcbox-Codec`, `Ipcbox-Sender` (the sender's name, base64url);
 * - a finished message is deleted from the stream by sequence (never erased byte by byte: a
 *   delete marker is enough, and far cheaper).
 * Invariants:
 * - `append` resolves only once JetStream has stored the message (its PubAck): the kernel answers
 *   a send to a durable mailbox only after that.
 * - `replay` yields what is still stored, in stream (acceptance) order.
 */
import { createHash } from 'node:crypto';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';

export interface DurableRecord {
  seq: number;
  bytes: Buffer;
  priority: number;
  codec: number;
  sender: string;
}

/** What a durable mailbox was created with, kept so a restarted kernel can make it again. */
export interface DurableDefinition {
  name: string;
  /** The node whose kernel homes it (and serves it again after a restart). */
  node: string;
  options: Record<string, unknown>;
  owner: { name: string; uid: number | null };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function digest(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 32);
}

export class DurableStore {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly stream: string,
    private readonly subject: string,
  ) {}

  /** The store of mailbox `name` (the stream is made if it is not there). */
  static async open(
    nc: NatsConnection,
    cluster: string,
    name: string,
    replicas: number,
  ): Promise<DurableStore> {
    const { jetstream, jetstreamManager } = await import('@nats-io/jetstream');
    const jsm = await jetstreamManager(nc);
    const id = digest(name);
    const stream = `IPCBOX_${cluster}_MB_${id}`;
    const subject = `ipcbox.${cluster}.durable.${id}`;
    try {
      await jsm.streams.info(stream);
    } catch {
      await jsm.streams.add({
        name: stream,
        subjects: [subject],
        storage: 'file' as never,
        retention: 'limits' as never,
        num_replicas: replicas,
        description: `ipcbox durable mailbox ${name}`,
      });
    }
    return new DurableStore(jetstream(nc), jsm, stream, subject);
  }

  async append(bytes: Uint8Array, priority: number, codec: number, sender: string): Promise<number> {
    const { headers } = await import('@nats-io/nats-core');
    const h = headers();
    h.set('Ipcbox-Priority', String(priority));
    h.set('Ipcbox-Codec', String(codec));
    h.set('Ipcbox-Sender', Buffer.from(sender, 'utf8').toString('base64url'));
    const ack = await this.js.publish(this.subject, bytes, {
      headers: h,
      expect: { streamName: this.stream },
    });
    return ack.seq;
  }

  /** The message is finished: it leaves the stream. */
  remove(seq: number): Promise<void> {
    return this.jsm.streams.deleteMessage(this.stream, seq, false).then(
      () => undefined,
      () => undefined,
    );
  }

  /** Every message still stored, oldest first. */
  async *replay(): AsyncGenerator<DurableRecord> {
    const info = await this.jsm.streams.info(this.stream);
    const { first_seq: first, last_seq: last, messages } = info.state;
    if (messages === 0) return;
    for (let seq = first; seq <= last; seq++) {
      const m = await this.jsm.streams.getMessage(this.stream, { seq }).catch(() => null);
      if (m === null) continue;
      yield {
        seq,
        bytes: Buffer.from(m.data),
        priority: Number(m.header.get('Ipcbox-Priority') || 0),
        codec: Number(m.header.get('Ipcbox-Codec') || 0),
        sender: Buffer.from(m.header.get('Ipcbox-Sender') || '', 'base64url').toString('utf8'),
      };
    }
  }

  /** The mailbox was deleted: its stream goes. */
  async destroy(): Promise<void> {
    await this.jsm.streams.delete(this.stream).catch(() => false);
  }
}

/** The definitions of the cluster's durable mailboxes (KV, one key per mailbox name). */
export class DurableRegistry {
  constructor(private readonly kv: KV) {}

  private key(name: string): string {
    return Buffer.from(name, 'utf8').toString('base64url');
  }

  async put(def: DurableDefinition): Promise<void> {
    await this.kv.put(this.key(def.name), enc.encode(JSON.stringify(def)));
  }

  async remove(name: string): Promise<void> {
    await this.kv.delete(this.key(name)).catch(() => undefined);
  }

  /** The durable mailboxes homed on `node`. */
  async homedOn(node: string): Promise<DurableDefinition[]> {
    const out: DurableDefinition[] = [];
    const keys = await this.kv.keys();
    for await (const k of keys) {
      const e = await this.kv.get(k);
      if (e === null || e.operation !== 'PUT') continue;
      try {
        const def = JSON.parse(dec.decode(e.value)) as DurableDefinition;
        if (def.node === node) out.push(def);
      } catch {
        // Not ours to read: skip it.
      }
    }
    return out;
  }
}
