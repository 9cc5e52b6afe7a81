import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type IpcError, Segment } from '../../src/index.js';
import { ROOT } from '../helpers/kernel-harness.js';

const run = promisify(execFile);
const SIZE = 8192;
const pattern = (i: number) => (i * 7 + 3) & 0xff;
const expectedSum = Array.from({ length: SIZE }, (_, i) => pattern(i)).reduce((a, b) => a + b, 0);

/** Segments shared with a plain C program (shm_open + mmap), both ways, and grown where safe. */
describe('shared memory with C', () => {
  let dir: string;
  let peer: string;
  const names: string[] = [];
  const fresh = (tag: string) => {
    const n = `ipcbox-test-c-${tag}-${process.pid}`;
    names.push(n);
    return n;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipcbox-c-'));
    peer = join(dir, 'shm_peer');
    await run('cc', ['-O2', '-o', peer, join(ROOT, 'test', 'shm', 'c', 'shm_peer.c'), '-lrt']);
  });
  after(() => {
    for (const n of names) {
      try {
        Segment.unlink(n);
      } catch {
        // removed by the test itself
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a segment made by ipcbox is read by C through shm_open', async () => {
    const name = fresh('from-node');
    const seg = Segment.create(name, { size: SIZE });
    const bytes = new Uint8Array(seg.buffer);
    for (let i = 0; i < SIZE; i++) bytes[i] = pattern(i);
    const { stdout } = await run(peer, ['read', `/${name}`, String(SIZE)]);
    assert.equal(Number(stdout.trim()), expectedSum);
    seg.close();
  });

  it('a segment made by C is attached and read by ipcbox', async () => {
    const name = fresh('from-c');
    const { stdout } = await run(peer, ['write', `/${name}`, String(SIZE)]);
    assert.equal(Number(stdout.trim()), expectedSum);
    const seg = Segment.open(name);
    assert.equal(seg.size, SIZE);
    const bytes = new Uint8Array(seg.buffer);
    for (let i = 0; i < SIZE; i += 997) assert.equal(bytes[i], pattern(i), `byte ${i}`);
    seg.close();
  });

  it('grows a segment in place: old mappings stay valid, new ones see the new size; shrinking is refused', async () => {
    const name = fresh('grow');
    const seg = Segment.create(name, { size: 4096 });
    new Uint8Array(seg.buffer)[100] = 42;
    Segment.grow(name, 3 * 4096);
    assert.equal(Segment.stat(name).size, 3 * 4096);
    assert.equal(new Uint8Array(seg.buffer)[100], 42, 'the old mapping still works');
    const bigger = Segment.open(name);
    assert.equal(bigger.size, 3 * 4096);
    assert.equal(new Uint8Array(bigger.buffer)[100], 42);
    new Uint8Array(bigger.buffer)[3 * 4096 - 1] = 7;
    assert.throws(
      () => Segment.grow(name, 4096),
      (e: IpcError) => e.code === 'INVALID_ARGUMENT',
    );
    assert.throws(
      () => Segment.grow(`${name}-missing`, 8192),
      (e: IpcError) => e.code === 'NO_SUCH_SEGMENT',
    );
    seg.close();
    bigger.close();
  });
});
