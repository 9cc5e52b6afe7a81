/**
 * The mailbox conformance suite against the shared-memory backend
 * (ShmMailbox), set up through a real kernel daemon in its own process.
 *
 * The adapter maps the suite's interface onto ShmMailbox (default options:
 * the 'priority' queue) and adds nothing the backend lacks; it declares no
 * unsupported feature, so every behaviour runs.
 *
 * Roles: the kernel enforces `exclusive` when a process attaches as a
 * receiver, while the suite's processes open a mailbox without saying
 * whether they will receive. So `openMailbox` attaches to send, and the
 * first `receive` attaches again to send and receive (RECEIVER_BUSY comes
 * from that attach). A creator attaches as 'both', except for an exclusive
 * mailbox, where it attaches to send and, like the others, becomes a
 * receiver only by receiving.
 *
 * Segment names carry a prefix unique to this test process; teardown
 * removes any segment with that prefix that is still there, and fails if
 * there was one (the kernel should have unlinked it).
 */
import { readdirSync } from 'node:fs';
import { ShmMailbox } from '../../src/backends/shm/shm-mailbox.js';
import { connect, type IpcProcess } from '../../src/client/process.js';
import { IpcError, NoSuchMailboxError } from '../../src/errors.js';
import { Segment } from '../../src/shm/segment.js';
import { startDaemon } from '../helpers/kernel-harness.js';
import {
  type ConformanceMailbox,
  type ConformanceMessage,
  type ConformanceProcess,
  runMailboxConformance,
  type WaitOptions,
} from './mailbox-conformance.js';

const SHM_DIR = '/dev/shm';

class ShmConformanceMailbox implements ConformanceMailbox {
  readonly #proc: IpcProcess;
  readonly #name: string;
  /** The handle from create/open; sends and stat go through it. */
  readonly #handle: ShmMailbox;
  /** The handle receives go through: #handle if it may receive, else one attached on first receive. */
  #receiver: Promise<ShmMailbox> | undefined;
  readonly #opened: ShmMailbox[];

  constructor(proc: IpcProcess, name: string, handle: ShmMailbox, opened: ShmMailbox[]) {
    this.#proc = proc;
    this.#name = name;
    this.#handle = handle;
    this.#opened = opened;
    if (handle.role !== 'send') this.#receiver = Promise.resolve(handle);
  }

  send(value: unknown, options: WaitOptions & { priority?: number } = {}): Promise<void> {
    return this.#handle.send(value, options);
  }

  async receive(options: WaitOptions & { ack?: boolean } = {}): Promise<ConformanceMessage> {
    const m = await (await this.#receiving()).receive({ ...options, copy: true });
    return {
      data: m.data,
      priority: m.priority,
      ack: () => m.ack(),
    };
  }

  async stat(): Promise<{ depth: number; waitingSenders: number; waitingReceivers: number }> {
    return this.#handle.stat();
  }

  async close(): Promise<void> {
    const receiver = await this.#receiver?.catch(() => undefined);
    if (receiver !== undefined && receiver !== this.#handle) await receiver.close();
    await this.#handle.close();
  }

  /** Attach as a receiver once (a failed attach, e.g. RECEIVER_BUSY, is retried next time). */
  #receiving(): Promise<ShmMailbox> {
    if (this.#receiver === undefined) {
      const attaching = ShmMailbox.open(this.#proc, this.#name, 'both');
      this.#receiver = attaching;
      attaching.then(
        (h) => this.#opened.push(h),
        () => {
          if (this.#receiver === attaching) this.#receiver = undefined;
        },
      );
    }
    return this.#receiver;
  }
}

class ShmConformanceProcess implements ConformanceProcess {
  readonly #proc: IpcProcess;
  readonly #prefix: string;
  /** Mailboxes this process created, by the suite's name (deleteMailbox removes through them). */
  readonly #created = new Map<string, ShmMailbox>();
  /** Every handle this process opened, closed by close(). */
  readonly #opened: ShmMailbox[] = [];

  constructor(proc: IpcProcess, prefix: string) {
    this.#proc = proc;
    this.#prefix = prefix;
  }

  async createMailbox(
    name: string,
    options: {
      capacity: number | 'unbounded';
      delivery?: 'exclusive' | 'round-robin' | 'arbitrary' | 'broadcast';
    },
  ): Promise<ConformanceMailbox> {
    const handle = await ShmMailbox.create(this.#proc, this.#prefix + name, {
      ...options,
      role: options.delivery === 'exclusive' ? 'send' : 'both',
    });
    this.#created.set(name, handle);
    this.#opened.push(handle);
    return new ShmConformanceMailbox(this.#proc, handle.name, handle, this.#opened);
  }

  async openMailbox(name: string): Promise<ConformanceMailbox> {
    const handle = await ShmMailbox.open(this.#proc, this.#prefix + name, 'send');
    this.#opened.push(handle);
    return new ShmConformanceMailbox(this.#proc, handle.name, handle, this.#opened);
  }

  async deleteMailbox(name: string): Promise<void> {
    const mine = this.#created.get(name);
    if (mine !== undefined) {
      await mine.delete();
      this.#created.delete(name);
      return;
    }
    try {
      await this.#proc.removeSegment(this.#prefix + name);
    } catch (err) {
      if (err instanceof IpcError && err.code === 'NO_SUCH_SEGMENT') throw new NoSuchMailboxError(name);
      throw err;
    }
  }

  async close(): Promise<void> {
    try {
      for (const h of this.#opened.splice(0)) await h.close();
    } finally {
      await this.#proc.close();
    }
  }
}

/** Remove segments left behind under `prefix`; their names, so teardown can report a leak. */
function unlinkLeftovers(prefix: string): string[] {
  const left = readdirSync(SHM_DIR).filter((n) => n.startsWith(prefix));
  for (const n of left) {
    try {
      Segment.unlink(n);
    } catch (err) {
      if (!(err instanceof IpcError && err.code === 'NO_SUCH_SEGMENT')) throw err;
    }
  }
  return left;
}

runMailboxConformance({
  name: 'shared memory (ShmMailbox, daemon process)',
  async setup() {
    const prefix = `ipcbox-conf-${process.pid}-`;
    const daemon = await startDaemon();
    return {
      connect: async (): Promise<ConformanceProcess> =>
        new ShmConformanceProcess(await connect({ socketPath: daemon.socketPath }), prefix),
      async teardown() {
        let failure: unknown;
        await daemon.stop().catch((err: unknown) => {
          failure = err;
        });
        const left = unlinkLeftovers(prefix);
        if (failure !== undefined) throw failure;
        if (left.length > 0) throw new Error(`segments left behind (now removed): ${left.join(', ')}`);
      },
    };
  },
});
