/**
 * The `ipcbox` CLI as a Unix user meets it: --version (from the repository
 * and from an installed package), one-line usage errors with exit 2, a
 * closed stdout ends a command quietly, colour only on a terminal and never
 * with NO_COLOR.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EXIT_CODES_HELP } from '../../src/cli/exit-codes.js';
import { connect, type IpcProcess } from '../../src/index.js';
import {
  CLI,
  type Daemon,
  ROOT,
  runCli,
  runScript,
  spawnCli,
  startDaemon,
  tempDir,
} from '../helpers/kernel-harness.js';

/** stderr of a usage error: exactly `ipcbox: ...` and the hint, nothing else. */
function assertUsage(r: { code: number | null; stderr: string }, hint: string, what: RegExp): void {
  assert.equal(r.code, 2, `exit 2; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `one line and a hint, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^ipcbox: /);
  assert.match(lines[0]!, what);
  assert.equal(lines[1], `Try '${hint} --help'`);
}

describe('ipcbox CLI as a Unix tool', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  const cli = (...args: string[]) => runCli(args, daemon.socketPath);

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'unix-test' });
  });

  after(async () => {
    await me?.close();
    await daemon?.stop();
  });

  test('--version prints the version in package.json', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runScript(CLI, [flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${pkg.version}\n`);
    }
  });

  test('--version works from an installed package (node_modules/ipcbox/dist/src/cli/main.js)', async () => {
    const dir = tempDir('ipcbox-installed-');
    try {
      const pkgDir = join(dir, 'node_modules', 'ipcbox');
      mkdirSync(join(pkgDir, 'dist'), { recursive: true });
      cpSync(join(ROOT, 'dist', 'src'), join(pkgDir, 'dist', 'src'), { recursive: true });
      // A version no other package.json has: the CLI must read its own package's file.
      writeFileSync(
        join(pkgDir, 'package.json'),
        JSON.stringify({ name: 'ipcbox', version: '9.8.7-installed', type: 'module' }),
      );
      symlinkSync(join(ROOT, 'node_modules', 'commander'), join(dir, 'node_modules', 'commander'));
      const r = await runScript(join(pkgDir, 'dist', 'src', 'cli', 'main.js'), ['--version']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '9.8.7-installed\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('usage errors: one line and a hint naming the command, exit 2', async () => {
    assertUsage(await cli('send', 'box', 'x', '--bogus'), 'ipcbox send', /unknown option '--bogus'/);
    assertUsage(await cli('recv'), 'ipcbox recv', /missing required argument 'target'/);
    assertUsage(await cli('send', 'box', 'hello', 'world'), 'ipcbox send', /too many arguments/);
    assertUsage(await cli('status', 'extra'), 'ipcbox status', /too many arguments/);
    assertUsage(await cli('mailbox', 'create', 'a', 'b'), 'ipcbox mailbox create', /too many arguments/);
    assertUsage(
      await cli('mailbox', 'create', 'sized', '--max-size', '4X'),
      'ipcbox mailbox create',
      /--max-size.*'4X' is invalid.*16M/,
    );
    assertUsage(await cli('daemon', '--memory-budget', '64MB'), 'ipcbox daemon', /--memory-budget.*'64MB'/);
    assertUsage(await cli('no-such-command'), 'ipcbox', /unknown command 'no-such-command'/);
    assertUsage(await cli(), 'ipcbox', /missing command/);
    assertUsage(await cli('mailbox'), 'ipcbox mailbox', /missing command \(one of: create, rm/);
    assertUsage(await cli('send', 'box'), 'ipcbox send', /missing MESSAGE/);
    assertUsage(await cli('recv', 'x', '--timeout', '5', '--nonblock'), 'ipcbox recv', /cannot be used with/);
    assertUsage(await cli('mailbox', 'grant', 'x', 'sned', 'a'), 'ipcbox mailbox grant', /send, receive/);
    assert.ok(!(await me.listMailboxes()).some((m) => m.name === 'sized'), 'nothing was created');
  });

  test("send of extra words is refused, so 'send box hello world' sends nothing", async () => {
    const mb = await me.createMailbox('unix-words', { capacity: 4 });
    assert.equal((await cli('send', 'unix-words', 'hello', 'world')).code, 2);
    assert.equal((await mb.stat()).depth, 0);
    await mb.delete();
  });

  test('--help shows the exit statuses the code uses, and exits 0', async () => {
    const r = await cli('--help');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(EXIT_CODES_HELP), 'the exit-status table is in --help');
    assert.match(EXIT_CODES_HELP, /8 {2}message too large/);
    const sub = await cli('recv', '--help');
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--no-ack/);
  });

  test('a closed stdout ends status quietly, exit 0, no stack trace (status | head -1)', async () => {
    const c = spawnCli(['status'], daemon.socketPath);
    c.child.stdout!.destroy();
    const { code } = await c.exit;
    assert.equal(code, 0, c.stderr());
    assert.equal(c.stderr(), '');
  });

  test('a closed stdout ends --help and shm ls quietly too', async () => {
    for (const args of [['--help'], ['shm', 'ls'], ['status', '--json']]) {
      const c = spawnCli(args, daemon.socketPath);
      c.child.stdout!.destroy();
      const { code } = await c.exit;
      assert.equal(code, 0, `${args.join(' ')}: ${c.stderr()}`);
      assert.equal(c.stderr(), '', args.join(' '));
    }
  });

  test('colour only on a terminal and never with NO_COLOR', async (t) => {
    // script(1) gives the CLI a pseudo-terminal; without it there is no terminal to test.
    const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      t.skip('script(1) is not available');
      return;
    }
    const esc = new RegExp(`${String.fromCharCode(0x1b)}\\[`);
    // Node's hasColors() also says no under CI=… (a CI runner not on its list), so the probe drops that too.
    const { NO_COLOR: _, NODE_DISABLE_COLORS: __, FORCE_COLOR: ___, CI: ____, ...base } = process.env;
    const onTty = (env: NodeJS.ProcessEnv, args: string) =>
      spawnSync(
        'script',
        ['-qec', `${process.execPath} ${CLI} --socket ${daemon.socketPath} ${args}`, '/dev/null'],
        {
          encoding: 'utf8',
          env: { ...base, TERM: 'xterm-256color', ...env },
        },
      );
    const tty = onTty({}, 'status');
    assert.equal(tty.status, 0, tty.stderr);
    assert.match(tty.stdout, esc, 'status headings are bold on a terminal');
    const ttyErr = onTty({}, 'recv no-such-box --nonblock');
    assert.match(ttyErr.stdout, esc, 'the error prefix is coloured on a terminal');

    const noColor = onTty({ NO_COLOR: '1' }, 'status');
    assert.equal(noColor.status, 0);
    assert.match(noColor.stdout, /Processes/);
    assert.doesNotMatch(noColor.stdout, esc, 'NO_COLOR=1: no escape codes');
    assert.doesNotMatch(onTty({ NO_COLOR: '1' }, 'recv no-such-box --nonblock').stdout, esc);

    const piped = await cli('status');
    assert.doesNotMatch(piped.stdout, esc, 'piped: no escape codes');
    const pipedErr = await cli('recv', 'no-such-box', '--nonblock');
    assert.doesNotMatch(pipedErr.stderr, esc);
  });
});
