/**
 * The kernel's TLS listener for processes on hosts without a kernel (`listen`, `--listen`): a
 * client with the token and the right CA talks to local processes as one of them; a wrong token is
 * PERMISSION_DENIED and the connection ends; a CA that did not sign the kernel is refused; plain
 * TCP, or HELLO before AUTH, gets nothing — and the kernel serves everyone else throughout. A
 * stranger that never finishes its TLS handshake is dropped after the hello timeout (node's own
 * default is 120 s, and with a 'tlsClientError' listener node leaves the socket open for good),
 * the listener holds at most maxConnections sockets, and close does not wait for handshakes. There
 * is no plain-TCP listener to configure.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { connect, type IpcError, type IpcProcess, type Kernel, startKernel } from '../../src/index.js';
import { ROOT, runCli, spawnDaemon, tempDir, waitFor } from '../helpers/kernel-harness.js';
import { makeTestCerts, type TestCerts } from '../helpers/tls-certs.js';

describe('the TLS listener', () => {
  let certs: TestCerts;
  let kernel: Kernel;
  let url: string;
  let token: string;
  let dir: string;
  let local: IpcProcess;

  before(async () => {
    certs = makeTestCerts();
    dir = tempDir('ipcbox-tls-listen-');
    token = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
    kernel = await startKernel({
      socketPath: join(dir, 'k.sock'),
      listen: {
        url: 'tls://127.0.0.1:0',
        certFile: certs.cert,
        keyFile: certs.key,
        tokenFile: join(dir, 'token'),
      },
    });
    url = `tls://127.0.0.1:${kernel.networkAddress?.port}`;
    local = await connect({ socketPath: kernel.socketPath, name: 'on-the-server' });
  });
  after(async () => {
    await local?.close();
    await kernel?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(certs.dir, { recursive: true, force: true });
  });

  test('a process in another OS process connects by url with the token and the CA, and talks to local ones', async () => {
    const script = `
      import { connect } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'index.js'))};
      import { readFileSync } from 'node:fs';
      const p = await connect({ url: process.argv[1], token: process.argv[2], ca: readFileSync(process.argv[3]), name: 'laptop' });
      await p.send('on-the-server', 'hello over TLS');
      const m = await p.receive({ from: 'on-the-server', timeout: 5000 });
      console.log(String(m.data));
      await p.close();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, url, token, certs.ca], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await local.waitForProcess('laptop', { timeout: 10_000 });
    const m = await local.receive({ from: 'laptop', timeout: 10_000 });
    assert.equal(m.data, 'hello over TLS');
    assert.equal(m.sender, 'laptop');
    await local.send('laptop', 'hello back');
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 0);
    assert.equal(out.trim(), 'hello back');
  });

  test("with a TLS listener, 'auto' keeps mailboxes on the kernel path, and a TLS client cannot make a shared-memory one", async () => {
    // Even a local process: a client on another host could open the mailbox, and it cannot map this host's memory.
    const big = await local.createMailbox('tls-auto-big', { fixedMessageSize: 64 * 1024 });
    assert.equal(big.transport, 'kernel');
    await big.delete();
    const remote = await connect({ url, token, ca: readFileSync(certs.ca), name: 'tls-shm-try' });
    try {
      await assert.rejects(remote.createMailbox('tls-forced', { transport: 'shm' }), {
        code: 'NOT_SUPPORTED',
      });
      const raw = remote as unknown as { conn: { call(m: string, a: unknown): Promise<unknown> } };
      await assert.rejects(
        raw.conn.call('segment.register', {
          name: 'tls-seg',
          size: 4096,
          kind: 'mailbox',
          mailbox: 'tls-raw',
        }),
        { code: 'NOT_SUPPORTED' },
      );
      // Nor open one a local process made: its segment name would find this host's memory, or on
      // the client's host another kernel's mailbox of that name (same socket path, same uid).
      const onShm = await local.createMailbox('tls-local-shm', { transport: 'shm' });
      await assert.rejects(remote.openMailbox('tls-local-shm'), { code: 'NOT_SUPPORTED' });
      await onShm.send('still local');
      assert.equal((await onShm.receive({ timeout: 5000 })).data, 'still local');
      await onShm.delete();
    } finally {
      await remote.close();
    }
  });

  test('a wrong token is PERMISSION_DENIED', async () => {
    await assert.rejects(
      connect({ url, token: `${token}x`, ca: readFileSync(certs.ca) }),
      (e: IpcError) => e.code === 'PERMISSION_DENIED' && /token/.test(e.message),
    );
    await assert.rejects(connect({ url, token: 'short', ca: readFileSync(certs.ca) }), {
      code: 'PERMISSION_DENIED',
    });
  });

  test('a CA that did not sign the kernel is refused (KERNEL_UNAVAILABLE, naming why)', async () => {
    await assert.rejects(
      connect({ url, token, ca: readFileSync(certs.otherCa) }),
      (e: IpcError) => e.code === 'KERNEL_UNAVAILABLE' && /CERT|certificate|verify/i.test(e.message),
    );
  });

  test('plain TCP and HELLO before AUTH get nothing; the kernel serves everyone else', async () => {
    const port = kernel.networkAddress?.port as number;
    const plain = netConnect(port, '127.0.0.1');
    plain.on('error', () => undefined);
    plain.write(Buffer.from('this is not TLS at all\r\n'));
    await new Promise((r) => plain.once('close', r));

    const raw = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(certs.ca) });
    await new Promise((r) => raw.once('secureConnect', r));
    const hello = Buffer.alloc(4 + 12 + 16);
    hello.writeUInt32LE(12 + 16, 0);
    hello.writeUInt8(1, 4);
    hello.writeUInt32LE(1, 8);
    hello.writeUInt32LE(0x42435049, 16);
    hello.writeUInt16LE(2, 20);
    raw.write(hello);
    const reply: Buffer[] = [];
    raw.on('data', (d: Buffer) => reply.push(d));
    await new Promise((r) => raw.once('close', r));
    const all = Buffer.concat(reply);
    assert.ok(all.length >= 16 && all.readUInt8(4) === 5, 'answered by an ERROR frame');
    assert.equal(all.readUInt32LE(8), 0, 'a protocol error (request id 0), then the connection closed');

    const other = await connect({ socketPath: kernel.socketPath, name: 'still-served' });
    await other.send('still-served', 'fine');
    assert.equal((await other.receive({ timeout: 5000 })).data, 'fine');
    await other.close();
  });

  /** A kernel of its own with a TLS listener (the shared one must not be filled or stopped). */
  const tlsKernel = (sock: string, extra: Parameters<typeof startKernel>[0] = {}) =>
    startKernel({
      ...extra,
      socketPath: join(dir, sock),
      listen: {
        url: 'tls://127.0.0.1:0',
        certFile: certs.cert,
        keyFile: certs.key,
        tokenFile: join(dir, 'token'),
      },
    });

  /** `n` TCP connections to `port` that never start TLS; `onClose` hears each one close. */
  const idleConnections = (port: number, n: number, onClose: () => void = () => undefined) =>
    Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<ReturnType<typeof netConnect>>((resolve) => {
            const c = netConnect(port, '127.0.0.1', () => resolve(c));
            c.on('error', () => undefined);
            c.once('close', () => {
              onClose();
              resolve(c);
            });
          }),
      ),
    );

  test('connections that never finish the TLS handshake are bounded and dropped after the hello timeout', async () => {
    const small = await tlsKernel('small.sock', { maxConnections: 8, helloTimeout: 400 });
    let idle: ReturnType<typeof netConnect>[] = [];
    try {
      const port = small.networkAddress?.port as number;
      const opened = Date.now();
      const closedAfter: number[] = [];
      idle = await idleConnections(port, 20, () => closedAfter.push(Date.now() - opened));
      // Past the first 8 the listener refuses at once; the 8 are dropped by the handshake timeout.
      await new Promise((r) => setTimeout(r, 250));
      assert.ok(closedAfter.length >= 12, `${closedAfter.length} of 20 refused at once`);
      await waitFor(
        () => closedAfter.length === 20,
        5000,
        () => `${closedAfter.length} of 20 closed`,
      );
      assert.ok(Math.max(...closedAfter) < 3000, `the last closed after ${Math.max(...closedAfter)} ms`);
      // Room again: a client with the token gets in.
      const p = await connect({
        url: `tls://127.0.0.1:${port}`,
        token,
        ca: readFileSync(certs.ca),
        name: 'after-the-idle',
      });
      await p.close();
    } finally {
      for (const c of idle) c.destroy();
      await small.close();
    }
  });

  test('a kernel stops at once with strangers in the middle of a TLS handshake', async () => {
    const k = await tlsKernel('stop.sock');
    const idle = await idleConnections(k.networkAddress?.port as number, 3);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await k.close();
    // The handshake timeout is the default hello timeout (5 s): close did not wait for it.
    assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
    for (const c of idle) c.destroy();
  });

  test('ipcbox daemon --listen: the daemon says where, and a client with the token connects there', async () => {
    const d = await spawnDaemon(join(dir, 'cli.sock'), [
      '--listen',
      'tls://127.0.0.1:0',
      '--tls-cert',
      certs.cert,
      '--tls-key',
      certs.key,
      '--token-file',
      join(dir, 'token'),
    ]);
    try {
      const where = /and on (tls:\/\/127\.0\.0\.1:\d+)/.exec(d.output())?.[1];
      assert.ok(where !== undefined, d.output());
      const p = await connect({ url: where, token, ca: readFileSync(certs.ca), name: 'via-cli-listener' });
      await p.send('via-cli-listener', 'round');
      assert.equal((await p.receive({ timeout: 5000 })).data, 'round');
      await p.close();
      const bad = await runCli(['daemon', '--listen', 'tls://127.0.0.1:0'], join(dir, 'never.sock'));
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /--listen needs --tls-cert, --tls-key and --token-file/);
    } finally {
      d.child.kill('SIGTERM');
      await d.exit;
    }
  });

  test('there is no plain-TCP listener: tcp:// is refused at construction', async () => {
    await assert.rejects(
      startKernel({
        socketPath: join(dir, 'no.sock'),
        listen: {
          url: 'tcp://127.0.0.1:0',
          certFile: certs.cert,
          keyFile: certs.key,
          tokenFile: join(dir, 'token'),
        },
      }),
      (e: Error) => e instanceof TypeError && /tls:\/\//.test(e.message),
    );
  });
});
