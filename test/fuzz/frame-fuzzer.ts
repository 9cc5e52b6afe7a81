/**
 * Generated hostile inputs for the kernel, deterministic from a 32-bit seed.
 *
 * An input is a short program one raw-socket connection runs: frames of every
 * op (valid, mutated, or sent the wrong way), raw bytes, writes split at
 * random points, waits for the kernel's answers, and an ending (BYE, close,
 * reset, or lingering). Frames name mailboxes, request ids, delivery ids and
 * process ids symbolically (`TargetRef`, `ReqRef`, `IdRef`, `Word`): the
 * connection resolves them at run time from what the kernel told it (its
 * inbox, the mailboxes it created, the deliveries it got, its credits) and
 * from the well-behaved pair's ids. So `generateInput(seed)` is a pure
 * function, one seed replays one input, and the minimizer can drop steps
 * without leaving dangling ids.
 *
 * Invariants kept for the harness's sake (so a finding is the kernel's, not
 * the fuzzer's): no input force-deletes a protected name (the pair's
 * mailbox), and segment names always carry `segmentPrefix` (the kernel
 * unlinks the POSIX name on removal).
 */
import { serialize } from 'node:v8';
import { MAGIC, Op, PROTOCOL_VERSION, RecvFlag, SendFlag } from '../../src/wire/protocol.js';

// ---------------------------------------------------------------- random numbers

/** mulberry32: small, fast, and good enough to pick test inputs. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** 0..n-1 */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x100000000) * n);
  }

  /** lo..hi inclusive */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** Pick by weight: `[[weight, value], ...]`. */
  weighted<T>(table: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of table) total += w;
    let r = this.int(total);
    for (const [w, v] of table) {
      if (r < w) return v;
      r -= w;
    }
    return table[table.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    // Large buffers repeat a random 256-byte block: generation stays cheap at megabytes.
    const head = Math.min(n, 256);
    for (let i = 0; i < head; i++) b[i] = this.u32() & 0xff;
    for (let i = head; i < n; i += head) b.copy(b, i, 0, Math.min(head, n - i));
    return b;
  }
}

/** A well-mixed 32-bit hash of two values (seed of input `i` in run `seed`). */
export function mixSeed(a: number, b: number): number {
  let h = (a ^ Math.imul(b ^ 0x9e3779b9, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

export function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

// ---------------------------------------------------------------- the input model

/** Where a frame is aimed: a literal id, or one the connection learned at run time. */
export type TargetRef =
  | { lit: number }
  /**
   * own: this connection's inbox; created: mailboxes it created or opened;
   * pair: the well-behaved pair's mailbox and inboxes; credited: a target it
   * holds send credits for; delivered: the mailbox of a delivery it got.
   */
  | { pool: 'own' | 'created' | 'pair' | 'credited' | 'delivered'; pick: number };

/** Request id: a literal (0 = no reply), the next fresh one, or one issued earlier (for CANCEL). */
export type ReqRef = { lit: number } | { fresh: true } | { prev: number };

/**
 * A u32 body word: literal, a pid the connection knows (its own, the pair's,
 * a sender's), or the epoch of the last REVOKE it got.
 */
export type Word = { lit: number } | { pid: 'own' | 'pair' | 'sender'; pick: number } | { epoch: true };

/** A delivery id: literal, or one of the deliveries this connection received. */
export type IdRef = { lit: number } | { delivered: number };

export type Body =
  | { k: 'raw'; bytes: Buffer }
  /** JSON text; the string "@@ID@@" (quotes included) becomes the number `idRef` resolves to. */
  | { k: 'call'; text: string; idRef?: TargetRef }
  | { k: 'words'; words: Word[]; tail: Buffer }
  | { k: 'ids'; ids: IdRef[]; odd: number }
  /** REQUEUE of a message this connection received (the well-behaved give-back), `mutate` false keeps its header. */
  | { k: 'giveBack'; pick: number; mutate: boolean };

export interface FrameStep {
  t: 'frame';
  op: number;
  flags: number;
  priority: number;
  codec: number;
  reqId: ReqRef;
  target: TargetRef;
  body: Body;
  /** Added to the honest length field (mod 2^32): a length that lies. */
  lengthDelta: number;
  /** Send only this many bytes of the encoded frame (-1: all of it). */
  truncate: number;
}

export type AwaitWhat = 'welcome' | 'result' | 'deliver' | 'sent' | 'credit' | 'any' | 'close';

export type Step =
  | FrameStep
  | { t: 'bytes'; bytes: Buffer }
  /** Write what is buffered, cut at these fractions (1/65536 of its length); `spaced` yields between the pieces. */
  | { t: 'flush'; cuts: number[]; spaced: boolean }
  | { t: 'await'; what: AwaitWhat; count: number; ms: number }
  /** Stop / start reading the kernel's output (a receiver that never drains its socket). */
  | { t: 'pause' }
  | { t: 'resume' }
  | { t: 'sleep'; ms: number };

export interface FuzzInput {
  seed: number;
  scenario: string;
  steps: Step[];
  /** bye: BYE frame then close; end: half-close; destroy: drop the socket at once. */
  end: 'bye' | 'end' | 'destroy';
  /** Keep the connection open this long after the last step (it holds its state meanwhile). */
  linger: number;
  /** Answer REVOKE with CREDIT_RETURN, as a well-behaved client does. */
  answerRevoke: boolean;
}

/** What the generator knows about the world it attacks (fixed for a harness). */
export interface FuzzContext {
  maxMessageSize: number;
  /** Process names of the well-behaved clients (NAME_TAKEN, lookups, signals). */
  peerNames: readonly string[];
  /** Mailbox names that exist and must not be force-deleted. */
  protectedMailboxes: readonly string[];
  /** Every segment name a hostile input uses starts with this. */
  segmentPrefix: string;
}

// ---------------------------------------------------------------- generation

const CLIENT_OPS = [
  Op.HELLO,
  Op.CALL,
  Op.SEND,
  Op.RECV,
  Op.DEMAND,
  Op.CANCEL,
  Op.CONSUMED,
  Op.ACK,
  Op.RELEASE,
  Op.REQUEUE,
  Op.CREDIT_RETURN,
  Op.BYE,
] as const;
/** Every op the protocol defines that only the kernel sends (sent the wrong way by hostile inputs). */
const KERNEL_OPS: readonly number[] = Object.values(Op).filter(
  (op) => !(CLIENT_OPS as readonly number[]).includes(op),
);

const METHODS = [
  'mailbox.create',
  'mailbox.open',
  'mailbox.info',
  'mailbox.close',
  'mailbox.delete',
  'mailbox.list',
  'mailbox.grant',
  'mailbox.revoke',
  'mailbox.transfer',
  'mailbox.peek',
  'process.lookup',
  'process.wait',
  'process.list',
  'status',
  'signal',
  'monitor',
  'demonitor',
  'segment.register',
  'segment.attach',
  'segment.detach',
  'segment.info',
  'segment.remove',
  'segment.list',
];

const LIT0: { lit: number } = { lit: 0 };
const FRESH: ReqRef = { fresh: true };

class Builder {
  readonly steps: Step[] = [];
  /** Names of mailboxes this input creates (so later calls can name them). */
  readonly names: string[] = [];
  /** Probability that any one frame gets a mutation. */
  chaos = 0;
  /** A scenario's own ending, when it needs one (else the generator picks). */
  linger: number | undefined;
  answerRevoke: boolean | undefined;
  /** The protocol version this input's HELLO speaks (the kernel still serves the previous one). */
  version = PROTOCOL_VERSION;

  constructor(
    readonly rng: Rng,
    readonly ctx: FuzzContext,
    readonly tag: string,
  ) {}

  push(step: Step): void {
    this.steps.push(step);
  }

  frame(op: number, fields: Partial<Omit<FrameStep, 't' | 'op'>> = {}, mutate = true): FrameStep {
    const f: FrameStep = {
      t: 'frame',
      op,
      flags: fields.flags ?? 0,
      priority: fields.priority ?? 0,
      codec: fields.codec ?? 0,
      reqId: fields.reqId ?? LIT0,
      target: fields.target ?? LIT0,
      body: fields.body ?? { k: 'raw', bytes: Buffer.alloc(0) },
      lengthDelta: fields.lengthDelta ?? 0,
      truncate: fields.truncate ?? -1,
    };
    if (mutate && this.chaos > 0 && this.rng.chance(this.chaos)) mutateFrame(this.rng, f);
    this.steps.push(f);
    return f;
  }

  hello(name = this.tag, mutate = true): void {
    this.frame(
      Op.HELLO,
      { reqId: FRESH, body: { k: 'raw', bytes: helloBody(name, MAGIC, this.version) } },
      false,
    );
    if (mutate && this.chaos > 0 && this.rng.chance(this.chaos)) {
      const f = this.steps[this.steps.length - 1] as FrameStep;
      f.body = { k: 'raw', bytes: mutateHello(this.rng, this.ctx, name) };
      if (this.rng.chance(0.3)) mutateFrame(this.rng, f);
    }
  }

  call(method: string, args: unknown, idRef?: TargetRef): void {
    const text = JSON.stringify({ m: method, a: args });
    const body: Body = idRef === undefined ? { k: 'call', text } : { k: 'call', text, idRef };
    this.frame(Op.CALL, { reqId: FRESH, body });
  }

  await(what: AwaitWhat, count = 1, ms = 25): void {
    this.steps.push({ t: 'await', what, count, ms });
  }

  flush(): void {
    const rng = this.rng;
    const n = rng.weighted([
      [6, 0],
      [2, 1],
      [1, rng.range(2, 12)],
    ]);
    const cuts: number[] = [];
    for (let i = 0; i < n; i++) cuts.push(rng.int(65536));
    cuts.sort((a, b) => a - b);
    this.steps.push({ t: 'flush', cuts, spaced: rng.chance(0.5) });
  }

  /** A new mailbox name; mostly this input's own, sometimes a name in use. */
  newName(): string {
    const name = `${this.tag}-m${this.names.length}`;
    this.names.push(name);
    return name;
  }

  /** A name to use in a call: own mailboxes, the protected ones, peers, or junk. */
  someName(): string {
    const rng = this.rng;
    return rng.weighted<() => string>([
      [4, () => (this.names.length > 0 ? rng.pick(this.names) : this.newName())],
      [2, () => rng.pick(this.ctx.protectedMailboxes)],
      [1, () => rng.pick(this.ctx.peerNames)],
      [1, () => `@${rng.pick(this.ctx.peerNames)}`],
      [2, () => junkString(rng)],
    ])();
  }

  someTarget(): TargetRef {
    return someTarget(this.rng);
  }
}

function helloBody(name: string, magic = MAGIC, version = PROTOCOL_VERSION, cap = 0xffffffff): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(16 + n.length);
  b.writeUInt32LE(magic >>> 0, 0);
  b.writeUInt16LE(version & 0xffff, 4);
  b.writeUInt32LE(process.pid, 8);
  b.writeUInt32LE(cap >>> 0, 12);
  n.copy(b, 16);
  return b;
}

function mutateHello(rng: Rng, ctx: FuzzContext, name: string): Buffer {
  return rng.weighted<() => Buffer>([
    [2, () => helloBody(name, rng.u32())],
    [
      2,
      () =>
        helloBody(
          name,
          MAGIC,
          rng.pick([0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0xffff, rng.u32() & 0xffff]),
        ),
    ],
    [3, () => helloBody(name).subarray(0, rng.int(16))],
    [2, () => helloBody(rng.pick(ctx.peerNames))],
    [3, () => helloBody(junkString(rng))],
    [1, () => helloBody('')],
    [2, () => helloBody(name, MAGIC, PROTOCOL_VERSION, rng.pick([0, 1, 2, rng.u32()]))],
    [1, () => Buffer.concat([helloBody(name), rng.bytes(rng.int(64))])],
    [1, () => rng.bytes(rng.int(40))],
  ])();
}

function someTarget(rng: Rng): TargetRef {
  return rng.weighted<TargetRef>([
    [3, { pool: 'own', pick: rng.u32() }],
    [5, { pool: 'created', pick: rng.u32() }],
    [3, { pool: 'pair', pick: rng.u32() }],
    [1, { pool: 'credited', pick: rng.u32() }],
    [1, { pool: 'delivered', pick: rng.u32() }],
    [1, { lit: 0 }],
    [1, { lit: rng.pick([1, 2, 3, 4, 5, 6, 7, 8, 0xffffffff, 0x7fffffff]) }],
    [1, { lit: rng.u32() }],
  ]);
}

function someWordPid(rng: Rng): Word {
  return rng.weighted<Word>([
    [2, { pid: 'own', pick: 0 }],
    [3, { pid: 'pair', pick: rng.u32() }],
    [2, { pid: 'sender', pick: rng.u32() }],
    [1, { lit: 0 }],
    [1, { lit: rng.u32() }],
    [1, { lit: rng.range(1, 40) }],
  ]);
}

/** Strings that are bad names, big, odd, or innocuous. */
function junkString(rng: Rng): string {
  return rng.weighted<() => string>([
    [2, () => ''],
    [2, () => 'x'.repeat(rng.range(200, 5000))],
    [2, () => ' spaces and\ttabs '],
    [1, () => '\u0000nul\u0000'],
    [1, () => '💥🚀ünïcødé'],
    [1, () => '/slash/name'],
    [1, () => '@'],
    [1, () => '..'],
    [2, () => `junk-${rng.u32().toString(36)}`],
    [1, () => '\ud800'],
  ])();
}

/** A random JSON value: ordinary, deeply nested, or huge. */
function jsonValue(rng: Rng, depth = 0): unknown {
  const leaf = (): unknown =>
    rng.weighted<() => unknown>([
      [3, () => rng.int(1000)],
      [1, () => rng.pick([-1, 0.5, 1e308, -0, 2 ** 53 + 1, 0xffffffff])],
      [3, () => junkString(rng)],
      [2, () => rng.pick([true, false, null])],
      [1, () => 'everyone'],
      [1, () => rng.pick(['send', 'receive', 'both', 'attach', 'exclusive', 'broadcast', 'system'])],
    ])();
  if (depth > 3) return leaf();
  return rng.weighted<() => unknown>([
    [5, leaf],
    [2, () => Array.from({ length: rng.int(5) }, () => jsonValue(rng, depth + 1))],
    [
      2,
      () => {
        const o: Record<string, unknown> = {};
        for (let i = rng.int(5); i > 0; i--)
          o[rng.pick(['name', 'id', 'a', 'options', '__proto__', 'm'])] = jsonValue(rng, depth + 1);
        return o;
      },
    ],
  ])();
}

/** Deep nesting as JSON text (built as text: JSON.stringify itself cannot go this deep). */
function deepJson(rng: Rng): string {
  const depth = rng.pick([100, 1000, 3000, 5000, 20000, 100000]);
  return rng.chance(0.5)
    ? `${'['.repeat(depth)}${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

function mailboxOptions(rng: Rng, ctx: FuzzContext): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (rng.chance(0.8)) o.capacity = rng.pick([0, 1, 2, 3, 4, 16, 1024, 'unbounded', -1, 2 ** 31 + 1, 'lots']);
  if (rng.chance(0.6)) o.delivery = rng.pick(['exclusive', 'round-robin', 'arbitrary', 'broadcast', 'nope']);
  if (rng.chance(0.2)) o.owner = rng.pick(['process', 'system', 'kernel']);
  if (rng.chance(0.3))
    o.maxMessageSize = rng.pick([0, 1, 16, 4096, ctx.maxMessageSize, ctx.maxMessageSize + 1]);
  if (rng.chance(0.15)) o.fixedMessageSize = rng.pick([0, 1, 8, 64, 4096]);
  if (rng.chance(0.2)) o.senders = rng.pick(['everyone', [], ['nobody'], [ctx.peerNames[0]], 7]);
  if (rng.chance(0.2)) o.receivers = rng.pick(['everyone', [], ['nobody'], 'me']);
  return o;
}

/** Args for a control call: mostly well-typed, sometimes wrong, sometimes huge. */
function callArgs(b: Builder, method: string): { args: unknown; idRef?: TargetRef } {
  const { rng, ctx } = b;
  // The prefix always leads: removing a segment unlinks its POSIX name, and only fuzz names may go.
  const seg = (): string =>
    `${ctx.segmentPrefix}${rng.weighted([
      [8, String(rng.int(4))],
      [1, '/x'],
      [1, 'x'.repeat(300)],
      [1, '\u0000'],
    ])}`;
  if (rng.chance(0.08)) return { args: jsonValue(rng) };
  switch (method) {
    case 'mailbox.create':
      return {
        args: { name: rng.chance(0.9) ? b.newName() : b.someName(), options: mailboxOptions(rng, ctx) },
      };
    case 'mailbox.open':
    case 'mailbox.info':
      return { args: { name: b.someName() } };
    case 'mailbox.close':
      return rng.chance(0.85)
        ? { args: { id: '@@ID@@' }, idRef: b.someTarget() }
        : { args: { id: rng.pick([-1, 'x', null, 1.5, rng.u32()]) } };
    case 'mailbox.delete': {
      // Never force-delete a protected mailbox: that is the administrator's right, not a kernel bug.
      const name = b.someName();
      const force = !ctx.protectedMailboxes.includes(name) && rng.chance(0.4);
      return { args: { name, force } };
    }
    case 'mailbox.grant':
    case 'mailbox.revoke':
      return {
        args: {
          name: b.someName(),
          right: rng.pick(['send', 'receive', 'write']),
          who: rng.pick(['everyone', ctx.peerNames[0], [b.tag], [], 42]),
        },
      };
    case 'mailbox.transfer':
      return { args: { name: b.someName(), to: rng.pick([...ctx.peerNames, b.tag, 'nobody']) } };
    case 'mailbox.peek': {
      const count = rng.pick([undefined, 1, 3, 100, 0, 101, -1, 1.5, 'x']);
      return rng.chance(0.85)
        ? { args: { id: '@@ID@@', count }, idRef: b.someTarget() }
        : { args: { id: rng.pick([-1, 'x', null, 1.5, rng.u32()]), count } };
    }
    case 'process.wait':
      // Mostly names that never connect (parked until the timeout, a CANCEL or the connection's end).
      return {
        args: {
          name: rng.pick([...ctx.peerNames, b.tag, 'nobody', 'proc-1', 'proc-999999', junkString(rng)]),
          timeout: rng.pick([undefined, 0, 5, 200, -1, 2 ** 33, 'soon']),
        },
      };
    case 'process.lookup':
    case 'monitor':
    case 'demonitor':
      return { args: { name: rng.pick([...ctx.peerNames, b.tag, junkString(rng)]) } };
    case 'signal':
      return {
        args: {
          to: rng.pick([...ctx.peerNames, b.tag, 'nobody']),
          type: rng.pick(['poke', '', 'x'.repeat(1000)]),
          payload: jsonValue(rng),
        },
      };
    case 'segment.register':
      return {
        args: {
          name: seg(),
          size: rng.pick([1, 4096, 0, -1, 2 ** 53, 'big']),
          kind: rng.pick(['segment', 'mailbox', undefined, 'other']),
          ownership: rng.pick(['process', 'system', undefined]),
          meta: rng.chance(0.5) ? jsonValue(rng) : { delivery: 'exclusive' },
          role: rng.pick(['send', 'receive', 'both', 'attach', undefined, 'owner']),
        },
      };
    case 'segment.attach':
    case 'segment.detach':
      return { args: { name: seg(), role: rng.pick(['send', 'receive', 'both', 'attach', undefined, 9]) } };
    case 'segment.remove':
      return { args: { name: seg(), force: rng.chance(0.5) } };
    case 'segment.info':
      return { args: { name: seg() } };
    default:
      return { args: {} };
  }
}

/** A CALL body: a control call, or text that is not one. */
function callBody(b: Builder): Body {
  const rng = b.rng;
  const kind = rng.weighted([
    [14, 'method'],
    [1, 'unknown'],
    [1, 'deep'],
    [1, 'huge'],
    [1, 'notjson'],
    [1, 'shape'],
  ] as const);
  switch (kind) {
    case 'method': {
      const method = rng.pick(METHODS);
      const { args, idRef } = callArgs(b, method);
      const text = JSON.stringify({ m: method, a: args });
      return idRef === undefined ? { k: 'call', text } : { k: 'call', text, idRef };
    }
    case 'unknown':
      return {
        k: 'call',
        text: JSON.stringify({
          m: rng.pick(['', 'segment.', 'x', 'constructor', 'toString', junkString(rng)]),
          a: {},
        }),
      };
    case 'deep':
      return {
        k: 'call',
        text: rng.pick([
          `{"m":"signal","a":{"to":"${rng.pick(b.ctx.peerNames)}","type":"deep","payload":${deepJson(rng)}}}`,
          `{"m":"segment.register","a":{"name":"${b.ctx.segmentPrefix}d","size":1,"ownership":"process","meta":${deepJson(rng)}}}`,
          `{"m":"mailbox.create","a":{"name":"${b.newName()}","options":${deepJson(rng)}}}`,
          `{"m":"status","a":${deepJson(rng)}}`,
          deepJson(rng),
        ]),
      };
    case 'huge': {
      const n = rng.pick([64 * 1024, 1024 * 1024 - 64, 1024 * 1024 + 1, rng.range(1, 1100 * 1024)]);
      return {
        k: 'call',
        text: rng.pick([
          `{"m":"signal","a":{"to":"${rng.pick(b.ctx.peerNames)}","type":"big","payload":"${'y'.repeat(n)}"}}`,
          `{"m":"mailbox.open","a":{"name":"${'n'.repeat(n)}"}}`,
          `{"m":"status","a":{},"pad":"${'p'.repeat(n)}"}`,
        ]),
      };
    }
    case 'notjson':
      return { k: 'raw', bytes: rng.chance(0.5) ? Buffer.from('{"m": "status", ') : rng.bytes(rng.int(64)) };
    case 'shape':
      return {
        k: 'call',
        text: rng.pick([
          '[1,2,3]',
          'null',
          '"status"',
          '{"m":7}',
          '{"a":{}}',
          '{"m":"status","a":null}',
          '{"m":"status","a":[]}',
          '{"m":"mailbox.close","a":"x"}',
        ]),
      };
  }
}

/** A payload for SEND / REQUEUE: sizes from empty to past the limit, content valid for a codec or not. */
function payload(rng: Rng, ctx: FuzzContext): { bytes: Buffer; codec: number } {
  const codec = rng.weighted([
    [3, 0],
    [2, 1],
    [3, 2],
    [2, 3],
  ]);
  if (rng.chance(0.55)) {
    switch (codec) {
      case 1:
        return { bytes: Buffer.from(junkString(rng), 'utf8'), codec };
      case 2:
        return { bytes: Buffer.from(JSON.stringify(jsonValue(rng)) ?? 'null', 'utf8'), codec };
      case 3:
        return { bytes: serialize(jsonValue(rng)), codec };
    }
  }
  const size = rng.weighted<() => number>([
    [2, () => 0],
    [8, () => rng.range(1, 64)],
    [5, () => rng.range(65, 4096)],
    [2, () => rng.range(4097, 65536)],
    [1, () => rng.range(65537, ctx.maxMessageSize)],
    [1, () => ctx.maxMessageSize + rng.range(1, 100)],
  ])();
  return { bytes: rng.bytes(size), codec };
}

function u32(n: number): Word {
  return { lit: n >>> 0 };
}

/** A SEND frame to `target`: flags, priority, codec, timeout word as a client would, or not quite. */
function sendFrame(b: Builder, target: TargetRef, reqId: ReqRef = FRESH): void {
  const rng = b.rng;
  const flags = rng.weighted([
    [6, 0],
    [2, SendFlag.NONBLOCK],
    [2, SendFlag.SYNC],
    [2, SendFlag.TIMED],
    [1, SendFlag.TIMED | SendFlag.SYNC],
    [1, SendFlag.NONBLOCK | SendFlag.SYNC],
  ]);
  const p = payload(rng, b.ctx);
  const words: Word[] = [];
  if (flags & SendFlag.TIMED)
    words.push(u32(rng.pick([0, 1, 5, 20, 100, 0x7fffffff, 0xfffffffe, 0xffffffff])));
  b.frame(Op.SEND, {
    flags,
    priority: rng.chance(0.7) ? 0 : rng.int(32),
    codec: p.codec,
    reqId,
    target,
    body: { k: 'words', words, tail: p.bytes },
  });
}

function recvFrame(b: Builder, target: TargetRef): void {
  const rng = b.rng;
  let flags = rng.weighted([
    [4, 0],
    [3, RecvFlag.NONBLOCK],
    [3, RecvFlag.TIMED],
    [1, RecvFlag.FROM],
    [2, RecvFlag.ACK],
    [1, RecvFlag.TIMED | RecvFlag.FROM | RecvFlag.ACK],
  ]);
  if (rng.chance(0.05)) flags = rng.int(256);
  const words: Word[] = [];
  if (flags & RecvFlag.TIMED) words.push(u32(rng.pick([0, 1, 10, 50, 0x7fffffff, 0xffffffff])));
  if (flags & RecvFlag.FROM) words.push(someWordPid(rng));
  // Sometimes the words a flag promises are missing.
  if (words.length > 0 && rng.chance(0.1)) words.pop();
  b.frame(Op.RECV, { flags, reqId: FRESH, target, body: { k: 'words', words, tail: Buffer.alloc(0) } });
}

function demandFrame(b: Builder, target: TargetRef): void {
  const rng = b.rng;
  const delta = rng.pick([1, 2, 8, 64, 1000, -1, -64, 0, 0x7fffffff, -0x80000000]);
  const words = rng.chance(0.05) ? [] : [u32(delta)];
  b.frame(Op.DEMAND, {
    flags: rng.chance(0.3) ? RecvFlag.ACK : 0,
    reqId: rng.chance(0.85) ? FRESH : LIT0,
    target,
    body: { k: 'words', words, tail: Buffer.alloc(0) },
  });
}

function idsFrame(b: Builder, op: number): void {
  const rng = b.rng;
  const ids: IdRef[] = [];
  for (let i = rng.range(0, 6); i > 0; i--) {
    ids.push(
      rng.chance(0.8) ? { delivered: rng.u32() } : { lit: rng.pick([0, 1, 2, rng.u32(), 0xffffffff]) },
    );
  }
  // The same id twice in one frame.
  if (ids.length > 0 && rng.chance(0.3)) ids.push(ids[0]!);
  b.frame(op, { body: { k: 'ids', ids, odd: rng.chance(0.1) ? rng.range(1, 3) : 0 } });
}

function requeueFrame(b: Builder, target: TargetRef): void {
  const rng = b.rng;
  if (rng.chance(0.4)) {
    b.frame(Op.REQUEUE, { target, body: { k: 'giveBack', pick: rng.u32(), mutate: rng.chance(0.5) } });
    return;
  }
  const p = payload(rng, b.ctx);
  b.frame(Op.REQUEUE, {
    priority: rng.weighted([
      [4, rng.int(32)],
      [1, rng.pick([32, 63, 200, 255])],
    ]),
    codec: rng.weighted([
      [4, p.codec],
      [1, rng.pick([4, 7, 200, 255])],
    ]),
    target,
    body: rng.chance(0.05)
      ? { k: 'raw', bytes: rng.bytes(rng.int(4)) }
      : { k: 'words', words: [someWordPid(rng)], tail: p.bytes },
  });
}

function creditReturnFrame(b: Builder, target: TargetRef): void {
  const rng = b.rng;
  b.frame(Op.CREDIT_RETURN, {
    target,
    body: {
      k: 'words',
      words: rng.weighted<Word[]>([
        [4, [u32(rng.int(2000)), u32(rng.u32()), { epoch: true }]],
        [2, [u32(rng.int(2000)), u32(rng.u32()), u32(rng.pick([0, 1, 2, 0xffffffff, rng.u32()]))]],
        [1, [u32(rng.int(2000)), u32(rng.u32())]],
        [1, []],
      ]),
      tail: Buffer.alloc(0),
    },
  });
}

/** One random frame of a client op, with sensible-ish fields. */
function randomClientFrame(b: Builder): void {
  const rng = b.rng;
  const op = rng.pick(CLIENT_OPS);
  const t = b.someTarget();
  switch (op) {
    case Op.HELLO:
      return b.hello(b.tag);
    case Op.CALL:
      b.frame(Op.CALL, { reqId: rng.chance(0.9) ? FRESH : LIT0, body: callBody(b) });
      return;
    case Op.SEND:
      return sendFrame(b, t, rng.chance(0.8) ? FRESH : LIT0);
    case Op.RECV:
      return recvFrame(b, t);
    case Op.DEMAND:
      return demandFrame(b, t);
    case Op.CANCEL:
      b.frame(Op.CANCEL, { reqId: rng.chance(0.7) ? { prev: rng.u32() } : { lit: rng.u32() } });
      return;
    case Op.CONSUMED:
    case Op.ACK:
    case Op.RELEASE:
      return idsFrame(b, op);
    case Op.REQUEUE:
      return requeueFrame(b, t);
    case Op.CREDIT_RETURN:
      return creditReturnFrame(b, t);
    case Op.BYE:
      b.frame(Op.BYE, rng.chance(0.2) ? { body: { k: 'raw', bytes: rng.bytes(rng.int(16)) } } : {});
      return;
  }
}

/** Change one or two header fields, the body, or the length field of a frame. */
function mutateFrame(rng: Rng, f: FrameStep): void {
  for (let n = rng.chance(0.3) ? 2 : 1; n > 0; n--) {
    switch (rng.int(9)) {
      case 0:
        f.flags = rng.chance(0.5) ? f.flags ^ (1 << rng.int(8)) : rng.int(256);
        break;
      case 1:
        f.priority = rng.pick([31, 32, 63, 128, 200, 255]);
        break;
      case 2:
        f.codec = rng.pick([3, 4, 5, 7, 128, 200, 255]);
        break;
      case 3:
        f.reqId = rng.pick<ReqRef>([
          { lit: 0 },
          { lit: rng.u32() },
          { lit: 0xffffffff },
          { prev: rng.u32() },
        ]);
        break;
      case 4:
        f.target = rng.pick<TargetRef>([
          { lit: 0 },
          { lit: rng.u32() },
          { lit: 0xffffffff },
          someTarget(rng),
        ]);
        break;
      case 5:
        f.body = mutateBody(rng, f.body);
        break;
      case 6:
        f.lengthDelta = rng.pick([
          -1,
          -4,
          -12,
          -rng.range(1, 16),
          1,
          4,
          rng.range(1, 64),
          0x10000000,
          -0x10000000,
        ]);
        break;
      case 7:
        f.truncate = rng.range(0, 20);
        break;
      case 8:
        f.op = rng.chance(0.5) ? rng.pick(KERNEL_OPS) : rng.pick([0, 21, 22, 99, 127, 128, 255]);
        break;
    }
  }
}

function mutateBody(rng: Rng, body: Body): Body {
  switch (body.k) {
    case 'words':
      if (rng.chance(0.5) && body.words.length > 0)
        return { ...body, words: body.words.slice(0, rng.int(body.words.length)), tail: Buffer.alloc(0) };
      return { ...body, tail: Buffer.concat([body.tail, rng.bytes(rng.range(1, 64))]) };
    case 'raw':
      return rng.chance(0.5)
        ? { k: 'raw', bytes: body.bytes.subarray(0, rng.int(body.bytes.length + 1)) }
        : { k: 'raw', bytes: rng.bytes(rng.int(64)) };
    case 'call':
      return { k: 'raw', bytes: Buffer.from(body.text.slice(0, rng.int(body.text.length + 1)), 'utf8') };
    case 'ids':
      return { ...body, odd: rng.range(1, 3) };
    case 'giveBack':
      return { ...body, mutate: true };
  }
}

// ---------------------------------------------------------------- scenarios

type Scenario = (b: Builder) => void;

/** Random frames of every op after a HELLO. */
const soup: Scenario = (b) => {
  b.chaos = b.rng.pick([0.05, 0.2, 0.5]);
  b.hello();
  if (b.rng.chance(0.5)) b.await('welcome');
  for (let i = b.rng.range(1, 16); i > 0; i--) {
    randomClientFrame(b);
    if (b.rng.chance(0.2)) b.flush();
    if (b.rng.chance(0.15)) b.await(b.rng.pick(['any', 'result', 'deliver', 'sent']), 1, 15);
  }
};

/** Frames before HELLO, a second HELLO, frames after BYE. */
const handshake: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = 0.3;
  const order = rng.int(4);
  if (order === 0) randomClientFrame(b);
  if (order === 1)
    b.frame(rng.pick(KERNEL_OPS), { reqId: FRESH, body: { k: 'raw', bytes: rng.bytes(rng.int(32)) } });
  b.hello(rng.chance(0.5) ? b.tag : '');
  if (rng.chance(0.5)) b.await('welcome');
  if (order === 2) b.hello(rng.chance(0.5) ? b.tag : rng.pick(b.ctx.peerNames));
  if (order === 3) b.frame(Op.BYE);
  for (let i = rng.int(3); i > 0; i--) randomClientFrame(b);
};

/** Bytes that are not frames: garbage, short and lying lengths, truncations. */
const bytes: Scenario = (b) => {
  const rng = b.rng;
  const afterHello = rng.chance(0.6);
  if (afterHello) b.hello(b.tag, false);
  const kind = rng.int(6);
  if (kind === 0) b.push({ t: 'bytes', bytes: rng.bytes(rng.range(1, 300)) });
  if (kind === 1) {
    const len = rng.pick([0, 1, 11, 0xfffffff0, 0xffffffff, 2 ** 20 + 13, 2 ** 20 + 64, 2 ** 31]);
    const h = Buffer.alloc(rng.range(4, 16));
    h.writeUInt32LE(len >>> 0, 0);
    if (h.length > 4) h[4] = rng.pick([...CLIENT_OPS]);
    b.push({ t: 'bytes', bytes: h });
  }
  if (kind === 2) {
    // A frame cut short, then silence: the kernel must not wait on it forever for anyone else.
    b.chaos = 0;
    sendFrame(b, { pool: 'own', pick: 0 });
    (b.steps[b.steps.length - 1] as FrameStep).truncate = rng.range(1, 40);
  }
  if (kind === 3) {
    b.chaos = 0.5;
    for (let i = rng.range(1, 6); i > 0; i--) randomClientFrame(b);
    const f = b.steps[b.steps.length - 1];
    if (f?.t === 'frame') f.lengthDelta = rng.pick([-1, 1, 7, -7, 1000]);
  }
  if (kind === 4)
    b.push({
      t: 'bytes',
      bytes: Buffer.from(rng.pick(['GET / HTTP/1.1\r\nHost: x\r\n\r\n', '\n', 'IPCB', '\u0000'.repeat(64)])),
    });
  if (kind === 5) {
    // A length that announces a large frame, part of its body, and a pause: the kernel buffers it.
    const h = Buffer.alloc(16);
    h.writeUInt32LE(rng.pick([64 * 1024, 1024 * 1024, b.ctx.maxMessageSize + 8]), 0);
    h[4] = rng.pick([Op.SEND, Op.CALL, Op.REQUEUE]);
    b.push({ t: 'bytes', bytes: Buffer.concat([h, rng.bytes(rng.int(64 * 1024))]) });
    b.push({ t: 'sleep', ms: rng.range(1, 50) });
  }
  b.flush();
};

/** Control calls with random methods and args, deep nesting and huge strings. */
const calls: Scenario = (b) => {
  b.chaos = 0.05;
  b.hello();
  b.await('welcome');
  for (let i = b.rng.range(1, 8); i > 0; i--) {
    b.frame(Op.CALL, { reqId: FRESH, body: callBody(b) });
    if (b.rng.chance(0.5)) b.await('result', 1, 15);
  }
};

/** Create a mailbox, attach (RECV / DEMAND), send, detach (mailbox.close), keep going. */
const attachDetach: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = rng.pick([0, 0.05, 0.2]);
  b.hello();
  b.call('mailbox.create', {
    name: b.newName(),
    options: {
      capacity: rng.pick([0, 1, 2, 8, 'unbounded']),
      delivery: rng.pick(['exclusive', 'round-robin', 'broadcast', 'arbitrary']),
    },
  });
  b.await('result');
  const mine: TargetRef = { pool: 'created', pick: 0 };
  for (let round = rng.range(1, 3); round > 0; round--) {
    if (rng.chance(0.5)) recvFrame(b, mine);
    else demandFrame(b, mine);
    for (let i = rng.range(0, 4); i > 0; i--) sendFrame(b, mine);
    if (rng.chance(0.5)) b.await('deliver', 1, 15);
    if (rng.chance(0.5)) idsFrame(b, rng.pick([Op.CONSUMED, Op.ACK, Op.RELEASE]));
    b.call('mailbox.close', { id: '@@ID@@' }, mine);
    if (rng.chance(0.5)) b.await('result', 1, 15);
    for (let i = rng.range(0, 3); i > 0; i--) sendFrame(b, mine);
    if (rng.chance(0.3)) b.call('mailbox.open', { name: b.names[0] });
  }
  if (rng.chance(0.3)) b.call('mailbox.delete', { name: b.names[0], force: rng.chance(0.5) });
};

/** Sends into small and full mailboxes: blocking, non-blocking, timed, synchronous, cancelled. */
const fullMailbox: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = rng.pick([0, 0.05, 0.2]);
  b.hello();
  const cap = rng.pick([0, 1, 2, 3]);
  b.call('mailbox.create', {
    name: b.newName(),
    options: { capacity: cap, fixedMessageSize: rng.chance(0.1) ? 8 : undefined },
  });
  b.await('result');
  const mine: TargetRef = { pool: 'created', pick: 0 };
  if (rng.chance(0.5)) b.await('credit', 1, 10);
  for (let i = rng.range(cap + 1, cap + 8); i > 0; i--) {
    sendFrame(b, mine, rng.chance(0.15) ? LIT0 : FRESH);
    if (rng.chance(0.2)) b.frame(Op.CANCEL, { reqId: { prev: rng.u32() } });
    if (rng.chance(0.1)) b.flush();
  }
  if (rng.chance(0.5)) b.await('sent', 1, 15);
  for (let i = rng.range(0, 3); i > 0; i--) recvFrame(b, mine);
  if (rng.chance(0.5)) b.await('deliver', 1, 15);
  if (rng.chance(0.5)) idsFrame(b, rng.pick([Op.CONSUMED, Op.RELEASE]));
  if (rng.chance(0.4)) creditReturnFrame(b, mine);
};

/** Deliveries consumed, acknowledged and released twice, or released after consuming. */
const releaseTwice: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = rng.pick([0, 0.05]);
  b.hello();
  b.call('mailbox.create', { name: b.newName(), options: { capacity: rng.pick([0, 2, 16, 'unbounded']) } });
  b.await('result');
  const mine: TargetRef = { pool: 'created', pick: 0 };
  const n = rng.range(1, 4);
  for (let i = 0; i < n; i++) sendFrame(b, mine);
  for (let i = 0; i < n; i++) {
    b.frame(Op.RECV, { flags: rng.chance(0.5) ? RecvFlag.ACK : 0, reqId: FRESH, target: mine });
  }
  b.await('deliver', n, 15);
  const ops = [Op.RELEASE, Op.RELEASE, Op.CONSUMED, Op.ACK, Op.RELEASE, Op.ACK];
  for (let i = rng.range(2, 6); i > 0; i--) {
    b.frame(rng.pick(ops), {
      body: { k: 'ids', ids: [{ delivered: rng.int(n) }, { delivered: rng.int(n) }], odd: 0 },
    });
    if (rng.chance(0.3)) b.flush();
  }
  if (rng.chance(0.5)) recvFrame(b, mine);
  if (rng.chance(0.3)) b.call('mailbox.close', { id: '@@ID@@' }, mine);
};

/** CREDIT_RETURN without a REVOKE, on every kind of target; credited sends past the credit. */
const credits: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = rng.pick([0, 0.1]);
  b.hello();
  const useOwn = rng.chance(0.5);
  if (!useOwn) {
    b.call('mailbox.create', { name: b.newName(), options: { capacity: rng.pick([2, 4, 64, 'unbounded']) } });
    b.await('result');
  }
  const t: TargetRef = useOwn ? { pool: 'own', pick: 0 } : { pool: 'created', pick: 0 };
  sendFrame(b, t);
  b.await('credit', 1, 15);
  for (let i = rng.range(1, 10); i > 0; i--) {
    const r = rng.int(4);
    if (r === 0) creditReturnFrame(b, rng.chance(0.5) ? t : b.someTarget());
    if (r === 1) sendFrame(b, { pool: 'credited', pick: 0 }, LIT0);
    if (r === 2) sendFrame(b, t, FRESH);
    if (r === 3) creditReturnFrame(b, { pool: 'pair', pick: rng.u32() });
  }
  if (rng.chance(0.3)) {
    // A holder that never answers REVOKE and stays past the kernel's deadline for it (1 s by default).
    b.answerRevoke = false;
    b.linger = rng.range(1100, 1500);
  }
};

/** REQUEUE: honest give-backs of prefetched messages, and forged ones (priority, codec, sender, target). */
const requeue: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = rng.pick([0, 0.1]);
  b.hello();
  b.call('mailbox.create', {
    name: b.newName(),
    options: {
      capacity: rng.pick([1, 8, 'unbounded']),
      delivery: rng.pick(['exclusive', 'broadcast', 'round-robin']),
    },
  });
  b.await('result');
  const mine: TargetRef = { pool: 'created', pick: 0 };
  demandFrame(b, mine);
  for (let i = rng.range(1, 4); i > 0; i--) sendFrame(b, mine);
  b.await('deliver', 1, 15);
  for (let i = rng.range(1, 5); i > 0; i--) {
    requeueFrame(
      b,
      rng.weighted<TargetRef>([
        [4, mine],
        [2, { pool: 'own', pick: 0 }],
        [2, { pool: 'pair', pick: rng.u32() }],
        [1, { pool: 'delivered', pick: rng.u32() }],
        [1, { lit: rng.u32() }],
      ]),
    );
  }
  if (rng.chance(0.5)) recvFrame(b, mine);
};

/** Direct naming: sends to the pair's inboxes, receive-from, lookups, signals, monitors. */
const direct: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = rng.pick([0, 0.05, 0.2]);
  b.hello(b.tag, true);
  b.call('process.lookup', { name: rng.pick(b.ctx.peerNames) });
  for (let i = rng.range(1, 6); i > 0; i--) {
    const r = rng.int(5);
    if (r <= 1) sendFrame(b, { pool: 'pair', pick: rng.u32() }, rng.chance(0.9) ? FRESH : LIT0);
    if (r === 2) recvFrame(b, { pool: 'own', pick: 0 });
    if (r === 3)
      b.call(rng.pick(['monitor', 'signal', 'demonitor']), {
        name: rng.pick(b.ctx.peerNames),
        to: rng.pick(b.ctx.peerNames),
        type: 'poke',
      });
    if (r === 4) b.await('any', 1, 15);
  }
};

/** Timed sends and receives whose timers outlive the connection. */
const timers: Scenario = (b) => {
  const rng = b.rng;
  b.chaos = rng.pick([0, 0.1]);
  b.hello();
  b.call('mailbox.create', { name: b.newName(), options: { capacity: rng.pick([0, 1]) } });
  b.await('result');
  const mine: TargetRef = { pool: 'created', pick: 0 };
  for (let i = rng.range(1, 5); i > 0; i--) {
    if (rng.chance(0.5)) {
      b.frame(Op.SEND, {
        flags: SendFlag.TIMED,
        reqId: FRESH,
        target: mine,
        body: { k: 'words', words: [u32(rng.pick([1, 2, 5, 30]))], tail: rng.bytes(rng.int(16)) },
      });
    } else {
      const words = rng.chance(0.8) ? [u32(rng.pick([0, 1, 2, 5, 30]))] : [];
      b.frame(Op.RECV, {
        flags: RecvFlag.TIMED,
        reqId: FRESH,
        target: rng.chance(0.8) ? mine : { pool: 'own', pick: 0 },
        body: { k: 'words', words, tail: Buffer.alloc(0) },
      });
    }
  }
  if (rng.chance(0.3)) b.push({ t: 'sleep', ms: rng.range(1, 10) });
};

/** A receiver that never reads its socket while the kernel pushes deliveries at it. */
const flood: Scenario = (b) => {
  const rng = b.rng;
  b.hello();
  b.await('welcome');
  b.push({ t: 'pause' });
  const own: TargetRef = { pool: 'own', pick: 0 };
  b.frame(
    Op.DEMAND,
    { reqId: FRESH, target: own, body: { k: 'words', words: [u32(100000)], tail: Buffer.alloc(0) } },
    false,
  );
  const size = rng.pick([16 * 1024, 64 * 1024, 256 * 1024, b.ctx.maxMessageSize]);
  const chunk = rng.bytes(size);
  // Up to 48 MiB, three times the harness's budget: a kernel that buffers it all for this reader shows in its RSS.
  for (let i = Math.min(rng.range(8, 160), Math.floor((48 * 1024 * 1024) / size)); i > 0; i--) {
    b.frame(Op.SEND, { reqId: FRESH, target: own, body: { k: 'words', words: [], tail: chunk } }, false);
    if (i % 8 === 0) b.flush();
  }
  for (let i = rng.range(0, 50); i > 0; i--)
    b.frame(Op.CALL, { reqId: FRESH, body: { k: 'call', text: '{"m":"status","a":{}}' } }, false);
  // It holds on, still not reading, while other inputs run.
  b.linger = rng.range(100, 400);
};

/**
 * Tiny queued messages, each arriving in one read with a large frame that is
 * answered and gone at once: a queue that keeps views of its read chunks pins
 * the large frames too, memory the budget never counts.
 */
const pin: Scenario = (b) => {
  const rng = b.rng;
  b.hello();
  b.call('mailbox.create', {
    name: b.newName(),
    options: { capacity: 'unbounded', owner: rng.chance(0.3) ? 'system' : 'process' },
  });
  b.await('result');
  const mine: TargetRef = { pool: 'created', pick: 0 };
  const filler = JSON.stringify({ m: 'no.such.call', a: { pad: 'f'.repeat(rng.range(16, 60) * 1024) } });
  for (let i = rng.range(50, 400); i > 0; i--) {
    b.frame(
      Op.SEND,
      { reqId: FRESH, target: mine, body: { k: 'words', words: [], tail: rng.bytes(8) } },
      false,
    );
    b.frame(Op.CALL, { reqId: FRESH, body: { k: 'call', text: filler } }, false);
    // SENT, or ERROR (KERNEL_FULL once the budget is taken): either answer means the kernel read this write.
    b.await('any', 1, 15);
  }
  b.push({ t: 'sleep', ms: rng.range(10, 100) });
};

const SCENARIOS: readonly (readonly [number, string, Scenario])[] = [
  [10, 'soup', soup],
  [4, 'handshake', handshake],
  [4, 'bytes', bytes],
  [6, 'calls', calls],
  [6, 'attach-detach', attachDetach],
  [6, 'full-mailbox', fullMailbox],
  [5, 'release-twice', releaseTwice],
  [5, 'credits', credits],
  [6, 'requeue', requeue],
  [5, 'direct', direct],
  [4, 'timers', timers],
  [1, 'flood', flood],
  [1, 'pin', pin],
];

/** The input with this seed. Pure: the same seed and context give the same input. */
export function generateInput(seed: number, ctx: FuzzContext): FuzzInput {
  const rng = new Rng(seed);
  const [name, scenario] = rng.weighted(SCENARIOS.map(([w, n, s]) => [w, [n, s] as const] as const));
  const b = new Builder(rng, ctx, `h${(seed >>> 0).toString(16)}`);
  // Drawn from a stream of its own, so the rest of the input is the same whichever version it speaks.
  if (PROTOCOL_VERSION > 1 && new Rng(mixSeed(seed, 0x76657273)).chance(0.15))
    b.version = PROTOCOL_VERSION - 1;
  scenario(b);
  if (rng.chance(0.3)) b.flush();
  return {
    seed,
    scenario: name,
    steps: b.steps,
    end: rng.weighted([
      [3, 'bye'],
      [3, 'end'],
      [4, 'destroy'],
    ] as const),
    linger:
      b.linger ??
      rng.weighted([
        [6, 0],
        [3, rng.range(1, 50)],
        [1, rng.range(50, 400)],
      ]),
    answerRevoke: b.answerRevoke ?? rng.chance(0.7),
  };
}

// ---------------------------------------------------------------- encoding

/** A message this connection received, as REQUEUE gives it back. */
export interface Delivered {
  deliveryId: number;
  target: number;
  sender: number;
  priority: number;
  codec: number;
  payload: Buffer;
}

/** What one connection has learned from the kernel; the input's symbolic refs resolve against it. */
export interface Knowledge {
  ownInbox: number;
  ownPid: number;
  created: number[];
  pair: readonly number[];
  pairPids: readonly number[];
  delivered: Delivered[];
  senders: number[];
  reqIds: number[];
  nextReq: number;
  credits: Map<number, { slots: number; bytes: number }>;
  /** Epoch of the last REVOKE (a CREDIT_RETURN answers it by epoch). */
  epoch: number;
}

export function newKnowledge(pair: readonly number[], pairPids: readonly number[]): Knowledge {
  return {
    ownInbox: 0,
    ownPid: 0,
    created: [],
    pair,
    pairPids,
    delivered: [],
    senders: [],
    reqIds: [],
    nextReq: 1,
    credits: new Map(),
    epoch: 0,
  };
}

function choose<T>(items: readonly T[], pick: number): T | undefined {
  return items.length === 0 ? undefined : items[pick % items.length];
}

export function resolveTarget(k: Knowledge, t: TargetRef): number {
  if ('lit' in t) return t.lit >>> 0;
  switch (t.pool) {
    case 'own':
      return k.ownInbox;
    case 'created':
      return choose(k.created, t.pick) ?? k.ownInbox;
    case 'pair':
      return choose(k.pair, t.pick) ?? 0;
    case 'credited': {
      const ids = [...k.credits.entries()].filter(([, c]) => c.slots > 0).map(([id]) => id);
      return choose(ids, t.pick) ?? choose(k.created, t.pick) ?? k.ownInbox;
    }
    case 'delivered':
      return choose(k.delivered, t.pick)?.target ?? k.ownInbox;
  }
}

function resolveWord(k: Knowledge, w: Word): number {
  if ('lit' in w) return w.lit >>> 0;
  if ('epoch' in w) return k.epoch;
  if (w.pid === 'own') return k.ownPid;
  if (w.pid === 'pair') return choose(k.pairPids, w.pick) ?? 0;
  return choose(k.senders, w.pick) ?? k.ownPid;
}

function resolveReq(k: Knowledge, r: ReqRef): number {
  if ('lit' in r) return r.lit >>> 0;
  if ('prev' in r) return choose(k.reqIds, r.prev) ?? 0;
  const id = k.nextReq++;
  k.reqIds.push(id);
  return id;
}

/** The bytes of one frame step, with its refs resolved against what the connection knows now. */
export function encodeFrame(k: Knowledge, f: FrameStep): Buffer {
  let op = f.op;
  let priority = f.priority;
  let codec = f.codec;
  let target = resolveTarget(k, f.target);
  const reqId = resolveReq(k, f.reqId);
  let body: Buffer;
  const b = f.body;
  switch (b.k) {
    case 'raw':
      body = b.bytes;
      break;
    case 'call': {
      const text =
        b.idRef === undefined ? b.text : b.text.replace('"@@ID@@"', String(resolveTarget(k, b.idRef)));
      body = Buffer.from(text, 'utf8');
      break;
    }
    case 'words': {
      body = Buffer.allocUnsafe(b.words.length * 4 + b.tail.length);
      for (let i = 0; i < b.words.length; i++) body.writeUInt32LE(resolveWord(k, b.words[i]!), i * 4);
      b.tail.copy(body, b.words.length * 4);
      break;
    }
    case 'ids': {
      body = Buffer.alloc(b.ids.length * 4 + b.odd);
      b.ids.forEach((id, i) => {
        const v = 'lit' in id ? id.lit : (choose(k.delivered, id.delivered)?.deliveryId ?? 0);
        body.writeUInt32LE(v >>> 0, i * 4);
      });
      break;
    }
    case 'giveBack': {
      const d = choose(k.delivered, b.pick);
      if (d === undefined) {
        body = Buffer.alloc(4);
        break;
      }
      body = Buffer.allocUnsafe(4 + d.payload.length);
      body.writeUInt32LE(d.sender, 0);
      d.payload.copy(body, 4);
      if (!b.mutate) {
        op = Op.REQUEUE;
        priority = d.priority;
        codec = d.codec;
        target = d.target;
      }
      break;
    }
  }
  if (op === Op.SEND && reqId === 0) {
    // A credited send spends what the connection believes it holds (it may believe wrongly: that is the point).
    const c = k.credits.get(target);
    if (c !== undefined) {
      c.slots--;
      c.bytes -= Math.max(0, body.length);
    }
  }
  const out = Buffer.allocUnsafe(16 + body.length);
  out.writeUInt32LE((12 + body.length + f.lengthDelta) >>> 0, 0);
  out[4] = op & 0xff;
  out[5] = f.flags & 0xff;
  out[6] = priority & 0xff;
  out[7] = codec & 0xff;
  out.writeUInt32LE(reqId >>> 0, 8);
  out.writeUInt32LE(target >>> 0, 12);
  body.copy(out, 16);
  return f.truncate >= 0 && f.truncate < out.length ? out.subarray(0, f.truncate) : out;
}
