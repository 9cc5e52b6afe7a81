/**
 * ipcbox through the kernel daemon.
 * - `ipcbox-direct`: each peer is a process named `<id>-p<i>`; `send(name, bytes)` to the
 *   receiver, received with `messages({prefetch})`. On one host that goes over a one-hop link
 *   (a Unix socket between the two, the kernel only brokers it); the receiver's inbox is left
 *   unbounded, as a link needs (the link's own backpressure bounds memory).
 * - `ipcbox-direct-kernel`: the same with `links: false`: every message through the kernel, to a
 *   bounded inbox (capacity as for a mailbox).
 * - `ipcbox-mailbox`: each receiver creates a bounded mailbox `<id>-mb<i>`
 *   (capacity 1024, at most 64 MiB of messages); fan-out with `broadcast` uses one broadcast mailbox
 *   created by the sender that every receiver attaches to.
 * - `ipcbox-cluster-*`: the same across two kernels of one cluster (over the run's nats-server):
 *   peers of even index on the first kernel, odd on the second, so every one-way and round-trip
 *   message, and every hop of a ring, crosses nodes. A peer waits for its targets' names to reach
 *   its kernel (waitForProcess) before it says CONNECTED.
 */
import { connect, type IpcProcess, type Mailbox, type Message } from '../../../src/index.js';
import type { CellSpec, PeerSpec } from '../common.js';
import { payloadOf, readEvery } from '../common.js';
import type { Link } from '../roles.js';

/**
 * Messages a mailbox holds: 1024, but never more than 64 MiB of them, so a fast sender of large
 * messages meets the mailbox's capacity (it blocks) long before the kernel's 256 MiB budget (which
 * would fail its sends with KERNEL_FULL).
 */
const capacityFor = (size: number): number =>
  Math.max(8, Math.min(1024, Math.floor((64 << 20) / Math.max(1, size))));
const PREFETCH = 512;

export async function ipcboxLink(
  cell: CellSpec,
  me: PeerSpec,
  useMailbox: boolean,
  acrossNodes = false,
  links = true,
): Promise<Link> {
  const procName = (i: number): string => `${cell.id}-p${i}`;
  const mbName = (i: number): string => `${cell.id}-mb${i}`;
  const fanName = `${cell.id}-fan`;
  const socketPath = acrossNodes ? cell.clusterSockets![me.index % 2]! : cell.kernelSocket!;
  // Through the kernel, a direct receiver's inbox is bounded like a mailbox: unbounded, a fast sender
  // of large messages would fill the kernel's budget (KERNEL_FULL) instead of waiting.
  const oneHop = links && !acrossNodes && !useMailbox;
  const proc: IpcProcess = await connect({
    name: procName(me.index),
    socketPath,
    links,
    ...(oneHop ? {} : { inboxCapacity: capacityFor(cell.size) }),
  });
  const out = new Map<number, Mailbox>();
  let fan: Mailbox | undefined;
  let onMessage: (length: number) => void = () => {};
  const consume = async (it: AsyncIterableIterator<Message>): Promise<void> => {
    try {
      for await (const m of it) {
        // Read in place, then hand a mapped payload back at once (a copied one: a no-op).
        readEvery(m.bytes);
        onMessage(m.bytes.length);
        m.release();
      }
    } catch {
      // mailbox closed at the end of the cell
    }
  };
  const broadcastReceiver = useMailbox && cell.broadcast && me.role === 'recv' && cell.scenario === 'fan-out';
  const broadcastSender = useMailbox && cell.broadcast && me.role === 'send' && cell.scenario === 'fan-out';
  return {
    async listen(cb) {
      onMessage = cb;
      if (broadcastSender) {
        fan = await proc.createMailbox(fanName, { capacity: capacityFor(cell.size), delivery: 'broadcast' });
        return;
      }
      if (me.sources.length === 0 || broadcastReceiver) return;
      if (useMailbox) {
        const mb = await proc.createMailbox(mbName(me.index), { capacity: capacityFor(cell.size) });
        void consume(mb.messages({ prefetch: PREFETCH }));
      } else {
        void consume(proc.messages({ prefetch: PREFETCH }));
      }
    },
    async connect() {
      if (broadcastReceiver) {
        const mb = await proc.openMailbox(fanName);
        void consume(mb.messages({ prefetch: PREFETCH }));
        await mb.stat(); // a round trip: the kernel has attached us before we say CONNECTED
        return;
      }
      if (useMailbox && !broadcastSender) {
        for (const t of me.targets) out.set(t, await proc.openMailbox(mbName(t)));
      }
      if (acrossNodes && !useMailbox)
        for (const t of me.targets) await proc.waitForProcess(procName(t), { timeout: 10_000 });
    },
    prepare: (size) => payloadOf(size),
    send(target, payload) {
      if (useMailbox) return out.get(target)!.send(payload);
      return proc.send(procName(target), payload);
    },
    publish: broadcastSender ? (payload) => fan!.send(payload) : undefined,
    async close() {
      await proc.close();
    },
  };
}
