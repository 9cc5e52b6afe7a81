/**
 * peerCredentials(fd): the addon reads the credentials the OS recorded for
 * the other end of a connected Unix socket (SO_PEERCRED on Linux).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { native } from '../../src/shm/native.js';
import { tempDir } from '../helpers/kernel-harness.js';

const dir = tempDir('ipcbox-peercred-');
const path = join(dir, 'peer.sock');
let server: Server;
const accepted: Promise<Socket> = new Promise((resolve) => {
  server = createServer(resolve);
});

function fdOf(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

before(() => new Promise<void>((resolve) => server.listen(path, resolve)));
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the accepted socket names this process as its peer: pid, uid and gid', async () => {
  const client = netConnect(path);
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const socket = await accepted;
  try {
    const creds = native().peerCredentials(fdOf(socket));
    assert.equal(creds.uid, process.getuid?.());
    assert.equal(creds.gid, process.getgid?.());
    assert.equal(creds.pid, process.pid);
    assert.deepEqual(native().peerCredentials(fdOf(client)), creds, 'both ends are this process');
  } finally {
    client.destroy();
    socket.destroy();
  }
});

test('a descriptor that is no socket throws an Error with the errno', () => {
  assert.throws(
    () => native().peerCredentials(0x7ffffff0),
    (err: unknown) =>
      err instanceof Error &&
      (err as NodeJS.ErrnoException).code === 'EBADF' &&
      (err as NodeJS.ErrnoException).errno === constants.errno.EBADF,
  );
  assert.throws(() => native().peerCredentials(-1), TypeError);
});
