/**
 * The cluster under faults, with kernels in their own processes and real nats-servers: a NATS
 * restart under load loses nothing a send promised and delivers nothing twice to an acking
 * receiver; a kernel with wrong credentials, or that does not trust the server's certificate, is
 * refused with a clear error; with TLS and the right CA it works.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connect, IpcError, type IpcProcess, startKernel } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';
import { makeTestCerts } from '../helpers/tls-certs.js';

describe('cluster faults', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  test('a NATS restart under load: every resolved send arrives once, in order, to an acking receiver', async () => {
    let nats: NatsServer = await startNatsServer();
    const dir = tempDir('ipcbox-faults-');
    const [a, b]: ClusterKernel[] = await Promise.all([
      // The outage must stay shorter than the time after which nodes count each other down.
      startClusterKernel(dir, 'fa', nats.url, { deadAfterMs: 10_000 }),
      startClusterKernel(dir, 'fb', nats.url, { deadAfterMs: 10_000 }),
    ]);
    cleanup.push(async () => {
      for (const k of [a, b]) k?.child.kill('SIGKILL');
      await nats.stop();
    });
    const owner: IpcProcess = await connect({ socketPath: (a as ClusterKernel).socketPath, name: 'owner' });
    const producer: IpcProcess = await connect({
      socketPath: (b as ClusterKernel).socketPath,
      name: 'producer',
    });
    const consumer: IpcProcess = await connect({
      socketPath: (b as ClusterKernel).socketPath,
      name: 'consumer',
    });
    cleanup.push(() => Promise.all([owner, producer, consumer].map((p) => p.close())).then(() => undefined));
    await owner.createMailbox('work', { capacity: 64, owner: 'system' });
    let box: Awaited<ReturnType<IpcProcess['openMailbox']>> | undefined;
    await waitFor(async () => {
      box = await producer.openMailbox('work').catch(() => undefined);
      return box !== undefined;
    }, 5000);
    const inbox = await consumer.openMailbox('work');
    const n = 3000;
    const resolved: number[] = [];
    const failed: number[] = [];
    const sending = (async () => {
      for (let i = 0; i < n; i++) {
        await (box as NonNullable<typeof box>).send(i).then(
          () => resolved.push(i),
          (e: unknown) => {
            assert.ok(e instanceof IpcError, String(e));
            failed.push(i);
          },
        );
      }
    })();
    const got: number[] = [];
    const receiving = (async () => {
      for (;;) {
        const m = await inbox.receive({ ack: true, timeout: 15_000 }).catch(() => undefined);
        if (m === undefined) return;
        got.push(m.data as number);
        m.ack();
        if (got.length >= n - failed.length && resolved.length + failed.length === n) return;
      }
    })();
    await waitFor(() => got.length > 500, 20_000, 'traffic before the restart');
    await nats.kill();
    nats = await startNatsServer({ port: nats.port, storeDir: nats.storeDir });
    await sending;
    await receiving;
    assert.deepEqual(failed, [], 'an outage shorter than a node timeout fails no send');
    assert.deepEqual(got, resolved, 'every resolved send arrived exactly once, in order');
    rmSync(dir, { recursive: true, force: true });
  });

  test('wrong NATS credentials: the kernel does not start, PERMISSION_DENIED', async () => {
    const nats = await startNatsServer({ args: ['--user', 'ipcbox', '--pass', 'right'] });
    cleanup.push(() => nats.stop());
    const dir = tempDir('ipcbox-auth-');
    const bad = startKernel({
      socketPath: join(dir, 'k.sock'),
      cluster: { servers: nats.url, node: 'n', auth: { user: 'ipcbox', pass: 'wrong' } },
    });
    await assert.rejects(
      bad,
      (e: IpcError) => e.code === 'PERMISSION_DENIED' && /credentials/.test(e.message),
    );
    const good = await startKernel({
      socketPath: join(dir, 'k.sock'),
      cluster: { servers: nats.url, node: 'n', auth: { user: 'ipcbox', pass: 'right' } },
    });
    await good.close();
  });

  test('a NATS server without JetStream, or an account not allowed to use it: a clear, coded refusal', async () => {
    const dir = tempDir('ipcbox-nojs-');
    const plain = await startNatsServer({ jetstream: false });
    cleanup.push(() => plain.stop());
    await assert.rejects(
      startKernel({ socketPath: join(dir, 'k.sock'), cluster: { servers: plain.url, node: 'n' } }),
      (e: IpcError) => e.code === 'CLUSTER_UNAVAILABLE' && /no JetStream.*-js/.test(e.message),
    );
    // A user who may publish only ipcbox's own subjects cannot reach the JetStream API ($JS.API.>).
    const conf = join(dir, 'nats.conf');
    writeFileSync(
      conf,
      'authorization { users = [ { user: k, password: p, permissions: { publish: { allow: ["ipcbox.>", "_INBOX.>"] }, subscribe: { allow: [">"] } } } ] }\n',
    );
    const fenced = await startNatsServer({ args: ['-c', conf] });
    cleanup.push(() => fenced.stop());
    await assert.rejects(
      startKernel({
        socketPath: join(dir, 'k.sock'),
        cluster: { servers: fenced.url, node: 'n', auth: { user: 'k', pass: 'p' } },
      }),
      (e: IpcError) => e.code === 'PERMISSION_DENIED' && /JetStream/.test(e.message),
    );
    // The failed starts left nothing behind: the socket path is free for a kernel that can join.
    const nats = await startNatsServer();
    cleanup.push(() => nats.stop());
    const good = await startKernel({
      socketPath: join(dir, 'k.sock'),
      cluster: { servers: nats.url, node: 'n' },
    });
    await good.close();
  });

  test('TLS to NATS: the right CA joins; a CA that did not sign the server is refused', async () => {
    const certs = makeTestCerts();
    const nats = await startNatsServer({ args: ['--tls', '--tlscert', certs.cert, '--tlskey', certs.key] });
    cleanup.push(async () => {
      await nats.stop();
      rmSync(certs.dir, { recursive: true, force: true });
    });
    const url = `tls://127.0.0.1:${nats.port}`;
    const dir = tempDir('ipcbox-tls-k-');
    const wrong = startKernel({
      socketPath: join(dir, 'k.sock'),
      cluster: { servers: url, node: 't', tls: { caFile: certs.otherCa } },
    });
    await assert.rejects(wrong, (e: IpcError) => e.code === 'CLUSTER_UNAVAILABLE' && /NATS/.test(e.message));
    const k = await startKernel({
      socketPath: join(dir, 'k.sock'),
      cluster: { servers: url, node: 't', tls: { caFile: certs.ca } },
    });
    const p = await connect({ socketPath: k.socketPath, name: 'over-tls' });
    assert.equal((await p.status()).cluster?.node, 't');
    await p.close();
    await k.close();
  });
});
