import { resolve } from 'node:path';
import { IpcError } from '../../errors.js';
import { mkfifo, removeFifo } from '../../unix/fifo.js';
import { forgetObject, rememberObject } from '../../unix/known-objects.js';
import { formatMode } from '../option-parsers.js';
import { writeJsonLine, writeOut } from '../output.js';
import { forEachName, type GlobalOptions, registryOf } from './common.js';

/**
 * Create FIFOs with exactly `mode` (default 0600; the umask does not apply)
 * and record them in the registry of known objects, so `ipcbox ls` lists
 * them: the OS keeps no list of FIFOs. Several paths: like mkdir, each is
 * tried and the status is that of the first failure.
 */
export function createFifos(
  g: GlobalOptions,
  paths: string[],
  o: { mode?: number; json?: boolean },
): Promise<number> {
  const mode = o.mode ?? 0o600;
  return forEachName(paths, o.json === true, 'fifo create', async (p) => {
    const path = resolve(p);
    mkfifo(path, mode);
    rememberObject('fifo', path, registryOf(g));
    if (o.json) await writeJsonLine({ created: path, kind: 'fifo', mode: formatMode(mode) });
    else await writeOut(`created FIFO ${path} (mode ${formatMode(mode)})\n`);
  });
}

/** Remove FIFOs (open ends keep working) and forget them; each is tried, status of the first failure. */
export function removeFifos(g: GlobalOptions, paths: string[], o: { json?: boolean }): Promise<number> {
  return forEachName(paths, o.json === true, 'fifo rm', async (p) => {
    const path = resolve(p);
    try {
      removeFifo(path);
    } catch (e) {
      // A FIFO removed by other means leaves its entry behind: drop it with the error.
      if (e instanceof IpcError && e.code === 'NO_SUCH_OBJECT') forgetObject('fifo', path, registryOf(g));
      throw e;
    }
    forgetObject('fifo', path, registryOf(g));
    if (o.json) await writeJsonLine({ removed: path });
    else await writeOut(`removed FIFO ${path}\n`);
  });
}
