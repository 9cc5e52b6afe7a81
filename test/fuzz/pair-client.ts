/**
 * The well-behaved pair, run as its own process while hostile connections
 * attack the kernel (a client library that crashes on what the kernel hands
 * it crashes this process, not the harness). Two processes' worth of
 * connections in one: `fuzz-pair-a` sends numbered messages through two
 * mailboxes only it may send to and only `fuzz-pair-b` may receive from (one
 * of capacity 16, one rendezvous), and directly to b's inbox; b receives them
 * with every receive style the public API offers (receive, receive-from,
 * ack / nack, async iteration with breaks, tryReceive, aborted receives) and
 * checks each stream arrives in order, none lost, none duplicated, nothing
 * forged. Both drain their inboxes of what hostile inputs send them.
 *
 * Talks to the harness over the IPC channel (`PairReport`); on `stop` it
 * finishes sending, drains, reports, and exits.
 *
 * argv: socketPath seed [socketPathB]. With socketPathB (the cross-node campaign), `fuzz-pair-b` is
 * connected to that kernel, another node of a cluster: the mailboxes are homed on a's kernel and
 * every message crosses nodes; the ids reported are then b's kernel's, where the hostile inputs run.
 */
import { connect, IpcError, type IpcProcess, type Mailbox, type Message } from '../../src/index.js';
import { Rng } from './frame-fuzzer.js';
import {
  PAIR_A,
  PAIR_B,
  PAIR_MAILBOX,
  PAIR_RENDEZVOUS,
  type PairCommand,
  type PairReport,
  type Stream,
} from './pair-report.js';

const [socketPath, seedText, socketPathB] = process.argv.slice(2);
const rng = new Rng(Number(seedText ?? 1));
/** Marks this run's genuine messages; a forger cannot guess it by accident. */
const RUN = `run-${rng.u32().toString(36)}`;
/** Errors a sender may meet under load and retry; anything else is a violation. */
const RETRY = new Set(['KERNEL_FULL', 'WOULD_BLOCK', 'TIMEOUT', 'ABORTED']);
/** Errors a receive may end with without anything being wrong. */
const QUIET = new Set(['TIMEOUT', 'WOULD_BLOCK', 'ABORTED']);
/** At most this many messages per stream in flight between a and b. */
const WINDOW = 256;

const STREAMS: readonly Stream[] = ['mailbox', 'rendezvous', 'direct'];
const sent: Record<Stream, number> = { mailbox: 0, rendezvous: 0, direct: 0 };
const expected: Record<Stream, number> = { mailbox: 0, rendezvous: 0, direct: 0 };
let retries = 0;
let foreign = 0;
/**
 * Sends answered CLUSTER_UNAVAILABLE: across nodes that says the outcome is unknown (the other node
 * did not answer the abort in time; the message may have arrived). Such a message may be missing
 * from its stream, but if it arrives it must be in its place: it never counts as sent again.
 */
const maybe = new Set<string>();
let stopping = false;
let draining = false;

/** Set once the pair has reported and leaves: what its own leaving causes (its mailbox closing) is no violation. */
let leaving = false;

function report(r: PairReport): void {
  if (process.connected) process.send?.(r);
}

function violation(kind: string, detail: string): void {
  if (!leaving) report({ type: 'violation', kind, detail });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The error's code (or class name): short and stable, for a violation's kind. */
function codeName(e: unknown): string {
  return e instanceof IpcError ? e.code : e instanceof Error ? e.name : typeof e;
}

function codeOf(e: unknown): string {
  return e instanceof IpcError ? e.code : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function value(stream: Stream, seq: number, codec: 'json' | 'string' | 'bytes' | 'v8'): unknown {
  const pad = rng.chance(0.05) ? 'p'.repeat(rng.range(1000, 20000)) : '';
  const text = `${RUN}:${stream}:${seq}:${pad}`;
  if (codec === 'string') return text;
  if (codec === 'bytes') return Buffer.from(text, 'utf8');
  return { run: RUN, stream, seq, pad };
}

/** The sequence number a genuine message carries, or undefined if it is not one of ours. */
function sequenceOf(m: Message, stream: Stream): number | undefined {
  try {
    const d = m.data as unknown;
    let run: unknown;
    let s: unknown;
    let seq: unknown;
    if (typeof d === 'string' || Buffer.isBuffer(d)) {
      [run, s, seq] = d.toString().split(':');
      seq = Number(seq);
    } else if (typeof d === 'object' && d !== null) {
      ({ run, stream: s, seq } = d as { run: unknown; stream: unknown; seq: unknown });
    }
    return run === RUN && s === stream && typeof seq === 'number' && Number.isInteger(seq) ? seq : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Check one received message against its stream: true when it is the next
 * one expected (the stream advances past it unless `advance` is false, when
 * the caller hands it back to come again).
 */
/** The receive style each stream's loop is in, and its last few receipts: a violation says how it came. */
const modeOf: Record<Stream, string> = { mailbox: '', rendezvous: '', direct: '' };
const trail: Record<Stream, string[]> = { mailbox: [], rendezvous: [], direct: [] };

function check(stream: Stream, m: Message, advance = true): boolean {
  if (m.sender !== PAIR_A) {
    foreign++;
    // Decode what strangers send too: a payload may fail to decode, but must not take the client down.
    try {
      void m.data;
    } catch {
      // garbage for its codec: the application's problem, not the library's
    }
    if (stream !== 'direct') {
      violation(
        'foreign-message',
        `${m.mailbox} admits sends from ${PAIR_A} only, yet delivered a message from ${m.sender} (codec ${m.codec}, priority ${m.priority}, ${m.bytes.length} bytes)`,
      );
    }
    return false;
  }
  const seq = sequenceOf(m, stream);
  if (seq === undefined) {
    violation(
      'forged-message',
      `${stream}: a message from ${PAIR_A} that ${PAIR_A} never sent (codec ${m.codec}, ${m.bytes.length} bytes)`,
    );
    return false;
  }
  let want = expected[stream];
  // Messages whose send had an unknown outcome and that did not arrive before this one: skipped.
  while (seq > want && maybe.has(`${stream}:${want}`)) want++;
  expected[stream] = want;
  const t = trail[stream];
  t.push(`${modeOf[stream]}:${seq}${advance ? '' : '(nack)'}`);
  if (t.length > 12) t.shift();
  if (seq !== want) {
    violation(
      seq < want ? 'duplicate' : 'out-of-order',
      `${stream}: received message ${seq} when ${want} was next (${PAIR_A} has sent ${sent[stream]}; last receipts, style:seq: ${t.join(' ')})`,
    );
    expected[stream] = Math.max(want, seq + 1);
    return false;
  }
  if (advance) expected[stream] = want + 1;
  return true;
}

/** a's send loop: numbered messages to both mailboxes and to b's inbox, with every send option. */
async function sender(boxes: Record<'mailbox' | 'rendezvous', Mailbox>, a: IpcProcess): Promise<void> {
  let n = 0;
  while (!stopping) {
    const stream = rng.weighted<Stream>([
      [9, 'mailbox'],
      [4, 'rendezvous'],
      [7, 'direct'],
    ]);
    if (sent[stream] - expected[stream] >= WINDOW) {
      await sleep(2);
      continue;
    }
    const codec = rng.pick(['json', 'json', 'string', 'bytes', 'v8'] as const);
    const v = value(stream, sent[stream], codec);
    const variant = rng.int(13);
    const options: Record<string, unknown> = { codec };
    if (variant === 0) options.sync = true;
    if (variant === 1) options.nonblock = true;
    if (variant === 2) options.timeout = rng.pick([1, 20, 200]);
    // A send that fails was never delivered ("never both"): these races check it, since a failed one is sent again.
    if (variant === 3) Object.assign(options, { sync: true, timeout: rng.pick([1, 5, 50]) });
    if (variant === 4) options.signal = AbortSignal.timeout(rng.pick([1, 5, 50]));
    if (variant === 5)
      Object.assign(options, { sync: true, signal: AbortSignal.timeout(rng.pick([1, 5, 50])) });
    try {
      if (stream === 'direct') await a.send(PAIR_B, v, options);
      else await boxes[stream].send(v, options);
      sent[stream]++;
    } catch (e) {
      const code = codeOf(e);
      if (RETRY.has(code)) {
        retries++;
        await sleep(rng.range(1, 5));
      } else if (code === 'CLUSTER_UNAVAILABLE' && socketPathB !== undefined) {
        maybe.add(`${stream}:${sent[stream]}`);
        sent[stream]++;
      } else {
        violation(
          `send-failed ${codeName(e)}`,
          `${PAIR_A} ${stream} send of message ${sent[stream]} failed: ${code} ${(e as Error).message}`,
        );
        await sleep(50);
      }
    }
    if (++n % 16 === 0) await sleep(1);
  }
}

/** Everything sent on `stream` was received in order (but for unknown-outcome sends that never came). */
function caughtUp(stream: Stream): boolean {
  let w = expected[stream];
  while (w < sent[stream] && maybe.has(`${stream}:${w}`)) w++;
  return w >= sent[stream];
}

function done(stream: Stream): boolean {
  return draining && caughtUp(stream);
}

/** b's receive loop on a mailbox (`stream` names which): every style, switching now and then. */
async function mailboxReceiver(box: Mailbox, stream: 'mailbox' | 'rendezvous'): Promise<void> {
  while (!done(stream)) {
    const mode = rng.pick(['receive', 'receive', 'ack', 'iterate', 'iterate-ack', 'try', 'abort'] as const);
    modeOf[stream] = mode;
    try {
      switch (mode) {
        case 'receive':
          for (let i = rng.range(1, 32); i > 0 && !done(stream); i--)
            check(stream, await box.receive({ timeout: 200 }));
          break;
        case 'abort':
          // An aborted receive loses nothing: a message already on its way is handed back, and comes next.
          for (let i = rng.range(1, 16); i > 0 && !done(stream); i--) {
            try {
              check(stream, await box.receive({ signal: AbortSignal.timeout(rng.pick([1, 2, 5, 50])) }));
            } catch (e) {
              if (codeOf(e) !== 'ABORTED') throw e;
            }
          }
          break;
        case 'ack':
          for (let i = rng.range(1, 16); i > 0 && !done(stream); i--) {
            const m = await box.receive({ ack: true, timeout: 200 });
            // A nack hands the message back: it must come again, next.
            if (rng.chance(0.15)) {
              if (check(stream, m, false)) m.nack();
              else m.ack();
            } else {
              check(stream, m);
              m.ack();
            }
          }
          break;
        case 'iterate':
        case 'iterate-ack': {
          let i = rng.range(1, 40);
          const ack = mode === 'iterate-ack';
          for await (const m of box.messages({
            prefetch: rng.pick([1, 2, 8, 64]),
            ack,
            signal: AbortSignal.timeout(300),
          })) {
            check(stream, m);
            if (ack) m.ack();
            if (--i <= 0 || done(stream)) break;
          }
          break;
        }
        case 'try':
          for (let i = rng.range(1, 16); i > 0 && !done(stream); i--) {
            try {
              check(stream, await box.tryReceive());
            } catch (e) {
              if (codeOf(e) !== 'WOULD_BLOCK') throw e;
              await sleep(1);
            }
          }
          break;
      }
    } catch (e) {
      const code = codeOf(e);
      if (!QUIET.has(code)) {
        violation(
          `receive-failed ${codeName(e)}`,
          `${PAIR_B} ${mode} on ${box.name} failed: ${code} ${(e as Error).message}`,
        );
        await sleep(50);
      }
    }
  }
}

/**
 * a's own inbox: nobody sends a anything but hostile inputs, yet what they
 * send must be read, or it fills the kernel's budget and every sender gets
 * KERNEL_FULL for good.
 */
async function drainInbox(a: IpcProcess): Promise<void> {
  while (!leaving && !draining) {
    try {
      const m = await a.receive({ timeout: 200 });
      foreign++;
      try {
        void m.data;
      } catch {
        // garbage for its codec
      }
    } catch (e) {
      if (!QUIET.has(codeOf(e))) {
        violation(
          `receive-failed ${codeName(e)}`,
          `${PAIR_A} receive on its inbox failed: ${codeOf(e)} ${(e as Error).message}`,
        );
        await sleep(50);
      }
    }
  }
}

/** b's receive loop on its inbox: from anyone (hostile senders too), from a only, iteration. */
async function inboxReceiver(b: IpcProcess): Promise<void> {
  while (!done('direct')) {
    const mode = rng.pick(['any', 'any', 'from', 'iterate'] as const);
    modeOf.direct = mode;
    try {
      switch (mode) {
        case 'any':
          for (let i = rng.range(1, 32); i > 0 && !done('direct'); i--)
            check('direct', await b.receive({ timeout: 200 }));
          break;
        case 'from':
          for (let i = rng.range(1, 16); i > 0 && !done('direct'); i--)
            check('direct', await b.receive({ from: PAIR_A, timeout: 200 }));
          break;
        case 'iterate': {
          let i = rng.range(1, 40);
          for await (const m of b.messages({
            prefetch: rng.pick([1, 4, 64]),
            signal: AbortSignal.timeout(300),
          })) {
            check('direct', m);
            if (--i <= 0 || done('direct')) break;
          }
          break;
        }
      }
    } catch (e) {
      const code = codeOf(e);
      if (!QUIET.has(code)) {
        violation(
          `receive-failed ${codeName(e)}`,
          `${PAIR_B} ${mode} on its inbox failed: ${code} ${(e as Error).message}`,
        );
        await sleep(50);
      }
    }
  }
}

/** Open a mailbox by name; on another node its name reaches this kernel's mirror a moment after creation. */
async function openWhenKnown(p: IpcProcess, name: string): Promise<Mailbox> {
  for (let tries = 0; ; tries++) {
    try {
      return await p.openMailbox(name);
    } catch (e) {
      if (!(e instanceof IpcError) || e.code !== 'NO_SUCH_MAILBOX' || tries >= 100) throw e;
      await sleep(50);
    }
  }
}

async function main(): Promise<void> {
  const a = await connect({ socketPath, name: PAIR_A });
  const b = await connect({ socketPath: socketPathB ?? socketPath, name: PAIR_B });
  for (const p of [a, b]) {
    p.on('disconnect', (e) =>
      violation(`disconnected ${e.code}`, `${p.name} lost its connection: ${e.code} ${e.message}`),
    );
    p.on('mailbox-closed', (e) =>
      violation('mailbox-closed', `${p.name} was told ${e.mailbox} closed: ${e.reason}`),
    );
  }
  const rights = { senders: [PAIR_A], receivers: [PAIR_B] };
  const boxA = await a.createMailbox(PAIR_MAILBOX, { capacity: 16, ...rights });
  const rvA = await a.createMailbox(PAIR_RENDEZVOUS, { capacity: 0, ...rights });
  const boxB = await openWhenKnown(b, PAIR_MAILBOX);
  const rvB = await openWhenKnown(b, PAIR_RENDEZVOUS);
  const split = socketPathB !== undefined;
  if (split) {
    // a's first direct send must find b: wait for b's name to reach a's kernel.
    for (let tries = 0; ; tries++) {
      const known = await a.monitor(PAIR_B).then(
        () => true,
        (e: unknown) => {
          if (!(e instanceof IpcError) || e.code !== 'NO_SUCH_PROCESS' || tries >= 100) throw e;
          return false;
        },
      );
      if (known) break;
      await sleep(50);
    }
    await a.demonitor(PAIR_B);
  }
  const procs = await (split ? b : a).listProcesses();
  const inboxOf = (name: string): number => procs.find((p) => p.name === name)?.inbox ?? 0;
  report({
    type: 'ready',
    // The order of PAIR_TARGETS, as the kernel the hostile inputs talk to numbers them.
    targets: split
      ? [boxB.id, rvB.id, inboxOf(PAIR_A), inboxOf(PAIR_B)]
      : [boxA.id, rvA.id, inboxOf(PAIR_A), inboxOf(PAIR_B)],
    pids: [a.pid, b.pid],
  });

  const progress = setInterval(() => {
    report({
      type: 'progress',
      sent: sent.mailbox + sent.rendezvous + sent.direct,
      received: expected.mailbox + expected.rendezvous + expected.direct,
      retries,
      foreign,
    });
  }, 250);
  process.on('message', (m: PairCommand) => {
    if (m.type !== 'stop') return;
    stopping = true;
    // The harness kills a pair that has not left 20 s after stop: first say where it is stuck.
    setTimeout(() => {
      violation(
        'stuck',
        `${draining ? 'draining' : 'still sending'} 15 s after stop: sent ${JSON.stringify(sent)}, received in order ${JSON.stringify(expected)}, receive styles ${JSON.stringify(modeOf)}, last receipts ${JSON.stringify(trail)}`,
      );
    }, 15_000).unref();
  });

  const sending = sender({ mailbox: boxA, rendezvous: rvA }, a);
  const receiving = Promise.all([
    mailboxReceiver(boxB, 'mailbox'),
    mailboxReceiver(rvB, 'rendezvous'),
    inboxReceiver(b),
  ]);
  const drainingInbox = drainInbox(a);
  await sending;
  draining = true;
  const deadline = sleep(10_000).then(() => 'deadline' as const);
  const drained = await Promise.race([receiving.then(() => 'drained' as const), deadline]);
  await drainingInbox;
  for (const s of STREAMS) {
    if (!caughtUp(s)) {
      violation(
        'lost',
        `${s}: ${PAIR_A} sent ${sent[s]} messages, ${PAIR_B} received ${expected[s]} in order${drained === 'deadline' ? ' (10 s after sending stopped)' : ''}`,
      );
    }
  }
  clearInterval(progress);
  report({ type: 'done', sent: { ...sent }, received: { ...expected }, foreign });
  leaving = true;
  await a.close();
  await b.close();
  process.disconnect?.();
  // Receive loops parked in a wait end with the connection; nothing else keeps the process.
  setTimeout(() => process.exit(0), 200).unref();
}

main().catch((e) => {
  violation('pair-failed', `the pair could not run: ${codeOf(e)} ${(e as Error).stack ?? ''}`);
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100);
});
