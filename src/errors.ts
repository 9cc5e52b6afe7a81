/**
 * Every failure ipcbox reports is an `IpcError` with a stable `code`.
 * Callers switch on `code` (or `instanceof`), never on message text.
 * The numeric wire value of each code lives in `wire/error-codes.ts`; the CLI
 * maps codes to exit statuses in `cli/exit-codes.ts`.
 */

export type IpcErrorCode =
  | 'TIMEOUT'
  | 'ABORTED'
  | 'WOULD_BLOCK'
  | 'NO_SUCH_MAILBOX'
  | 'NO_SUCH_PROCESS'
  | 'NO_SUCH_SEGMENT'
  | 'PERMISSION_DENIED'
  | 'MAILBOX_CLOSED'
  | 'MAILBOX_EXISTS'
  | 'MESSAGE_TOO_LARGE'
  | 'WRONG_MESSAGE_SIZE'
  | 'NAME_TAKEN'
  | 'RECEIVER_BUSY'
  | 'KERNEL_FULL'
  | 'PROTOCOL'
  | 'KERNEL_UNAVAILABLE'
  | 'KERNEL_RUNNING'
  | 'DISCONNECTED'
  | 'NOT_SUPPORTED'
  | 'NATIVE_UNAVAILABLE'
  | 'OWNER_DEAD'
  | 'INVALID_ARGUMENT'
  | 'SEGMENT_EXISTS'
  /** The cluster's NATS cannot be reached (or a remote node did not answer in time). */
  | 'CLUSTER_UNAVAILABLE'
  // The other end of a pipe or FIFO is gone (EPIPE): nobody will read what is written.
  | 'BROKEN_PIPE'
  // An OS limit refused the request (queue size, number of queues, open files); the message names
  // the limit and how to raise it.
  | 'OS_LIMIT'
  // No OS object of that name or path (message queue, named semaphore, FIFO, file).
  | 'NO_SUCH_OBJECT';

export class IpcError extends Error {
  readonly code: IpcErrorCode;
  constructor(code: IpcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'IpcError';
  }
}

/** A timed operation ran out of time before it could complete. */
export class TimeoutError extends IpcError {
  constructor(message = 'operation timed out', options?: { cause?: unknown }) {
    super('TIMEOUT', message, options);
    this.name = 'TimeoutError';
  }
}

/** The caller's AbortSignal fired before the operation completed. */
export class AbortError extends IpcError {
  constructor(message = 'operation aborted', options?: { cause?: unknown }) {
    super('ABORTED', message, options);
    this.name = 'AbortError';
  }
}

/** A non-blocking operation could not complete now. */
export class WouldBlockError extends IpcError {
  constructor(message = 'operation would block') {
    super('WOULD_BLOCK', message);
    this.name = 'WouldBlockError';
  }
}

export class NoSuchMailboxError extends IpcError {
  constructor(name: string) {
    super('NO_SUCH_MAILBOX', `no such mailbox: ${name}`);
    this.name = 'NoSuchMailboxError';
  }
}

export class NoSuchProcessError extends IpcError {
  constructor(name: string) {
    super('NO_SUCH_PROCESS', `no such process: ${name}`);
    this.name = 'NoSuchProcessError';
  }
}

export class PermissionDeniedError extends IpcError {
  constructor(message: string) {
    super('PERMISSION_DENIED', message);
    this.name = 'PermissionDeniedError';
  }
}

/** The mailbox was deleted or its owning process exited while the operation was pending. */
export class MailboxClosedError extends IpcError {
  constructor(message: string) {
    super('MAILBOX_CLOSED', message);
    this.name = 'MailboxClosedError';
  }
}

export class MessageTooLargeError extends IpcError {
  constructor(size: number, limit: number) {
    super('MESSAGE_TOO_LARGE', `message of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.name = 'MessageTooLargeError';
  }
}

export class NameTakenError extends IpcError {
  constructor(name: string) {
    super('NAME_TAKEN', `name already taken: ${name}`);
    this.name = 'NameTakenError';
  }
}

/** The kernel's memory budget for queued messages is exhausted. */
export class KernelFullError extends IpcError {
  constructor(message: string) {
    super('KERNEL_FULL', message);
    this.name = 'KernelFullError';
  }
}

/** The peer broke the wire protocol (malformed frame, bad version, oversized frame). */
export class ProtocolError extends IpcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROTOCOL', message, options);
    this.name = 'ProtocolError';
  }
}

/** No kernel answers on the socket (not started, or it went away). */
export class KernelUnavailableError extends IpcError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KERNEL_UNAVAILABLE', message, options);
    this.name = 'KernelUnavailableError';
  }
}

/** Build the right subclass for a code received from the kernel. */
export function errorFromCode(code: IpcErrorCode, message: string): IpcError {
  switch (code) {
    case 'TIMEOUT':
      return new TimeoutError(message);
    case 'WOULD_BLOCK':
      return new WouldBlockError(message);
    case 'PERMISSION_DENIED':
      return new PermissionDeniedError(message);
    case 'MAILBOX_CLOSED':
      return new MailboxClosedError(message);
    case 'PROTOCOL':
      return new ProtocolError(message);
    case 'KERNEL_FULL':
      return new KernelFullError(message);
    default: {
      const e = new IpcError(code, message);
      return e;
    }
  }
}
