import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { type IpcError, listNamedSemaphores, NamedSemaphore } from '../../src/index.js';
import {
  blockedInKernel,
  buildCPeer,
  Cleanup,
  PY_PEER,
  spawnPeer,
  stopPeers,
  uniqueName,
} from './fixtures/peers.js';

const hasCode = (code: string) => (e: IpcError) => e.code === code;

/** Named POSIX semaphores shared with C and Python processes, a worker's waitSync, abort and a killed waiter. */
describe('named POSIX semaphores', () => {
  let cPeer: string;
  let removeDir: () => void;
  const cleanup = new Cleanup();
  const fresh = (initial = 0) => {
    const name = `/${uniqueName('sem')}`;
    const sem = NamedSemaphore.open(name, { create: true, exclusive: true, initial, mode: 0o640 });
    cleanup.add(() => NamedSemaphore.unlink(name));
    cleanup.add(() => sem.close());
    return sem;
  };

  before(async () => {
    ({ cPeer, remove: removeDir } = await buildCPeer());
  });
  afterEach(async () => {
    await stopPeers();
    cleanup.run();
  });
  after(() => removeDir());

  for (const lang of ['C', 'Python'] as const) {
    const peer = (args: string[]) =>
      lang === 'C' ? spawnPeer(cPeer, args) : spawnPeer('python3', [PY_PEER, ...args]);

    it(`a post from ${lang} wakes an async wait in Node, and Node's post wakes ${lang}'s sem_wait`, async () => {
      const sem = fresh();
      let done = false;
      const waiting = sem.wait({ timeout: 20_000 }).then(() => {
        done = true;
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(done, false, 'the wait is parked');
      assert.equal(await peer(['sem-post', sem.name]).exited, 0);
      await waiting;
      assert.equal(sem.value(), 0, 'the wait took the permit');

      const waiter = peer(['sem-wait', sem.name]);
      await waiter.line('ready');
      sem.post();
      assert.equal(await waiter.line('acquired'), 'acquired');
      assert.equal(await waiter.exited, 0);
      assert.equal(sem.value(), 0);
    });
  }

  it('tryWait, value, waitSync timeout, exact mode, NAME_TAKEN and NO_SUCH_OBJECT', () => {
    const sem = fresh(2);
    assert.equal(statSync(`/dev/shm/sem.${sem.name.slice(1)}`).mode & 0o777, 0o640);
    assert.equal(sem.value(), 2);
    assert.equal(sem.tryWait(), true);
    sem.waitSync(0);
    assert.equal(sem.tryWait(), false);
    const t0 = performance.now();
    assert.throws(() => sem.waitSync(80), hasCode('TIMEOUT'));
    assert.ok(performance.now() - t0 >= 75);
    sem.post(3);
    assert.equal(sem.value(), 3);
    assert.throws(
      () => NamedSemaphore.open(sem.name, { create: true, exclusive: true }),
      hasCode('NAME_TAKEN'),
    );
    assert.throws(() => NamedSemaphore.open(`${sem.name}-missing`), hasCode('NO_SUCH_OBJECT'));
    assert.ok(listNamedSemaphores().includes(sem.name), 'listed from /dev/shm/sem.*');
  });

  it('an async wait times out and aborts without taking a permit; a later post is still there', async () => {
    const sem = fresh();
    await assert.rejects(sem.wait({ timeout: 60 }), hasCode('TIMEOUT'));
    const ac = new AbortController();
    const aborted = sem.wait({ signal: ac.signal });
    let ticks = 0;
    const interval = setInterval(() => ticks++, 10);
    await new Promise((r) => setTimeout(r, 100));
    clearInterval(interval);
    assert.ok(ticks >= 5, `the event loop ran timers while the wait was parked (${ticks} ticks)`);
    ac.abort(new Error('no more'));
    await assert.rejects(
      aborted,
      (e: IpcError) => e.code === 'ABORTED' && (e.cause as Error).message === 'no more',
    );
    sem.post();
    // The cancelled waiter thread may still be in its slice: the permit must end up here, not with it.
    await sem.wait({ timeout: 5000 });
    assert.equal(sem.value(), 0);
  });

  it('a worker blocked in waitSync is woken by a post from the main thread', async () => {
    const sem = fresh();
    const worker = new Worker(new URL('./fixtures/sem-worker.js', import.meta.url), {
      workerData: [sem.name, '20000'],
    });
    const messages: string[] = [];
    const got = (m: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => messages.includes(m) && resolve();
        worker.on('message', (x: string) => {
          messages.push(x);
          check();
        });
        worker.on('error', reject);
        check();
      });
    await got('ready');
    sem.post();
    await got('acquired');
    await new Promise((r) => worker.on('exit', r));
  });

  it('a waiter SIGKILLed while blocked in sem_wait leaves the semaphore working: a later post wakes the other waiter', async () => {
    const sem = fresh();
    const victim = spawnPeer(cPeer, ['sem-wait', sem.name]);
    await victim.line('ready');
    await blockedInKernel(victim.pid);
    const survivor = sem.wait({ timeout: 20_000 });
    victim.kill('SIGKILL');
    assert.equal(await victim.exited, 'SIGKILL');
    assert.equal(await spawnPeer('python3', [PY_PEER, 'sem-post', sem.name]).exited, 0);
    await survivor;
    assert.equal(sem.value(), 0);
  });
});
