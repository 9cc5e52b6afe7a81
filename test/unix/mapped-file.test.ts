import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { type IpcError, MappedFile } from '../../src/index.js';
import { buildCPeer, PY_PEER, spawnPeer, stopPeers } from './fixtures/peers.js';

const SIZE = 10_000;
const pattern = (i: number) => (i * 7 + 3) & 255;
const expectedSum = Array.from({ length: SIZE }, (_, i) => pattern(i)).reduce((a, b) => a + b, 0);
const hasCode = (code: string) => (e: IpcError) => e.code === code;

/** Regular files mapped shared with C and Python (mmap), persistence, flush, read-only mappings and growth. */
describe('memory-mapped files', () => {
  let dir: string;
  let cPeer: string;
  let removeDir: () => void;
  let n = 0;
  const path = () => join(dir, `map-${n++}.bin`);

  before(async () => {
    ({ dir, cPeer, remove: removeDir } = await buildCPeer());
  });
  afterEach(() => stopPeers());
  after(() => removeDir());

  for (const lang of ['C', 'Python'] as const) {
    const peer = (args: string[]) =>
      lang === 'C' ? spawnPeer(cPeer, args) : spawnPeer('python3', [PY_PEER, ...args]);

    it(`ipcbox and ${lang} share a mapped file both ways, live and on disk`, async () => {
      const file = path();
      const m = MappedFile.open(file, { size: SIZE, create: true });
      assert.equal(statSync(file).size, SIZE);
      const bytes = new Uint8Array(m.buffer);
      for (let i = 0; i < SIZE; i++) bytes[i] = pattern(i);
      m.flush();
      const reader = peer(['map-read', file, String(SIZE)]);
      assert.equal(await reader.line('sum'), `sum ${expectedSum}`);
      bytes.fill(0);
      const writer = peer(['map-write', file, String(SIZE)]);
      assert.equal(await writer.line('mapped-written'), 'mapped-written');
      assert.equal(await writer.exited, 0);
      for (let i = 0; i < SIZE; i += 101)
        assert.equal(bytes[i], pattern(i), `byte ${i} seen live through the mapping`);
      m.close();
      const again = MappedFile.open(file);
      assert.equal(again.size, SIZE);
      assert.equal(again.read(SIZE - 1, 1)[0], pattern(SIZE - 1), 'the data persisted in the file');
    });
  }

  it('a read-only mapping refuses writes (no buffer) and sees other processes’ writes through read()', async () => {
    const file = path();
    writeFileSync(file, Buffer.alloc(SIZE));
    const ro = MappedFile.open(file, { readOnly: true });
    assert.equal(ro.readOnly, true);
    assert.throws(() => ro.buffer, hasCode('PERMISSION_DENIED'));
    assert.equal(ro.read(0, 4).readUInt32LE(0), 0);
    assert.equal(await spawnPeer(cPeer, ['map-write', file, String(SIZE)]).exited, 0);
    assert.deepEqual([...ro.read(0, 3)], [pattern(0), pattern(1), pattern(2)]);
    const into = new Uint8Array(5);
    assert.equal(ro.readInto(into, SIZE - 5), 5);
    assert.equal(into[4], pattern(SIZE - 1));
    assert.throws(() => ro.read(SIZE - 1, 2), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => MappedFile.open(file, { readOnly: true, create: true }), hasCode('INVALID_ARGUMENT'));
  });

  it('grows like Segment.grow: old mappings keep working, a new open maps the new size; shrinking and bad opens are refused', () => {
    const file = path();
    const m = MappedFile.open(file, { size: 4096, create: true });
    new Uint8Array(m.buffer)[100] = 42;
    MappedFile.grow(file, 3 * 4096);
    assert.equal(m.size, 4096);
    assert.equal(new Uint8Array(m.buffer)[100], 42);
    const bigger = MappedFile.open(file);
    assert.equal(bigger.size, 3 * 4096);
    assert.equal(new Uint8Array(bigger.buffer)[100], 42);
    assert.throws(() => MappedFile.grow(file, 4096), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => MappedFile.open(file, { size: 4 * 4096 }), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => MappedFile.open(join(dir, 'missing')), hasCode('NO_SUCH_OBJECT'));
    const empty = path();
    writeFileSync(empty, '');
    assert.throws(() => MappedFile.open(empty), hasCode('INVALID_ARGUMENT'));
    assert.throws(() => MappedFile.open(dir), hasCode('INVALID_ARGUMENT'));
  });
});
