import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { connect, type IpcError, type IpcProcess, type SegmentRemovedEvent } from '../../src/index.js';
import { Segment } from '../../src/shm/segment.js';
import { type Daemon, runCli, spawnFixture, startDaemon, waitFor } from '../helpers/kernel-harness.js';

/** The kernel tracks shared-memory segments: listing, rights on attach, cleanup on owner death, `ipcbox shm rm`. */
describe('segment registry', () => {
  let d: Daemon;
  const made: string[] = [];
  const unique = (tag: string) => {
    const n = `ipcbox-t-${tag}-${process.pid}-${made.length}`;
    made.push(n);
    return n;
  };

  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    for (const n of made) {
      try {
        Segment.unlink(n);
      } catch {
        // already removed by the test
      }
    }
    await d.stop();
  });

  async function client(name: string): Promise<IpcProcess> {
    return connect({ socketPath: d.socketPath, name });
  }

  it('lists a registered segment with its attached processes in status', async () => {
    const name = unique('list');
    const owner = spawnFixture('segment-owner', [name, '4096', 'process'], d.socketPath);
    try {
      await owner.line((l) => l === 'ready');
      const viewer = await client(`viewer-${name}`);
      try {
        await viewer.attachSegment(name, 'attach');
        const status = await viewer.status();
        const seg = status.segments.find((s) => s.name === name);
        assert.ok(seg, 'segment listed');
        assert.equal(seg.size, 4096);
        assert.deepEqual(seg.attached.map((a) => a.process).sort(), [`owner-${name}`, `viewer-${name}`]);
        const cli = await runCli(['status', '--json'], d.socketPath);
        assert.equal(cli.code, 0);
        assert.ok(JSON.parse(cli.stdout).segments.some((s: { name: string }) => s.name === name));
      } finally {
        await viewer.close();
      }
    } finally {
      owner.kill('SIGKILL');
      await owner.exit;
    }
  });

  it('checks rights on attach: a process without the send right gets PERMISSION_DENIED', async () => {
    const name = unique('rights');
    const owner = spawnFixture('segment-owner', [name, '4096', 'process'], d.socketPath);
    try {
      await owner.line((l) => l === 'ready');
      const stranger = await client(`stranger-${name}`);
      const allowed = await client('allowed');
      try {
        await assert.rejects(
          stranger.attachSegment(name, 'send'),
          (e: IpcError) => e.code === 'PERMISSION_DENIED',
        );
        const info = await allowed.attachSegment(name, 'send');
        assert.ok(info.attached.some((a) => a.process === 'allowed' && a.role === 'send'));
        await assert.rejects(
          stranger.attachSegment('no-such-segment-here', 'attach'),
          (e: IpcError) => e.code === 'NO_SUCH_SEGMENT',
        );
      } finally {
        await stranger.close();
        await allowed.close();
      }
    } finally {
      owner.kill('SIGKILL');
      await owner.exit;
    }
  });

  it('never unlinks a segment it did not see created: registering an existing one only names it', async () => {
    const name = unique('adopted');
    const theirs = Segment.create(name, { size: 4096 });
    new Uint8Array(theirs.buffer)[0] = 7;
    theirs.close();
    try {
      const owner = spawnFixture('segment-owner', [name, '4096', 'process', 'adopted'], d.socketPath);
      await owner.line((l) => l === 'ready');
      owner.kill('SIGKILL');
      await owner.exit;
      const watcher = await client(`adopt-watch-${name}`);
      await waitFor(
        async () => !(await watcher.listSegments()).some((s) => s.name === name),
        10_000,
        'the registration to go with its process',
      );
      const again = Segment.open(name);
      assert.equal(new Uint8Array(again.buffer)[0], 7, 'the segment and its data are still there');
      again.close();
    } finally {
      Segment.unlink(name);
    }
  });

  it('refuses segment meta that is too deep or too large, and status keeps working for everyone', async () => {
    const p = await client(unique('meta'));
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    const name = unique('deep');
    await assert.rejects(
      p.registerSegment(name, { size: 4096, meta: deep }),
      (e: IpcError) => e.code === 'INVALID_ARGUMENT',
    );
    await assert.rejects(
      p.registerSegment(name, { size: 4096, meta: 'x'.repeat(70 * 1024) }),
      (e: IpcError) => e.code === 'INVALID_ARGUMENT',
    );
    const st = await p.status();
    assert.equal(
      st.segments.some((s) => s.name === name),
      false,
    );
  });

  it('removes a process-owned segment when its owner is SIGKILLed and tells the attached processes', async () => {
    const name = unique('killed');
    const owner = spawnFixture('segment-owner', [name, '8192', 'process'], d.socketPath);
    await owner.line((l) => l === 'ready');
    const watcher = await client(`watcher-${name}`);
    try {
      await watcher.attachSegment(name, 'attach');
      const seg = Segment.open(name);
      assert.equal(new Uint8Array(seg.buffer)[0], 42, 'the data is shared');
      const removed: SegmentRemovedEvent[] = [];
      watcher.on('segment-removed', (e) => removed.push(e));
      owner.kill('SIGKILL');
      await owner.exit;
      await waitFor(() => removed.length > 0, 10_000, 'segment-removed notice');
      assert.equal(removed[0]!.name, name);
      assert.match(removed[0]!.reason, /owner .* exited/);
      assert.throws(
        () => Segment.open(name),
        (e: IpcError) => e.code === 'NO_SUCH_SEGMENT',
      );
      assert.equal(new Uint8Array(seg.buffer)[0], 42, 'an existing mapping stays valid after unlink');
      seg.close();
      assert.equal(
        (await watcher.listSegments()).some((s) => s.name === name),
        false,
      );
    } finally {
      await watcher.close();
    }
  });

  it('counts attachments per handle: an exclusive receiver stays exclusive and keeps its notices while any handle is open', async () => {
    const name = unique('handles');
    const seg = Segment.create(name, { size: 4096 });
    seg.close();
    const a = await client(`a-${name}`);
    const b = await client(`b-${name}`);
    const c = await client(`c-${name}`);
    try {
      await a.registerSegment(name, {
        size: 4096,
        kind: 'mailbox',
        meta: { delivery: 'exclusive' },
        role: 'send',
      });
      await b.attachSegment(name, 'receive');
      const busy = (e: IpcError) => e.code === 'RECEIVER_BUSY';
      await assert.rejects(c.attachSegment(name, 'receive'), busy);
      await b.attachSegment(name, 'send');
      await assert.rejects(
        c.attachSegment(name, 'receive'),
        busy,
        'a second handle must not hide the receive role',
      );
      await b.detachSegment(name, 'send');
      await assert.rejects(
        c.attachSegment(name, 'receive'),
        busy,
        'closing the send handle keeps the receive one',
      );
      const removed: SegmentRemovedEvent[] = [];
      b.on('segment-removed', (e) => removed.push(e));
      await a.close();
      await waitFor(() => removed.length > 0, 10_000, 'segment-removed for the remaining handle');
      assert.equal(removed[0]!.name, name);
    } finally {
      await b.close();
      await c.close();
    }
  });

  it('ipcbox shm rm removes a registered system segment, unlinks an unregistered one, and exits 5 for an unknown name', async () => {
    const name = unique('cli');
    const owner = spawnFixture('segment-owner', [name, '4096', 'system'], d.socketPath);
    await owner.line((l) => l === 'ready');
    owner.kill('SIGKILL');
    await owner.exit;
    const viewer = await client(`cli-viewer-${name}`);
    try {
      assert.ok(
        (await viewer.listSegments()).some((s) => s.name === name),
        'a system segment outlives its creator',
      );
    } finally {
      await viewer.close();
    }
    const rm = await runCli(['shm', 'rm', name], d.socketPath);
    assert.equal(rm.code, 0, rm.stderr);
    assert.throws(
      () => Segment.open(name),
      (e: IpcError) => e.code === 'NO_SUCH_SEGMENT',
    );

    const foreign = unique('py');
    execFileSync('python3', [
      '-c',
      'import sys\nfrom multiprocessing import shared_memory, resource_tracker\n' +
        's = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=1024)\n' +
        'resource_tracker.unregister(s._name, "shared_memory")\ns.close()',
      foreign,
    ]);
    assert.equal(Segment.stat(foreign).size >= 1024, true);
    const rmForeign = await runCli(['shm', 'rm', foreign], d.socketPath);
    assert.equal(rmForeign.code, 0, rmForeign.stderr);
    assert.throws(
      () => Segment.stat(foreign),
      (e: IpcError) => e.code === 'NO_SUCH_SEGMENT',
    );

    const unknown = await runCli(['shm', 'rm', `never-made-${process.pid}`], d.socketPath);
    assert.equal(unknown.code, 5);
    assert.match(unknown.stderr, /NO_SUCH_SEGMENT/);
  });
});
