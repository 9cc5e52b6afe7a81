import { IpcError } from '../../errors.js';
import { listHostObjects } from '../../unix/host-objects.js';
import { forgetObject, rememberObject } from '../../unix/known-objects.js';
import { NamedSemaphore } from '../../unix/named-semaphore.js';
import { formatHost } from '../object-tables.js';
import { formatMode } from '../option-parsers.js';
import { writeJsonLine, writeOut } from '../output.js';
import { forEachName, type GlobalOptions, registryOf } from './common.js';

/** Named POSIX semaphores from the shell (`ipcbox sem ...`), over NamedSemaphore; no kernel needed. */

export async function listSemaphores(g: GlobalOptions, o: { json?: boolean }): Promise<void> {
  const host = listHostObjects(registryOf(g));
  const semaphores = host.objects.filter((x) => x.kind === 'semaphore');
  const notes = host.notes.filter((n) => n.kinds.includes('semaphore'));
  if (o.json) await writeOut(`${JSON.stringify({ semaphores, notes }, null, 2)}\n`);
  else await writeOut(formatHost({ objects: semaphores, notes }, ['semaphore']));
}

/** Create a semaphore (an existing name is NAME_TAKEN) with exactly `mode`, and record it. */
export async function createSemaphore(
  g: GlobalOptions,
  name: string,
  o: { value?: number; mode?: number; json?: boolean },
): Promise<void> {
  const mode = o.mode ?? 0o600;
  const s = NamedSemaphore.open(name, { create: true, exclusive: true, initial: o.value ?? 0, mode });
  const value = s.value();
  s.close();
  rememberObject('semaphore', s.name, registryOf(g));
  if (o.json) await writeJsonLine({ created: s.name, kind: 'semaphore', value, mode: formatMode(mode) });
  else await writeOut(`created semaphore ${s.name} (value ${value}, mode ${formatMode(mode)})\n`);
}

/** Post N permits (default 1). Silent; --json prints the value after. */
export async function postSemaphore(name: string, n: number, o: { json?: boolean }): Promise<void> {
  const s = NamedSemaphore.open(name);
  try {
    s.post(n);
    if (o.json) await writeJsonLine({ semaphore: s.name, posted: n, value: s.value() });
  } finally {
    s.close();
  }
}

/** Take one permit: wait (forever, --timeout MS: exit 3), or with --nonblock fail at once (exit 4). */
export async function waitSemaphore(
  name: string,
  o: { timeout?: number; nonblock?: boolean; json?: boolean },
): Promise<void> {
  const s = NamedSemaphore.open(name);
  try {
    if (o.nonblock) {
      if (!s.tryWait()) throw new IpcError('WOULD_BLOCK', `semaphore ${s.name} is 0: no permit to take now`);
    } else await s.wait(o.timeout === undefined ? {} : { timeout: o.timeout });
    if (o.json) await writeJsonLine({ semaphore: s.name, taken: 1 });
  } finally {
    s.close();
  }
}

/** Remove semaphores and forget them; each is tried, status of the first failure. */
export function removeSemaphores(g: GlobalOptions, names: string[], o: { json?: boolean }): Promise<number> {
  return forEachName(names, o.json === true, 'sem rm', async (name) => {
    try {
      NamedSemaphore.unlink(name);
    } catch (e) {
      if (e instanceof IpcError && e.code === 'NO_SUCH_OBJECT')
        forgetObject('semaphore', name, registryOf(g));
      throw e;
    }
    forgetObject('semaphore', name, registryOf(g));
    const posix = name.startsWith('/') ? name : `/${name}`;
    if (o.json) await writeJsonLine({ removed: posix });
    else await writeOut(`removed semaphore ${posix}\n`);
  });
}
