/**
 * node-ipc 9.2.1 (pinned: 10.1.1-10.1.3 carry protestware) over Unix sockets.
 * Its messages are JSON events (`{type, data}` + '\f'), so the payload is a
 * string of `size` ASCII characters (a Buffer would travel as a JSON array
 * of numbers). Each receiving peer serves on its own socket; senders
 * `connectTo` it and `emit`. Fan-out with `broadcast`: the sender serves and
 * `server.broadcast`s; receivers connect to it. No backpressure (writes go
 * straight to the socket); the bounded message counts bound memory.
 */
import { join } from 'node:path';
import type { CellSpec, PeerSpec } from '../common.js';
import type { Link } from '../roles.js';

// biome-ignore lint/suspicious/noExplicitAny: optional dependency loaded at run time, typed loosely
type Any = any;

export async function nodeIpcLink(cell: CellSpec, me: PeerSpec): Promise<Link> {
  const name = 'node-ipc';
  const mod: Any = await import(name);
  const ipc: Any = new (mod.default ?? mod).IPC();
  ipc.config.silent = true;
  ipc.config.id = `p${me.index}`;
  ipc.config.retry = 100;
  ipc.config.maxRetries = 50;
  ipc.config.maxConnections = 64;
  const path = (i: number): string => join(cell.dir, `nipc-p${i}.sock`);
  const fanOut = cell.broadcast && cell.scenario === 'fan-out';
  let onMessage: (length: number) => void = () => {};
  let serving = false;
  const connectTo = (i: number): Promise<Any> =>
    new Promise((resolve) => {
      ipc.connectTo(`p${i}`, path(i), () => {
        const c = ipc.of[`p${i}`];
        c.on('connect', () => resolve(c));
      });
    });
  const serve = (): Promise<void> =>
    new Promise((resolve) => {
      serving = true;
      ipc.serve(path(me.index), () => {
        ipc.server.on('m', (data: string) => onMessage(data.length));
        resolve();
      });
      ipc.server.start();
    });
  const out = new Map<number, Any>();
  return {
    async listen(cb) {
      onMessage = cb;
      if (fanOut && me.role === 'send') await serve();
      else if (me.sources.length > 0 && !(fanOut && me.role === 'recv')) await serve();
    },
    async connect() {
      if (fanOut && me.role === 'recv') {
        const c = await connectTo(me.sources[0]!);
        c.on('m', (data: string) => onMessage(data.length));
        return;
      }
      if (fanOut) {
        // wait until every receiver has connected to us
        const want = me.targets.length;
        const deadline = Date.now() + 10_000;
        while ((ipc.server.sockets?.length ?? 0) < want && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        return;
      }
      for (const t of me.targets) out.set(t, await connectTo(t));
    },
    prepare: (size) => 'abcdefghijklmnopqrstuvwxyz'.repeat(Math.ceil(size / 26)).slice(0, size),
    send(target, payload) {
      out.get(target)!.emit('m', payload);
      return undefined;
    },
    publish:
      fanOut && me.role === 'send'
        ? (payload) => {
            ipc.server.broadcast('m', payload);
            return undefined;
          }
        : undefined,
    async close() {
      for (const t of out.keys()) ipc.disconnect(`p${t}`);
      if (fanOut && me.role === 'recv') ipc.disconnect(`p${me.sources[0]}`);
      if (serving) ipc.server.stop();
    },
  };
}
