import { IpcError } from '../../errors.js';
import { listHostObjects } from '../../unix/host-objects.js';
import type { KernelStatus } from '../../wire/info-types.js';
import { formatHost } from '../object-tables.js';
import { writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions, registryOf } from './common.js';
import { formatStatus } from './status.js';

/** The kernel's status without this command's own connection, or the reason there is none. */
async function kernelStatus(g: GlobalOptions): Promise<{ status: KernelStatus; self: string } | string> {
  let p: Awaited<ReturnType<typeof connectFromCli>>;
  try {
    p = await connectFromCli(g);
  } catch (e) {
    if (e instanceof IpcError && e.code === 'KERNEL_UNAVAILABLE') return e.message;
    throw e;
  }
  try {
    const status = await p.status();
    status.processes = status.processes.filter((x) => x.name !== p.name);
    return { status, self: p.name };
  } finally {
    await p.close();
  }
}

/**
 * Every IPC object ipcbox can see on this host: the kernel's processes,
 * mailboxes and segments (when a kernel runs; otherwise one line says it does
 * not, and the rest is still listed), then the host's shared memory, message
 * queues, named semaphores, and the FIFOs and mapped files ipcbox knows of
 * or that `paths` names. JSON: the `status --json` document, with
 * `"kernel": null` and no processes, mailboxes or segments without a kernel.
 */
export async function list(g: GlobalOptions, paths: string[], o: { json?: boolean }): Promise<void> {
  const host = listHostObjects({ ...registryOf(g), paths });
  const k = await kernelStatus(g);
  if (o.json) {
    const doc = typeof k === 'string' ? { kernel: null, host } : { ...k.status, host };
    await writeOut(`${JSON.stringify(doc, null, 2)}\n`);
    return;
  }
  const head =
    typeof k === 'string'
      ? `kernel not running (${k}): no processes, mailboxes or registered segments to list\n`
      : formatStatus(k.status, k.self);
  await writeOut(head + formatHost(host));
}
