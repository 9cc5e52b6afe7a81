/**
 * The daemon's lifecycle as processes see it: stopping under connected
 * clients (their waits reject KERNEL_UNAVAILABLE, 'disconnect' fires, the
 * socket file goes), refusing to start twice on one socket, replacing a stale
 * socket left by a killed daemon, and the socket's permissions.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connect, type IpcError } from '../../src/index.js';
import {
  type DaemonProcess,
  runCli,
  spawnDaemon,
  startDaemon,
  tempDir,
  waitFor,
} from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

/** A daemon on a socket path of our choosing (startDaemon picks its own). */
const daemonAt = (socketPath: string): Promise<DaemonProcess> => spawnDaemon(socketPath);

const cleanup: Array<() => Promise<void> | void> = [];

after(async () => {
  await stopAll();
  for (const f of cleanup.reverse()) await f();
});

function ownDir(): string {
  const dir = tempDir();
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function killOnCleanup(child: ChildProcess): void {
  cleanup.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

describe('daemon lifecycle', () => {
  test("SIGTERM under connected clients: pending receives reject KERNEL_UNAVAILABLE, 'disconnect' fires, the socket file is removed", async () => {
    const daemon = await startDaemon();
    cleanup.push(async () => {
      await daemon.stop();
    });
    const me = await connect({ socketPath: daemon.socketPath, name: 'life-test' });
    const peer = await RemotePeer.start(daemon.socketPath, 'life-peer');
    const mb = await me.createMailbox('life-box', { capacity: 4 });
    await peer.ok('open', { mailbox: 'life-box' });

    const disconnects: IpcError[] = [];
    me.on('disconnect', (e) => disconnects.push(e));
    const myReceive = mb.receive();
    myReceive.catch(() => {});
    const peerReceive = peer.start<PeerMessage>('receive', { mailbox: 'life-box' });
    await waitFor(async () => (await mb.stat()).waitingReceivers === 2, 10_000, 'both receives parked');

    daemon.child.kill('SIGTERM');
    assert.equal(
      await once(daemon.child, 'exit').then(([code]) => code as number | null),
      0,
      'the daemon exits cleanly',
    );

    await assert.rejects(myReceive, { code: 'KERNEL_UNAVAILABLE' });
    const r = await peerReceive.reply;
    assert.equal(r.code, 'KERNEL_UNAVAILABLE', `the peer's receive: ${r.code} ${r.message}`);
    await waitFor(() => disconnects.length === 1, 10_000, "the 'disconnect' event");
    assert.equal(disconnects[0]!.code, 'KERNEL_UNAVAILABLE');
    assert.equal((await peer.waitEvent('disconnect')).code, 'KERNEL_UNAVAILABLE');
    assert.equal(existsSync(daemon.socketPath), false, 'the socket file is gone');

    await assert.rejects(mb.send('after'), { code: 'KERNEL_UNAVAILABLE' }, 'later operations fail at once');
    await assert.rejects(connect({ socketPath: daemon.socketPath }), { code: 'KERNEL_UNAVAILABLE' });
  });

  test("a second daemon on the same socket fails with exit code 1 and 'already listening'; the first keeps serving", async () => {
    const daemon = await startDaemon();
    cleanup.push(async () => {
      await daemon.stop();
    });
    const second = await runCli(['daemon'], daemon.socketPath);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, /already listening/);
    const p = await connect({ socketPath: daemon.socketPath });
    assert.equal((await p.status()).kernel.pid, daemon.child.pid, 'the first daemon still answers');
    await p.close();
  });

  test('a stale socket file left by a SIGKILLed daemon is replaced by the next start', async () => {
    const socketPath = join(ownDir(), 'kernel.sock');
    const first = await daemonAt(socketPath);
    killOnCleanup(first.child);
    first.child.kill('SIGKILL');
    await first.exit;
    assert.ok(existsSync(socketPath), 'the killed daemon left its socket file behind');
    await assert.rejects(connect({ socketPath, timeout: 2000 }), { code: 'KERNEL_UNAVAILABLE' });

    const second = await daemonAt(socketPath);
    killOnCleanup(second.child);
    const p = await connect({ socketPath });
    const mb = await p.createMailbox('after-restart');
    await mb.send('works');
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'works');
    assert.equal((await p.status()).kernel.pid, second.child.pid);
    await p.close();
    second.child.kill('SIGTERM');
    assert.equal(await second.exit, 0);
  });

  test('the socket file is mode 0600, a directory the daemon creates is 0700, an existing safe one is left as it is', async () => {
    const base = ownDir();
    const created = join(base, 'fresh', 'nested');
    const kept = join(base, 'kept');
    mkdirSync(kept, { mode: 0o755 });
    chmodSync(kept, 0o755);
    for (const [dir, mode] of [
      [created, 0o700],
      [kept, 0o755],
    ] as const) {
      const socketPath = join(dir, 'kernel.sock');
      const d = await daemonAt(socketPath);
      killOnCleanup(d.child);
      assert.equal(statSync(socketPath).mode & 0o777, 0o600, `${socketPath} mode`);
      assert.equal(statSync(dir).mode & 0o777, mode, `${dir} mode`);
      d.child.kill('SIGTERM');
      assert.equal(await d.exit, 0);
      assert.equal(existsSync(socketPath), false, 'SIGTERM removes the socket file');
    }
  });

  test('the daemon refuses a directory others may write or another user owns, and changes nothing', async () => {
    const base = ownDir();
    const cases: Array<[string, (dir: string) => void]> = [
      ['world-writable', (dir) => chmodSync(dir, 0o777)],
      ['group-writable', (dir) => chmodSync(dir, 0o770)],
    ];
    if (process.getuid?.() === 0)
      cases.push(['owned by another user', (dir) => chownSync(dir, 65534, 65534)]);
    for (const [what, make] of cases) {
      const dir = join(base, what.replace(/\W+/g, '-'));
      mkdirSync(dir, { mode: 0o700 });
      make(dir);
      const before = statSync(dir);
      const socketPath = join(dir, 'kernel.sock');
      await assert.rejects(daemonAt(socketPath), /refusing to listen/, `${what}: refused`);
      const after = statSync(dir);
      assert.equal(after.mode, before.mode, `${what}: mode unchanged`);
      assert.equal(after.uid, before.uid, `${what}: owner unchanged`);
      assert.equal(existsSync(socketPath), false, `${what}: no socket created`);
    }
  });

  test('a sticky world-writable directory like /tmp is used as it is (never chmodded)', async () => {
    const dir = join(ownDir(), 'sticky');
    mkdirSync(dir);
    chmodSync(dir, 0o1777);
    const socketPath = join(dir, 'kernel.sock');
    const d = await daemonAt(socketPath);
    killOnCleanup(d.child);
    assert.equal(statSync(dir).mode & 0o7777, 0o1777, 'the directory keeps its mode');
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    const p = await connect({ socketPath, name: 'sticky-user' });
    await p.close();
    d.child.kill('SIGTERM');
    assert.equal(await d.exit, 0);
  });

  test('a client refuses an impostor: a socket another user listens on in a sticky directory', {
    skip: process.getuid?.() !== 0 ? 'needs root to run a listener as another user' : false,
  }, async () => {
    const dir = join(ownDir(), 'shared-tmp');
    mkdirSync(dir);
    chmodSync(dir, 0o1777);
    chmodSync(join(dir, '..'), 0o755);
    const socketPath = join(dir, 'kernel.sock');
    const impostor = spawn(
      process.execPath,
      [
        '-e',
        `require('net').createServer((s) => s.on('data', (d) => process.stdout.write('captured ' + d.length + '\\n'))).listen(${JSON.stringify(socketPath)}, () => console.log('listening'))`,
      ],
      { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    killOnCleanup(impostor);
    let out = '';
    impostor.stdout!.on('data', (c) => {
      out += c;
    });
    await waitFor(() => out.includes('listening'), 10_000, 'the impostor to listen');
    await assert.rejects(
      connect({ socketPath, name: 'victim', timeout: 2000 }),
      (e: IpcError) => e.code === 'PERMISSION_DENIED',
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(out.includes('captured'), false, 'the impostor received nothing, not even HELLO');
    impostor.kill('SIGKILL');
  });

  test('connect() times out when the listener accepts but never answers HELLO', async () => {
    const dir = join(ownDir(), 'mute');
    mkdirSync(dir, { mode: 0o700 });
    const socketPath = join(dir, 'kernel.sock');
    const mute = createServer(() => {});
    await new Promise<void>((resolve) => mute.listen(socketPath, resolve));
    try {
      const t0 = Date.now();
      await assert.rejects(
        connect({ socketPath, name: 'patient', timeout: 300 }),
        (e: IpcError) => e.code === 'KERNEL_UNAVAILABLE',
      );
      assert.ok(Date.now() - t0 < 5000, 'rejected near its timeout, not never');
    } finally {
      mute.close();
    }
  });

  test('a client refuses to speak to a socket in a directory others may write', async () => {
    const dir = join(ownDir(), 'shared');
    mkdirSync(dir, { mode: 0o700 });
    const socketPath = join(dir, 'kernel.sock');
    const d = await daemonAt(socketPath);
    killOnCleanup(d.child);
    // Someone loosens the directory after the kernel started: an impostor could now replace the socket.
    chmodSync(dir, 0o777);
    await assert.rejects(
      connect({ socketPath, name: 'careful' }),
      (e: IpcError) => e.code === 'PERMISSION_DENIED',
    );
    chmodSync(dir, 0o700);
    const p = await connect({ socketPath, name: 'careful' });
    await p.close();
    d.child.kill('SIGTERM');
    await d.exit;
  });
});
