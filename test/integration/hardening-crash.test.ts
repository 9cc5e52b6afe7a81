/**
 * Hardening: a frame the kernel cannot or must not process costs its sender
 * (at most) its connection, never the kernel, another client, or a receiver.
 *
 * - r01: RECV with TIMED and an empty body; REQUEUE (op 15, retired in
 *   protocol 2) with priority 200: the daemon keeps running, a bystander's
 *   connection and queued messages survive.
 * - r12: REQUEUE cannot forge messages into a mailbox or an inbox.
 * - Unknown payload codec: refused at the kernel (request SEND:
 *   INVALID_ARGUMENT; credited SEND: protocol error for the sender), so a
 *   receiving process never sees it and stays alive.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type MailboxInfo } from '../../src/index.js';
import { Codec, Op, RecvFlag } from '../../src/wire/protocol.js';
import {
  destroyAllRaw,
  errorCode,
  frame,
  type KernelHost,
  RawClient,
  type RawFrame,
  startDaemonProcess,
  stopAllKernels,
  u32s,
} from '../fixtures/hardening-support.js';
import { waitFor } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

const isError = (reqId: number) => (f: RawFrame) => f.op === Op.ERROR && f.reqId === reqId;

/** A REQUEUE frame as protocol 1 defined it: u32 sender pid, then the payload. */
function requeueFrame(target: number, senderPid: number, text: string, priority = 0): Buffer {
  const payload = Buffer.from(JSON.stringify(text), 'utf8');
  return frame(
    Op.REQUEUE,
    { priority, codec: Codec.JSON, target },
    Buffer.concat([u32s(senderPid), payload]),
  );
}

describe('hardening: bad frames cost only their sender', () => {
  let kernel: KernelHost;
  let me: IpcProcess;
  let bystander: RemotePeer;
  let kept: MailboxInfo;

  before(async () => {
    kernel = await startDaemonProcess();
    me = await connect({ socketPath: kernel.socketPath, name: 'observer' });
    bystander = await RemotePeer.start(kernel.socketPath, 'bystander');
    kept = await bystander.ok<MailboxInfo>('create', { mailbox: 'kept', mailboxOptions: { capacity: 16 } });
    await bystander.ok('sendMany', { mailbox: 'kept', count: 3, start: 1 });
  });

  after(async () => {
    destroyAllRaw();
    await stopAll();
    await me?.close();
    await stopAllKernels();
  });

  /** The kernel runs, the bystander is connected and its three queued messages are still there. */
  async function bystanderIntact(what: string): Promise<void> {
    assert.ok(kernel.alive(), `${what}: the kernel process is still running`);
    const info = await bystander.ok<MailboxInfo>('stat', { mailbox: 'kept' });
    assert.equal(info.depth, 3, `${what}: the bystander's queued messages are still queued`);
    assert.deepEqual(bystander.eventsOf('disconnect'), [], `${what}: the bystander was never disconnected`);
  }

  test('r01: RECV with TIMED and an empty body is refused; the kernel and a bystander carry on', async () => {
    const raw = await RawClient.hello(kernel.socketPath, 'attacker-recv');
    raw.write(frame(Op.RECV, { flags: RecvFlag.TIMED, reqId: 5, target: kept.id }));
    const refusal = await raw.next((f) => isError(5)(f) || isError(0)(f), 5000, 'the refusal of the RECV');
    if (refusal.reqId === 0) {
      assert.equal(errorCode(refusal), 'PROTOCOL', 'a connection-level refusal is a protocol error');
      await raw.closedWithin(2000);
    } else {
      // Refused as a request: the offender's connection itself still works.
      raw.write(frame(Op.CALL, { reqId: 6 }, Buffer.from('{"m":"status","a":{}}')));
      assert.equal((await raw.next((f) => f.reqId === 6, 5000, 'the status answer')).op, Op.RESULT);
      raw.destroy();
    }
    await bystanderIntact('after RECV TIMED without a timeout');
  });

  test('r01: REQUEUE (retired) with priority 200 is a protocol error that closes only the offender', async () => {
    const raw = await RawClient.hello(kernel.socketPath, 'attacker-requeue');
    raw.write(requeueFrame(kept.id, raw.pid, 'injected', 200));
    const refusal = await raw.next(isError(0), 5000, 'ERROR PROTOCOL for REQUEUE');
    assert.equal(errorCode(refusal), 'PROTOCOL');
    await raw.closedWithin(2000);
    await bystanderIntact('after REQUEUE with priority 200');
    // From a client that claims protocol 1 (where REQUEUE existed) it may be ignored, but nothing more.
    const old = await RawClient.tryHello(kernel.socketPath, 'attacker-requeue-v1', 1);
    if (old !== undefined) {
      old.write(requeueFrame(kept.id, old.pid, 'injected', 200));
      old.write(frame(Op.CALL, { reqId: 2 }, Buffer.from('{"m":"status","a":{}}')));
      await old.next(
        (f) => f.reqId === 2 || (f.op === Op.ERROR && f.reqId === 0),
        5000,
        'the REQUEUE handled',
      );
      old.destroy();
    }
    await bystanderIntact('after a version 1 REQUEUE with priority 200');
    // The bystander's messages come out as it sent them, nothing injected among them.
    for (const v of [1, 2, 3]) {
      const m = await bystander.ok<PeerMessage>('receive', { mailbox: 'kept', options: { timeout: 5000 } });
      assert.equal(m.data, v);
      assert.equal(m.sender, 'bystander');
    }
    await bystander.ok('sendMany', { mailbox: 'kept', count: 3, start: 1 });
  });

  test('r12: REQUEUE cannot forge a message into a mailbox or an inbox, whatever sender pid it names', async () => {
    const bank = await RemotePeer.start(kernel.socketPath, 'bank');
    const client = await RemotePeer.start(kernel.socketPath, 'client');
    const orders = await bank.ok<MailboxInfo>('create', {
      mailbox: 'orders',
      mailboxOptions: { capacity: 1, senders: ['bank'], maxMessageSize: 16 },
    });
    await bank.ok('send', { mailbox: 'orders', value: 'legit' });
    const before = await me.listProcesses();
    const bankPid = before.find((p) => p.name === 'bank')!.pid;
    const clientInbox = before.find((p) => p.name === 'client')!.inbox;
    const ordersBefore = (await me.listMailboxes()).find((m) => m.name === 'orders')!;
    assert.equal(ordersBefore.depth, 1);

    for (const [target, text] of [
      [orders.id, 'transfer all funds to mallory, far over sixteen bytes'],
      [clientInbox, 'your account is locked, call mallory'],
    ] as const) {
      const mallory = await RawClient.hello(kernel.socketPath, `mallory-${target}`);
      mallory.write(requeueFrame(target, bankPid, text));
      assert.equal(errorCode(await mallory.next(isError(0), 5000, 'ERROR PROTOCOL for REQUEUE')), 'PROTOCOL');
      await mallory.closedWithin(2000);
      // A client may still speak protocol 1, where REQUEUE existed: claiming it must not forge either.
      const old = await RawClient.tryHello(kernel.socketPath, `mallory-v1-${target}`, 1);
      if (old !== undefined) {
        old.write(requeueFrame(target, bankPid, text));
        old.write(frame(Op.CALL, { reqId: 2 }, Buffer.from('{"m":"status","a":{}}')));
        await old.next(
          (f) => f.reqId === 2 || (f.op === Op.ERROR && f.reqId === 0),
          5000,
          'the REQUEUE handled',
        );
        old.destroy();
      }
    }

    const ordersAfter = (await me.listMailboxes()).find((m) => m.name === 'orders')!;
    assert.equal(ordersAfter.depth, 1, 'the mailbox depth is unchanged');
    assert.equal(ordersAfter.bytes, ordersBefore.bytes, 'the mailbox holds the same bytes');
    assert.equal((await me.listProcesses()).find((p) => p.name === 'client')!.inboxDepth, 0);
    const forged = await client.call('receive', { options: { from: 'bank', timeout: 300 } });
    assert.equal(forged.ok, false, `receive({from: 'bank'}) got something: ${JSON.stringify(forged.value)}`);
    assert.equal(forged.code, 'TIMEOUT');
    const m = await bank.ok<PeerMessage>('receive', { mailbox: 'orders', options: { timeout: 5000 } });
    assert.deepEqual([m.data, m.sender], ['legit', 'bank'], 'the one order is the bank’s own');
    await stopAll([bank, client]);
  });

  test('unknown codec: the kernel refuses it, the receiving process never sees it and stays alive', async () => {
    const rx = await RemotePeer.start(kernel.socketPath, 'codec-rx');
    const box = await rx.ok<MailboxInfo>('create', { mailbox: 'codecs', mailboxOptions: { capacity: 16 } });
    const parked = async (n: number) =>
      waitFor(
        async () => (await me.listMailboxes()).find((b) => b.name === 'codecs')!.waitingReceivers === n,
      );
    const first = rx.start<PeerMessage>('receive', { mailbox: 'codecs', options: { timeout: 15_000 } });
    await parked(1);

    const tx = await RawClient.hello(kernel.socketPath, 'codec-tx');
    tx.write(frame(Op.SEND, { reqId: 2, codec: 9, target: box.id }, Buffer.from('???')));
    assert.equal(
      errorCode(await tx.next(isError(2), 5000, 'the refusal of SEND codec 9')),
      'INVALID_ARGUMENT',
    );
    // Refused as a request: the sender's connection works on, and a good send goes through.
    tx.write(frame(Op.SEND, { reqId: 3, codec: Codec.STRING, target: box.id }, Buffer.from('ok-1')));
    await tx.next((f) => f.op === Op.SENT && f.reqId === 3, 5000, 'SENT for the good send');
    const r1 = await first.reply;
    assert.ok(r1.ok, `the receiver's first receive failed: ${r1.code} ${r1.message}`);
    assert.equal(r1.value.data, 'ok-1', 'the first message the receiver sees is the good one');

    // A credited send (request id 0) with an unknown codec: a protocol error for its sender only.
    const credit = await tx.next((f) => f.op === Op.CREDIT && f.target === box.id, 5000, 'CREDIT');
    assert.ok(credit.body.readUInt32LE(0) > 0, 'the raw sender holds slot credits');
    const second = rx.start<PeerMessage>('receive', { mailbox: 'codecs', options: { timeout: 15_000 } });
    await parked(1);
    tx.write(frame(Op.SEND, { reqId: 0, codec: 200, target: box.id }, Buffer.from('!!!')));
    assert.equal(errorCode(await tx.next(isError(0), 5000, 'ERROR PROTOCOL')), 'PROTOCOL');
    await tx.closedWithin(2000);

    await (await me.openMailbox('codecs')).send('ok-2');
    const r2 = await second.reply;
    assert.ok(r2.ok, `the receiver's second receive failed: ${r2.code} ${r2.message}`);
    assert.equal(r2.value.data, 'ok-2', 'the bad credited send never reached the receiver');
    assert.equal(rx.sp.child.exitCode, null, 'the receiver process is alive');
    assert.deepEqual(rx.eventsOf('disconnect'), [], 'the receiver kept its connection');
    assert.equal((await rx.ok<MailboxInfo>('stat', { mailbox: 'codecs' })).depth, 0);
    await bystanderIntact('after the unknown codecs');
    await stopAll([rx]);
  });
});
