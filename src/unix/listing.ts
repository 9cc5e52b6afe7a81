/**
 * Which message queues and named semaphores exist on this machine, for
 * status listings. Linux only, from the file systems that hold them:
 * - message queues: /dev/mqueue, when the mqueue file system is mounted there
 *   (not by default in containers: `mount -t mqueue none /dev/mqueue`);
 *   without it the OS offers no way to enumerate queues and
 *   `listMessageQueues` throws NOT_SUPPORTED saying so.
 * - named semaphores: glibc keeps each in /dev/shm/sem.<name>.
 * Names come back in POSIX form ("/name"), sorted.
 */
import { readdirSync } from 'node:fs';
import { IpcError } from '../errors.js';
import { errnoCode } from './os-errors.js';

export function listMessageQueues(): string[] {
  try {
    return readdirSync('/dev/mqueue')
      .map((n) => `/${n}`)
      .sort();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT')
      throw new IpcError(
        'NOT_SUPPORTED',
        'cannot list message queues: the mqueue file system is not mounted (mount -t mqueue none /dev/mqueue)',
        { cause: err },
      );
    throw err;
  }
}

export function listNamedSemaphores(): string[] {
  let names: string[];
  try {
    names = readdirSync('/dev/shm');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.startsWith('sem.'))
    .map((n) => `/${n.slice(4)}`)
    .sort();
}
