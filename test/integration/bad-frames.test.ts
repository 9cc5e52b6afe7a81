/**
 * The kernel against a misbehaving peer: raw sockets send malformed frames;
 * each offending connection gets an ERROR frame with code PROTOCOL (wire 0)
 * and is closed, while well-behaved processes connected alongside keep
 * working. Also the errors a well-behaved client gets for bad requests.
 */
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox } from '../../src/index.js';
import { errorCodeFromWire } from '../../src/wire/error-codes.js';
import { MAGIC, Op, PROTOCOL_VERSION } from '../../src/wire/protocol.js';
import { helloFrame, frame as rawFrame } from '../fixtures/hardening-support.js';
import { type Daemon, startDaemon } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

interface RawFrame {
  op: number;
  reqId: number;
  body: Buffer;
}

/** A raw frame (layout in test/fixtures/hardening-support.ts, after docs/protocol.md). */
function frame(op: number, reqId: number, body: Buffer = Buffer.alloc(0), target = 0): Buffer {
  return rawFrame(op, { reqId, target }, body);
}

function hello(name: string, magic = MAGIC, version = PROTOCOL_VERSION): Buffer {
  return helloFrame(name, 1, version, magic);
}

function parseFrames(bytes: Buffer): RawFrame[] {
  const frames: RawFrame[] = [];
  let off = 0;
  while (off + 16 <= bytes.length) {
    const len = bytes.readUInt32LE(off);
    if (off + 4 + len > bytes.length) break;
    frames.push({
      op: bytes[off + 4]!,
      reqId: bytes.readUInt32LE(off + 8),
      body: bytes.subarray(off + 16, off + 4 + len),
    });
    off += 4 + len;
  }
  return frames;
}

/** Write `bytes` on a raw connection and collect what the kernel answers until it closes the connection. */
function exchange(socketPath: string, bytes: Buffer[]): Promise<{ frames: RawFrame[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = netConnect(socketPath);
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ frames: parseFrames(Buffer.concat(got)), closed: false });
    }, 10_000);
    s.on('data', (d) => got.push(d));
    s.on('error', (e: NodeJS.ErrnoException) => {
      // The kernel may close while our write is still going out; what it answered is what counts.
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ frames: parseFrames(Buffer.concat(got)), closed: true });
    });
    s.on('connect', () => {
      for (const b of bytes) s.write(b);
    });
  });
}

/** Write `bytes` on a raw connection and collect frames until `until` matches one (the connection stays open). */
function converse(socketPath: string, bytes: Buffer[], until: (f: RawFrame) => boolean): Promise<RawFrame[]> {
  return new Promise((resolve, reject) => {
    const s = netConnect(socketPath);
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new Error(`no answer matched within 10 s; got ${parseFrames(Buffer.concat(got)).length} frames`),
      );
    }, 10_000);
    s.on('data', (d) => {
      got.push(d);
      const frames = parseFrames(Buffer.concat(got));
      if (frames.some(until)) {
        clearTimeout(timer);
        s.destroy();
        resolve(frames);
      }
    });
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(timer);
      reject(new Error('the kernel closed the connection'));
    });
    s.on('connect', () => {
      for (const b of bytes) s.write(b);
    });
  });
}

function assertProtocolError(r: { frames: RawFrame[]; closed: boolean }, what: string): void {
  assert.ok(r.closed, `${what}: the kernel closed the connection`);
  const last = r.frames.at(-1);
  assert.ok(last !== undefined, `${what}: the kernel answered before closing`);
  assert.equal(last.op, Op.ERROR, `${what}: the answer is an ERROR frame`);
  assert.equal(
    last.body.readUInt32LE(0),
    0,
    `${what}: wire error code 0 (PROTOCOL), got: ${last.body.toString('utf8', 4)}`,
  );
}

describe('bad frames and bad requests', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  let peer: RemotePeer;
  let mb: Mailbox;
  let round = 0;

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'frames-test' });
    peer = await RemotePeer.start(daemon.socketPath, 'frames-peer');
    mb = await me.createMailbox('still-works', { capacity: 8 });
    await peer.ok('open', { mailbox: 'still-works' });
  });

  after(async () => {
    await stopAll();
    await me?.close();
    await daemon?.stop();
  });

  /** The well-behaved processes connected alongside still send and receive. */
  async function stillWorks(): Promise<void> {
    const value = `round ${++round}`;
    await mb.send(value);
    const m = await peer.ok<PeerMessage>('receive', { mailbox: 'still-works', options: { timeout: 10_000 } });
    assert.equal(m.data, value);
    await peer.ok('send', { to: 'frames-test', value });
    assert.equal((await me.receive({ from: 'frames-peer', timeout: 10_000 })).data, value);
  }

  const cases: Array<[string, () => Buffer[]]> = [
    ['garbage bytes', () => [Buffer.from('hello kernel, this is not a frame at all\n'.repeat(4))]],
    ['a frame whose length is shorter than the header', () => [Buffer.from([4, 0, 0, 0, 1, 2, 3, 4])]],
    [
      'an oversized length (0xFFFFFFF0) without a body',
      () => {
        const b = Buffer.alloc(16);
        b.writeUInt32LE(0xfffffff0, 0);
        b[4] = Op.SEND;
        return [b];
      },
    ],
    [
      'a first frame that is not HELLO',
      () => [frame(Op.CALL, 7, Buffer.from(JSON.stringify({ m: 'status', a: {} })))],
    ],
    ['a HELLO with the wrong magic', () => [hello('bad-magic', 0xdeadbeef)]],
    [
      'a HELLO with an unsupported protocol version',
      () => [hello('bad-version', MAGIC, PROTOCOL_VERSION + 41)],
    ],
    ['an unknown op after HELLO', () => [hello('bad-op'), frame(0xee, 3)]],
  ];

  for (const [what, bytes] of cases) {
    test(`${what}: ERROR PROTOCOL and the connection is closed; others keep working`, async () => {
      assertProtocolError(await exchange(daemon.socketPath, bytes()), what);
      await stillWorks();
    });
  }

  const badCalls: Array<[string, Buffer]> = [
    ['a CALL whose body is not JSON', Buffer.from('{"m": "status", ')],
    ['a CALL whose JSON is not {m, a}', Buffer.from('[1,2,3]')],
    ['a CALL whose args are not an object', Buffer.from('{"m": "status", "a": 7}')],
    [
      // JSON.parse takes it; serializing it again (the signal's notice) would overflow the stack.
      'a CALL nesting 100 000 levels deep (a signal payload)',
      Buffer.from(
        `{"m": "signal", "a": {"to": "frames-test", "type": "t", "payload": ${'['.repeat(100_000)}${']'.repeat(100_000)}}}`,
      ),
    ],
  ];
  for (const [what, body] of badCalls) {
    test(`${what}: ERROR INVALID_ARGUMENT answers that request and the connection keeps working`, async () => {
      const frames = await converse(
        daemon.socketPath,
        [
          hello(`bad-call-${body.length}`),
          frame(Op.CALL, 2, body),
          frame(Op.CALL, 3, Buffer.from('{"m": "status", "a": {}}')),
        ],
        (f) => f.reqId === 3,
      );
      const refusal = frames.find((f) => f.reqId === 2);
      assert.ok(refusal !== undefined && refusal.op === Op.ERROR, `${what}: request 2 is refused`);
      assert.equal(errorCodeFromWire(refusal.body.readUInt32LE(0)), 'INVALID_ARGUMENT');
      const next = frames.find((f) => f.reqId === 3);
      assert.equal(next?.op, Op.RESULT, `${what}: the next call on the same connection is answered`);
    });
  }

  test('a process that broke the protocol is gone from the process table', async () => {
    const r = await exchange(daemon.socketPath, [hello('short-lived'), frame(0xee, 3)]);
    assertProtocolError(r, 'unknown op');
    assert.equal(r.frames[0]!.op, Op.WELCOME, 'the HELLO was accepted first');
    assert.ok(!(await me.listProcesses()).some((p) => p.name === 'short-lived'));
  });

  test('MESSAGE_TOO_LARGE for a message over the mailbox maxMessageSize', async () => {
    const small = await me.createMailbox('small', { maxMessageSize: 16 });
    await assert.rejects(small.send('x'.repeat(17)), { code: 'MESSAGE_TOO_LARGE' });
    assert.equal(
      (await peer.fails('send', { mailbox: 'small', value: 'y'.repeat(100) })).code,
      'MESSAGE_TOO_LARGE',
    );
    await small.send('x'.repeat(16));
    assert.equal((await small.stat()).depth, 1, 'only the message within the limit entered');
    await small.delete();
  });

  test('WRONG_MESSAGE_SIZE for a message that is not exactly fixedMessageSize', async () => {
    const fixed = await me.createMailbox('fixed', { fixedMessageSize: 8 });
    await assert.rejects(fixed.send(Buffer.alloc(7)), { code: 'WRONG_MESSAGE_SIZE' });
    await assert.rejects(fixed.send(Buffer.alloc(9)), { code: 'WRONG_MESSAGE_SIZE' });
    assert.equal(
      (await peer.fails('send', { mailbox: 'fixed', value: 'seven..' })).code,
      'WRONG_MESSAGE_SIZE',
    );
    await fixed.send(Buffer.alloc(8, 1));
    assert.deepEqual((await fixed.receive({ timeout: 10_000 })).bytes, Buffer.alloc(8, 1));
    await fixed.delete();
  });

  test('NO_SUCH_MAILBOX and NO_SUCH_PROCESS for unknown names', async () => {
    await assert.rejects(me.openMailbox('no-such-box'), { code: 'NO_SUCH_MAILBOX' });
    await assert.rejects(me.deleteMailbox('no-such-box'), { code: 'NO_SUCH_MAILBOX' });
    await assert.rejects(me.send('no-such-process', 'hi'), { code: 'NO_SUCH_PROCESS' });
    await assert.rejects(me.receive({ from: 'no-such-process', nonblock: true }), {
      code: 'NO_SUCH_PROCESS',
    });
    await assert.rejects(me.signal('no-such-process', 'poke'), { code: 'NO_SUCH_PROCESS' });
    await assert.rejects(me.monitor('no-such-process'), { code: 'NO_SUCH_PROCESS' });
    assert.equal((await peer.fails('send', { to: 'no-such-process', value: 1 })).code, 'NO_SUCH_PROCESS');
  });

  test('NAME_TAKEN for a second process with a name already in use; the first keeps its name', async () => {
    await assert.rejects(connect({ socketPath: daemon.socketPath, name: 'frames-peer' }), {
      code: 'NAME_TAKEN',
    });
    const other = RemotePeer.spawn(daemon.socketPath);
    try {
      const r = await other.call('connect', { name: 'frames-test' });
      assert.equal(r.code, 'NAME_TAKEN');
    } finally {
      await other.stop();
    }
    await stillWorks();
  });
});
