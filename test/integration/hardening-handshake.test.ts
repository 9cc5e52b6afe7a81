/**
 * Hardening of the handshake: what a connection can cost the kernel before
 * and around HELLO, and the names the kernel keeps for itself.
 *
 * - Connections that never send HELLO: beyond 64 the oldest are closed, and
 *   every one after helloTimeout; a new client still connects.
 * - Before HELLO a frame may be at most 4 KiB: a header announcing 16 MiB is
 *   refused at once.
 * - After HELLO, a header announcing 16 MiB followed by a few bytes costs
 *   the kernel those bytes, not 16 MiB (200 such connections).
 * - Names of the form proc-<n> are the kernel's: a client asking for one is
 *   refused INVALID_ARGUMENT, so anonymous clients never hit NAME_TAKEN.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess } from '../../src/index.js';
import { Op } from '../../src/wire/protocol.js';
import {
  destroyAllRaw,
  errorCode,
  helloFrame,
  type KernelHost,
  MiB,
  RawClient,
  rssOf,
  startKernelHost,
  stopAllKernels,
  vmSizeOf,
} from '../fixtures/hardening-support.js';
import { waitFor } from '../helpers/kernel-harness.js';

const HELLO_TIMEOUT = 2000;

/** A frame header (16 bytes) announcing a body of `bodyBytes`, followed by `some` of them. */
function announce(op: number, bodyBytes: number, some = 0): Buffer {
  const b = Buffer.alloc(16 + some, 0x5a);
  b.writeUInt32LE(12 + bodyBytes, 0);
  b[4] = op;
  b[5] = 0;
  b[6] = 0;
  b[7] = 0;
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(0, 12);
  return b;
}

describe('hardening: the handshake', () => {
  let kernel: KernelHost;
  let me: IpcProcess;

  before(async () => {
    kernel = await startKernelHost({ helloTimeout: HELLO_TIMEOUT });
    me = await connect({ socketPath: kernel.socketPath, name: 'observer' });
  });

  after(async () => {
    destroyAllRaw();
    await me?.close();
    await stopAllKernels();
  });

  test('a client asking for a name of the form proc-<n> is refused INVALID_ARGUMENT', async () => {
    await assert.rejects(connect({ socketPath: kernel.socketPath, name: 'proc-7' }), {
      code: 'INVALID_ARGUMENT',
    });
    assert.ok(!(await me.listProcesses()).some((p) => p.name === 'proc-7'));
  });

  test('anonymous clients never hit NAME_TAKEN, even when others claim the names they would get', async () => {
    // Claim the next 20 kernel-assigned names (raw HELLOs, so no client-side check can interfere).
    const next = Math.max(...(await me.listProcesses()).map((p) => p.pid)) + 1;
    const claims: RawClient[] = [];
    for (let k = 0; k < 20; k++) {
      const c = await RawClient.connect(kernel.socketPath);
      claims.push(c);
      c.write(helloFrame(`proc-${next + k}`));
    }
    for (const [k, c] of claims.entries()) {
      const answer = await c.next((f) => f.reqId === 1, 5000, `the answer to HELLO proc-${next + k}`);
      assert.equal(answer.op, Op.ERROR, `HELLO as proc-${next + k} is refused`);
      assert.equal(errorCode(answer), 'INVALID_ARGUMENT');
    }
    const anonymous: IpcProcess[] = [];
    try {
      for (let i = 0; i < 10; i++) anonymous.push(await connect({ socketPath: kernel.socketPath }));
      const names = anonymous.map((p) => p.name);
      for (const n of names) assert.match(n, /^proc-\d+$/);
      assert.equal(new Set(names).size, names.length, 'every anonymous client got a name of its own');
    } finally {
      for (const c of claims) c.destroy();
      await Promise.all(anonymous.map((p) => p.close()));
    }
  });

  test('before HELLO, a frame header announcing 16 MiB is refused at once (limit 4 KiB)', async () => {
    const raw = await RawClient.connect(kernel.socketPath);
    const started = Date.now();
    raw.write(announce(Op.HELLO, 16 * MiB));
    const refusal = await raw.next((f) => f.op === Op.ERROR, 1000, 'the refusal of the oversized HELLO');
    assert.equal(refusal.reqId, 0);
    assert.equal(errorCode(refusal), 'PROTOCOL');
    await raw.closedWithin(1000);
    assert.ok(Date.now() - started < HELLO_TIMEOUT, 'refused on sight, not by the hello timeout');
  });

  test('200 connections announcing 16 MiB frames after HELLO cost the bytes that arrived, not 16 MiB each', async (t) => {
    const rssBefore = rssOf(kernel.pid);
    const vmBefore = vmSizeOf(kernel.pid);
    const conns: RawClient[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const c = await RawClient.connect(kernel.socketPath);
        conns.push(c);
        // One write: HELLO, then a SEND header announcing 16 MiB with its first 100 bytes.
        c.write(Buffer.concat([helloFrame(`big-${i}`), announce(Op.SEND, 16 * MiB - 8, 100)]));
      }
      for (const c of conns) await c.next((f) => f.op === Op.WELCOME, 10_000, 'WELCOME');
      // The kernel has read all of them: a round trip behind them.
      await me.status();
      const rssGrowth = rssOf(kernel.pid) - rssBefore;
      const vmGrowth = vmSizeOf(kernel.pid) - vmBefore;
      t.diagnostic(`RSS +${(rssGrowth / MiB).toFixed(0)} MiB, virtual +${(vmGrowth / MiB).toFixed(0)} MiB`);
      assert.ok(kernel.alive());
      assert.ok(rssGrowth < 100 * MiB, `kernel RSS grew by ${(rssGrowth / MiB).toFixed(0)} MiB`);
      // 200 x 16 MiB reserved up front would be 3.2 GiB of address space, touched or not.
      assert.ok(vmGrowth < 1024 * MiB, `kernel virtual memory grew by ${(vmGrowth / MiB).toFixed(0)} MiB`);
      assert.ok(
        conns.every((c) => !c.closed),
        'the connections are still open, their frames pending',
      );
    } finally {
      for (const c of conns) c.destroy();
    }
  });

  test('100 connections that never send HELLO (and one that sends half of one): the oldest beyond 64 are closed, all after helloTimeout; a new client connects', async () => {
    const idle: RawClient[] = [];
    try {
      const started = Date.now();
      for (let i = 0; i < 100; i++) idle.push(await RawClient.connect(kernel.socketPath));
      // One more that starts a HELLO and never finishes it: a trickle of bytes is no handshake.
      const partial = await RawClient.connect(kernel.socketPath);
      partial.write(helloFrame('never-finished').subarray(0, 10));
      idle.push(partial);
      // The cap closes the oldest ones as the newer ones arrive, long before any hello timeout.
      await waitFor(() => idle.filter((c) => c.closed).length >= 36, 1000, '36 idle handshakes to be closed');
      assert.ok(Date.now() - started < HELLO_TIMEOUT, 'closed by the handshake cap, not the timeout');
      assert.ok(!idle.at(-1)!.closed, 'the newest idle connection is still open');
      assert.ok(
        idle.slice(0, 36).every((c) => c.closed),
        'the oldest ones went first',
      );

      const late = await connect({ socketPath: kernel.socketPath, name: 'late-comer', timeout: 3000 });
      assert.equal(late.name, 'late-comer');
      assert.ok((await late.listProcesses()).some((p) => p.name === 'late-comer'));
      await late.close();

      await waitFor(
        () => idle.every((c) => c.closed),
        HELLO_TIMEOUT + 2000,
        'every idle connection to be closed',
      );
      assert.ok(Date.now() - started >= HELLO_TIMEOUT - 100, 'the last ones went at the hello timeout');
    } finally {
      for (const c of idle) c.destroy();
    }
  });
});
