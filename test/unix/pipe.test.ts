import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { createPipe, type IpcError, type Pipe } from '../../src/index.js';
import { buildCPeer, spawnPeer, stopPeers } from './fixtures/peers.js';

async function readAll(stream: Readable): Promise<string> {
  let s = '';
  for await (const chunk of stream) s += String(chunk);
  return s;
}

const NODE_CHILD = new URL('./fixtures/pipe-child.js', import.meta.url).pathname;

/** Anonymous pipes handed to C, shell and Node children through spawn's stdio; EOF, EPIPE, close-on-exec. */
describe('anonymous pipes', () => {
  let cPeer: string;
  let removeDir: () => void;
  const pipes: Pipe[] = [];
  const fresh = () => {
    const p = createPipe();
    pipes.push(p);
    return p;
  };

  before(async () => {
    ({ cPeer, remove: removeDir } = await buildCPeer());
  });
  afterEach(async () => {
    await stopPeers();
    for (const p of pipes.splice(0)) p.close();
  });
  after(() => removeDir());

  it('a C child reads fd 3 (the read end) to EOF once ipcbox ends the writable', async () => {
    const p = fresh();
    const child = spawnPeer(cPeer, ['fd-read', '3'], { stdio: ['ignore', 'pipe', 'inherit', p.readFd] });
    p.closeRead();
    p.writable.write('to C ');
    p.writable.end('over a pipe');
    assert.equal(await child.line('got'), 'got 16 to C over a pipe');
    assert.equal(await child.exited, 0);
  });

  it('a C child writes fd 3 and ipcbox reads it to EOF when the child exits', async () => {
    const p = fresh();
    const child = spawnPeer(cPeer, ['fd-write', '3', 'from C'], {
      stdio: ['ignore', 'pipe', 'inherit', p.writeFd],
    });
    p.closeWrite();
    assert.equal(await readAll(p.readable), 'from C');
    assert.equal(await child.exited, 0);
  });

  it('a shell child reads and writes its fds 3 and 4 as ordinary descriptors', async () => {
    const down = fresh();
    const up = fresh();
    const child = spawnPeer('sh', ['-c', 'read line <&3; echo "sh got $line" >&4'], {
      stdio: ['ignore', 'pipe', 'inherit', down.readFd, up.writeFd],
    });
    down.closeRead();
    up.closeWrite();
    down.writable.end('ping\n');
    assert.equal(await readAll(up.readable), 'sh got ping\n');
    assert.equal(await child.exited, 0);
  });

  it('a Node child uses the inherited fd through openPipeFd, both directions', async () => {
    const down = fresh();
    const reader = spawnPeer(process.execPath, [NODE_CHILD, 'read', '3'], {
      stdio: ['ignore', 'pipe', 'inherit', down.readFd],
    });
    down.closeRead();
    down.writable.end('to node');
    assert.equal(await reader.line('got'), 'got 7 to node');
    const up = fresh();
    const writer = spawnPeer(process.execPath, [NODE_CHILD, 'write', '3', 'from node'], {
      stdio: ['ignore', 'pipe', 'inherit', up.writeFd],
    });
    up.closeWrite();
    assert.equal(await readAll(up.readable), 'from node');
    assert.equal(await writer.exited, 0);
  });

  it('only the fds given to spawn cross exec (both ends are close-on-exec)', async () => {
    const given = fresh();
    const kept = fresh();
    const inode = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`);
    assert.match(inode(given.readFd), /^pipe:/);
    const child = spawnPeer(
      'sh',
      ['-c', 'for f in /proc/$$/fd/*; do readlink "$f"; done | tr "\\n" " "; echo'],
      {
        stdio: ['ignore', 'pipe', 'inherit', given.readFd],
      },
    );
    const links = (await child.line('')).trim().split(/\s+/);
    assert.equal(await child.exited, 0);
    assert.ok(links.includes(inode(given.readFd)), `the given end is in the child: ${links}`);
    for (const fd of [kept.readFd, kept.writeFd]) {
      assert.ok(!links.includes(inode(fd)), `the kept pipe (${inode(fd)}) did not cross exec: ${links}`);
    }
  });

  it('EOF when the last writer closes; BROKEN_PIPE (not a crash) when writing after the reader is gone', async () => {
    const p = fresh();
    p.writable.end('last words');
    assert.equal(await readAll(p.readable), 'last words');

    const q = fresh();
    const head = spawnPeer('head', ['-c', '1'], { stdio: [q.readFd, 'pipe', 'inherit'] });
    q.closeRead();
    q.writable.write('x');
    assert.equal(await head.exited, 0);
    const err = await new Promise<IpcError>((resolve) => {
      q.writable.on('error', resolve);
      q.writable.write('more');
    });
    assert.equal(err.code, 'BROKEN_PIPE');
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'EPIPE');
    assert.equal(process.exitCode, undefined, 'SIGPIPE did not kill or mark this process');
  });

  it('backpressure: write() returns false once the pipe buffer is full and drains when the reader reads', async () => {
    const p = fresh();
    const chunk = Buffer.alloc(16 * 1024, 1);
    let wrote = 0;
    while (p.writable.write(chunk)) {
      wrote += chunk.length;
      assert.ok(wrote < 64 * 1024 * 1024, 'write() never reported backpressure');
    }
    wrote += chunk.length;
    const drained = new Promise((res) => p.writable.once('drain', res));
    let read = 0;
    p.readable.on('data', (c: Buffer) => {
      read += c.length;
    });
    await drained;
    p.writable.end();
    await new Promise((res) => p.readable.on('end', res));
    assert.equal(read, wrote);
  });
});
