/**
 * A throwaway CA and a server certificate for 127.0.0.1/localhost, made with openssl in a temp dir
 * (installed on CI with the base system). `otherCa` is a second CA that signed nothing of ours: a
 * client trusting only it must refuse the server.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './kernel-harness.js';

export interface TestCerts {
  dir: string;
  ca: string;
  otherCa: string;
  cert: string;
  key: string;
}

export function makeTestCerts(): TestCerts {
  const dir = tempDir('ipcbox-tls-');
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  for (const ca of ['ca', 'other-ca']) {
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=ipcbox test ${ca}`,
      '-keyout',
      f(`${ca}.key`),
      '-out',
      f(`${ca}.pem`),
    );
  }
  writeFileSync(f('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
  );
  ssl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('san.cnf'),
    '-out',
    f('server.pem'),
  );
  return { dir, ca: f('ca.pem'), otherCa: f('other-ca.pem'), cert: f('server.pem'), key: f('server.key') };
}
