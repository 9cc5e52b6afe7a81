import type { ProcessInfo } from '../../wire/info-types.js';
import { writeJsonLine } from '../output.js';
import { connectFromCli, type GlobalOptions } from './common.js';

/**
 * Wait until a process of each name is connected (all of them, waited for
 * together), so a script can start a service and go on once it is there.
 * Silent on success; with --json one {name, pid, osPid, ...} line per name.
 * --timeout bounds each wait (TIMEOUT, exit 3); a kernel-assigned name
 * (proc-<n>) that is not connected is NO_SUCH_PROCESS at once (exit 5).
 */
export async function waitForProcesses(
  g: GlobalOptions,
  names: string[],
  o: { timeout?: number; json?: boolean },
): Promise<void> {
  const p = await connectFromCli(g);
  try {
    const options = o.timeout === undefined ? {} : { timeout: o.timeout };
    const found: ProcessInfo[] = await Promise.all(names.map((n) => p.waitForProcess(n, options)));
    if (o.json) for (const info of found) await writeJsonLine(info);
  } finally {
    await p.close();
  }
}
