import { type Spawned, spawnFixture, waitFor } from '../helpers/kernel-harness.js';

/**
 * Test-side handle on a `fixtures/peer.js` process: send it commands, await
 * its replies, watch its events. See the fixture for the line protocol.
 */

export interface Reply<T = unknown> {
  id: number;
  ok: boolean;
  value: T;
  code?: string;
  message?: string;
  elapsed: number;
}

export interface PeerEvent {
  event: string;
  [field: string]: unknown;
}

/** A message as the peer describes it. */
export interface PeerMessage<T = unknown> {
  data: T;
  sender: string;
  priority: number;
  mailbox: string;
  codec: string;
  holdId?: number;
  tag?: unknown;
}

/** A command in flight: `settled` turns true once the peer has replied. */
export interface PendingCall<T = unknown> {
  id: number;
  reply: Promise<Reply<T>>;
  readonly settled: boolean;
}

/** Every peer not yet exited, so `stopAll()` can clean up even after a failed start. */
const live = new Set<RemotePeer>();

/** No reply within this long means the peer is stuck: the command fails instead of hanging the test. */
const REPLY_DEADLINE_MS = 60_000;

export class RemotePeer {
  readonly events: PeerEvent[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private partial = '';
  name = '';

  private constructor(readonly sp: Spawned) {
    live.add(this);
    sp.child.stdout!.on('data', (d: Buffer) => {
      this.partial += d.toString();
      const parts = this.partial.split('\n');
      this.partial = parts.pop()!;
      for (const line of parts) this.onLine(line);
    });
    sp.exit.then(() => {
      live.delete(this);
      for (const [id, resolve] of this.waiting) {
        resolve({ id, ok: false, value: null, code: 'PEER_EXITED', message: sp.stderr(), elapsed: 0 });
      }
      this.waiting.clear();
    });
  }

  /** Spawn a peer and connect it to the kernel (as `name`, or a kernel-assigned name). */
  static async start(
    socketPath: string,
    name?: string,
    connectArgs: Record<string, unknown> = {},
  ): Promise<RemotePeer> {
    const peer = new RemotePeer(spawnFixture('peer', ['serve'], socketPath));
    try {
      // A generous connect timeout: a loaded machine must not turn into KERNEL_UNAVAILABLE.
      const args = { timeout: 20_000, ...connectArgs, ...(name === undefined ? {} : { name }) };
      peer.name = (await peer.ok<{ name: string }>('connect', args)).name;
      return peer;
    } catch (e) {
      await peer.stop();
      throw e;
    }
  }

  /** Spawn a peer but leave connecting to the test (e.g. to see connect fail). */
  static spawn(socketPath: string, env: NodeJS.ProcessEnv = {}): RemotePeer {
    return new RemotePeer(spawnFixture('peer', ['serve'], socketPath, env));
  }

  get pid(): number {
    return this.sp.child.pid!;
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    const obj = JSON.parse(line) as Reply & PeerEvent;
    if (typeof obj.event === 'string') {
      this.events.push(obj);
      return;
    }
    const resolve = this.waiting.get(obj.id);
    if (resolve !== undefined) {
      this.waiting.delete(obj.id);
      resolve(obj);
    }
  }

  /** Issue a command without waiting for its reply. */
  start<T = unknown>(op: string, args: Record<string, unknown> = {}): PendingCall<T> {
    const id = this.nextId++;
    let settled = false;
    const reply = new Promise<Reply<T>>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({
          id,
          ok: false,
          value: null as T,
          code: 'PEER_NO_REPLY',
          message: `${op}: no reply`,
          elapsed: REPLY_DEADLINE_MS,
        });
      }, REPLY_DEADLINE_MS);
      timer.unref();
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        settled = true;
        resolve(r as Reply<T>);
      });
    });
    this.sp.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    return {
      id,
      reply,
      get settled() {
        return settled;
      },
    };
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<Reply<T>> {
    return this.start<T>(op, args).reply;
  }

  /** Run a command that must succeed; returns its value. */
  async ok<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    return expectOk(await this.call<T>(op, args), op);
  }

  /** Run a command that must fail; returns its error code. */
  async fails(op: string, args: Record<string, unknown> = {}): Promise<Reply> {
    const r = await this.call(op, args);
    if (r.ok) throw new Error(`${op} ${JSON.stringify(args)} succeeded, expected an error`);
    return r;
  }

  eventsOf(kind: string): PeerEvent[] {
    return this.events.filter((e) => e.event === kind);
  }

  /** Messages the peer printed from `consume`, optionally only those with `tag`. */
  messages<T = unknown>(tag?: unknown): PeerMessage<T>[] {
    return this.eventsOf('message').filter(
      (e) => tag === undefined || e.tag === tag,
    ) as unknown as PeerMessage<T>[];
  }

  async waitEvent(
    kind: string,
    match: (e: PeerEvent) => boolean = () => true,
    timeoutMs = 15_000,
  ): Promise<PeerEvent> {
    const find = () => this.events.find((e) => e.event === kind && match(e));
    await waitFor(() => find() !== undefined, timeoutMs, `a ${kind} event`);
    return find()!;
  }

  /** Ends the peer: SIGKILL (a crash) by default. Resolves when it has exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.sp.kill(signal);
    await this.sp.exit;
  }

  /** Close stdin so the peer exits on its own; kill it if it has not within a grace period. */
  async stop(): Promise<void> {
    if (this.sp.child.exitCode !== null || this.sp.child.signalCode !== null) return;
    this.sp.child.stdin!.end();
    const timer = setTimeout(() => this.sp.kill('SIGKILL'), 3000);
    await this.sp.exit;
    clearTimeout(timer);
  }
}

export function expectOk<T>(r: Reply<T>, what = 'command'): T {
  if (!r.ok) throw new Error(`${what} failed: ${r.code}: ${r.message}`);
  return r.value;
}

/** Stop the given peers, or every peer this test process started and that is still running. */
export async function stopAll(peers: Iterable<RemotePeer> = live): Promise<void> {
  await Promise.all([...peers].map((p) => p.stop()));
}
