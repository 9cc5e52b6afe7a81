import { IpcError } from '../../errors.js';
import { Segment } from '../../shm/segment.js';
import { reportFailure } from '../failure.js';
import { writeJsonLine, writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions } from './common.js';

/**
 * Remove shared-memory segments (like ipcrm -m): a segment registered with
 * the kernel is removed through it (attached processes are told); an
 * unregistered POSIX segment of that name (made by Python or C, say) is
 * unlinked directly. Neither: NO_SUCH_SEGMENT (exit 5). Every name is tried;
 * each failure is reported and the exit status is that of the first failure.
 */
export async function removeSegments(
  g: GlobalOptions,
  names: string[],
  o: { json?: boolean },
): Promise<number> {
  const p = await connectFromCli(g);
  let status = 0;
  try {
    for (const name of names) {
      try {
        try {
          await p.removeSegment(name, { force: true });
        } catch (e) {
          if (!(e instanceof IpcError) || e.code !== 'NO_SUCH_SEGMENT') throw e;
          Segment.unlink(name);
        }
      } catch (e) {
        const code = reportFailure(e, o.json === true, 'shm rm');
        if (status === 0) status = code;
        continue;
      }
      if (o.json) await writeJsonLine({ removed: name });
      else await writeOut(`removed segment ${name}\n`);
    }
  } finally {
    await p.close();
  }
  return status;
}

export async function listSegments(g: GlobalOptions, o: { json?: boolean }): Promise<void> {
  const p = await connectFromCli(g);
  try {
    const list = await p.listSegments();
    if (o.json) {
      await writeOut(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    const lines = list.map((s) => {
      const who = s.attached.map((a) => `${a.process}:${a.role}`).join(',') || '-';
      return `${s.name}  ${s.size} bytes  ${s.kind}  ${s.ownership}  owner ${s.owner}  attached ${who}\n`;
    });
    await writeOut(list.length === 0 ? '(no segments)\n' : lines.join(''));
  } finally {
    await p.close();
  }
}
