import { connectFromCli, type GlobalOptions, parseLoose } from './common.js';

/** Send an asynchronous notice TYPE (with optional PAYLOAD, JSON if it parses) to process NAME. */
export async function signal(
  g: GlobalOptions,
  name: string,
  type: string,
  payload: string | undefined,
): Promise<void> {
  const p = await connectFromCli(g);
  try {
    await p.signal(name, type, payload === undefined ? null : parseLoose(payload));
  } finally {
    await p.close();
  }
}
