import { IpcError } from '../errors.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { style, writeErr } from './output.js';

/**
 * How a failed command is reported: one line on stderr,
 *   ipcbox: <what is wrong> [CODE]
 * and for a usage error (exit 2) the hint `Try 'ipcbox <cmd> --help'`.
 * With --json the report is one JSON object on stderr instead (stdout stays
 * the command's data, so `recv --follow --json | jq` never sees an error):
 *   {"error":{"code":"NO_SUCH_MAILBOX","message":"no such mailbox: x","exitCode":5}}
 * where code is an IpcError code, USAGE for a usage error or ERROR for
 * anything else. The exit status is the same either way.
 */

/** The command line is wrong: exit 2. `command` names the command whose --help the hint points to. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Failure {
  code: string;
  message: string;
  exitCode: number;
}

export function describeFailure(e: unknown): Failure {
  if (e instanceof UsageError) return { code: 'USAGE', message: e.message, exitCode: ExitCode.USAGE };
  if (e instanceof IpcError) return { code: e.code, message: e.message, exitCode: exitCodeFor(e.code) };
  // The library validates options at its boundary with TypeError/RangeError naming the option.
  if (e instanceof TypeError || e instanceof RangeError)
    return { code: 'USAGE', message: e.message, exitCode: ExitCode.USAGE };
  const err = e as Error;
  // Unexpected: keep the stack, it is the only clue.
  return { code: 'ERROR', message: err?.stack ?? String(e), exitCode: ExitCode.ERROR };
}

/** Print the failure (text or JSON) on stderr; returns the exit status. */
export function reportFailure(e: unknown, json: boolean, command: string | undefined): number {
  const f = describeFailure(e);
  const helpFor = e instanceof UsageError && e.command !== undefined ? e.command : command;
  const hint = `Try '${helpFor === undefined ? 'ipcbox' : `ipcbox ${helpFor}`} --help'`;
  if (json) {
    const error: Record<string, unknown> = { ...f };
    if (f.exitCode === ExitCode.USAGE) error.hint = hint;
    writeErr(`${JSON.stringify({ error })}\n`);
  } else {
    const code = e instanceof IpcError ? ` [${e.code}]` : '';
    writeErr(`${style.errorPrefix('ipcbox:')} ${f.message}${code}\n`);
    if (f.exitCode === ExitCode.USAGE) writeErr(`${hint}\n`);
  }
  return f.exitCode;
}
