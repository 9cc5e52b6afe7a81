import { writeJsonLine } from '../output.js';
import { connectFromCli, type GlobalOptions, parseLoose } from './common.js';

/**
 * Send an asynchronous notice TYPE (with optional PAYLOAD, JSON if it parses)
 * to process NAME. Silent on success; with --json one line {to, type, payload}.
 */
export async function signal(
  g: GlobalOptions,
  name: string,
  type: string,
  payload: string | undefined,
  o: { json?: boolean },
): Promise<void> {
  const p = await connectFromCli(g);
  try {
    const value = payload === undefined ? null : parseLoose(payload);
    const to = name.startsWith('@') ? name.slice(1) : name;
    await p.signal(to, type, value);
    if (o.json) await writeJsonLine({ to, type, payload: value });
  } finally {
    await p.close();
  }
}
