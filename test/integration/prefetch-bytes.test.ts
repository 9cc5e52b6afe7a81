/**
 * Prefetch is bounded in bytes, not only in messages: a receiver iterating with prefetch 512 over
 * 1 MiB messages is pushed at most PUSH_BYTES_MAX of them at a time, so a stream of large messages
 * through a bounded mailbox never exhausts the kernel's budget (every send succeeds, blocking while
 * the mailbox is full) and the kernel's memory stays near its bound.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type IpcProcess, type Kernel, startKernel } from '../../src/index.js';
import { PUSH_BYTES_MAX } from '../../src/kernel/session.js';
import { tempDir } from '../helpers/kernel-harness.js';

let kernel: Kernel;
let sender: IpcProcess;
let receiver: IpcProcess;
before(async () => {
  kernel = await startKernel({ socketPath: join(tempDir(), 'k.sock'), memoryBudget: 48 * 1024 * 1024 });
  sender = await connect({ socketPath: kernel.socketPath, name: 'big-sender' });
  receiver = await connect({ socketPath: kernel.socketPath, name: 'slow-reader' });
});
after(async () => {
  await sender?.close();
  await receiver?.close();
  await kernel?.close();
});

test('1 MiB messages to a receiver with prefetch 512: no KERNEL_FULL, at most the push bound in flight', async () => {
  const n = 80;
  const size = 1024 * 1024;
  const box = await sender.createMailbox('big', { capacity: 8 });
  const mine = await receiver.openMailbox('big');
  let got = 0;
  let peakHeld = 0;
  const reading = (async () => {
    for await (const m of mine.messages({ prefetch: 512 })) {
      assert.equal(m.bytes.length, size);
      peakHeld = Math.max(peakHeld, kernel.budget.held);
      await new Promise((r) => setTimeout(r, 15));
      if (++got === n) break;
    }
  })();
  const payload = Buffer.alloc(size, 7);
  for (let i = 0; i < n; i++) await box.send(payload);
  await reading;
  assert.equal(got, n);
  // Queued (8) + pushed (the bound) + one parked send, each holding its bytes: well under 48 MiB.
  assert.ok(peakHeld <= (8 + 1) * size + PUSH_BYTES_MAX + 2 * size, `held peaked at ${peakHeld} bytes`);
});
