/**
 * `ipcbox daemon --cluster` end to end: two daemons (the real binary) on one nats-server are one
 * system — a mailbox created through one is fed through the other and read back, `status` shows the
 * nodes and where each name lives; a cluster-only flag without --cluster is a usage error.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KernelStatus } from '../../src/index.js';
import { type DaemonProcess, runCli, spawnDaemon, tempDir, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

describe('ipcbox daemon --cluster', () => {
  let nats: NatsServer;
  let a: DaemonProcess;
  let b: DaemonProcess;
  let dir: string;
  const sock = (n: string) => join(dir, `${n}.sock`);

  before(async () => {
    nats = await startNatsServer();
    dir = tempDir('ipcbox-cli-cluster-');
    [a, b] = await Promise.all([
      spawnDaemon(sock('a'), ['--cluster', nats.url, '--node', 'cli-a', '--cluster-name', 'clitest']),
      spawnDaemon(sock('b'), ['--cluster', nats.url, '--node', 'cli-b', '--cluster-name', 'clitest']),
    ]);
  });
  after(async () => {
    for (const d of [a, b]) d?.child.kill('SIGTERM');
    await Promise.all([a?.exit, b?.exit]);
    await nats?.stop();
  });

  test('the daemon says which node of which cluster it is', () => {
    assert.match(a.output(), /as node cli-a of cluster clitest/);
  });

  test('a mailbox made through one daemon is fed through the other and read back', async () => {
    const made = await runCli(['mailbox', 'create', 'shared-jobs', '--capacity', '4'], sock('a'));
    assert.equal(made.code, 0, made.stderr);
    await waitFor(
      async () => (await runCli(['send', 'shared-jobs', 'hello from b'], sock('b'))).code === 0,
      5000,
    );
    const got = await runCli(['recv', 'shared-jobs', '--timeout', '5000'], sock('a'));
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim(), 'hello from b');
  });

  test('status shows the nodes and where names live (text and --json)', async () => {
    const st = await runCli(['status', '--json'], sock('b'));
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout) as KernelStatus;
    assert.deepEqual(s.cluster?.nodes.map((n) => n.node).sort(), ['cli-a', 'cli-b']);
    assert.ok(
      s.cluster?.remote.some((r) => r.kind === 'mailbox' && r.name === 'shared-jobs' && r.node === 'cli-a'),
    );
    const text = await runCli(['status'], sock('b'));
    assert.match(text.stdout, /Cluster clitest/);
    assert.match(text.stdout, /cli-b \(this\)/);
    assert.match(text.stdout, /mailbox\s+shared-jobs\s+cli-a/);
  });

  test('mailbox create --durable makes a durable mailbox (status --json says so)', async () => {
    const made = await runCli(['mailbox', 'create', 'kept', '--durable', '--json'], sock('a'));
    assert.equal(made.code, 0, made.stderr);
    assert.equal((JSON.parse(made.stdout) as { durable?: boolean }).durable, true);
  });

  test('--node without --cluster is a usage error', async () => {
    const r = await runCli(['daemon', '--node', 'x'], join(dir, 'never.sock'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /need --cluster/);
  });

  test('SIGTERM stops a daemon whose NATS server is gone, promptly and removing its socket', async () => {
    // Its leave (names released, membership left) cannot reach NATS; it must not wait for ever.
    const own = await startNatsServer();
    const d = await spawnDaemon(sock('lone'), [
      '--cluster',
      own.url,
      '--node',
      'cli-lone',
      '--cluster-name',
      'lone',
    ]);
    await own.stop();
    const asked = Date.now();
    d.child.kill('SIGTERM');
    const code = await Promise.race([
      d.exit,
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000)),
    ]);
    if (code === 'hung') d.child.kill('SIGKILL');
    assert.equal(code, 0, `daemon exit after SIGTERM (${Date.now() - asked} ms): ${d.output()}`);
    assert.ok(!existsSync(sock('lone')), 'its socket is removed');
  });
});
