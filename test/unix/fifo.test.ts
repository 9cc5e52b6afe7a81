import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { type IpcError, mkfifo, openFifo, removeFifo } from '../../src/index.js';
import { blockedInKernel, buildCPeer, PY_PEER, spawnPeer, stopPeers } from './fixtures/peers.js';

const hasCode = (code: string) => (e: IpcError) => e.code === code;

/** Everything a stream yields until 'end'. */
async function readAll(stream: Readable): Promise<string> {
  let s = '';
  for await (const chunk of stream) s += String(chunk);
  return s;
}

function written(stream: NodeJS.WritableStream, data: string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(data, (err) => (err ? reject(err) : resolve())));
}

/** Named FIFOs with the shell, C and Python on the other end; open semantics; EOF, EPIPE, abort, timeout. */
describe('named FIFOs', () => {
  let dir: string;
  let cPeer: string;
  let removeDir: () => void;
  let n = 0;
  const fresh = () => {
    const path = join(dir, `fifo-${n++}`);
    mkfifo(path);
    return path;
  };

  before(async () => {
    ({ dir, cPeer, remove: removeDir } = await buildCPeer());
  });
  afterEach(() => stopPeers());
  after(() => removeDir());

  it('a FIFO made by mkfifo(1) is written by ipcbox and read by cat', async () => {
    const path = join(dir, 'shell-made');
    assert.equal(await spawnPeer('mkfifo', [path]).exited, 0);
    const cat = spawnPeer('cat', [path]);
    const w = await openFifo(path, 'write', { timeout: 10_000 });
    await written(w, 'hello from ipcbox\n');
    w.end();
    assert.equal(await cat.line('hello'), 'hello from ipcbox');
    assert.equal(await cat.exited, 0, 'cat saw EOF once the writer closed');
    removeFifo(path);
  });

  it('a FIFO made by ipcbox is written by the shell (echo >) and read by ipcbox to EOF; mode is exact', async () => {
    const path = join(dir, 'ipcbox-made');
    mkfifo(path, 0o640);
    assert.equal(statSync(path).mode & 0o777, 0o640);
    assert.ok(statSync(path).isFIFO());
    const r = openFifo(path, 'read', { timeout: 10_000 });
    const sh = spawnPeer('sh', ['-c', `echo hi-from-sh > '${path}'`]);
    assert.equal(await readAll(await r), 'hi-from-sh\n');
    assert.equal(await sh.exited, 0);
    removeFifo(path);
    assert.throws(() => statSync(path));
  });

  for (const lang of ['C', 'Python'] as const) {
    const peer = (args: string[]) =>
      lang === 'C' ? spawnPeer(cPeer, args) : spawnPeer('python3', [PY_PEER, ...args]);
    it(`${lang} reads what ipcbox writes and writes what ipcbox reads`, async () => {
      const toPeer = fresh();
      const reader = peer(['fifo-read', toPeer]);
      const w = await openFifo(toPeer, 'write', { timeout: 10_000 });
      w.end('to the other side');
      assert.equal(await reader.line('got'), 'got 17 to the other side');
      const fromPeer = fresh();
      const r = openFifo(fromPeer, 'read', { timeout: 10_000 });
      const writer = peer(['fifo-write', fromPeer, `from ${lang}`]);
      assert.equal(await readAll(await r), `from ${lang}`);
      assert.equal(await writer.exited, 0);
    });
  }

  it('a reader opened before any writer waits for one (no instant EOF), then ends when the last writer closes', async () => {
    const path = fresh();
    let opened = false;
    const r = openFifo(path, 'read', { timeout: 20_000 }).then((s) => {
      opened = true;
      return s;
    });
    await new Promise((res) => setTimeout(res, 150));
    assert.equal(opened, false, 'no writer yet: the open is still waiting');
    const w1 = await openFifo(path, 'write', { timeout: 5000 });
    const w2 = await openFifo(path, 'write', { timeout: 5000 });
    await written(w1, 'a');
    const reader = await r;
    let ended = false;
    reader.on('end', () => {
      ended = true;
    });
    const chunks: string[] = [];
    reader.on('data', (c) => chunks.push(String(c)));
    w1.end();
    await new Promise((res) => w1.on('close', res));
    await new Promise((res) => setTimeout(res, 100));
    assert.deepEqual(chunks, ['a']);
    assert.equal(ended, false, 'one writer is left: no EOF yet');
    w2.end('b');
    await new Promise((res) => reader.on('end', res));
    assert.equal(chunks.join(''), 'ab');
  });

  it('a writer whose reader left gets BROKEN_PIPE, not a crash', async () => {
    const path = fresh();
    const head = spawnPeer('head', ['-c', '1', path]);
    const w = await openFifo(path, 'write', { timeout: 10_000 });
    await written(w, 'x');
    assert.equal(await head.exited, 0);
    const err = await new Promise<IpcError>((resolve) => {
      w.on('error', resolve);
      w.write('y');
    });
    assert.equal(err.code, 'BROKEN_PIPE');
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'EPIPE');
  });

  it('opens time out (TIMEOUT) and abort (ABORTED) while the event loop stays responsive', async () => {
    const path = fresh();
    const t0 = performance.now();
    let timerAt = 0;
    const timer = new Promise<void>((res) =>
      setTimeout(() => {
        timerAt = performance.now() - t0;
        res();
      }, 50),
    );
    const reading = openFifo(path, 'read', { timeout: 300 });
    const writing = openFifo(fresh(), 'write', { timeout: 300 });
    await timer;
    assert.ok(timerAt < 200, `a 50 ms timer fired after ${timerAt} ms while opens waited`);
    await assert.rejects(reading, hasCode('TIMEOUT'));
    await assert.rejects(writing, hasCode('TIMEOUT'));
    assert.ok(performance.now() - t0 >= 290);
    for (const end of ['read', 'write'] as const) {
      const ac = new AbortController();
      const open = openFifo(fresh(), end, { signal: ac.signal });
      setTimeout(() => ac.abort(new Error('enough')), 50);
      await assert.rejects(
        open,
        (e: IpcError) => e.code === 'ABORTED' && (e.cause as Error).message === 'enough',
      );
    }
  });

  it('five waiting opens hold no libuv pool thread (UV_THREADPOOL_SIZE=4: readFile still completes)', async () => {
    const file = join(dir, 'small.txt');
    writeFileSync(file, 'small');
    const script = new URL('./fixtures/fifo-pool.js', import.meta.url).pathname;
    const child = spawnPeer(process.execPath, [script, dir, file], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '4' },
    });
    const timer = Number((await child.line('timer ')).split(' ')[1]);
    assert.ok(timer < 200, `timer fired after ${timer} ms`);
    const [, ms, content] = (await child.line('readFile ', 10_000)).split(' ');
    assert.equal(content, 'small');
    assert.ok(Number(ms) < 2000, `readFile took ${ms} ms`);
    assert.equal(await child.line('aborted '), 'aborted 5');
    assert.equal(await child.exited, 0);
  });

  it('a reader SIGKILLed while blocked in read() does not hang the others: a later write reaches the other reader', async () => {
    const path = fresh();
    const victim = spawnPeer(cPeer, ['fifo-read', path]);
    const w = await openFifo(path, 'write', { timeout: 10_000 });
    await victim.line('ready');
    await blockedInKernel(victim.pid);
    const survivor = openFifo(path, 'read', { timeout: 10_000 });
    victim.kill('SIGKILL');
    assert.equal(await victim.exited, 'SIGKILL');
    await written(w, 'after-kill');
    w.end();
    assert.equal(await readAll(await survivor), 'after-kill');
  });

  it('errors: a missing path NO_SUCH_OBJECT, a regular file INVALID_ARGUMENT, mkfifo on an existing path NAME_TAKEN', async () => {
    await assert.rejects(openFifo(join(dir, 'missing'), 'read'), hasCode('NO_SUCH_OBJECT'));
    const file = join(dir, 'regular');
    writeFileSync(file, '');
    await assert.rejects(openFifo(file, 'read'), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => removeFifo(file), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => mkfifo(file), hasCode('NAME_TAKEN'));
  });
});
