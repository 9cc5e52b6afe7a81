import { IpcError } from '../../errors.js';
import { Segment } from '../../shm/segment.js';
import { connectFromCli, type GlobalOptions } from './common.js';

/**
 * Remove a shared-memory segment (like ipcrm -m): a segment registered with
 * the kernel is removed through it (attached processes are told); an
 * unregistered POSIX segment of that name (made by Python or C, say) is
 * unlinked directly. Neither: NO_SUCH_SEGMENT (exit 5).
 */
export async function removeSegment(g: GlobalOptions, name: string): Promise<void> {
  const p = await connectFromCli(g);
  try {
    try {
      await p.removeSegment(name, { force: true });
    } catch (e) {
      if (!(e instanceof IpcError) || e.code !== 'NO_SUCH_SEGMENT') throw e;
      Segment.unlink(name);
    }
    process.stdout.write(`removed segment ${name}\n`);
  } finally {
    await p.close();
  }
}

export async function listSegments(g: GlobalOptions, o: { json?: boolean }): Promise<void> {
  const p = await connectFromCli(g);
  try {
    const list = await p.listSegments();
    if (o.json) {
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    if (list.length === 0) process.stdout.write('(no segments)\n');
    for (const s of list) {
      const who = s.attached.map((a) => `${a.process}:${a.role}`).join(',') || '-';
      process.stdout.write(
        `${s.name}  ${s.size} bytes  ${s.kind}  ${s.ownership}  owner ${s.owner}  attached ${who}\n`,
      );
    }
  } finally {
    await p.close();
  }
}
