/**
 * The errno boundary of src/unix/: an addon or `fs` errno error becomes an
 * IpcError with a stable code and the original error as `cause`.
 *
 * Common mapping (each facility adds its own cases first, e.g. the message
 * queue limits): ENOENT → NO_SUCH_OBJECT, EACCES/EPERM → PERMISSION_DENIED,
 * EEXIST → NAME_TAKEN, EPIPE → BROKEN_PIPE, EMFILE/ENFILE → OS_LIMIT (open
 * files), ENOSYS → NOT_SUPPORTED, EINVAL/EISDIR/ENAMETOOLONG → INVALID_ARGUMENT.
 * Anything else is returned unchanged (a Node errno error), as Segment does.
 */
import { IpcError } from '../errors.js';

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}

/** The IpcError for a failed call on `what` (e.g. "message queue /jobs"), or `err` itself. */
export function fromErrno(err: unknown, what: string): unknown {
  const cause = { cause: err };
  switch (errnoCode(err)) {
    case 'ENOENT':
      return new IpcError('NO_SUCH_OBJECT', `no such ${what}`, cause);
    case 'EACCES':
    case 'EPERM':
      return new IpcError('PERMISSION_DENIED', `permission denied for ${what}`, cause);
    case 'EEXIST':
      return new IpcError('NAME_TAKEN', `${what} already exists`, cause);
    case 'EPIPE':
      return new IpcError('BROKEN_PIPE', `${what}: the reading end is closed (EPIPE)`, cause);
    case 'EMFILE':
      return new IpcError(
        'OS_LIMIT',
        `${what}: this process has too many open files (RLIMIT_NOFILE; raise it with "ulimit -n")`,
        cause,
      );
    case 'ENFILE':
      return new IpcError(
        'OS_LIMIT',
        `${what}: the system has too many open files (fs.file-max; raise it with "sysctl fs.file-max=N")`,
        cause,
      );
    case 'ENOSYS':
      return new IpcError('NOT_SUPPORTED', `${what}: not supported on this system`, cause);
    case 'EINVAL':
      return new IpcError('INVALID_ARGUMENT', `invalid argument for ${what}`, cause);
    case 'EISDIR':
      return new IpcError('INVALID_ARGUMENT', `${what}: is a directory`, cause);
    case 'ENAMETOOLONG':
      return new IpcError('INVALID_ARGUMENT', `name too long: ${what}`, cause);
    default:
      return err;
  }
}

/** Validates a permission-bits option. */
export function checkMode(mode: unknown, fallback: number): number {
  const m = mode ?? fallback;
  if (typeof m !== 'number' || !Number.isInteger(m) || m < 0 || m > 0o777) {
    throw new IpcError('INVALID_ARGUMENT', `mode must be permission bits (0..0o777), got ${String(m)}`);
  }
  return m;
}
