/**
 * The `ipcbox` CLI end to end against a real daemon: mailbox create, send,
 * recv, status --json, rm, signal, and every documented exit status.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type KernelStatus, type SignalEvent } from '../../src/index.js';
import { type Daemon, runCli, startDaemon, tempDir, waitFor } from '../helpers/kernel-harness.js';

describe('ipcbox CLI', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  const signals: SignalEvent[] = [];
  const cli = (...args: string[]) => runCli(args, daemon.socketPath);

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'cli-test' });
    me.on('signal', (e) => signals.push(e));
  });

  after(async () => {
    await me?.close();
    await daemon?.stop();
  });

  test('mailbox create, send, recv (priority first), status --json, mailbox rm', async () => {
    const created = await cli('mailbox', 'create', 'cli-box', '--capacity', '4', '--delivery', 'round-robin');
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created mailbox cli-box/);

    assert.equal((await cli('send', 'cli-box', 'hello')).code, 0);
    const urgent = await cli('send', 'cli-box', '{"n":1}', '--codec', 'json', '--priority', '5');
    assert.equal(urgent.code, 0, urgent.stderr);

    const status = await cli('status', '--json');
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout) as KernelStatus;
    const box = s.mailboxes.find((m) => m.name === 'cli-box');
    assert.ok(box, 'status lists the mailbox');
    assert.equal(box.capacity, 4);
    assert.equal(box.depth, 2);
    assert.equal(
      box.ownership,
      'system',
      'the CLI creates system mailboxes by default (it outlives the command)',
    );
    assert.ok(
      s.processes.some((p) => p.name === 'cli-test'),
      'status lists connected processes',
    );
    assert.equal(s.kernel.pid, daemon.child.pid);

    const first = await cli('recv', 'cli-box', '--json');
    assert.equal(first.code, 0, first.stderr);
    const m = JSON.parse(first.stdout.trim()) as {
      priority: number;
      codec: string;
      data: unknown;
      sender: string;
    };
    assert.deepEqual(
      { priority: m.priority, codec: m.codec, data: m.data },
      { priority: 5, codec: 'json', data: { n: 1 } },
    );
    const second = await cli('recv', 'cli-box', '--timeout', '5000');
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'hello\n');

    const rm = await cli('mailbox', 'rm', 'cli-box');
    assert.equal(rm.code, 0, rm.stderr);
    assert.ok(!(await me.listMailboxes()).some((x) => x.name === 'cli-box'));
  });

  test('recv --count N prints N messages; a message sent by another process shows its sender', async () => {
    const mb = await me.createMailbox('cli-count', { capacity: 8 });
    for (const v of ['a', 'b', 'c']) await mb.send(v);
    const r = await cli('recv', 'cli-count', '--count', '3', '--json');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { data: string; sender: string });
    assert.deepEqual(
      lines.map((l) => l.data),
      ['a', 'b', 'c'],
    );
    assert.ok(lines.every((l) => l.sender === 'cli-test'));
    await mb.delete();
  });

  test('recv @name receives direct messages as that process; send @name delivers to a process', async () => {
    const receiving = cli('recv', '@cli-inbox', '--timeout', '20000');
    await waitFor(
      async () => (await me.listProcesses()).some((p) => p.name === 'cli-inbox'),
      15_000,
      'the CLI process',
    );
    await me.send('cli-inbox', 'direct hello');
    const r = await receiving;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'direct hello\n');

    const sent = await cli('send', '@cli-test', 'to the test');
    assert.equal(sent.code, 0, sent.stderr);
    const m = await me.receive({ timeout: 10_000 });
    assert.equal(m.data, 'to the test');
  });

  test('send --sync returns only once a receiver has taken the message', async () => {
    const mb = await me.createMailbox('cli-sync', { capacity: 8 });
    let exited = false;
    const sending = cli('send', 'cli-sync', 'synced', '--sync').then((r) => {
      exited = true;
      return r;
    });
    await waitFor(async () => (await mb.stat()).depth === 1, 15_000, 'the message to be queued');
    await me.listProcesses();
    assert.equal(exited, false, 'the sync send is still waiting');
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'synced');
    assert.equal((await sending).code, 0);
    await mb.delete();
  });

  test('signal NAME TYPE PAYLOAD arrives as a signal event (payload parsed as JSON)', async () => {
    const r = await cli('signal', 'cli-test', 'reconfigure', '{"level":3}');
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => signals.some((s) => s.type === 'reconfigure'), 10_000, 'the signal');
    const s = signals.find((x) => x.type === 'reconfigure')!;
    assert.deepEqual(s.payload, { level: 3 });
  });

  test('exit 3 on timeout', async () => {
    await me.createMailbox('cli-empty', { capacity: 1 });
    const r = await cli('recv', 'cli-empty', '--timeout', '100');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /TIMEOUT/);
  });

  test('exit 4 when non-blocking cannot complete (empty recv, full send)', async () => {
    const full = await me.createMailbox('cli-full', { capacity: 1 });
    await full.send('fills it');
    assert.equal((await cli('send', 'cli-full', 'x', '--nonblock')).code, 4);
    const empty = await me.createMailbox('cli-nothing', { capacity: 1 });
    assert.equal((await cli('recv', 'cli-nothing', '--nonblock')).code, 4);
    await full.delete();
    await empty.delete();
  });

  test('exit 5 for an unknown mailbox or process', async () => {
    assert.equal((await cli('send', 'no-such-box', 'x')).code, 5);
    assert.equal((await cli('recv', 'no-such-box', '--nonblock')).code, 5);
    assert.equal((await cli('send', '@no-such-process', 'x')).code, 5);
    assert.equal((await cli('signal', 'no-such-process', 'poke')).code, 5);
    assert.equal((await cli('mailbox', 'rm', 'no-such-box')).code, 5);
  });

  test("exit 6 when permission is denied (a mailbox restricted to senders ['x'])", async () => {
    const mb = await me.createMailbox('cli-private', { senders: ['x'], receivers: ['x'] });
    const s = await cli('send', 'cli-private', 'let me in');
    assert.equal(s.code, 6, s.stderr);
    assert.match(s.stderr, /PERMISSION_DENIED/);
    assert.equal((await cli('recv', 'cli-private', '--nonblock')).code, 6);
    assert.equal((await mb.stat()).depth, 0);
    await mb.delete();
  });

  test('exit 7 when no kernel is running', async () => {
    const dir = tempDir();
    const r = await runCli(['status'], join(dir, 'nobody-home.sock'));
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, /KERNEL_UNAVAILABLE/);
  });

  test('exit 2 on usage errors', async () => {
    assert.equal((await cli('no-such-command')).code, 2);
    assert.equal((await cli('send', 'only-target')).code, 2, 'missing MESSAGE');
    assert.equal(
      (await cli('recv', 'x', '--timeout', '5', '--nonblock')).code,
      2,
      '--timeout with --nonblock',
    );
    assert.equal((await cli('send', 'x', 'y', '--priority', '32')).code, 2, 'priority out of range');
    assert.equal((await cli('mailbox', 'create', 'bad-cap', '--capacity', 'lots')).code, 2);
    assert.equal((await cli('mailbox', 'create', 'bad-delivery', '--delivery', 'sometimes')).code, 2);
    assert.ok(!(await me.listMailboxes()).some((m) => m.name.startsWith('bad-')), 'nothing was created');
  });
});
