/**
 * The cluster's membership and global names on a real nats-server (JetStream): kernels with one
 * cluster name see each other and share one namespace; another cluster name shares nothing; a node
 * name or a process name is held once; of racing claimants exactly one wins; a node that leaves or
 * is SIGKILLed frees its names within the stated bound; refused credentials and an unreachable NATS
 * are typed errors.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster } from '../../src/cluster/cluster.js';
import type { ClusterOptions } from '../../src/cluster/cluster-options.js';
import { IpcError } from '../../src/errors.js';
import { FIXTURES, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

function spawnNode(args: string[]): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, [join(FIXTURES, 'cluster-node.js'), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`cluster node exited ${code} before ready`)));
  });
  return { child, ready };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<IpcError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof IpcError, `an IpcError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

describe('cluster membership and global names', () => {
  let nats: NatsServer;
  const open: Cluster[] = [];
  const join_ = async (o: Partial<ClusterOptions> & { node: string }) => {
    const c = await Cluster.join({ servers: nats.url, name: 'mt', heartbeatMs: 200, deadAfterMs: 800, ...o });
    open.push(c);
    return c;
  };

  before(async () => {
    nats = await startNatsServer();
  });
  after(async () => {
    for (const c of open) await c.close().catch(() => undefined);
    await nats?.stop();
  });

  test('two nodes see each other and share one namespace; a release frees the name', async () => {
    const a = await join_({ node: 'a1' });
    const b = await join_({ node: 'b1' });
    await waitFor(
      () => a.nodes().some((n) => n.node === 'b1') && b.nodes().some((n) => n.node === 'a1'),
      5000,
    );
    await a.claimName('process', 'bob', { pid: 1 });
    const e = await rejectsWith(b.claimName('process', 'bob'), 'NAME_TAKEN');
    assert.match(e.message, /node a1/);
    assert.equal((await b.lookup('process', 'bob'))?.node, 'a1');
    await b.claimName('mailbox', 'bob');
    assert.equal((await a.lookup('mailbox', 'bob'))?.node, 'b1', 'process and mailbox names are separate');
    await a.releaseName('process', 'bob');
    await b.claimName('process', 'bob');
    assert.equal((await a.lookup('process', 'bob'))?.node, 'b1');
  });

  test('names of any characters are keys', async () => {
    const a = await join_({ node: 'a2' });
    for (const n of ['with space', 'dots.and/slashes', 'ünïcødé', '*', '>']) {
      await a.claimName('process', n);
      assert.equal((await a.lookup('process', n))?.node, 'a2', n);
    }
  });

  test('another cluster name on the same NATS sees none of it', async () => {
    const a = await join_({ node: 'a3' });
    const other = await join_({ node: 'a3', name: 'elsewhere' });
    await a.claimName('process', 'carol');
    await other.claimName('process', 'carol');
    assert.ok(!other.nodes().some((n) => n.incarnation === a.membership.self.incarnation));
  });

  test('a node name held by a live kernel is refused', async () => {
    await join_({ node: 'dup' });
    await rejectsWith(Cluster.join({ servers: nats.url, name: 'mt', node: 'dup' }), 'NAME_TAKEN');
  });

  test('of two nodes racing for the same names, exactly one wins each', async () => {
    const a = await join_({ node: 'ra' });
    const b = await join_({ node: 'rb' });
    const names = Array.from({ length: 20 }, (_, i) => `race-${i}`);
    const results = await Promise.all(
      names.flatMap((n) =>
        [a, b].map((c) =>
          c.claimName('process', n).then(
            () => c.node,
            () => undefined,
          ),
        ),
      ),
    );
    for (let i = 0; i < names.length; i++) {
      const winners = results.slice(2 * i, 2 * i + 2).filter((w) => w !== undefined);
      assert.equal(winners.length, 1, `${names[i]}: ${JSON.stringify(winners)}`);
      assert.equal((await a.lookup('process', names[i] as string))?.node, winners[0]);
    }
  });

  test('a node that leaves is down at once and its names are free', async () => {
    const a = await join_({ node: 'la' });
    const b = await Cluster.join({
      servers: nats.url,
      name: 'mt',
      node: 'lb',
      heartbeatMs: 200,
      deadAfterMs: 800,
    });
    await b.claimName('process', 'leaver');
    await waitFor(() => a.nodes().some((n) => n.node === 'lb'), 5000);
    const down = new Promise<string>((r) => a.on('node-down', (n, why) => n.node === 'lb' && r(why)));
    await b.close();
    assert.equal(await down, 'left');
    await a.claimName('process', 'leaver');
  });

  test('a SIGKILLed node is down and its names free within deadAfter + a heartbeat (default timing: 5 s)', async () => {
    const a = await Cluster.join({ servers: nats.url, name: 'mt', node: 'watcher' });
    open.push(a);
    const victim = spawnNode([nats.url, 'victim', 'mt', '1000', '4000', 'v1', 'v2']);
    await victim.ready;
    await waitFor(async () => (await a.lookup('process', 'v1'))?.node === 'victim', 5000);
    await rejectsWith(a.claimName('process', 'v1'), 'NAME_TAKEN');
    const down = new Promise<string>((r) => a.on('node-down', (n, why) => n.node === 'victim' && r(why)));
    const killed = performance.now();
    victim.child.kill('SIGKILL');
    assert.equal(await down, 'timeout');
    await a.claimName('process', 'v1');
    await a.claimName('process', 'v2');
    const took = performance.now() - killed;
    assert.ok(
      took <= 5000 + 500,
      `names freed ${Math.round(took)} ms after SIGKILL (bound 5 s, + 0.5 s for NATS round trips)`,
    );
    assert.ok(took >= 3000 - 1000, `not freed before the node could be known dead (${Math.round(took)} ms)`);
  });

  test('a kernel restarted on the same host after a crash takes its node name back at once', async () => {
    const first = spawnNode([nats.url, 'phoenix', 'mt', '1000', '4000']);
    await first.ready;
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const t0 = performance.now();
    const again = await join_({ node: 'phoenix', heartbeatMs: 1000, deadAfterMs: 4000 });
    assert.ok(performance.now() - t0 < 2000, 'no wait for the dead incarnation to time out');
    assert.equal(again.node, 'phoenix');
  });

  test('kernels started at the same moment on a new cluster all join (they race to create its buckets)', async () => {
    // Each round is a cluster name never used on this NATS, so its buckets do not exist yet and all
    // four processes try to create them together.
    for (let round = 0; round < 3; round++) {
      const name = `fresh${round}`;
      const nodes = Array.from({ length: 4 }, (_, i) =>
        spawnNode([nats.url, `r${i}`, name, '1000', '4000', `p${i}`]),
      );
      try {
        await Promise.all(nodes.map((n) => n.ready));
        const seer = await join_({ node: 'seer', name });
        for (let i = 0; i < 4; i++)
          assert.equal((await seer.lookup('process', `p${i}`))?.node, `r${i}`, `round ${round} node r${i}`);
      } finally {
        for (const n of nodes) n.child.kill('SIGKILL');
      }
    }
  });

  test('an unreachable NATS is CLUSTER_UNAVAILABLE', async () => {
    await rejectsWith(
      Cluster.join({ servers: 'nats://127.0.0.1:1', node: 'nowhere' }),
      'CLUSTER_UNAVAILABLE',
    );
  });
});

describe('cluster credentials', () => {
  let nats: NatsServer;
  before(async () => {
    nats = await startNatsServer({ args: ['--user', 'kernel', '--pass', 's3cret'] });
  });
  after(async () => {
    await nats?.stop();
  });

  test('wrong credentials are PERMISSION_DENIED; the right ones join', async () => {
    await rejectsWith(
      Cluster.join({ servers: nats.url, node: 'n1', auth: { user: 'kernel', pass: 'wrong' } }),
      'PERMISSION_DENIED',
    );
    await rejectsWith(Cluster.join({ servers: nats.url, node: 'n1' }), 'PERMISSION_DENIED');
    const ok = await Cluster.join({
      servers: nats.url,
      node: 'n1',
      auth: { user: 'kernel', pass: 's3cret' },
    });
    await ok.close();
  });
});
