import { connect, type IpcProcess } from '../../client/process.js';

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
