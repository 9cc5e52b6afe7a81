/**
 * `ipcbox send` and `ipcbox recv` end to end: messages from stdin and files
 * (past the command line's 128 KiB, byte-exact with --codec bytes, up to the
 * kernel's limit and no further), structured-clone values printed
 * faithfully, acknowledgement only after printing (a closed or stalled
 * stdout loses nothing), --follow ended by SIGINT, and --peek.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox } from '../../src/index.js';
import {
  type Daemon,
  runCli,
  runCliWith,
  spawnCli,
  startDaemon,
  waitFor,
} from '../helpers/kernel-harness.js';

/** The daemon runs with a 1 MiB message limit (given with a size suffix). */
const LIMIT = 1024 * 1024;

describe('ipcbox send and recv', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  const cli = (...args: string[]) => runCli(args, daemon.socketPath);
  let n = 0;
  const box = async (options: Parameters<IpcProcess['createMailbox']>[1] = { capacity: 'unbounded' }) =>
    me.createMailbox(`msg-${++n}`, options);
  /** Wait until `mb` has a receiver blocked on it (the CLI got as far as receiving). */
  const receiverWaiting = (mb: Mailbox) =>
    waitFor(async () => (await mb.stat()).waitingReceivers > 0, 15_000, 'the CLI to wait for a message');

  before(async () => {
    daemon = await startDaemon(['--max-message-size', '1M']);
    me = await connect({ socketPath: daemon.socketPath, name: 'msg-test' });
  });

  after(async () => {
    await me?.close();
    await daemon?.stop();
  });

  test('send TARGET - takes the message from stdin, past the 128 KiB of a command line', async () => {
    const mb = await box();
    const body = `${'0123456789abcdef'.repeat(300 * 64)}\nend`; // 300 KiB of text
    const r = await runCliWith(['send', mb.name, '-'], daemon.socketPath, { input: body });
    assert.equal(r.code, 0, r.stderr);
    const m = await mb.receive({ timeout: 5000 });
    assert.equal(m.codec, 'string');
    assert.equal(m.data, body);
    await mb.delete();
  });

  test('send --file F --codec bytes is byte-exact; recv writes the bytes back unchanged', async () => {
    const mb = await box();
    const bytes = randomBytes(200 * 1024);
    bytes[0] = 0xff; // never valid UTF-8
    const file = join(daemon.dir, 'payload.bin');
    writeFileSync(file, bytes);
    const r = await runCliWith(
      ['send', mb.name, '--file', file, '--codec', 'bytes', '--json'],
      daemon.socketPath,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.toString()), {
      target: mb.name,
      codec: 'bytes',
      bytes: bytes.length,
      priority: 0,
      sync: false,
    });
    const m = await mb.receive({ timeout: 5000 });
    assert.equal(m.codec, 'bytes');
    assert.ok(m.bytes.equals(bytes), 'the library receives exactly the file');

    await mb.send(bytes);
    const back = await runCliWith(['recv', mb.name], daemon.socketPath);
    assert.equal(back.code, 0, back.stderr);
    assert.ok(back.stdout.equals(bytes), 'recv prints a bytes message as its raw bytes');

    const text = await runCliWith(['send', mb.name, '--file', file], daemon.socketPath);
    assert.equal(text.code, 2, 'bytes that are not UTF-8 are refused by the string codec, not mangled');
    assert.match(text.stderr, /not valid UTF-8.*--codec bytes/);
    assert.equal((await mb.stat()).depth, 0);
    await mb.delete();
  });

  test('a message over the kernel limit fails with MESSAGE_TOO_LARGE, exit 8; at the limit it is sent', async () => {
    const mb = await box();
    const over = Buffer.alloc(LIMIT + 1, 0x61);
    const stdin = await runCliWith(['send', mb.name, '-', '--codec', 'bytes'], daemon.socketPath, {
      input: over,
    });
    assert.equal(stdin.code, 8, stdin.stderr);
    assert.match(
      stdin.stderr,
      /larger than the kernel's limit of 1048576 bytes \(1 MiB\) \[MESSAGE_TOO_LARGE\]/,
    );
    const file = join(daemon.dir, 'over.bin');
    writeFileSync(file, over);
    const fromFile = await runCliWith(['send', mb.name, '--file', file, '--json'], daemon.socketPath);
    assert.equal(fromFile.code, 8);
    assert.equal(
      (JSON.parse(fromFile.stderr) as { error: { code: string } }).error.code,
      'MESSAGE_TOO_LARGE',
    );
    assert.equal((await mb.stat()).depth, 0);

    const at = await runCliWith(['send', mb.name, '-'], daemon.socketPath, {
      input: over.subarray(0, LIMIT),
    });
    assert.equal(at.code, 0, at.stderr);
    assert.equal(((await mb.receive({ timeout: 5000 })).data as string).length, LIMIT);
    await mb.delete();
  });

  test('--codec json and --codec v8 (tagged JSON) arrive as values; string is the default', async () => {
    const mb = await box();
    assert.equal((await cli('send', mb.name, '{"n":1}', '--codec', 'json')).code, 0);
    const v8 =
      '{"$map":[["big",{"$bigint":"12345678901234567890"}],["when",{"$date":"2020-01-02T03:04:05.000Z"}]]}';
    assert.equal((await cli('send', mb.name, v8, '--codec', 'v8')).code, 0);
    assert.equal((await cli('send', mb.name, '{"n":1}')).code, 0);
    assert.deepEqual((await mb.receive({ timeout: 5000 })).data, { n: 1 });
    const m = await mb.receive({ timeout: 5000 });
    assert.equal(m.codec, 'v8');
    assert.deepEqual(
      m.data,
      new Map<string, unknown>([
        ['big', 12345678901234567890n],
        ['when', new Date('2020-01-02T03:04:05.000Z')],
      ]),
    );
    assert.equal((await mb.receive({ timeout: 5000 })).data, '{"n":1}');
    const bad = await cli('send', mb.name, '{nope', '--codec', 'json');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not valid JSON/);
    await mb.delete();
  });

  test('recv prints v8 values faithfully (inspect; tagged JSON) and acknowledges them once printed', async () => {
    const mb = await box();
    const value = new Map<unknown, unknown>([
      ['n', 1n],
      ['s', new Set([1, 'two'])],
    ]);
    await mb.send(value, { codec: 'v8' });
    await mb.send(value, { codec: 'v8' });
    const text = await cli('recv', mb.name);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, "Map(2) { 'n' => 1n, 's' => Set(2) { 1, 'two' } }\n");
    const json = await cli('recv', mb.name, '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), {
      mailbox: mb.name,
      sender: 'msg-test',
      priority: 0,
      codec: 'v8',
      data: {
        $map: [
          ['n', { $bigint: '1' }],
          ['s', { $set: [1, 'two'] }],
        ],
      },
    });
    const again = await cli('recv', mb.name, '--nonblock');
    assert.equal(again.code, 4, 'both were acknowledged after printing: nothing comes back');
    await mb.delete();
  });

  test('the tagged JSON of recv --json, sent back with --codec v8, gives the same value', async () => {
    const mb = await box();
    const buffer = new ArrayBuffer(4);
    new Uint8Array(buffer).set([9, 8, 7, 6]);
    const value = new Map<unknown, unknown>([
      [1n, new Set([Number.NaN, -0, Number.POSITIVE_INFINITY, undefined])],
      ['date', new Date(Date.UTC(2021, 5, 7))],
      ['regexp', /a+b/gi],
      ['bytes', new Uint8Array([1, 2, 255])],
      ['floats', new Float64Array([1.5, -2])],
      ['buffer', buffer],
      ['error', new TypeError('boom')],
      ['looks-tagged', { $bigint: 'not a tag' }],
      ['nested', [{ a: [null, true, 'x'] }, new Map([['k', new Set(['v'])]])]],
    ]);
    await mb.send(value, { codec: 'v8' });
    const printed = await cli('recv', mb.name, '--json');
    assert.equal(printed.code, 0, printed.stderr);
    const data = (JSON.parse(printed.stdout) as { data: unknown }).data;
    const sent = await cli('send', mb.name, JSON.stringify(data), '--codec', 'v8');
    assert.equal(sent.code, 0, sent.stderr);
    const back = await mb.receive({ timeout: 5000 });
    assert.equal(back.codec, 'v8');
    assert.deepStrictEqual(back.data, value);
    await mb.delete();
  });

  test('recv into a closed pipe exits quietly and the message is not lost (recv | head -c 1)', async () => {
    const mb = await box();
    const c = spawnCli(['recv', mb.name], daemon.socketPath);
    c.child.stdout!.destroy();
    await receiverWaiting(mb);
    await mb.send('keep me');
    const { code } = await c.exit;
    assert.equal(code, 0, c.stderr());
    assert.equal(c.stderr(), '', 'no stack trace');
    const later = await cli('recv', mb.name, '--nonblock');
    assert.equal(later.code, 0, later.stderr);
    assert.equal(later.stdout, 'keep me\n', 'a later recv gets it');
    await mb.delete();
  });

  test('recv --count 5 into a closed pipe leaves all five messages in order (recv --count 5 | head -c 10)', async () => {
    const mb = await box();
    for (const v of ['1', '2', '3', '4', '5']) await mb.send(v);
    const c = spawnCli(['recv', mb.name, '--count', '5'], daemon.socketPath);
    c.child.stdout!.destroy();
    const { code } = await c.exit;
    assert.equal(code, 0, c.stderr());
    assert.equal(c.stderr(), '');
    const all = await cli('recv', mb.name, '--count', '5', '--nonblock');
    assert.equal(all.stdout, '1\n2\n3\n4\n5\n');
    await mb.delete();
  });

  test('recv killed while its output is stalled loses nothing (acknowledged only once written)', async () => {
    const big = 'x'.repeat(512 * 1024); // far more than a pipe holds
    const mb = await box();
    await mb.send(big);
    const c = spawnCli(['recv', mb.name], daemon.socketPath);
    // Read one chunk, then stop reading: the CLI is stuck writing the message.
    await new Promise<void>((resolve) =>
      c.child.stdout!.once('data', () => {
        c.child.stdout!.pause();
        resolve();
      }),
    );
    c.child.kill('SIGKILL');
    await c.exit;
    const m = await mb.receive({ timeout: 5000 });
    assert.equal(m.data, big, 'the kernel delivers it again');
    await mb.delete();
  });

  test('recv --follow prints messages as they come; SIGINT ends it with 0 and nothing lost', async () => {
    const mb = await box();
    const c = spawnCli(['recv', mb.name, '--follow', '--json'], daemon.socketPath);
    await receiverWaiting(mb);
    const lines = () => c.stdout().toString().split('\n').filter(Boolean);
    for (const v of ['a', 'b', 'c']) await mb.send(v);
    await waitFor(() => lines().length === 3, 15_000, 'three messages printed');
    await receiverWaiting(mb);
    c.child.kill('SIGINT');
    const { code, signal } = await c.exit;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, c.stderr());
    assert.deepEqual(
      lines().map((l) => (JSON.parse(l) as { data: string }).data),
      ['a', 'b', 'c'],
    );
    await mb.send('after');
    const s = await mb.stat();
    assert.equal(s.depth, 1, 'the interrupted receive took nothing with it');
    assert.equal(s.counters.redelivered, 0);
    await mb.delete();
  });

  test('recv --follow --nonblock drains the mailbox and ends with 0', async () => {
    const mb = await box();
    for (const v of ['x', 'y']) await mb.send(v);
    const r = await cli('recv', mb.name, '--follow', '--nonblock');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'x\ny\n');
    await mb.delete();
  });

  test('recv --peek [--count N] prints queued messages in delivery order and leaves them queued', async () => {
    const mb = await box();
    await mb.send('low');
    await mb.send('high', { priority: 7 });
    await mb.send('low2');
    const r = await cli('recv', mb.name, '--peek', '--count', '2', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { data: string; priority: number }).data),
      ['high', 'low'],
    );
    const s = await mb.stat();
    assert.equal(s.depth, 3, 'nothing was taken');
    assert.equal(s.counters.received, 0);
    const text = await cli('recv', mb.name, '--peek');
    assert.equal(text.stdout, 'high\n');
    assert.equal((await mb.receive({ timeout: 5000 })).data, 'high', 'the first is still first');
    await mb.receive({ timeout: 5000 });
    await mb.receive({ timeout: 5000 });
    const empty = await cli('recv', mb.name, '--peek');
    assert.equal(empty.code, 4, 'nothing queued: exit 4 as for recv --nonblock');
    assert.match(empty.stderr, /no message is queued/);
    assert.equal(
      (await cli('recv', '@someone', '--peek')).code,
      2,
      '@name has no inbox to peek from the CLI',
    );
    assert.equal((await cli('recv', mb.name, '--peek', '--follow')).code, 2);
    await mb.delete();
  });

  test('recv @name receives direct messages with acknowledgement too', async () => {
    const c = spawnCli(['recv', '@msg-inbox'], daemon.socketPath);
    await waitFor(
      async () => (await me.listProcesses()).some((p) => p.name === 'msg-inbox'),
      15_000,
      'the CLI',
    );
    await me.send('msg-inbox', 'direct');
    const { code } = await c.exit;
    assert.equal(code, 0, c.stderr());
    assert.equal(c.stdout().toString(), 'direct\n');
  });
});
