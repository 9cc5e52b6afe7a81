import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Welcome } from '../../src/client/connection.js';
import { choosePath, SHM_AUTO_MIN_BYTES } from '../../src/client/mailbox-path.js';
import { segmentNameFor } from '../../src/client/shm-mailbox-path.js';
import { type MailboxOptions, resolveMailboxOptions } from '../../src/core/mailbox-options.js';

const welcome = (hostLocal: boolean): Welcome => ({
  pid: 1,
  name: 'p',
  inbox: 1,
  maxMessageSize: 16 << 20,
  map: hostLocal,
  hostLocal,
});
const path = (o: MailboxOptions, hostLocal = true) =>
  choosePath(resolveMailboxOptions(o, 16 << 20), welcome(hostLocal));

describe("the 'auto' transport rule (README 'Which path')", () => {
  it('takes shared memory only for a fixed size at or past the measured crossover on a host-local kernel', () => {
    assert.equal(path({}), 'kernel');
    assert.equal(path({ fixedMessageSize: SHM_AUTO_MIN_BYTES - 1 }), 'kernel');
    assert.equal(path({ fixedMessageSize: SHM_AUTO_MIN_BYTES }), 'shm');
    assert.equal(path({ fixedMessageSize: 1 << 20, capacity: 0 }), 'shm');
    assert.equal(path({ fixedMessageSize: 1 << 20, capacity: 'unbounded' }), 'shm');
  });

  it('keeps the kernel path where some process could not map the segment, or it would lose a promise', () => {
    // Not host-local: a cluster, a TLS listener or a group daemon (the kernel's WELCOME says so).
    assert.equal(path({ fixedMessageSize: 1 << 20 }, false), 'kernel');
    assert.equal(path({ fixedMessageSize: 1 << 20, capacity: 2 ** 24 + 1 }), 'kernel');
  });

  it('obeys a forced choice either way, and refuses nonsense', () => {
    assert.equal(path({ transport: 'kernel', fixedMessageSize: 1 << 20 }), 'kernel');
    assert.equal(path({ transport: 'shm' }), 'shm');
    assert.equal(
      path({ transport: 'shm' }, false),
      'shm',
      'forced: the kernel or the segment answers for it',
    );
    assert.throws(() => path({ transport: 'fast' as 'shm' }), RangeError);
    assert.throws(() => path({ transport: 'shm', durable: true, owner: 'system' }), RangeError);
  });

  it('names segments per user and kernel, within NAME_MAX, for any mailbox name', () => {
    const a = segmentNameFor('jobs/eu%1', '/run/a.sock');
    assert.ok(!a.slice(1).includes('/'), a);
    assert.match(a, /^ipcbox-mb-\d+-[0-9a-f]{8}-jobs%2Feu%251$/);
    assert.notEqual(a, segmentNameFor('jobs/eu%1', '/run/b.sock'));
    const long = segmentNameFor('x'.repeat(255), '/run/a.sock');
    assert.ok(Buffer.byteLength(long) <= 255, long);
    assert.notEqual(long, segmentNameFor(`${'x'.repeat(254)}y`, '/run/a.sock'));
  });
});
