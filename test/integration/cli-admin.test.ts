/**
 * The `ipcbox` CLI's administration and notices end to end: mailbox create
 * (sizes, --json, --owner process refused), rm of several names,
 * grant/revoke/transfer as `status --json` shows them, signals printed as
 * they arrive, wait for a process, errors as JSON objects, and what a rendezvous mailbox with
 * no receiver says.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type KernelStatus, type MailboxInfo } from '../../src/index.js';
import { type Daemon, runCli, spawnCli, startDaemon, waitFor } from '../helpers/kernel-harness.js';

interface JsonError {
  error: { code: string; message: string; exitCode: number; hint?: string };
}

describe('ipcbox CLI administration and signals', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  const cli = (...args: string[]) => runCli(args, daemon.socketPath);
  const mailboxInStatus = async (name: string): Promise<MailboxInfo | undefined> => {
    const r = await cli('status', '--json');
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as KernelStatus).mailboxes.find((m) => m.name === name);
  };
  const connected = (name: string) =>
    waitFor(async () => (await me.listProcesses()).some((p) => p.name === name), 15_000, `process ${name}`);

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'admin-test' });
  });

  after(async () => {
    await me?.close();
    await daemon?.stop();
  });

  test('mailbox create --json prints the mailbox; size options take K/M suffixes', async () => {
    const r = await cli('mailbox', 'create', 'adm-sized', '--capacity', '3', '--max-size', '4K', '--json');
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as MailboxInfo;
    assert.equal(info.name, 'adm-sized');
    assert.equal(info.capacity, 3);
    assert.equal(info.maxMessageSize, 4096);
    assert.equal(info.ownership, 'system');
    const text = await cli('mailbox', 'create', 'adm-fixed', '--fixed-size', '1KiB');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^created mailbox adm-fixed \(capacity \d+, round-robin, .*system-owned\)\n$/);
    assert.equal((await mailboxInStatus('adm-fixed'))?.fixedMessageSize, 1024);
  });

  test('mailbox create --owner process is refused (it would vanish with the command) and creates nothing', async () => {
    const r = await cli('mailbox', 'create', 'adm-mine', '--owner', 'process');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^ipcbox: --owner process would make this ipcbox command the owner/);
    assert.equal(await mailboxInStatus('adm-mine'), undefined);
  });

  test('mailbox rm a b removes both; a missing name is reported, the rest still removed, exit 5', async () => {
    for (const n of ['adm-rm1', 'adm-rm2', 'adm-rm3']) await me.createMailbox(n, { owner: 'system' });
    const both = await cli('mailbox', 'rm', 'adm-rm1', 'adm-rm2');
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.stdout, 'removed mailbox adm-rm1\nremoved mailbox adm-rm2\n');
    const partial = await cli('mailbox', 'rm', 'adm-nothing', 'adm-rm3', '--json');
    assert.equal(partial.code, 5);
    assert.equal(partial.stdout, '{"removed":"adm-rm3"}\n');
    const err = JSON.parse(partial.stderr) as JsonError;
    assert.equal(err.error.code, 'NO_SUCH_MAILBOX');
    assert.match(err.error.message, /adm-nothing/);
    const names = (await me.listMailboxes()).map((m) => m.name);
    assert.ok(!names.some((n) => n.startsWith('adm-rm')), `all removed: ${names.join(',')}`);
  });

  test('grant, revoke and transfer change what status --json shows', async () => {
    assert.equal((await cli('mailbox', 'create', 'adm-rights')).code, 0);
    const revoked = await cli('mailbox', 'revoke', 'adm-rights', 'send', 'everyone', '--json');
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.deepEqual((JSON.parse(revoked.stdout) as { senders: unknown }).senders, []);
    assert.deepEqual((await mailboxInStatus('adm-rights'))?.senders, []);

    const granted = await cli('mailbox', 'grant', 'adm-rights', 'send', 'alice', 'bob');
    assert.equal(granted.code, 0, granted.stderr);
    assert.match(granted.stdout, /send: alice, bob; receive: everyone/);
    assert.deepEqual((await mailboxInStatus('adm-rights'))?.senders, ['alice', 'bob']);

    assert.equal((await cli('mailbox', 'revoke', 'adm-rights', 'receive', 'mallory')).code, 0);
    assert.deepEqual((await mailboxInStatus('adm-rights'))?.receivers, { except: ['mallory'] });

    const moved = await cli('mailbox', 'transfer', 'adm-rights', 'admin-test', '--json');
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal((JSON.parse(moved.stdout) as { owner: string }).owner, 'admin-test');
    assert.equal((await mailboxInStatus('adm-rights'))?.owner, 'admin-test');

    const nobody = await cli('mailbox', 'transfer', 'adm-rights', 'no-such-process');
    assert.equal(nobody.code, 5, nobody.stderr);
    assert.match(nobody.stderr, /NO_SUCH_PROCESS/);
    const mixed = await cli('mailbox', 'grant', 'adm-rights', 'send', 'everyone', 'bob');
    assert.equal(mixed.code, 2);
  });

  test('signals --follow prints signals sent by the library as they arrive; SIGINT ends it with 0', async () => {
    const c = spawnCli(['--name', 'adm-listener', 'signals', '--follow'], daemon.socketPath);
    await connected('adm-listener');
    await me.signal('adm-listener', 'reload', { level: 3 });
    await me.signal('adm-listener', 'poke');
    await waitFor(() => c.stdout().toString().split('\n').length > 2, 15_000, 'two signals printed');
    c.child.kill('SIGINT');
    const { code } = await c.exit;
    assert.equal(code, 0, c.stderr());
    assert.equal(c.stdout().toString(), 'reload from admin-test {"level":3}\npoke from admin-test null\n');
  });

  test('signals --json --count 2 prints one object per signal and exits; --timeout gives exit 3', async () => {
    const c = spawnCli(['--name', 'adm-json', 'signals', '--json', '--count', '2'], daemon.socketPath);
    await connected('adm-json');
    await me.signal('adm-json', 'a', [1, 2]);
    await me.signal('adm-json', 'b', 'text');
    const { code } = await c.exit;
    assert.equal(code, 0, c.stderr());
    assert.deepEqual(
      c
        .stdout()
        .toString()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [
        { type: 'a', from: 'admin-test', payload: [1, 2] },
        { type: 'b', from: 'admin-test', payload: 'text' },
      ],
    );
    const idle = await cli('signals', '--timeout', '100');
    assert.equal(idle.code, 3, idle.stderr);
    assert.match(idle.stderr, /TIMEOUT/);
  });

  test('wait NAME exits 0 once a process of that name connects; --timeout exit 3; an absent proc-<n> exit 5', async () => {
    const c = spawnCli(['wait', 'adm-late', 'admin-test', '--timeout', '20000', '--json'], daemon.socketPath);
    // The CLI is connected and parked on the wait before the process appears.
    await waitFor(
      async () => (await me.listProcesses()).some((p) => p.name.startsWith('proc-')),
      15_000,
      'the waiting CLI',
    );
    assert.equal(c.child.exitCode, null, 'still waiting');
    const late = await connect({ socketPath: daemon.socketPath, name: 'adm-late' });
    const { code } = await c.exit;
    assert.equal(code, 0, c.stderr());
    const lines = c
      .stdout()
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string });
    assert.deepEqual(
      lines.map((l) => l.name),
      ['adm-late', 'admin-test'],
    );
    await late.close();
    const none = await cli('wait', 'adm-never', '--timeout', '100');
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /TIMEOUT/);
    const assigned = await cli('wait', 'proc-99999', '--timeout', '10000');
    assert.equal(assigned.code, 5, assigned.stderr);
  });

  test('--json errors are one JSON object on stderr with the same exit status', async () => {
    const missing = await cli('recv', 'adm-no-box', '--nonblock', '--json');
    assert.equal(missing.code, 5);
    assert.equal(missing.stdout, '');
    assert.deepEqual(JSON.parse(missing.stderr) as JsonError, {
      error: { code: 'NO_SUCH_MAILBOX', message: 'no such mailbox: adm-no-box', exitCode: 5 },
    });
    const usage = await cli('send', 'adm-no-box', 'a', 'b', '--json');
    assert.equal(usage.code, 2);
    const u = JSON.parse(usage.stderr) as JsonError;
    assert.equal(u.error.code, 'USAGE');
    assert.match(u.error.message, /too many arguments/);
    assert.equal(u.error.hint, "Try 'ipcbox send --help'");
    const status = await cli('status', '--json');
    assert.equal(status.stderr, '');
  });

  test("a rendezvous mailbox with no receiver says 'no receiver is waiting', not 'is full' (exit 4)", async () => {
    await me.createMailbox('adm-rv', { capacity: 0 });
    const r = await cli('send', 'adm-rv', 'x', '--nonblock');
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^ipcbox: no receiver is waiting on adm-rv \[WOULD_BLOCK\]\n$/);
    await me.createMailbox('adm-one', { capacity: 1 });
    await cli('send', 'adm-one', 'fills it');
    const full = await cli('send', 'adm-one', 'x', '--nonblock');
    assert.equal(full.code, 4);
    assert.match(full.stderr, /adm-one is full/);
  });
});
