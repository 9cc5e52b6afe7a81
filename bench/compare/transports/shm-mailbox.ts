/**
 * ipcbox shared-memory mailbox (src/backends/shm/, in progress when this was
 * written, hence loaded at run time and typed loosely so the build never
 * depends on its current API): each receiver creates a mailbox
 * `<id>-smb<i>` (a kernel-registered segment; data never passes through the
 * kernel), senders open it with role 'send'. The mailbox uses the default
 * message store ('priority': the whole contract; bench/shm measures the
 * 'ring' store next to it). Fan-out sends to each receiver's mailbox, like
 * the other transports, rather than using broadcast delivery.
 */
import { connect } from '../../../src/index.js';
import type { CellSpec, PeerSpec } from '../common.js';
import { payloadOf } from '../common.js';
import type { Link } from '../roles.js';

// biome-ignore lint/suspicious/noExplicitAny: in-progress module loaded at run time, typed loosely
type Any = any;

export const SHM_MAILBOX_MODULE = new URL('../../../src/backends/shm/shm-mailbox.js', import.meta.url).href;
const CAPACITY = 1024;

export async function shmMailboxLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const mod: Any = await import(SHM_MAILBOX_MODULE);
  const ShmMailbox: Any = mod.ShmMailbox;
  const name = (i: number): string => `${cell.id}-smb${i}`;
  const proc = await connect({ name: `${cell.id}-p${me.index}`, socketPath: cell.kernelSocket! });
  const out = new Map<number, Any>();
  const abort = new AbortController();
  let own: Any;
  return {
    async listen(onMessage) {
      if (me.sources.length === 0) return;
      own = await ShmMailbox.create(proc, name(me.index), {
        capacity: CAPACITY,
        maxMessageSize: Math.max(cell.size, 1024 * 1024),
      });
      void (async () => {
        try {
          for await (const m of own.messages({ signal: abort.signal })) {
            onMessage(m.bytes.length);
            if (m.mapped) m.release();
          }
        } catch {
          // closed at the end of the cell
        }
      })();
    },
    async connect() {
      for (const t of me.targets) out.set(t, await ShmMailbox.open(proc, name(t), 'send'));
    },
    prepare: (size) => payloadOf(size),
    send: (target, payload) => out.get(target)!.send(payload),
    async close() {
      abort.abort();
      for (const mb of out.values()) await mb.close().catch(() => {});
      await own?.close().catch(() => {});
      await proc.close();
    },
  };
}
