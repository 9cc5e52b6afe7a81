/**
 * One peer process of a comparison cell, for the transports where every
 * peer is its own OS process started by the runner (ipcbox, shared-memory
 * ring, raw socket, POSIX message queue, FIFO, zeromq, node-ipc, NATS, Redis). Control on stdin/stdout
 * (see roles.ts).
 * Usage: node dist/bench/compare/peer.js <peer-index> <cell-json>
 */
import type { CellSpec } from './common.js';
import { type LinkFactory, runPeer, stdioControl } from './roles.js';

export const LINKS: Record<string, LinkFactory> = {
  'ipcbox-direct': async (c, m) => (await import('./transports/ipcbox.js')).ipcboxLink(c, m, false),
  'ipcbox-direct-kernel': async (c, m) =>
    (await import('./transports/ipcbox.js')).ipcboxLink(c, m, false, false, false),
  'ipcbox-mailbox': async (c, m) => (await import('./transports/ipcbox.js')).ipcboxLink(c, m, true),
  'ipcbox-cluster-direct': async (c, m) =>
    (await import('./transports/ipcbox.js')).ipcboxLink(c, m, false, true),
  'ipcbox-cluster-mailbox': async (c, m) =>
    (await import('./transports/ipcbox.js')).ipcboxLink(c, m, true, true),
  'ipcbox-shm-ring': async (c, m) => (await import('./transports/shm-ring.js')).shmRingLink(c, m),
  'ipcbox-shm-mailbox': async (c, m) => (await import('./transports/shm-mailbox.js')).shmMailboxLink(c, m),
  'net-socket': async (c, m) => (await import('./transports/net-socket.js')).netLink(c, m),
  'posix-mq': async (c, m) => (await import('./transports/posix-mq.js')).posixMqLink(c, m),
  fifo: async (c, m) => (await import('./transports/fifo.js')).fifoLink(c, m),
  zeromq: async (c, m) => (await import('./transports/zeromq.js')).zeromqLink(c, m),
  'node-ipc': async (c, m) => (await import('./transports/node-ipc.js')).nodeIpcLink(c, m),
  nats: async (c, m) => (await import('./transports/nats.js')).natsLink(c, m),
  'nats-request': async (c, m) => (await import('./transports/nats.js')).natsLink(c, m, true),
  redis: async (c, m) => (await import('./transports/redis.js')).redisLink(c, m),
};

const ctl = stdioControl();
try {
  const index = Number(process.argv[2]);
  const cell = JSON.parse(process.argv[3]!) as CellSpec;
  const factory = LINKS[cell.transport];
  if (factory === undefined) throw new Error(`no such transport ${cell.transport}`);
  await runPeer(cell, cell.peers[index]!, factory, ctl);
  process.exit(0);
} catch (e) {
  ctl.send(`ERROR ${String((e as Error).stack ?? e).replace(/\n/g, ' | ')}`);
  process.exit(1);
}
