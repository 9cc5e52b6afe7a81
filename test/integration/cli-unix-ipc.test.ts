/**
 * The Unix IPC commands of the `ipcbox` binary end to end: fifo create/rm
 * (mode, several paths with a partial failure, a CLI-made FIFO used by
 * shell cat), mq create/send/recv/rm (priorities, stdin, full and empty
 * queues with --nonblock and --timeout, oversize, unknown queue, JSON output
 * and errors, the OS limit on --max-messages), sem create/post/wait, and
 * `ipcbox ls` with and without a kernel (a queue, a semaphore, a segment, a
 * mailbox, FIFOs and a mapped file, with their counters). Every OS object is
 * removed in after(), also when a test failed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  connect,
  type HostListing,
  type HostObject,
  type KernelStatus,
  knownObjectsDirectory,
  MappedFile,
  MessageQueue,
  NamedSemaphore,
  rememberObject,
  Segment,
} from '../../src/index.js';
import {
  type Daemon,
  runCli,
  runCliWith,
  spawnCli,
  startDaemon,
  tempDir,
  waitFor,
} from '../helpers/kernel-harness.js';
import { Cleanup, uniqueName } from '../unix/fixtures/peers.js';

interface JsonError {
  error: { code: string; message: string; exitCode: number };
}

const jsonError = (stderr: string): JsonError['error'] => (JSON.parse(stderr) as JsonError).error;

describe('ipcbox fifo, mq, sem and ls', () => {
  const cleanup = new Cleanup();
  let dir: string;
  /** A socket nobody listens on: the commands that need no kernel, and `ls` without one. */
  let noKernel: string;
  const cli = (...args: string[]) => runCli(args, noKernel);
  /** A queue name for this run, removed in after() whatever happens. */
  const queue = (tag: string): string => {
    const name = `/${uniqueName(tag)}`;
    cleanup.add(() => MessageQueue.unlink(name));
    return name;
  };
  const semaphore = (tag: string): string => {
    const name = `/${uniqueName(tag)}`;
    cleanup.add(() => NamedSemaphore.unlink(name));
    return name;
  };

  before(() => {
    dir = tempDir('ipcbox-cli-unix-ipc-');
    cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
    noKernel = join(dir, 'no-kernel.sock');
  });

  after(() => cleanup.run());

  test('fifo create makes FIFOs with exactly --mode (default 0600); an existing path is NAME_TAKEN', async () => {
    const a = join(dir, 'mode-a.fifo');
    const b = join(dir, 'mode-b.fifo');
    const r = await cli('fifo', 'create', a, '--mode', '0640');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `created FIFO ${a} (mode 0640)\n`);
    assert.ok(statSync(a).isFIFO());
    assert.equal(statSync(a).mode & 0o777, 0o640);
    const j = await cli('fifo', 'create', b, '--json');
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout), { created: b, kind: 'fifo', mode: '0600' });
    assert.equal(statSync(b).mode & 0o777, 0o600, 'the umask does not apply');
    const again = await cli('fifo', 'create', a);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists \[NAME_TAKEN\]/);
    const bad = await cli('fifo', 'create', join(dir, 'x.fifo'), '--mode', '999');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /permission bits in octal/);
  });

  test('a FIFO made by the CLI carries bytes from shell echo to shell cat', async () => {
    const path = join(dir, 'cat.fifo');
    assert.equal((await cli('fifo', 'create', path)).code, 0);
    const cat = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cat.stdout.on('data', (d) => {
      out += d;
    });
    const catExit = new Promise<number | null>((r) => cat.once('exit', (c) => r(c)));
    const writer = spawn('sh', ['-c', `printf 'hello through a fifo\\n' > '${path}'`], { stdio: 'ignore' });
    const writerExit = new Promise<number | null>((r) => writer.once('exit', (c) => r(c)));
    assert.equal(await writerExit, 0);
    assert.equal(await catExit, 0);
    assert.equal(out, 'hello through a fifo\n');
  });

  test('fifo rm removes several; a missing path is reported, the rest still removed, exit 5', async () => {
    const a = join(dir, 'rm-a.fifo');
    const b = join(dir, 'rm-b.fifo');
    const plain = join(dir, 'plain-file');
    writeFileSync(plain, 'not a fifo');
    assert.equal((await cli('fifo', 'create', a, b)).code, 0);
    const r = await cli('fifo', 'rm', a, join(dir, 'missing.fifo'), b, '--json');
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout, `{"removed":"${a}"}\n{"removed":"${b}"}\n`);
    const err = jsonError(r.stderr);
    assert.equal(err.code, 'NO_SUCH_OBJECT');
    assert.match(err.message, /missing\.fifo/);
    assert.throws(() => statSync(a));
    assert.throws(() => statSync(b));
    const notFifo = await cli('fifo', 'rm', plain);
    assert.equal(notFifo.code, 2, 'a path that is not a FIFO is refused, not removed');
    assert.ok(statSync(plain).isFile());
  });

  test('mq create/send/recv/rm: highest priority first, MESSAGE from stdin with -, JSON output', async () => {
    const name = queue('prio');
    const created = await cli('mq', 'create', name, '--max-messages', '4', '--message-size', '1K', '--json');
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(JSON.parse(created.stdout), {
      created: name,
      kind: 'mqueue',
      maxMessages: 4,
      messageSize: 1024,
      mode: '0600',
    });
    assert.equal((await cli('mq', 'send', name, 'low', '--priority', '1')).code, 0);
    const fromStdin = await runCliWith(['mq', 'send', name, '-', '--priority', '9'], noKernel, {
      input: 'urgent',
    });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    const sent = await cli('mq', 'send', name, 'middle', '--priority', '5', '--json');
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(JSON.parse(sent.stdout), { queue: name, bytes: 6, priority: 5 });
    const first = await cli('mq', 'recv', name, '--count', '2');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'urgent\nmiddle\n');
    const last = await cli('mq', 'recv', name, '--json');
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual(JSON.parse(last.stdout), {
      queue: name,
      priority: 1,
      size: 3,
      text: 'low',
      base64: Buffer.from('low').toString('base64'),
    });
    const rm = await cli('mq', 'rm', name);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout, `removed message queue ${name}\n`);
    assert.throws(() => MessageQueue.open(name), { code: 'NO_SUCH_OBJECT' });
  });

  test('mq send --file and recv --raw are byte-exact', async () => {
    const name = queue('raw');
    assert.equal((await cli('mq', 'create', name, '--message-size', '256')).code, 0);
    const bytes = Buffer.from([0, 255, 10, 13, 0x80, 0xc3, 0x28, 7]);
    const file = join(dir, 'raw.bin');
    writeFileSync(file, bytes);
    assert.equal((await cli('mq', 'send', name, '--file', file)).code, 0);
    const r = await runCliWith(['mq', 'recv', name, '--raw'], noKernel);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout, bytes);
  });

  test('mq at its limits: full --nonblock exit 4, --timeout exit 3, empty likewise, oversize exit 8 naming the size', async () => {
    const name = queue('full');
    assert.equal((await cli('mq', 'create', name, '--max-messages', '2', '--message-size', '64')).code, 0);
    for (const m of ['one', 'two']) assert.equal((await cli('mq', 'send', name, m, '--nonblock')).code, 0);
    const full = await cli('mq', 'send', name, 'three', '--nonblock');
    assert.equal(full.code, 4, full.stderr);
    assert.match(full.stderr, /^ipcbox: message queue .* is full \(2 messages\) \[WOULD_BLOCK\]\n$/);
    const t0 = performance.now();
    const timed = await cli('mq', 'send', name, 'three', '--timeout', '200', '--json');
    assert.ok(performance.now() - t0 >= 200, 'waited for the timeout');
    assert.equal(timed.code, 3, timed.stderr);
    assert.equal(jsonError(timed.stderr).code, 'TIMEOUT');

    const big = await cli('mq', 'send', name, 'x'.repeat(65));
    assert.equal(big.code, 8, big.stderr);
    assert.match(big.stderr, /message of 65 bytes exceeds messageSize 64 of message queue/);
    const bigStdin = await runCliWith(['mq', 'send', name, '-', '--json'], noKernel, {
      input: 'y'.repeat(100),
    });
    assert.equal(bigStdin.code, 8, bigStdin.stderr);
    const e = jsonError(bigStdin.stderr);
    assert.equal(e.code, 'MESSAGE_TOO_LARGE');
    assert.match(
      e.message,
      /the message from stdin is larger than the messageSize of message queue .* 64 bytes/,
    );

    assert.equal((await cli('mq', 'recv', name, '--count', '2')).stdout, 'one\ntwo\n');
    const empty = await cli('mq', 'recv', name, '--nonblock');
    assert.equal(empty.code, 4);
    assert.match(empty.stderr, /is empty \[WOULD_BLOCK\]/);
    const waited = await cli('mq', 'recv', name, '--timeout', '100');
    assert.equal(waited.code, 3);
    assert.match(waited.stderr, /\[TIMEOUT\]/);
    const both = await cli('mq', 'recv', name, '--timeout', '100', '--nonblock');
    assert.equal(both.code, 2, '--timeout and --nonblock conflict');
  });

  test('mq recv with a closed stdout sends the message back and exits 0 quietly; ls ends quietly too', async () => {
    const name = queue('epipe');
    assert.equal((await cli('mq', 'create', name)).code, 0);
    assert.equal((await cli('mq', 'send', name, 'keep me', '--priority', '3')).code, 0);
    const c = spawnCli(['mq', 'recv', name], noKernel);
    c.child.stdout!.destroy();
    assert.equal((await c.exit).code, 0, c.stderr());
    assert.equal(c.stderr(), '');
    const again = await cli('mq', 'recv', name, '--json', '--nonblock');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      [JSON.parse(again.stdout).text, JSON.parse(again.stdout).priority],
      ['keep me', 3],
      'the message is still there, with its priority',
    );
    const ls = spawnCli(['ls'], noKernel);
    ls.child.stdout!.destroy();
    assert.equal((await ls.exit).code, 0, ls.stderr());
    assert.equal(ls.stderr(), '');
  });

  test('an unknown queue is exit 5 (text and JSON); mq rm of several reports the missing one and removes the rest', async () => {
    const missing = `/${uniqueName('missing')}`;
    const send = await cli('mq', 'send', missing, 'hi');
    assert.equal(send.code, 5);
    assert.equal(send.stderr, `ipcbox: no such message queue ${missing} [NO_SUCH_OBJECT]\n`);
    const recv = await cli('mq', 'recv', missing, '--json');
    assert.equal(recv.code, 5);
    assert.deepEqual(jsonError(recv.stderr), {
      code: 'NO_SUCH_OBJECT',
      message: `no such message queue ${missing}`,
      exitCode: 5,
    });
    const a = queue('rm-a');
    const b = queue('rm-b');
    for (const n of [a, b]) assert.equal((await cli('mq', 'create', n)).code, 0);
    const rm = await cli('mq', 'rm', a, missing, b);
    assert.equal(rm.code, 5);
    assert.equal(rm.stdout, `removed message queue ${a}\nremoved message queue ${b}\n`);
    assert.match(rm.stderr, new RegExp(`no such message queue ${missing}`));
    for (const n of [a, b]) assert.throws(() => MessageQueue.open(n), { code: 'NO_SUCH_OBJECT' });
  });

  test('mq create beyond fs.mqueue.msg_max is OS_LIMIT naming the sysctl, exit 9', async () => {
    const msgMax = Number(readFileSync('/proc/sys/fs/mqueue/msg_max', 'utf8'));
    const name = queue('too-deep');
    const r = await cli('mq', 'create', name, '--max-messages', String(msgMax + 1));
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /exceeds the system limit \/proc\/sys\/fs\/mqueue\/msg_max = \d+/);
    assert.match(r.stderr, new RegExp(`sysctl fs\\.mqueue\\.msg_max=${msgMax + 1} \\[OS_LIMIT\\]`));
    const j = await cli('mq', 'create', name, '--message-size', '1M', '--json');
    assert.equal(j.code, 9);
    const e = jsonError(j.stderr);
    assert.equal(e.code, 'OS_LIMIT');
    assert.equal(e.exitCode, 9);
    assert.match(e.message, /\/proc\/sys\/fs\/mqueue\/msgsize_max/);
    assert.throws(() => MessageQueue.open(name), { code: 'NO_SUCH_OBJECT' }, 'nothing was created');
  });

  test('sem create/post/wait: --nonblock at 0 exit 4, --timeout exit 3, sem ls shows the value', async () => {
    const name = semaphore('sem');
    const c = await cli('sem', 'create', name, '--value', '1', '--mode', '0640');
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, `created semaphore ${name} (value 1, mode 0640)\n`);
    assert.equal((await cli('sem', 'wait', name, '--nonblock')).code, 0);
    const none = await cli('sem', 'wait', name, '--nonblock');
    assert.equal(none.code, 4);
    const timed = await cli('sem', 'wait', name, '--timeout', '100');
    assert.equal(timed.code, 3, timed.stderr);
    const post = await cli('sem', 'post', name, '3', '--json');
    assert.equal(post.code, 0, post.stderr);
    assert.deepEqual(JSON.parse(post.stdout), { semaphore: name, posted: 3, value: 3 });
    const ls = await cli('sem', 'ls', '--json');
    assert.equal(ls.code, 0, ls.stderr);
    const mine = (JSON.parse(ls.stdout) as { semaphores: HostObject[] }).semaphores.find(
      (s) => s.name === name,
    );
    assert.equal(mine?.value, 3);
    assert.equal(mine?.mode, '0640');
    const rm = await cli('sem', 'rm', name);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((await cli('sem', 'wait', name, '--nonblock')).code, 5);
  });

  /** A queue with 2 of 3 messages, a semaphore at 4, a segment, a FIFO held open, a mapped file: made for the ls tests. */
  async function hostObjects(socketPath: string, tag: string) {
    const q = queue(`ls-q-${tag}`);
    const s = semaphore(`ls-s-${tag}`);
    const seg = uniqueName(`ls-g-${tag}`);
    const fifo = join(dir, `ls-${tag}.fifo`);
    const file = join(dir, `ls-${tag}.bin`);
    const run = (...args: string[]) => runCli(args, socketPath);
    assert.equal((await run('mq', 'create', q, '--max-messages', '3', '--message-size', '128')).code, 0);
    for (const m of ['a', 'b']) assert.equal((await run('mq', 'send', q, m)).code, 0);
    assert.equal((await run('sem', 'create', s, '--value', '4')).code, 0);
    assert.equal((await run('fifo', 'create', fifo, '--mode', '0620')).code, 0);
    cleanup.add(() => Segment.unlink(seg));
    const segment = Segment.create(seg, { size: 8192 });
    cleanup.add(() => segment.close());
    const mapped = MappedFile.open(file, { size: 4096, create: true });
    cleanup.add(() => mapped.close());
    // A program makes its mapped file known; mkfifo/MappedFile.open never register by themselves.
    rememberObject('file', file, { directory: knownObjectsDirectory(socketPath) });
    // A process that holds the FIFO open (O_RDWR never waits for a peer).
    const holder = spawn('sh', ['-c', `exec 3<>'${fifo}'; echo open; exec sleep 60`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    cleanup.add(() => holder.kill('SIGKILL'));
    let said = '';
    holder.stdout.on('data', (d) => {
      said += d;
    });
    await waitFor(() => said.includes('open'), 10_000, 'the FIFO holder');
    return { q, s, seg, fifo, file, holder };
  }

  function checkHost(host: HostListing, o: Awaited<ReturnType<typeof hostObjects>>): void {
    const find = (kind: string, name: string) => host.objects.find((x) => x.kind === kind && x.name === name);
    const mq = find('mqueue', o.q);
    assert.ok(mq, `queue ${o.q} listed`);
    assert.equal(mq.messages, 2);
    assert.equal(mq.maxMessages, 3);
    assert.equal(mq.messageSize, 128);
    assert.equal(mq.mode, '0600');
    assert.equal(mq.uid, process.getuid!());
    assert.equal(mq.known, true);
    assert.equal(find('semaphore', o.s)?.value, 4);
    const seg = find('shm', `/${o.seg}`);
    assert.equal(seg?.size, 8192);
    assert.ok((seg?.processes ?? 0) >= 1, 'the test process maps the segment');
    const fifo = find('fifo', o.fifo);
    assert.equal(fifo?.mode, '0620');
    assert.equal(fifo?.processes, 1, 'the holder has the FIFO open');
    const file = find('file', o.file);
    assert.equal(file?.size, 4096);
    assert.equal(file?.processes, 1, 'the test process maps the file');
    assert.ok(
      host.notes.some((n) => n.kinds.includes('mqueue') && n.text.includes('/dev/mqueue')) ===
        !statSync('/dev/mqueue', { throwIfNoEntry: false }),
      'a note says when /dev/mqueue hides queues',
    );
  }

  test('ls without a kernel says so and still lists queues, semaphores, segments, FIFOs and mapped files', async () => {
    const o = await hostObjects(noKernel, 'nk');
    const r = await cli('ls');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^kernel not running \(.*\): no processes, mailboxes or registered segments to list\n/,
    );
    for (const heading of [
      'Shared memory (/dev/shm)',
      'Message queues',
      'Named semaphores',
      'FIFOs',
      'Mapped files',
    ])
      assert.ok(r.stdout.includes(`\n${heading}\n`), `section ${heading}`);
    assert.match(r.stdout, new RegExp(`\\n${o.q}\\s+\\S+\\s+0600\\s+2\\s+3\\s+128\\n`));
    assert.match(r.stdout, new RegExp(`\\n${o.s}\\s+\\S+\\s+0600\\s+4\\s+`));
    assert.match(r.stdout, new RegExp(`\\n${o.fifo}\\s+\\S+\\s+0620\\s+1\\n`));
    assert.match(r.stdout, new RegExp(`\\n${o.file}\\s+\\S+\\s+\\d{4}\\s+4096\\s+1\\n`));
    if (!statSync('/dev/mqueue', { throwIfNoEntry: false }))
      assert.match(r.stdout, /\nnote: message queues: only those ipcbox knows of are listed; .*not mounted/);
    const j = await cli('ls', '--json');
    assert.equal(j.code, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as { kernel: null; host: HostListing; mailboxes?: unknown };
    assert.equal(doc.kernel, null);
    assert.equal(doc.mailboxes, undefined, 'no kernel objects without a kernel');
    checkHost(doc.host, o);

    const other = join(dir, 'named-by-path.bin');
    writeFileSync(other, Buffer.alloc(100));
    const byPath = await cli('ls', other, '--json');
    assert.equal(byPath.code, 0, byPath.stderr);
    const listed = (JSON.parse(byPath.stdout) as { host: HostListing }).host.objects.find(
      (x) => x.name === other,
    );
    assert.deepEqual([listed?.kind, listed?.size, listed?.known], ['file', 100, false]);
    const missing = await cli('ls', join(dir, 'nothing-here'));
    assert.equal(missing.code, 5);
    assert.match(missing.stderr, /\[NO_SUCH_OBJECT\]/);

    // Removed through the CLI: no longer listed.
    assert.equal((await cli('mq', 'rm', o.q)).code, 0);
    assert.equal((await cli('fifo', 'rm', o.fifo)).code, 0);
    const after = JSON.parse((await cli('ls', '--json')).stdout) as { host: HostListing };
    assert.ok(!after.host.objects.some((x) => x.name === o.q || x.name === o.fifo));
    o.holder.kill('SIGKILL');
  });

  describe('with a kernel', () => {
    let daemon: Daemon;
    before(async () => {
      daemon = await startDaemon();
    });
    after(async () => {
      await daemon?.stop();
    });

    test('ls and status list the kernel objects (a mailbox, a registered segment) and the host objects', async () => {
      const o = await hostObjects(daemon.socketPath, 'k');
      const me = await connect({ socketPath: daemon.socketPath, name: 'ls-owner' });
      try {
        await me.createMailbox('ls-mailbox', { owner: 'system' });
        await me.registerSegment(o.seg, { size: 8192 });
        const r = await runCli(['ls'], daemon.socketPath);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^kernel pid \d+ on /);
        assert.match(r.stdout, /\nMailboxes\n[\s\S]*\nls-mailbox\s/);
        assert.match(r.stdout, new RegExp(`\\nSegments\\n[\\s\\S]*\\n${o.seg}\\s+8192\\s+segment`));
        assert.match(r.stdout, /\n\d+\s+ls-owner\s/, 'the connected process is listed');
        const j = await runCli(['ls', '--json'], daemon.socketPath);
        assert.equal(j.code, 0, j.stderr);
        const doc = JSON.parse(j.stdout) as KernelStatus & { host: HostListing };
        assert.ok(doc.kernel.pid > 0);
        assert.ok(doc.mailboxes.some((m) => m.name === 'ls-mailbox'));
        assert.ok(doc.segments.some((s) => s.name === o.seg));
        assert.ok(doc.processes.some((p) => p.name === 'ls-owner'));
        assert.equal(doc.processes.length, 1, "the command's own connection is left out");
        checkHost(doc.host, o);
        const s = await runCli(['status', '--json'], daemon.socketPath);
        assert.equal(s.code, 0, s.stderr);
        const status = JSON.parse(s.stdout) as KernelStatus & { host: HostListing };
        assert.ok(status.mailboxes.some((m) => m.name === 'ls-mailbox'));
        checkHost(status.host, o);
        const text = await runCli(['status'], daemon.socketPath);
        assert.ok(text.stdout.includes(`\n${o.q} `), 'status text lists the queue');
      } finally {
        await me.close();
      }
      assert.equal((await cli('status')).code, 7, 'status still needs a kernel');
    });
  });
});
