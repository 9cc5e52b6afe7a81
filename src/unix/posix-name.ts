/**
 * POSIX IPC names (message queues, named semaphores): one leading slash and
 * no other, as sem_open/mq_open want them portably. "jobs" and "/jobs" are the
 * same object, so a C program's mq_open("/jobs") and a Python ctypes call
 * meet ipcbox's MessageQueue.open('jobs').
 */
import { IpcError } from '../errors.js';

/** The POSIX name for `name`, or INVALID_ARGUMENT. `maxBytes` counts the slash. */
export function posixIpcName(name: unknown, kind: string, maxBytes: number): string {
  if (typeof name !== 'string') throw new IpcError('INVALID_ARGUMENT', `${kind} name must be a string`);
  const posix = name.startsWith('/') ? name : `/${name}`;
  if (posix.length < 2 || posix.indexOf('/', 1) !== -1 || posix.includes('\0')) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `invalid ${kind} name ${JSON.stringify(name)}: want "name" or "/name", no other "/"`,
    );
  }
  if (Buffer.byteLength(posix) > maxBytes) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${kind} name ${JSON.stringify(name)} is longer than ${maxBytes} bytes`,
    );
  }
  return posix;
}
