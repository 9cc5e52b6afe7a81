import { connect, type IpcProcess } from '../../client/process.js';
import { knownObjectsDirectory } from '../../unix/known-objects.js';
import { defaultSocketPath } from '../../wire/socket-path.js';
import { reportFailure } from '../failure.js';
import { StdoutClosedError } from '../output.js';

/** Options every command that talks to the kernel accepts. */
export interface GlobalOptions {
  socket?: string;
  name?: string;
}

export function connectFromCli(g: GlobalOptions, name?: string): Promise<IpcProcess> {
  const o: Parameters<typeof connect>[0] = {};
  if (g.socket !== undefined) o.socketPath = g.socket;
  const n = name ?? g.name;
  if (n !== undefined) o.name = n;
  return connect(o);
}

/** The registry of known host objects that goes with the kernel socket these options name. */
export function registryOf(g: GlobalOptions): { directory: string } {
  return { directory: knownObjectsDirectory(g.socket ?? defaultSocketPath()) };
}

/**
 * Run `each` for every name, like rm: each failure is reported on stderr as
 * it happens, the others still run, and the status is that of the first
 * failure (0 if none).
 */
export async function forEachName(
  names: readonly string[],
  json: boolean,
  command: string,
  each: (name: string) => Promise<void>,
): Promise<number> {
  let status = 0;
  for (const name of names) {
    try {
      await each(name);
    } catch (e) {
      if (e instanceof StdoutClosedError) throw e;
      const code = reportFailure(e, json, command);
      if (status === 0) status = code;
    }
  }
  return status;
}

/** Turn CLI text into a value: JSON when it parses as JSON, else the string itself. */
export function parseLoose(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * An AbortSignal that fires on SIGINT or SIGTERM, for commands that run until
 * interrupted (--follow): they end their wait cleanly instead of dying with
 * work half done. Call the returned `done` to restore the default handling.
 */
export function untilInterrupted(): { signal: AbortSignal; done: () => void } {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: ac.signal,
    done: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}
