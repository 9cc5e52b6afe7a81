/**
 * A signal that reaches a process before it listens for signals (a peer may signal the moment it
 * sees the process connected, before `connect()` has returned there) is kept and handed to the
 * first 'signal' listener, in order, instead of being dropped by an emitter nobody listens to.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type IpcProcess, type SignalEvent } from '../../src/index.js';
import { type Daemon, startDaemon } from '../helpers/kernel-harness.js';

let daemon: Daemon;
let sender: IpcProcess;
before(async () => {
  daemon = await startDaemon();
  sender = await connect({ socketPath: daemon.socketPath, name: 'early-sender' });
});
after(async () => {
  await sender?.close();
  await daemon?.stop();
});

test('signals that arrive before the first listener are delivered to it, in order', async () => {
  const late = await connect({ socketPath: daemon.socketPath, name: 'late-listener' });
  await sender.signal('late-listener', 'first', 1);
  await sender.signal('late-listener', 'second', 2);
  // The kernel has sent both; give them time to be read by a process that is not listening.
  await late.status();
  const got: SignalEvent[] = [];
  late.on('signal', (e) => got.push(e));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    got.map((e) => [e.type, e.payload, e.from]),
    [
      ['first', 1, 'early-sender'],
      ['second', 2, 'early-sender'],
    ],
  );
  await sender.signal('late-listener', 'third', 3);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(got.length, 3, 'later signals go straight to the listener');
  await late.close();
});
