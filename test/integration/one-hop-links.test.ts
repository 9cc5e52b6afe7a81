/**
 * One-hop links for direct naming (wire/link-protocol.ts), between real OS
 * processes: a link is used where both ends can and not otherwise; per-link
 * FIFO under load through both the ring and the socket; sender naming and
 * `receive({ from })`; priorities; a sender or a receiver SIGKILLed
 * mid-stream; backpressure with nonblock, timeout and abort; `sync: true`;
 * the fallback without the native addon; and strangers knocking on a
 * receiver's link address.
 *
 * Senders (and some receivers) are fixtures/link-peer.js processes; the test
 * process itself is the receiver `ol-me` where that is simpler.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect, type ExitEvent, type IpcProcess, type Message } from '../../src/index.js';
import { FrameWriter } from '../../src/wire/frame-codec.js';
import { LinkOp, LinkRing } from '../../src/wire/link-protocol.js';

/** A message too large for a link's ring: it goes over the link's socket behind a ring marker. */
const OVER_RING = LinkRing.RING_PAYLOAD_MAX + 1024;

import {
  type Daemon,
  runCli,
  type Spawned,
  spawnFixture,
  startDaemon,
  waitFor,
} from '../helpers/kernel-harness.js';
import { decodeSeq, encodeSeq, mixedSize } from '../helpers/link-payload.js';

interface Reply<T = unknown> {
  id: number;
  ok: boolean;
  value: T;
  code?: string;
  message?: string;
}

interface Settled {
  ok: boolean;
  code?: string;
  ms: number;
}

interface Described {
  sender: string;
  priority: number;
  seq?: number;
  senderId?: number;
  data?: unknown;
}

const live = new Set<LinkPeer>();

/** A fixtures/link-peer.js process driven over stdin (same line protocol as peer.js). */
class LinkPeer {
  readonly events: Record<string, unknown>[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private partial = '';
  name = '';
  osPid = 0;

  private constructor(readonly sp: Spawned) {
    live.add(this);
    sp.child.stdout!.on('data', (d: Buffer) => {
      this.partial += d.toString();
      const parts = this.partial.split('\n');
      this.partial = parts.pop()!;
      for (const line of parts) {
        if (line.trim() === '') continue;
        const obj = JSON.parse(line) as Reply & { event?: string };
        if (typeof obj.event === 'string') {
          this.events.push(obj as unknown as Record<string, unknown>);
          continue;
        }
        const r = this.waiting.get(obj.id);
        this.waiting.delete(obj.id);
        r?.(obj);
      }
    });
    sp.exit.then(() => {
      live.delete(this);
      for (const [id, r] of this.waiting)
        r({ id, ok: false, value: null, code: 'PEER_EXITED', message: sp.stderr() });
      this.waiting.clear();
    });
  }

  static async start(
    socketPath: string,
    name: string,
    connectArgs: Record<string, unknown> = {},
    env: NodeJS.ProcessEnv = {},
  ): Promise<LinkPeer> {
    const p = new LinkPeer(spawnFixture('link-peer', ['serve'], socketPath, env));
    try {
      const r = await p.ok<{ name: string; osPid: number }>('connect', { name, ...connectArgs });
      p.name = r.name;
      p.osPid = r.osPid;
      return p;
    } catch (e) {
      await p.stop();
      throw e;
    }
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}, deadlineMs = 110_000): Promise<Reply<T>> {
    const id = this.nextId++;
    return new Promise<Reply<T>>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ id, ok: false, value: null as T, code: 'PEER_NO_REPLY', message: `${op}: no reply` });
      }, deadlineMs);
      timer.unref();
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r as Reply<T>);
      });
      this.sp.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  async ok<T = unknown>(op: string, args: Record<string, unknown> = {}, deadlineMs?: number): Promise<T> {
    const r = await this.call<T>(op, args, deadlineMs);
    if (!r.ok) throw new Error(`${this.name || 'link-peer'} ${op} failed: ${r.code}: ${r.message}`);
    return r.value;
  }

  /** The error code of a command that must fail. */
  async failsWith(op: string, args: Record<string, unknown> = {}): Promise<string | undefined> {
    const r = await this.call(op, args);
    assert.equal(r.ok, false, `${op} ${JSON.stringify(args)} succeeded, expected an error`);
    return r.code;
  }

  async kill(): Promise<void> {
    this.sp.kill('SIGKILL');
    await this.sp.exit;
  }

  async stop(): Promise<void> {
    if (this.sp.child.exitCode !== null || this.sp.child.signalCode !== null) return;
    this.sp.child.stdin!.end();
    const timer = setTimeout(() => this.sp.kill('SIGKILL'), 3000);
    await this.sp.exit;
    clearTimeout(timer);
  }
}

/** Abstract sockets named @ipcbox-link/<osPid>-… in /proc/net/unix: the link listeners of that OS process. */
function linkAddressesOf(osPid: number): string[] {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const path = line.trim().split(/\s+/)[7];
    if (path?.startsWith(`@ipcbox-link/${osPid}-`)) out.add(`\0${path.slice(1)}`);
  }
  return [...out];
}

function helloFrame(body: string): Buffer {
  const w = new FrameWriter();
  w.frame(LinkOp.HELLO, 0, 0, 0, 0, 0, 0, 0, 0, Buffer.from(body, 'latin1'));
  return Buffer.concat(w.takeParts()!);
}

function dataFrame(payload: Buffer): Buffer {
  const w = new FrameWriter();
  w.frame(LinkOp.DATA, 0, 0, 1, 0, 0, 0, 0, 0, payload);
  return Buffer.concat(w.takeParts()!);
}

/** A connection to `address` that sends `bytes` (if any); `closed` resolves when the other end drops it. */
function knock(address: string, bytes?: Buffer): { socket: Socket; closed: Promise<number> } {
  const started = Date.now();
  const socket = netConnect(address);
  socket.on('error', () => {});
  socket.on('data', () => {});
  if (bytes !== undefined) socket.once('connect', () => socket.write(bytes));
  const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - started)));
  return { socket, closed };
}

describe('one-hop links between processes', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  const exits: ExitEvent[] = [];

  const peer = (name: string, connectArgs: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}) =>
    LinkPeer.start(daemon.socketPath, name, connectArgs, env);

  /** The names `name` sends to over a link, as the kernel reports them. */
  async function linksOf(name: string): Promise<string[]> {
    const p = (await me.listProcesses()).find((x) => x.name === name);
    assert.ok(p !== undefined, `${name} is connected`);
    return p.links ?? [];
  }

  async function myDepth(): Promise<number> {
    return (await me.peek({ count: 100 })).messages.length;
  }

  async function assertEmpty(): Promise<void> {
    assert.equal(await myDepth(), 0, 'nothing left in my inbox');
    await assert.rejects(me.receive({ nonblock: true }), { code: 'WOULD_BLOCK' });
  }

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'ol-me', timeout: 20_000 });
    me.on('exit', (e) => exits.push(e));
  });

  // A test that failed may leave messages in my inbox: take them, so the next test starts empty
  // (every test asserts itself that it left nothing behind).
  afterEach(async () => {
    for (;;) {
      try {
        await me.receive({ timeout: 300 });
      } catch {
        return;
      }
    }
  });

  after(async () => {
    await Promise.all([...live].map((p) => p.stop()));
    await me?.close();
    await daemon?.stop();
  });

  test('1. a link is used where both ends can; links: false and a bounded inbox keep the kernel path', async () => {
    const a = await peer('ol-a');
    await a.ok('send', { to: 'ol-me', value: 'over a link' });
    const m = await me.receive({ timeout: 10_000 });
    assert.equal(m.data, 'over a link');
    assert.equal(m.sender, 'ol-a');
    assert.deepEqual(await linksOf('ol-a'), ['ol-me'], "A's links name the receiver");
    assert.deepEqual(await linksOf('ol-me'), [], 'the receiver sends over no link');
    const status = await me.status();
    assert.deepEqual(
      status.processes.find((p) => p.name === 'ol-a')?.links,
      ['ol-me'],
      'status() says so too',
    );

    const off = await peer('ol-a-off', { links: false });
    await off.ok('send', { to: 'ol-me', value: 'through the kernel' });
    const m2 = await me.receive({ timeout: 10_000 });
    assert.equal(m2.data, 'through the kernel');
    assert.equal(m2.sender, 'ol-a-off');
    assert.deepEqual(await linksOf('ol-a-off'), [], 'links: false: no link');

    const rxOff = await peer('ol-rx-off', { links: false });
    await a.ok('send', { to: 'ol-rx-off', value: 'to a receiver with links: false' });
    const got0 = await rxOff.ok<Described>('receive', { options: { timeout: 10_000 } });
    assert.deepEqual([got0.sender, got0.data], ['ol-a', 'to a receiver with links: false']);
    assert.deepEqual(await linksOf('ol-a'), ['ol-me'], 'no link to a receiver with links: false');

    const bounded = await peer('ol-bounded', { inboxCapacity: 16 });
    await a.ok('send', { to: 'ol-bounded', value: 'to a bounded inbox' });
    const got = await bounded.ok<Described>('receive', { options: { timeout: 10_000 } });
    assert.deepEqual([got.sender, got.data], ['ol-a', 'to a bounded inbox']);
    assert.deepEqual(await linksOf('ol-a'), ['ol-me'], 'no link to a bounded inbox');
    await assertEmpty();
  });

  test('2. FIFO per link under load: 2 senders x 20,000 mixed-size messages (ring and socket)', async () => {
    const N = 20_000;
    const BIG = OVER_RING;
    const EVERY = 250;
    const s1 = await peer('ol-fifo-1');
    const s2 = await peer('ol-fifo-2');
    const streams = [
      s1.ok('stream', { to: 'ol-me', count: N, senderId: 1, small: 64, bigEvery: EVERY, big: BIG }),
      s2.ok('stream', { to: 'ol-me', count: N, senderId: 2, small: 64, bigEvery: EVERY, big: BIG }),
    ];
    const next = new Map<number, number>([
      [1, 0],
      [2, 0],
    ]);
    const names = new Map([
      [1, 'ol-fifo-1'],
      [2, 'ol-fifo-2'],
    ]);
    let big = 0;
    for (let i = 0; i < 2 * N; i++) {
      const m = await me.receive({ timeout: 60_000 });
      const s = decodeSeq(m.data);
      assert.ok(s !== undefined, `message ${i} is intact`);
      assert.equal(m.sender, names.get(s.senderId), 'the sender named matches the payload');
      assert.equal(s.seq, next.get(s.senderId), `sender ${s.senderId}: in order, no gap, no duplicate`);
      assert.equal(s.size, mixedSize(s.seq, 64, EVERY, BIG));
      next.set(s.senderId, s.seq + 1);
      if (s.size > 64 * 1024) big++;
    }
    assert.deepEqual(await Promise.all(streams), [N, N]);
    assert.equal(next.get(1), N);
    assert.equal(next.get(2), N);
    assert.equal(big, (2 * N) / EVERY, 'the large ones (socket path) came too');
    assert.deepEqual(await linksOf('ol-fifo-1'), ['ol-me']);
    assert.deepEqual(await linksOf('ol-fifo-2'), ['ol-me']);
    await assertEmpty();
  });

  test('3. receive from anyone names each sender; receive({ from }) picks one while the others wait', async () => {
    const senders = await Promise.all(['ol-x', 'ol-y', 'ol-z'].map((n) => peer(n)));
    for (const s of senders)
      for (let i = 0; i < 5; i++) await s.ok('send', { to: 'ol-me', value: { from: s.name, i } });
    const pids = new Map((await me.listProcesses()).map((p) => [p.name, p.pid]));
    const seen = new Map<string, number[]>();
    for (let i = 0; i < 15; i++) {
      const m = (await me.receive({ timeout: 10_000 })) as Message<{ from: string; i: number }>;
      assert.equal(m.sender, m.data.from, 'the message names its real sender');
      assert.equal(m.senderPid, pids.get(m.data.from), 'and its pid');
      seen.set(m.sender, [...(seen.get(m.sender) ?? []), m.data.i]);
    }
    for (const s of senders) assert.deepEqual(seen.get(s.name), [0, 1, 2, 3, 4], `${s.name} in order`);
    for (const s of senders) assert.deepEqual(await linksOf(s.name), ['ol-me']);

    const [x, y, z] = senders as [LinkPeer, LinkPeer, LinkPeer];
    await x.ok('send', { to: 'ol-me', value: 'x1' });
    await y.ok('send', { to: 'ol-me', value: 'y1' });
    await waitFor(async () => (await myDepth()) === 2, 10_000, 'x1 and y1 here');
    const fromY = await me.receive({ from: 'ol-y', nonblock: true });
    assert.deepEqual([fromY.sender, fromY.data], ['ol-y', 'y1']);
    await assert.rejects(me.receive({ from: 'ol-z', nonblock: true }), { code: 'WOULD_BLOCK' });

    let settled = false;
    const fromZ = me.receive({ from: 'ol-z', timeout: 30_000 }).finally(() => {
      settled = true;
    });
    await x.ok('send', { to: 'ol-me', value: 'x2' });
    await waitFor(async () => (await myDepth()) === 2, 10_000, 'x2 here');
    assert.equal(settled, false, "x's messages do not satisfy a receive from z");
    await z.ok('send', { to: 'ol-me', value: 'z1' });
    const mz = await fromZ;
    assert.deepEqual([mz.sender, mz.data], ['ol-z', 'z1']);
    const rest = [await me.receive({ nonblock: true }), await me.receive({ nonblock: true })];
    assert.deepEqual(
      rest.map((m) => [m.sender, m.data]),
      [
        ['ol-x', 'x1'],
        ['ol-x', 'x2'],
      ],
    );
    await assertEmpty();
  });

  test('4. priorities over a link: highest first, FIFO within a priority', async () => {
    const p = await peer('ol-prio');
    const N = 60;
    const prio = (i: number) => [0, 3, 1, 2, 3, 0, 2][i % 7]!;
    for (let i = 0; i < N; i++) {
      // Some large ones: their ring marker keeps their place.
      // Two of them, so they fit what the receiver holds before it stops reading (LOCAL_BYTES_MAX).
      const size = i % 29 === 5 ? OVER_RING : 64;
      await p.ok('send', { to: 'ol-me', value: { seq: [4, i, size] }, options: { priority: prio(i) } });
    }
    assert.deepEqual(await linksOf('ol-prio'), ['ol-me']);
    await waitFor(
      async () => (await me.peek({ count: 100 })).messages.length === N,
      10_000,
      'all of them here',
    );
    const got: [number, number][] = [];
    for (let i = 0; i < N; i++) {
      const m = await me.receive({ nonblock: true });
      got.push([m.priority, decodeSeq(m.data)!.seq]);
    }
    const want = Array.from({ length: N }, (_, i) => [prio(i), i] as [number, number]).sort(
      (a, b) => b[0] - a[0] || a[1] - b[1],
    );
    assert.deepEqual(got, want);
    await assertEmpty();
  });

  test('5. a sender SIGKILLed mid-stream: a gapless prefix with every resolved send; exit lost; relinks', async () => {
    const k = await peer('ol-kill');
    await me.monitor('ol-kill');
    const progress = join(daemon.dir, 'kill-progress');
    const stream = k.call('stream', {
      to: 'ol-me',
      count: 10_000_000,
      senderId: 5,
      small: 64,
      bigEvery: 97,
      big: 80 * 1024,
      progress,
    });
    const resolvedSoFar = () => {
      try {
        const lines = readFileSync(progress, 'utf8').split('\n');
        return Number(lines[lines.length - 2] ?? 0);
      } catch {
        return 0;
      }
    };
    const got: (number | 'corrupt')[] = [];
    let killed = false;
    const receiving = (async () => {
      for (;;) {
        let m: Message;
        try {
          m = await me.receive({ timeout: killed ? 3000 : 30_000 });
        } catch (e) {
          if ((e as { code?: string }).code === 'TIMEOUT' && killed) return;
          throw e;
        }
        const s = decodeSeq(m.data);
        got.push(s === undefined || s.senderId !== 5 || m.sender !== 'ol-kill' ? 'corrupt' : s.seq);
      }
    })();
    await waitFor(() => resolvedSoFar() >= 8000, 60_000, '8000 resolved sends');
    // The receiver reads concurrently, so some are still in the ring or the socket when the sender dies.
    await k.kill();
    killed = true;
    const resolved = resolvedSoFar();
    assert.equal((await stream).code, 'PEER_EXITED');
    await receiving;
    await waitFor(() => exits.some((e) => e.process === 'ol-kill'), 10_000, "the sender's exit");
    assert.equal(exits.find((e) => e.process === 'ol-kill')!.reason, 'lost');
    assert.ok(!got.includes('corrupt'), 'no corrupt or phantom message');
    const seqs = got as number[];
    const firstBad = seqs.findIndex((s, i) => s !== i);
    assert.equal(firstBad, -1, `a gapless prefix without duplicates (first off at ${firstBad})`);
    assert.ok(
      seqs.length >= resolved,
      `every send that resolved was received (${seqs.length} received, ${resolved} resolved)`,
    );
    await assertEmpty();

    // The receiver keeps working: a new process of that name links again.
    const k2 = await peer('ol-kill');
    assert.equal(await k2.ok('stream', { to: 'ol-me', count: 200, senderId: 6, small: 64 }), 200);
    assert.deepEqual(await linksOf('ol-kill'), ['ol-me']);
    const again: number[] = [];
    for (let i = 0; i < 200; i++) {
      const m = await me.receive({ from: 'ol-kill', timeout: 10_000 });
      const s = decodeSeq(m.data);
      assert.equal(s?.senderId, 6);
      again.push(s.seq);
    }
    assert.deepEqual(
      again,
      Array.from({ length: 200 }, (_, i) => i),
    );
    await assertEmpty();
  });

  /** Test 6 for one message size: fill the link to a receiver that does not read, then SIGKILL it. */
  async function receiverKilledWhileBlocked(size: number): Promise<void> {
    const r = await peer(`ol-r6-${size}`);
    const s = await peer(`ol-s6-${size}`);
    const stuck = await s.ok<{ resolved: number; pendingSeq: number }>('sendUntilStuck', {
      to: r.name,
      senderId: 6,
      size,
      stuckMs: 1500,
      key: 'stuck',
    });
    assert.ok(stuck.resolved > 0);
    assert.deepEqual(await linksOf(s.name), [r.name], 'it went over a link');
    await s.ok('startSend', { to: r.name, value: { seq: [6, stuck.pendingSeq + 1, size] }, key: 'later' });
    assert.equal(await s.ok('isSettled', { key: 'stuck' }), 'pending', 'blocked for room');
    assert.equal(await s.ok('isSettled', { key: 'later' }), 'pending', 'and the next one behind it');
    await r.kill();
    const [a, b] = await Promise.all([
      s.ok<Settled>('settle', { key: 'stuck' }),
      s.ok<Settled>('settle', { key: 'later' }),
    ]);
    assert.deepEqual(
      [a.code, b.code],
      ['NO_SUCH_PROCESS', 'NO_SUCH_PROCESS'],
      `size ${size}: the waiting send and the one behind it (${JSON.stringify([a, b])})`,
    );
    assert.ok(a.ms < 5000 && b.ms < 5000, `within a few seconds (${a.ms}, ${b.ms} ms)`);
    assert.equal(await s.failsWith('send', { to: r.name, value: 'after' }), 'NO_SUCH_PROCESS');
    assert.equal(
      await s.failsWith('send', { to: r.name, value: 'after', options: { nonblock: true } }),
      'NO_SUCH_PROCESS',
    );
    await s.stop();
  }

  test('6a. a receiver SIGKILLed while a sender waits for ring room (32 KiB): sends fail NO_SUCH_PROCESS', () =>
    receiverKilledWhileBlocked(32 * 1024));

  // Regression (link-sender.ts flush): a large message waiting in the link
  // socket's write queue when the receiver dies must fail NO_SUCH_PROCESS (it once resolved): Node
  // calls a write callback with `null` (no error) when the socket was destroyed before the write
  // completed (lib/internal/stream_base_commons.js onWriteComplete), and LinkSender.flush() takes
  // "no error" to mean "in the OS socket buffer" unless it also checks the socket, or it resolves bytes that never
  // reached the receiver.
  test('6b. a receiver SIGKILLed while large (over the ring limit) sends wait on the socket: they fail NO_SUCH_PROCESS', () =>
    receiverKilledWhileBlocked(OVER_RING));

  test('7. backpressure: a receiver that does not read blocks its sender; nonblock, timeout, abort fail cleanly', async () => {
    const SIZE = 32 * 1024;
    const s = await peer('ol-bp');
    const stuck = await s.ok<{ resolved: number; pendingSeq: number; bytes: number }>('sendUntilStuck', {
      to: 'ol-me',
      senderId: 7,
      size: SIZE,
      stuckMs: 1500,
      key: 'blocked',
    });
    assert.deepEqual(await linksOf('ol-bp'), ['ol-me']);
    assert.ok(stuck.resolved > 0, 'some went through');
    assert.ok(stuck.bytes < 64 * 1024 * 1024, `bounded: ${stuck.bytes} bytes resolved before blocking`);
    assert.equal(
      await s.failsWith('send', {
        to: 'ol-me',
        value: { seq: [7, 900_001, 64] },
        options: { nonblock: true },
      }),
      'WOULD_BLOCK',
    );
    assert.equal(
      await s.failsWith('send', { to: 'ol-me', value: { seq: [7, 900_002, 64] }, options: { timeout: 300 } }),
      'TIMEOUT',
    );
    await s.ok('startSend', {
      to: 'ol-me',
      value: { seq: [7, 900_003, 64] },
      options: { abortKey: 'ab' },
      key: 'aborted',
    });
    await s.ok('abort', { key: 'ab' });
    assert.equal((await s.ok<Settled>('settle', { key: 'aborted' })).code, 'ABORTED');
    await s.ok('startSend', { to: 'ol-me', value: { seq: [7, stuck.pendingSeq + 1, SIZE] }, key: 'after' });
    assert.equal(await s.ok('isSettled', { key: 'blocked' }), 'pending', 'still waiting for room');

    const total = stuck.pendingSeq + 2;
    const seqs: number[] = [];
    for (let i = 0; i < total; i++) {
      const m = await me.receive({ timeout: 30_000 });
      const d = decodeSeq(m.data);
      assert.equal(d?.senderId, 7);
      seqs.push(d.seq);
    }
    assert.deepEqual(
      seqs,
      Array.from({ length: total }, (_, i) => i),
    );
    assert.equal((await s.ok<Settled>('settle', { key: 'blocked' })).ok, true);
    assert.equal((await s.ok<Settled>('settle', { key: 'after' })).ok, true);
    // Nothing from the failed sends, even later.
    await new Promise((r) => setTimeout(r, 500));
    await assertEmpty();
  });

  test('8. sync: true over a link resolves when taken; a timed-out one is never received', async () => {
    const s = await peer('ol-sync');
    for (const size of [64, OVER_RING]) {
      await s.ok('startSend', {
        to: 'ol-me',
        value: { seq: [8, size, size] },
        options: { sync: true },
        key: 'k',
      });
      await waitFor(async () => (await myDepth()) === 1, 10_000, 'the sync message here');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await s.ok('isSettled', { key: 'k' }), 'pending', `size ${size}: not before it is taken`);
      const m = await me.receive({ nonblock: true });
      assert.equal(decodeSeq(m.data)?.seq, size);
      const r = await s.ok<Settled>('settle', { key: 'k' });
      assert.equal(r.ok, true, `size ${size}: resolved once taken`);
    }
    assert.deepEqual(await linksOf('ol-sync'), ['ol-me']);

    for (const size of [64, OVER_RING]) {
      assert.equal(
        await s.failsWith('send', {
          to: 'ol-me',
          value: { seq: [8, 1_000 + size, size] },
          options: { sync: true, timeout: 500 },
        }),
        'TIMEOUT',
        `size ${size}`,
      );
      await assertEmpty();
      await new Promise((r) => setTimeout(r, 300));
      await assertEmpty();
    }
    // The link still works after the withdrawals.
    const late = s.ok('send', { to: 'ol-me', value: 'taken', options: { sync: true, timeout: 10_000 } });
    const m = await me.receive({ timeout: 10_000 });
    assert.equal(m.data, 'taken');
    await late;
  });

  test('9. without the native addon (sender or receiver) messages go through the kernel, no link', async () => {
    const env = { IPCBOX_NATIVE_ADDON: join(daemon.dir, 'no-such-addon.node') };
    const f1 = await peer('ol-noaddon-sender', {}, env);
    await f1.ok('send', { to: 'ol-me', value: 'from an addon-less sender' });
    const m = await me.receive({ timeout: 10_000 });
    assert.deepEqual([m.sender, m.data], ['ol-noaddon-sender', 'from an addon-less sender']);
    assert.deepEqual(await linksOf('ol-noaddon-sender'), []);

    const f2 = await peer('ol-noaddon-receiver', {}, env);
    assert.deepEqual(linkAddressesOf(f2.osPid), [], 'an addon-less receiver does not listen');
    const f3 = await peer('ol-addon-sender');
    for (let i = 0; i < 20; i++) await f3.ok('send', { to: f2.name, value: i });
    const got = await f2.ok<Described[]>('collect', { count: 20, idleMs: 5000 });
    assert.deepEqual(
      got.map((d) => [d.sender, d.data]),
      Array.from({ length: 20 }, (_, i) => ['ol-addon-sender', i]),
    );
    assert.deepEqual(await linksOf('ol-addon-sender'), []);
    // That sender does link where it can.
    await f3.ok('send', { to: 'ol-me', value: 'linked' });
    assert.equal((await me.receive({ timeout: 10_000 })).data, 'linked');
    assert.deepEqual(await linksOf('ol-addon-sender'), ['ol-me']);
  });

  test("10. strangers at a receiver's link address: garbage, wrong tokens, floods; it stays healthy", async () => {
    const h = await peer('ol-h');
    const s = await peer('ol-h-sender');
    await s.ok('send', { to: 'ol-h', value: 'before' });
    assert.equal((await h.ok<Described>('receive', { options: { timeout: 10_000 } })).data, 'before');
    assert.deepEqual(await linksOf('ol-h-sender'), ['ol-h']);
    // Only this receiver's listener (the address carries its OS pid): other processes on the host are left alone.
    const addresses = linkAddressesOf(h.osPid);
    assert.equal(addresses.length, 1, 'the receiver listens on one link address');
    const address = addresses[0]!;

    const hex = () => randomBytes(16).toString('hex');
    const oversized = Buffer.alloc(16);
    oversized.writeUInt32LE(0xffffffff, 0);
    const attempts = [
      knock(address, randomBytes(4096)),
      knock(address, helloFrame(hex())),
      knock(address, helloFrame(`${hex()} ipcbox-link-${process.pid}-${randomBytes(8).toString('hex')}`)),
      knock(address, helloFrame(`${hex()} ipcbox-link-${h.osPid}-${randomBytes(8).toString('hex')}`)),
      knock(address, Buffer.concat([helloFrame(hex()), dataFrame(Buffer.from('"phantom"'))])),
      knock(address, oversized),
      knock(address, helloFrame('not a token')),
      knock(address, helloFrame(`${hex()} a b`)),
    ];
    // And a flood of connections that say nothing, beyond what the receiver lets wait.
    const idle = Array.from({ length: 100 }, () => knock(address));
    // Meanwhile a real sender that was already linked keeps going.
    for (let i = 0; i < 50; i++) await s.ok('send', { to: 'ol-h', value: i });
    const during = await h.ok<Described[]>('collect', { count: 50, idleMs: 5000 });
    assert.deepEqual(
      during.map((d) => d.data),
      Array.from({ length: 50 }, (_, i) => i),
    );
    // A new sender during the flood: its messages arrive (over a link or, refused, through the kernel).
    const s2 = await peer('ol-h-sender-2');
    await s2.ok('send', { to: 'ol-h', value: 'during the flood' });
    const d2 = await h.ok<Described>('receive', { options: { timeout: 10_000 } });
    assert.deepEqual([d2.sender, d2.data], ['ol-h-sender-2', 'during the flood']);

    const times = await Promise.all(attempts.map((a) => a.closed));
    for (const [i, ms] of times.entries()) assert.ok(ms < 9000, `stranger ${i} dropped in ${ms} ms`);
    const idleTimes = await Promise.all(idle.map((a) => a.closed));
    assert.ok(Math.max(...idleTimes) < 9000, 'silent strangers dropped too');
    assert.equal(
      (await h.ok<{ messages: unknown[] }>('peek', { count: 10 })).messages.length,
      0,
      'no phantom message',
    );

    // After the attack: a new sender links and is received, in order.
    const s3 = await peer('ol-h-sender-3');
    for (let i = 0; i < 100; i++) await s3.ok('send', { to: 'ol-h', value: i });
    assert.deepEqual(await linksOf('ol-h-sender-3'), ['ol-h']);
    const after3 = await h.ok<Described[]>('collect', { count: 100, idleMs: 5000 });
    assert.deepEqual(
      after3.map((d) => [d.sender, d.data]),
      Array.from({ length: 100 }, (_, i) => ['ol-h-sender-3', i]),
    );
    await s.ok('send', { to: 'ol-h', value: 'old link still fine' });
    assert.equal(
      (await h.ok<Described>('receive', { options: { timeout: 10_000 } })).data,
      'old link still fine',
    );
    assert.equal(await h.failsWith('receive', { options: { nonblock: true } }), 'WOULD_BLOCK');
  });

  // Regression (process.ts receive from): receive({ from: name }) resolves
  // the name with `this.conn.knownPid(bare) ?? this.listener?.pidOf(bare)`: the pid the Connection
  // learned from the kernel's 'peer' notices wins over the one the LinkListener learned when the
  // new process linked, and link messages never update the Connection's map. So once an earlier
  // process of the name sent through the kernel, a later one of that name sending over a link is
  // never matched: the receive waits for the dead pid (TIMEOUT here, forever without a timeout).
  test('11. receive({ from }) names the current process of that name when it comes back over a link', async () => {
    // The first process of the name sends through the kernel (the receiver learns its pid from the kernel)...
    const old = await peer('ol-again', { links: false });
    await old.ok('send', { to: 'ol-me', value: 'old' });
    assert.equal((await me.receive({ from: 'ol-again', timeout: 10_000 })).data, 'old');
    await old.stop();
    await waitFor(
      async () => !(await me.listProcesses()).some((p) => p.name === 'ol-again'),
      10_000,
      'the first one gone',
    );
    // ...the next one over a link: a receive from that name must take its message.
    const neu = await peer('ol-again');
    await neu.ok('send', { to: 'ol-me', value: 'new' });
    assert.deepEqual(await linksOf('ol-again'), ['ol-me']);
    await waitFor(async () => (await myDepth()) === 1, 10_000, 'the new message here');
    const m = await me.receive({ from: 'ol-again', timeout: 5000 });
    assert.deepEqual([m.sender, m.data], ['ol-again', 'new']);
    await assertEmpty();
  });

  test('12. a sender SIGKILLed while its receiver is not reading: every resolved send is still received, in order', async () => {
    for (const size of [32 * 1024, OVER_RING]) {
      const k = await peer(`ol-kill-full-${size}`);
      const stuck = await k.ok<{ resolved: number; pendingSeq: number }>('sendUntilStuck', {
        to: 'ol-me',
        senderId: 12,
        size,
        stuckMs: 1500,
        key: 'stuck',
      });
      assert.deepEqual(await linksOf(k.name), ['ol-me']);
      await k.kill();
      const seqs: number[] = [];
      for (;;) {
        let m: Message;
        try {
          m = await me.receive({ timeout: 3000 });
        } catch (e) {
          if ((e as { code?: string }).code === 'TIMEOUT') break;
          throw e;
        }
        const d = decodeSeq(m.data);
        assert.ok(d !== undefined && d.senderId === 12 && d.size === size, 'intact');
        assert.equal(m.sender, k.name);
        seqs.push(d.seq);
      }
      assert.ok(
        seqs.length >= stuck.resolved && seqs.length <= stuck.resolved + 1,
        `size ${size}: ${seqs.length} received, ${stuck.resolved} resolved`,
      );
      assert.deepEqual(
        seqs,
        Array.from({ length: seqs.length }, (_, i) => i),
      );
      await assertEmpty();
    }
  });

  test('13. a receiver that died comes back under its name: the sender links to the new one', async () => {
    const s = await peer('ol-s13');
    const r1 = await peer('ol-r13');
    await s.ok('send', { to: 'ol-r13', value: 'one' });
    assert.equal((await r1.ok<Described>('receive', { options: { timeout: 10_000 } })).data, 'one');
    await r1.kill();
    await waitFor(
      async () => !(await me.listProcesses()).some((p) => p.name === 'ol-r13'),
      10_000,
      'the first receiver gone',
    );
    assert.equal(await s.failsWith('send', { to: 'ol-r13', value: 'nobody' }), 'NO_SUCH_PROCESS');
    const r2 = await peer('ol-r13');
    for (let i = 0; i < 20; i++) await s.ok('send', { to: 'ol-r13', value: i });
    assert.deepEqual(await linksOf('ol-s13'), ['ol-r13']);
    const got = await r2.ok<Described[]>('collect', { count: 20, idleMs: 5000 });
    assert.deepEqual(
      got.map((d) => [d.sender, d.data]),
      Array.from({ length: 20 }, (_, i) => ['ol-s13', i]),
    );
  });

  test('8b. sync: true over a link aborted before it is taken: ABORTED, and never received', async () => {
    const s = await peer('ol-sync-abort');
    for (const size of [64, OVER_RING]) {
      await s.ok('startSend', {
        to: 'ol-me',
        value: { seq: [81, size, size] },
        options: { sync: true, abortKey: `a${size}` },
        key: `k${size}`,
      });
      await waitFor(async () => (await myDepth()) === 1, 10_000, 'the sync message here');
      await s.ok('abort', { key: `a${size}` });
      const r = await s.ok<Settled>('settle', { key: `k${size}` });
      assert.equal(r.code, 'ABORTED', `size ${size}`);
      await assertEmpty();
    }
    assert.deepEqual(await linksOf('ol-sync-abort'), ['ol-me']);
  });

  test('14. ack: true over a link: a nacked message comes back first, then the rest in order', async () => {
    const s = await peer('ol-nack');
    for (let i = 0; i < 3; i++) await s.ok('send', { to: 'ol-me', value: i });
    assert.deepEqual(await linksOf('ol-nack'), ['ol-me']);
    const first = await me.receive({ ack: true, timeout: 10_000 });
    assert.equal(first.data, 0);
    first.nack();
    const again = await me.receive({ ack: true, timeout: 10_000 });
    assert.deepEqual([again.sender, again.data], ['ol-nack', 0]);
    again.ack();
    assert.equal((await me.receive({ timeout: 10_000 })).data, 1);
    assert.equal((await me.receive({ timeout: 10_000 })).data, 2);
    await assertEmpty();
  });

  test('15. sizes at the edges over a link: around the ring limit, past the send buffer, the largest allowed', async () => {
    const s = await peer('ol-sizes');
    const max = me.maxMessageSize;
    const sizes = [12, 65_535, 65_536, 65_537, 65_544, 65_545, 1 << 20, (1 << 20) + 1, 5 << 20, max, 64];
    for (const [i, size] of sizes.entries())
      await s.ok('send', { to: 'ol-me', value: { seq: [15, i, size] }, options: { priority: 0 } });
    assert.equal(
      await s.failsWith('send', { to: 'ol-me', value: { seq: [15, 99, max + 1] } }),
      'MESSAGE_TOO_LARGE',
    );
    await s.ok('send', { to: 'ol-me', value: '' });
    assert.deepEqual(await linksOf('ol-sizes'), ['ol-me']);
    for (const [i, size] of sizes.entries()) {
      const m = await me.receive({ timeout: 30_000 });
      const d = decodeSeq(m.data);
      assert.deepEqual([d?.senderId, d?.seq, d?.size], [15, i, size], `message ${i} (${size} bytes)`);
    }
    assert.equal((await me.receive({ timeout: 10_000 })).data, '');
    await assertEmpty();
  });

  // Regression (link-listener.ts, close while a marker waits): InboundLink reads the large
  // message's ring marker and sets `awaitingSocket` (line ~417); the sender dies with that message
  // half-written on the socket; the socket's 'close' handler (line ~282) sets `ended` and calls
  // drain(), but drain() stops at once on `awaitingSocket` (line ~370), which nothing clears once
  // the socket is gone. The small messages behind the marker stay in the ring unread, though their
  // sends had resolved (link-sender.ts line ~236: a ring send resolves as soon as it is in the ring).
  test('16. a sender SIGKILLed with a large message half-written on the socket: the small sends after it that resolved are received', async () => {
    const MiB = 1 << 20;
    const s = await peer('ol-pipe');
    // 8 MiB unread here: the receiver stops reading the link (its ring still has room).
    assert.equal(await s.ok('stream', { to: 'ol-me', count: 8, senderId: 16, small: MiB }), 8);
    assert.deepEqual(await linksOf('ol-pipe'), ['ol-me']);
    // A large one (its ring marker goes in, its bytes wait on the socket), then small ones into the ring.
    const items = [[16, 8, 2 * MiB], ...Array.from({ length: 50 }, (_, i) => [16, 9 + i, 64])];
    await s.ok('pipeline', { to: 'ol-me', items });
    await waitFor(
      () => s.events.filter((e) => e.event === 'resolved').length >= 50,
      10_000,
      'the small sends resolved',
    );
    await new Promise((r) => setTimeout(r, 500));
    const resolved = s.events.filter((e) => e.event === 'resolved').map((e) => e.seq as number);
    assert.ok(!resolved.includes(8), 'the large one is still on its way (the scenario holds)');
    await s.kill();
    const seqs: number[] = [];
    for (;;) {
      let m: Message;
      try {
        m = await me.receive({ timeout: 3000 });
      } catch (e) {
        if ((e as { code?: string }).code === 'TIMEOUT') break;
        throw e;
      }
      const d = decodeSeq(m.data);
      assert.equal(d?.senderId, 16, 'intact');
      seqs.push(d.seq);
    }
    assert.deepEqual(seqs.slice(0, 8), [0, 1, 2, 3, 4, 5, 6, 7]);
    const missing = resolved.filter((x) => !seqs.includes(x));
    assert.deepEqual(missing, [], `resolved sends never received (received: ${JSON.stringify(seqs)})`);
  });

  test('17. large messages by map over a link: read in place, in order with small ones; held views never change, and past the chunks the sender copies', async () => {
    const MiB = 1 << 20;
    const s = await peer('ol-map');
    // 12 large (more than the link's 8 chunks) between small ones, none released while they come.
    const items = Array.from({ length: 24 }, (_, i) => [17, i, i % 2 === 0 ? MiB : 100]);
    await s.ok('pipeline', { to: 'ol-me', items });
    assert.deepEqual(await linksOf('ol-map'), ['ol-me']);
    const got: Message[] = [];
    for (let i = 0; i < items.length; i++) got.push(await me.receive({ timeout: 30_000 }));
    assert.deepEqual(
      got.map((m) => decodeSeq(m.data)?.seq),
      items.map((x) => x[1]),
      'every message intact, in order',
    );
    const large = got.filter((_, i) => i % 2 === 0);
    const mapped = large.filter((m) => m.mapped).length;
    assert.ok(
      mapped >= 1 && mapped <= 8,
      `${mapped} of 12 large ones lent from the link's chunks (at most 8 at once)`,
    );
    assert.ok(
      large.some((m) => !m.mapped),
      'with every chunk lent, the rest came by copy',
    );
    assert.ok(!got.filter((_, i) => i % 2 === 1).some((m) => m.mapped), 'small ones are copied');
    // More large ones while the views are held: they must not land under a held view.
    await s.ok('stream', { to: 'ol-me', count: 6, start: 100, senderId: 17, small: MiB });
    const more: Message[] = [];
    for (let i = 0; i < 6; i++) more.push(await me.receive({ timeout: 30_000 }));
    for (const [i, m] of large.entries())
      assert.equal(decodeSeq(m.bytes)?.seq, i * 2, `held view ${i} unchanged`);
    assert.deepEqual(
      more.map((m) => decodeSeq(m.bytes)?.seq),
      [100, 101, 102, 103, 104, 105],
    );
    // Released, the chunks serve again.
    for (const m of [...got, ...more]) m.release();
    await s.ok('stream', { to: 'ol-me', count: 4, start: 200, senderId: 17, small: MiB });
    const again: Message[] = [];
    for (let i = 0; i < 4; i++) again.push(await me.receive({ timeout: 30_000 }));
    assert.ok(
      again.every((m) => m.mapped),
      'mapped again once released',
    );
    assert.deepEqual(
      again.map((m) => decodeSeq(m.data)?.seq),
      [200, 201, 202, 203],
    );
    for (const m of again) m.release();
    await assertEmpty();
  });

  test('18. a sender SIGKILLed while its receiver holds mapped views: the views stay readable and intact', async () => {
    const MiB = 1 << 20;
    const s = await peer('ol-map-die');
    await s.ok('stream', { to: 'ol-me', count: 4, senderId: 18, small: MiB });
    const held: Message[] = [];
    for (let i = 0; i < 4; i++) held.push(await me.receive({ timeout: 30_000 }));
    assert.ok(
      held.every((m) => m.mapped),
      'lent from the link region',
    );
    await s.kill();
    await waitFor(
      async () => !(await me.listProcesses()).some((p) => p.name === 'ol-map-die'),
      10_000,
      'gone',
    );
    assert.deepEqual(
      held.map((m) => decodeSeq(m.bytes)?.seq),
      [0, 1, 2, 3],
    );
    for (const m of held) m.release();
    await assertEmpty();
  });

  test('19. a receiver SIGKILLed holding mapped views: the sender relinks to its successor and maps again', async () => {
    const MiB = 1 << 20;
    const r1 = await peer('ol-map-rx');
    for (let i = 0; i < 8; i++) await me.send('ol-map-rx', encodeSeq(19, i, MiB));
    assert.deepEqual(await r1.ok('hold', { count: 8 }), Array(8).fill(true), 'all 8 chunks lent out');
    // With the chunks all held, the next ones copy: the sender never waits for them.
    await me.send('ol-map-rx', encodeSeq(19, 8, MiB), { timeout: 5000 });
    assert.deepEqual(await r1.ok('hold', { count: 1 }), [false]);
    await r1.kill();
    await waitFor(
      async () => !(await me.listProcesses()).some((p) => p.name === 'ol-map-rx'),
      10_000,
      'gone',
    );
    await assert.rejects(me.send('ol-map-rx', encodeSeq(19, 9, MiB), { timeout: 5000 }), {
      code: 'NO_SUCH_PROCESS',
    });
    const r2 = await peer('ol-map-rx');
    for (let i = 0; i < 3; i++) await me.send('ol-map-rx', encodeSeq(19, 10 + i, MiB));
    assert.deepEqual(await r2.ok('hold', { count: 3 }), [true, true, true], 'a fresh link, mapped again');
    await r2.stop();
  });

  test('20. status counts link traffic: each process reports what it sent, got and holds over its links', async () => {
    const s = await peer('ol-count');
    const before = (await me.listProcesses()).find((p) => p.name === 'ol-me')!;
    await s.ok('stream', { to: 'ol-me', count: 30, senderId: 20, small: 64 });
    assert.deepEqual(await linksOf('ol-count'), ['ol-me']);
    for (let i = 0; i < 10; i++) await me.receive({ timeout: 10_000 });
    const find = async (name: string) => (await me.listProcesses()).find((p) => p.name === name)!;
    await waitFor(
      async () => (await find('ol-count')).linkSent === 30 && (await find('ol-me')).linkWaiting === 20,
      10_000,
      'the reports',
    );
    const mine = await find('ol-me');
    assert.equal((mine.linkReceived ?? 0) - (before.linkReceived ?? 0), 30);
    const cli = await runCli(['status'], daemon.socketPath);
    const row = cli.stdout.split('\n').find((l) => /\sol-count\s/.test(l)) ?? '';
    const sender = await find('ol-count');
    assert.match(row, new RegExp(`\\s${sender.sent + 30}\\s`), `SENT counts the link: ${row}`);
    for (let i = 0; i < 20; i++) await me.receive({ timeout: 10_000 });
    await assertEmpty();
  });
});
