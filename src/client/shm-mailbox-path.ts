import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShmMailbox, type ShmMessage, type ShmSendOptions } from '../backends/shm/shm-mailbox.js';
import type { ShmMailboxOptions } from '../backends/shm/shm-options.js';
import type { ResolvedMailboxOptions } from '../core/mailbox-options.js';
import { AbortError, IpcError, MailboxClosedError } from '../errors.js';
import { Segment } from '../shm/segment.js';
import type { MailboxInfo, ProcessInfo } from '../wire/info-types.js';
import { codecId } from '../wire/payload-codec.js';
import type { Connection, ReceiveOptions, SendOptions } from './connection.js';
import { Message } from './message.js';
import type { IterateOptions } from './message-stream.js';
import type { IpcProcess } from './process.js';

/**
 * The shared-memory path behind a `Mailbox` (transport 'shm'): the same calls as the kernel
 * path, on a ShmMailbox (src/backends/shm/), whose messages never pass through the kernel.
 *
 * A process attaches as a sender on its first send and as a receiver on its first receive,
 * each a handle of its own: attaching is what makes it count as a receiver (exclusive,
 * rotation, broadcast copies), so a process that only sends is never one — as on the kernel
 * path, where a process becomes a receiver with its first receive.
 */

/** The kernel mailbox options as the shared-memory store's (the whole-contract 'priority' store). */
export function shmOptionsFor(o: ResolvedMailboxOptions): ShmMailboxOptions {
  return {
    queue: 'priority',
    capacity: o.capacity === Number.POSITIVE_INFINITY ? 'unbounded' : o.capacity,
    delivery: o.delivery,
    owner: o.owner,
    // One size only: slab chunks need be no larger (the kernel's default limit is 16 MiB).
    maxMessageSize: o.fixedMessageSize ?? o.maxMessageSize,
    ...(o.fixedMessageSize === undefined ? {} : { fixedMessageSize: o.fixedMessageSize }),
    senders: o.senders,
    receivers: o.receivers,
    // The creator becomes a receiver only when it receives (see above).
    role: 'send',
  };
}

/** FNV-1a, 32 bits, as 8 hex digits: short, stable names from long strings. */
function fnv(s: string, seed = 0x811c9dc5): string {
  let h = seed;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/**
 * The POSIX shared-memory name of mailbox `mailbox` of the kernel at `kernelSocket`: the uid
 * and a hash of the socket keep two users' or two daemons' mailboxes apart in /dev/shm; then
 * the name, readable where it can be ('%' and '/' escaped, since a mailbox name may hold them
 * and a POSIX name may not), shortened with a hash where it would pass NAME_MAX.
 */
export function segmentNameFor(mailbox: string, kernelSocket: string): string {
  const prefix = `ipcbox-mb-${process.getuid?.() ?? 0}-${fnv(kernelSocket)}-`;
  const readable = mailbox.replace(/%/g, '%25').replace(/\//g, '%2F');
  if (Buffer.byteLength(prefix + readable) <= 200) return prefix + readable;
  return `${prefix}${mailbox.slice(0, 64).replace(/[%/]/g, '_')}-${fnv(mailbox)}${fnv(mailbox, 0x01000193)}`;
}

/**
 * How long a segment of a mailbox's name that the kernel does not know may be another process's
 * creation in progress (made, its registration on the way) before it counts as a leftover.
 */
const CREATING_GRACE_MS = 2000;

/**
 * Create mailbox `name` on the shared-memory path. Its segment name is this kernel's: one the
 * kernel knows means the name is taken; one that exists but that the kernel does not know is
 * another process creating the same mailbox (it registers within a round trip: then the name is
 * taken) or, still unknown after CREATING_GRACE_MS, a leftover of this kernel's earlier life (a
 * system-owned mailbox when the daemon stopped), unlinked and made again.
 */
export async function createShmMailbox(
  proc: IpcProcess,
  name: string,
  o: ResolvedMailboxOptions,
  kernelSocket: string,
): Promise<ShmMailbox> {
  let segment = segmentNameFor(name, kernelSocket);
  const taken = () => new IpcError('MAILBOX_EXISTS', `mailbox already exists: ${name}`);
  for (let attempt = 0; ; attempt++) {
    try {
      return await ShmMailbox.create(proc, segment, shmOptionsFor(o), name);
    } catch (e) {
      // Another creator's registration of this segment came first.
      if (e instanceof IpcError && e.code === 'SEGMENT_EXISTS') throw taken();
      if (!(e instanceof IpcError && e.code === 'NAME_TAKEN')) throw e;
      if (attempt >= 2) throw taken();
      if (squatted(segment)) {
        // Another user made a segment of this name (anyone may create in /dev/shm, and only its
        // owner may remove it): not ours to wait for or replace. The mailbox takes a name of its
        // own; openers find it through the kernel's record (`segment`), not by the name's shape.
        segment = `${segment.slice(0, 200)}-${randomBytes(6).toString('hex')}`;
        continue;
      }
      const deadline = Date.now() + CREATING_GRACE_MS;
      for (;;) {
        if (await kernelKnows(proc, segment)) throw taken();
        if (!segmentExists(segment)) break;
        if (Date.now() >= deadline) {
          try {
            Segment.unlink(segment);
          } catch {
            // Gone meanwhile.
          }
          break;
        }
        await sleep(20);
      }
    }
  }
}

async function kernelKnows(proc: IpcProcess, segment: string): Promise<boolean> {
  const known = await proc.attachSegment(segment, 'attach').then(
    () => true,
    (err: unknown) => !(err instanceof IpcError && err.code === 'NO_SUCH_SEGMENT'),
  );
  if (known) await proc.detachSegment(segment, 'attach').catch(() => undefined);
  return known;
}

/** Is there a segment of this name that another user owns? */
function squatted(segment: string): boolean {
  try {
    return Segment.stat(segment).uid !== (process.getuid?.() ?? 0);
  } catch {
    return false;
  }
}

function segmentExists(segment: string): boolean {
  try {
    Segment.stat(segment);
    return true;
  } catch (err) {
    if (err instanceof IpcError && err.code === 'NO_SUCH_SEGMENT') return false;
    throw err;
  }
}

function notSupported(what: string): IpcError {
  return new IpcError('NOT_SUPPORTED', `a mailbox on the shared-memory path does not support ${what}`);
}

export class ShmPath {
  #send: Promise<ShmMailbox> | undefined;
  #receive: Promise<ShmMailbox> | undefined;
  #closed: IpcError | undefined;
  /** close() ran (the mailbox itself may still be there). */
  #ended = false;
  /** Sender numbers the kernel did not know when asked (exited): asked once, not per message. */
  readonly #unknown = new Set<number>();
  /** Handles closed because the kernel took their right away: their waits fail PERMISSION_DENIED, as on the kernel path. */
  readonly #revoked = new WeakSet<ShmMailbox>();

  constructor(
    private readonly proc: IpcProcess,
    private readonly conn: Connection,
    readonly info: MailboxInfo,
    created: ShmMailbox | undefined,
    private readonly onClose: () => void,
  ) {
    if (created !== undefined) this.#send = Promise.resolve(created);
  }

  /**
   * A right was revoked and the kernel detached that side of this process: drop the handle, so
   * the next call attaches again and meets the rights as they are now (PERMISSION_DENIED).
   */
  revoked(right: 'send' | 'receive'): void {
    const h = right === 'send' ? this.#send : this.#receive;
    if (right === 'send') this.#send = undefined;
    else this.#receive = undefined;
    void h
      ?.then((m) => {
        this.#revoked.add(m);
        return m.close();
      })
      .catch(() => undefined);
  }

  /**
   * The connection to the kernel is lost: the handle ends as a kernel mailbox's does. Its waits
   * end (MAILBOX_CLOSED, from the store; its unacknowledged messages go back) and later calls fail
   * with `error`: without the kernel nobody keeps the mailbox's rights or tells of its removal,
   * and a kernel that died leaves the segment behind for the next one to replace.
   */
  lost(error: IpcError): void {
    this.#closed ??= error;
    const handles = [this.#send, this.#receive];
    this.#send = this.#receive = undefined;
    for (const h of handles) void h?.then((m) => m.close()).catch(() => undefined);
  }

  /** The kernel removed the mailbox: every later call fails MAILBOX_CLOSED (pending ones fail in the store). */
  closedBy(reason: string): void {
    this.#closed ??= new MailboxClosedError(`${this.info.name} was closed: ${reason}`);
  }

  get segment(): string {
    return this.info.segment ?? this.info.name;
  }

  #handle(role: 'send' | 'receive'): Promise<ShmMailbox> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    const have = role === 'send' ? this.#send : this.#receive;
    if (have !== undefined) return have;
    const p = ShmMailbox.open(this.proc, this.segment, role).then(
      async (mb) => {
        // Closed while attaching: the kernel's notice comes before its answer, so a segment found
        // now is a new mailbox that reused the name (and segment name), not this handle's.
        if (this.#closed === undefined) return mb;
        await mb.close().catch(() => undefined);
        throw this.#closed;
      },
      (e: unknown) => {
        // Gone since this handle was opened: for the handle, that is its mailbox closing.
        if (e instanceof IpcError && e.code === 'NO_SUCH_MAILBOX') {
          this.#closed ??= new MailboxClosedError(`${this.info.name} was closed`);
          throw this.#closed;
        }
        throw e;
      },
    );
    // A failed attach (rights, a receiver busy) is not kept: the next call tries again.
    p.catch(() => {
      if (role === 'send' && this.#send === p) this.#send = undefined;
      if (role === 'receive' && this.#receive === p) this.#receive = undefined;
    });
    if (role === 'send') this.#send = p;
    else this.#receive = p;
    return p;
  }

  async send(value: unknown, options: SendOptions = {}): Promise<void> {
    const start = Date.now();
    const mb = await this.#handle('send');
    const o: ShmSendOptions = { ...options };
    if (options.timeout !== undefined) o.timeout = Math.max(0, options.timeout - (Date.now() - start));
    try {
      await mb.send(value, o);
    } catch (e) {
      throw this.#denied(mb, e, 'send');
    }
  }

  /** The error a wait on `mb` ended with, as PERMISSION_DENIED if its handle was closed by a revoke. */
  #denied(mb: ShmMailbox, e: unknown, right: 'send' | 'receive'): unknown {
    if (!(e instanceof IpcError && e.code === 'MAILBOX_CLOSED' && this.#revoked.has(mb))) return e;
    return new IpcError('PERMISSION_DENIED', `${this.proc.name} may no longer ${right} on ${this.info.name}`);
  }

  async receive(options: ReceiveOptions = {}): Promise<Message> {
    if (options.signal?.aborted) throw new AbortError('receive aborted', { cause: options.signal.reason });
    const start = Date.now();
    const mb = await this.#handle('receive');
    const timeout =
      options.timeout === undefined ? undefined : Math.max(0, options.timeout - (Date.now() - start));
    let m: ShmMessage;
    try {
      m = await mb.receive({
        ...(options.ack === true ? { ack: true } : {}),
        ...(options.nonblock === true ? { nonblock: true } : {}),
        ...(timeout === undefined ? {} : { timeout }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (e) {
      throw this.#denied(mb, e, 'receive');
    }
    return this.#message(m);
  }

  async *messages(options: IterateOptions = {}): AsyncGenerator<Message, void, undefined> {
    for (;;) {
      let m: Message;
      try {
        m = await this.receive({
          ...(options.ack === true ? { ack: true } : {}),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
      } catch (err) {
        // The mailbox closing ends the iteration; the kernel connection lost fails it (as on the kernel path).
        if (err instanceof IpcError && err.code === 'MAILBOX_CLOSED') {
          if (this.#closed !== undefined && this.#closed.code !== 'MAILBOX_CLOSED') throw this.#closed;
          return;
        }
        throw err;
      }
      yield m;
    }
  }

  /** The kernel's record, with depth and waiters read from the segment (the kernel never maps it). */
  async stat(): Promise<MailboxInfo> {
    const info = await this.conn.call<MailboxInfo>('mailbox.info', { name: this.info.name });
    const mb = await (this.#receive ?? this.#send ?? this.#handle('send')).catch(() => undefined);
    if (mb === undefined) return info;
    const s = mb.stat();
    return {
      ...info,
      depth: s.depth,
      waitingSenders: s.waitingSenders,
      waitingReceivers: s.waitingReceivers,
    };
  }

  peek(): Promise<never> {
    return Promise.reject(notSupported('peek (its queue is in shared memory, not in the kernel)'));
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#closed = new MailboxClosedError(`this handle on ${this.info.name} is closed`);
    this.onClose();
    const handles = [this.#send, this.#receive];
    this.#send = this.#receive = undefined;
    for (const h of handles) {
      const mb = await h?.catch(() => undefined);
      await mb?.close();
    }
  }

  /** A ShmMessage as the Message every mailbox hands out, with the sender's name. */
  async #message(m: ShmMessage): Promise<Message> {
    const sender = await this.#senderName(m.senderPid);
    const ref = new WeakRef(m);
    return new Message(
      m.bytes,
      codecId(m.codec),
      m.priority,
      sender,
      m.senderPid,
      this.info.name,
      m.needsAck,
      0,
      false,
      // The Message keeps these, and through them the ShmMessage (and its lease), as long as it lives.
      {
        ack: () => m.ack(),
        release: () => m.nack(),
      },
      false,
      // The lease goes back through the ShmMessage, reached weakly: this function is held until
      // the payload's buffer is collected and must not keep it.
      m.mapped ? () => ref.deref()?.release() : undefined,
    );
  }

  /** The name behind a sender's process number: known from the kernel's notices, or asked once. */
  async #senderName(pid: number): Promise<string> {
    const known = this.conn.peerName(pid);
    if (!known.startsWith('pid-') || this.#unknown.has(pid)) return known;
    if (this.#unknown.size > 1024) this.#unknown.clear();
    this.#unknown.add(pid);
    const list = await this.conn.call<ProcessInfo[]>('process.list').catch(() => [] as ProcessInfo[]);
    for (const p of list) {
      this.conn.learnPeer(p.pid, p.name);
      this.#unknown.delete(p.pid);
    }
    return this.conn.peerName(pid);
  }
}
