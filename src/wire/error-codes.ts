import type { IpcErrorCode } from '../errors.js';

/** Numeric error codes carried in ERROR frames. Append only; never renumber. */
const CODES: readonly IpcErrorCode[] = [
  'PROTOCOL', // 0
  'TIMEOUT',
  'ABORTED',
  'WOULD_BLOCK',
  'NO_SUCH_MAILBOX',
  'NO_SUCH_PROCESS',
  'NO_SUCH_SEGMENT',
  'PERMISSION_DENIED',
  'MAILBOX_CLOSED',
  'MAILBOX_EXISTS',
  'MESSAGE_TOO_LARGE',
  'WRONG_MESSAGE_SIZE',
  'NAME_TAKEN',
  'RECEIVER_BUSY',
  'KERNEL_FULL',
  'KERNEL_UNAVAILABLE',
  'KERNEL_RUNNING',
  'DISCONNECTED',
  'NOT_SUPPORTED',
  'NATIVE_UNAVAILABLE',
  'OWNER_DEAD',
  'INVALID_ARGUMENT',
  'SEGMENT_EXISTS',
  'CLUSTER_UNAVAILABLE',
  'BROKEN_PIPE',
  'OS_LIMIT',
  'NO_SUCH_OBJECT',
];

const NUMBERS = new Map<IpcErrorCode, number>(CODES.map((c, i) => [c, i]));

export function errorCodeToWire(code: IpcErrorCode): number {
  return NUMBERS.get(code) ?? 0;
}

export function errorCodeFromWire(n: number): IpcErrorCode {
  return CODES[n] ?? 'PROTOCOL';
}
