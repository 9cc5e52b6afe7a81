import type { IpcErrorCode } from '../errors.js';

/** The CLI's exit statuses (documented in --help, docs/cli.md and the README). */
export const ExitCode = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  TIMEOUT: 3,
  WOULD_BLOCK: 4,
  NOT_FOUND: 5,
  PERMISSION: 6,
  NO_KERNEL: 7,
  TOO_LARGE: 8,
  OS_LIMIT: 9,
} as const;

const BY_CODE: Partial<Record<IpcErrorCode, number>> = {
  TIMEOUT: ExitCode.TIMEOUT,
  WOULD_BLOCK: ExitCode.WOULD_BLOCK,
  NO_SUCH_MAILBOX: ExitCode.NOT_FOUND,
  NO_SUCH_PROCESS: ExitCode.NOT_FOUND,
  NO_SUCH_SEGMENT: ExitCode.NOT_FOUND,
  NO_SUCH_OBJECT: ExitCode.NOT_FOUND,
  PERMISSION_DENIED: ExitCode.PERMISSION,
  KERNEL_UNAVAILABLE: ExitCode.NO_KERNEL,
  INVALID_ARGUMENT: ExitCode.USAGE,
  MESSAGE_TOO_LARGE: ExitCode.TOO_LARGE,
  WRONG_MESSAGE_SIZE: ExitCode.TOO_LARGE,
  // A script can act on a limit (ask for less, or have root raise it): worth its own status.
  OS_LIMIT: ExitCode.OS_LIMIT,
  // BROKEN_PIPE (the reader of a FIFO is gone) stays 1, like MAILBOX_CLOSED: the other side went away.
};

export function exitCodeFor(code: IpcErrorCode): number {
  return BY_CODE[code] ?? ExitCode.ERROR;
}

export const EXIT_CODES_HELP = `Exit status:
  0  success (also when stdout is closed early, as by 'ipcbox status | head -1')
  1  other error
  2  usage error
  3  timed out
  4  would block (non-blocking and not possible now)
  5  no such mailbox, process, segment or OS object (queue, semaphore, FIFO)
  6  permission denied
  7  kernel not running
  8  message too large, or not the size a fixed-size mailbox takes
  9  an OS limit refused it (the message names the limit and how to raise it)`;
