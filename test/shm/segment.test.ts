import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { posixName, Segment } from '../../src/shm/segment.js';
import { hasCode } from './fixtures/has-code.js';
import { uniqueName } from './fixtures/test-segments.js';

const run = promisify(execFile);
const created: string[] = [];

function createTracked(name: string, size: number): Segment {
  const seg = Segment.create(name, { size });
  created.push(name);
  return seg;
}

after(() => {
  for (const name of created) {
    try {
      Segment.unlink(name);
    } catch {
      // already unlinked by the test itself
    }
  }
});

describe('Segment', () => {
  test('create maps a zero-filled SharedArrayBuffer that open() in the same process sees', () => {
    const name = uniqueName('seg');
    const a = createTracked(name, 8192);
    assert.ok(a.buffer instanceof SharedArrayBuffer);
    assert.equal(a.size, 8192);
    assert.ok(new Uint8Array(a.buffer).every((b) => b === 0));
    const b = Segment.open(name);
    assert.equal(b.size, 8192);
    new Int32Array(a.buffer)[10] = 42;
    assert.equal(Atomics.load(new Int32Array(b.buffer), 10), 42);
    assert.equal(Segment.open(name, { size: 4096 }).size, 4096);
    a.close();
    b.close();
    assert.ok(a.closed);
    assert.throws(() => a.buffer, hasCode('INVALID_ARGUMENT'));
  });

  test('stat reports size and mode; create applies the mode regardless of umask', () => {
    const name = uniqueName('stat');
    Segment.create(name, { size: 1000, mode: 0o640 });
    created.push(name);
    const st = Segment.stat(name);
    assert.equal(st.size, 1000);
    assert.equal(st.mode, 0o640);
    assert.equal(st.uid, process.getuid?.());
  });

  test('"foo" and "/foo" name the same segment', () => {
    const name = uniqueName('slash');
    createTracked(name, 4096);
    assert.equal(Segment.open(`/${name}`).name, `/${name}`);
    assert.equal(posixName(name), `/${name}`);
  });

  test('unknown segment → NO_SUCH_SEGMENT (open, stat, unlink)', () => {
    const name = uniqueName('missing');
    assert.throws(() => Segment.open(name), hasCode('NO_SUCH_SEGMENT'));
    assert.throws(() => Segment.stat(name), hasCode('NO_SUCH_SEGMENT'));
    assert.throws(() => Segment.unlink(name), hasCode('NO_SUCH_SEGMENT'));
  });

  test('exclusive create of an existing name → NAME_TAKEN; non-exclusive reuses it', () => {
    const name = uniqueName('dup');
    createTracked(name, 4096);
    assert.throws(() => Segment.create(name, { size: 4096 }), hasCode('NAME_TAKEN'));
    assert.equal(Segment.create(name, { size: 4096, exclusive: false }).size, 4096);
  });

  test('bad sizes and names → INVALID_ARGUMENT', () => {
    const name = uniqueName('bad');
    for (const size of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => Segment.create(name, { size }), hasCode('INVALID_ARGUMENT'), `size ${size}`);
    }
    createTracked(name, 4096);
    assert.throws(() => Segment.open(name, { size: 8192 }), hasCode('INVALID_ARGUMENT'));
    for (const bad of ['', '/', 'a/b', '/a/b', 'x'.repeat(300)]) {
      assert.throws(() => Segment.open(bad), hasCode('INVALID_ARGUMENT'), `name ${bad}`);
    }
  });

  test('unlink removes the name but the mapping stays usable', () => {
    const name = uniqueName('unlink');
    const seg = Segment.create(name, { size: 4096 });
    Segment.unlink(name);
    assert.throws(() => Segment.open(name), hasCode('NO_SUCH_SEGMENT'));
    new Uint8Array(seg.buffer)[0] = 7;
    assert.equal(new Uint8Array(seg.buffer)[0], 7);
  });
});

// Python < 3.13 registers even attached segments with its resource tracker,
// which unlinks them at exit; unregistering keeps the test's ownership clear.
const PY_PRELUDE = `
import sys
from multiprocessing import shared_memory, resource_tracker
def attach(name, **kw):
    try:
        return shared_memory.SharedMemory(name=name, track=False, **kw)
    except TypeError:
        s = shared_memory.SharedMemory(name=name, **kw)
        resource_tracker.unregister(s._name, 'shared_memory')
        return s
`;

async function python(script: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('python3', ['-c', PY_PRELUDE + script, ...args], { timeout: 30_000 });
  return stdout.trim();
}

describe('Segment interoperates with Python multiprocessing.shared_memory', () => {
  test('Python reads and writes a segment ipcbox created', async () => {
    const name = uniqueName('py1');
    const seg = createTracked(name, 4096);
    new Uint8Array(seg.buffer).set(Buffer.from('hello from node'));
    const out = await python(
      `s = attach(sys.argv[1])\nprint(bytes(s.buf[:15]).decode())\ns.buf[100:104] = b'pong'\ns.close()`,
      name,
    );
    assert.equal(out, 'hello from node');
    assert.equal(Buffer.from(seg.buffer, 100, 4).toString(), 'pong');
    assert.equal(Segment.stat(name).size, 4096, 'Python must not unlink or resize it');
  });

  test('ipcbox opens a segment Python created', async () => {
    const name = uniqueName('py2');
    created.push(name);
    await python(
      `s = attach(sys.argv[1], create=True, size=8192)\ns.buf[:5] = b'hello'\ns.buf[8191] = 9\ns.close()`,
      name,
    );
    const seg = Segment.open(name);
    assert.equal(seg.size, 8192);
    assert.equal(Buffer.from(seg.buffer, 0, 5).toString(), 'hello');
    assert.equal(new Uint8Array(seg.buffer)[8191], 9);
  });
});
