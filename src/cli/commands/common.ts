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

export function parseIntOption(label: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > max)
      throw new TypeError(`${label} must be an integer from 0 to ${max}`);
    return n;
  };
}

/** Turn CLI text into a value: JSON when it parses as JSON, else the string itself. */
export function parseLoose(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
