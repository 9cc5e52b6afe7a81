/**
 * `ipcbox top` end to end: in a pseudo-terminal (script -qfc) it draws a mailbox with its depth, redraws
 * in place on the alternate screen, and quits on `q` (status 0, the screen restored); with stdout a pipe
 * it prints plain snapshots with no escape codes, `--count` of them; `--json` one object per refresh.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess } from '../../src/index.js';
import { CLI, type Daemon, runCli, startDaemon, waitFor } from '../helpers/kernel-harness.js';

describe('ipcbox top', () => {
  let d: Daemon;
  let p: IpcProcess;

  before(async () => {
    d = await startDaemon();
    p = await connect({ socketPath: d.socketPath, name: 'top-test' });
    const mb = await p.createMailbox('queue-under-watch');
    for (let i = 0; i < 3; i++) await mb.send(i);
  });
  after(async () => {
    await p?.close();
    await d?.stop();
  });

  test('in a terminal it shows the mailbox and quits on q', async () => {
    const cmd = `${process.execPath} ${CLI} --socket ${d.socketPath} top --interval 200`;
    const child = spawn('script', ['-qfc', cmd, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TERM: 'xterm', COLUMNS: '160', LINES: '40' },
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor(
        () => /queue-under-watch\s+3\s/.test(out),
        10_000,
        'top to show the mailbox with depth 3',
      );
      assert.ok(out.includes('\x1b[?1049h'), 'the alternate screen');
      const draws = () => out.split('\x1b[H\x1b[2J').length - 1;
      await waitFor(() => draws() >= 2, 5000, 'a second draw in place');
      child.stdin.write('q');
      const code = await Promise.race([exit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))]);
      assert.equal(code, 0);
      assert.ok(out.includes('\x1b[?1049l'), 'the screen restored');
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('when stdout is not a terminal it prints plain snapshots, --count of them', async () => {
    const r = await runCli(['top', '--count', '2', '--interval', '100'], d.socketPath);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes('\x1b'), 'no escape codes on a pipe');
    assert.equal(r.stdout.match(/^ipcbox top - kernel pid/gm)?.length, 2);
    assert.match(r.stdout, /queue-under-watch\s+3\s+1024\s/);
    assert.match(r.stdout, /^top-test\s/m);
    assert.doesNotMatch(r.stdout, /^proc-\d+\s/m, 'its own process is not listed');
  });

  test('--json prints one object per refresh with the rates', async () => {
    const r = await runCli(['top', '--count', '1', '--json'], d.socketPath);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as { mailboxes: { name: string; stats: { rates: { sent: number } } }[] };
    assert.equal(typeof v.mailboxes.find((m) => m.name === 'queue-under-watch')?.stats.rates.sent, 'number');
  });

  test('status shows rates and wait percentiles per mailbox', async () => {
    const r = await runCli(['status'], d.socketPath);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /IN\/S\s+OUT\/S\s+P50\s+P99/);
  });
});
