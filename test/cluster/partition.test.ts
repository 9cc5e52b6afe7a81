/**
 * A kernel cut off (SIGSTOPped) longer than deadAfter is counted down by the others, who may take its
 * names. When it comes back it claims its names again: the ones nobody took are its own again; a
 * process name another node took meanwhile is not kept twice — its holder here is disconnected with
 * NAME_TAKEN — and a mailbox name taken elsewhere closes the mailbox here.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type IpcError, type IpcProcess } from '../../src/index.js';
import { type ClusterKernel, startClusterKernel } from '../helpers/cluster-harness.js';
import { tempDir, waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

const timing = { heartbeatMs: 200, deadAfterMs: 1000 };
let nats: NatsServer;
let a: ClusterKernel;
let b: ClusterKernel;
const open: IpcProcess[] = [];
before(async () => {
  nats = await startNatsServer();
  const dir = tempDir('ipcbox-partition-');
  [a, b] = await Promise.all([
    startClusterKernel(dir, 'pa', nats.url, timing),
    startClusterKernel(dir, 'pb', nats.url, timing),
  ]);
});
after(async () => {
  for (const p of open) await p.close().catch(() => undefined);
  for (const k of [a, b]) {
    k?.child.kill('SIGCONT');
    k?.child.kill('SIGKILL');
  }
  await nats?.stop();
});

test('a kernel back from a pause longer than deadAfter keeps its free names and gives up the taken ones', async () => {
  const keeper = await connect({ socketPath: a.socketPath, name: 'keeper' });
  const dupA = await connect({ socketPath: a.socketPath, name: 'dup' });
  open.push(keeper, dupA);
  await keeper.createMailbox('a-box', { owner: 'system' });
  const lost: IpcError[] = [];
  dupA.on('disconnect', (e) => lost.push(e));
  const watcher = await connect({ socketPath: b.socketPath, name: 'watcher' });
  open.push(watcher);
  const remote = async () => (await watcher.status()).cluster?.remote ?? [];
  await waitFor(async () => (await remote()).some((r) => r.name === 'dup'), 5000, 'B sees dup on pa');

  a.child.kill('SIGSTOP');
  await waitFor(
    async () => !(await watcher.status()).cluster?.nodes.some((n) => n.node === 'pa'),
    10_000,
    'B counts pa down',
  );
  const dupB = await connect({ socketPath: b.socketPath, name: 'dup' });
  open.push(dupB);
  await watcher.createMailbox('a-box', { owner: 'system' });

  a.child.kill('SIGCONT');
  await waitFor(() => lost.length > 0, 10_000, 'the duplicate on pa is disconnected');
  assert.equal(lost[0]?.code, 'NAME_TAKEN', lost[0]?.message);
  assert.match(lost[0]?.message ?? '', /pb/);
  // keeper's name was free: it is keeper's again, and reachable from B.
  await waitFor(
    async () =>
      await watcher.send('keeper', 'welcome back').then(
        () => true,
        () => false,
      ),
    10_000,
    'keeper reachable from pb again',
  );
  assert.equal((await keeper.receive({ timeout: 5000 })).data, 'welcome back');
  // a-box is pb's now; pa closed its own.
  await waitFor(
    async () => !(await keeper.status()).mailboxes.some((m) => m.name === 'a-box'),
    5000,
    'pa closed a-box',
  );
  assert.equal(await dupB.status().then(() => 'alive'), 'alive', 'the name’s new holder is untouched');
});

test('a kernel whose node name another kernel took while it was paused stops, telling its processes NAME_TAKEN', async () => {
  const dir = tempDir('ipcbox-fenced-');
  const c = await startClusterKernel(dir, 'px', nats.url, timing);
  const p = await connect({ socketPath: c.socketPath, name: 'on-the-fenced' });
  const lost: IpcError[] = [];
  p.on('disconnect', (e) => lost.push(e));
  c.child.kill('SIGSTOP');
  // Its last heartbeat is older than deadAfter by the server's clock: a new kernel takes the name.
  await new Promise((r) => setTimeout(r, timing.deadAfterMs + 500));
  const d = await startClusterKernel(tempDir('ipcbox-fenced-2-'), 'px', nats.url, timing);
  c.child.kill('SIGCONT');
  await waitFor(() => lost.length > 0, 10_000, 'the fenced kernel tells its process');
  assert.equal(lost[0]?.code, 'NAME_TAKEN', lost[0]?.message);
  assert.match(lost[0]?.message ?? '', /px/);
  const q = await connect({ socketPath: d.socketPath, name: 'on-the-new-px' });
  assert.equal((await q.status()).cluster?.node, 'px', 'the new kernel is node px');
  await q.close();
  for (const k of [c, d]) k.child.kill('SIGKILL');
});

test('requests in flight to a node that does not answer are bounded per process: beyond 65,536, KERNEL_FULL', async () => {
  const dir = tempDir('ipcbox-bound-');
  // Both kernels count a node down only after 20 s (it is the observer's setting that decides):
  // the pause below is a slow node, not a dead one.
  const patience = { heartbeatMs: 500, deadAfterMs: 20_000 };
  const [home, near] = await Promise.all([
    startClusterKernel(dir, 'slow', nats.url, patience),
    startClusterKernel(dir, 'patient', nats.url, patience),
  ]);
  const target = await connect({ socketPath: home.socketPath, name: 'far-target' });
  const caller = await connect({ socketPath: near.socketPath, name: 'eager-caller' });
  open.push(target, caller);
  await caller.waitForProcess('far-target', { timeout: 10_000 });
  await caller.signal('far-target', 'warm-up');
  // The precondition of this test: the caller's kernel has the name in its mirror of the names (the
  // KV watch), not only from a confirming read of the server. A burst past the bound of confirming
  // reads is answered from the mirror alone, so a name missing there would park the calls here
  // instead of forwarding them. (Once, the short-deadAfter kernels of before() deleted it from the
  // bucket as soon as they counted the paused home down: global-names.ts `forget`.)
  await waitFor(
    async () =>
      (await caller.status()).cluster?.remote?.some(
        (r) => r.kind === 'process' && r.name === 'far-target',
      ) === true,
    10_000,
    "far-target reaches the caller's kernel's mirror",
  );
  home.child.kill('SIGSTOP');
  // A call the home answers itself (a signal would also fill the target's socket, and the home refuses
  // signals to a target that does not read).
  const calls = Array.from({ length: 65_536 + 50 }, () => caller.waitForProcess('far-target'));
  // Each outcome is checked below; one that comes early must not be an unhandled rejection meanwhile.
  for (const c of calls) c.catch(() => undefined);
  const refused = await Promise.race([
    (async () => {
      let n = 0;
      for (const c of calls.slice(65_536)) await c.catch((e: IpcError) => e.code === 'KERNEL_FULL' && n++);
      return n;
    })(),
    new Promise<number>((r) => setTimeout(() => r(-1), 30_000)),
  ]);
  assert.equal(refused, 50, 'the calls past the bound are refused at once; the others wait for the node');
  home.child.kill('SIGCONT');
  const settled = await Promise.allSettled(calls.slice(0, 65_536));
  const failures = settled.flatMap((r) =>
    r.status === 'rejected' ? [String((r.reason as Error).message)] : [],
  );
  assert.deepEqual(
    failures.slice(0, 3),
    [],
    `the node answers the rest when it is back (${failures.length} failed)`,
  );
  for (const k of [home, near]) k.child.kill('SIGKILL');
});
