import { startKernel } from '../../kernel/kernel.js';

export interface DaemonOptions {
  socket?: string;
  maxMessageSize?: number;
  memoryBudget?: number;
  group?: string;
  revokeTimeout?: number;
  json?: boolean;
}

/**
 * What the daemon says about itself. It keeps running if nobody reads it: an
 * EPIPE on stdout is ignored (output.ts), never a reason to stop the kernel.
 */
function announce(json: boolean, text: string, event: Record<string, unknown>): void {
  process.stdout.write(json ? `${JSON.stringify(event)}\n` : text);
}

/** Run the kernel in the foreground until SIGINT/SIGTERM; the socket file is removed on the way out. */
export async function daemon(o: DaemonOptions): Promise<void> {
  const options: Parameters<typeof startKernel>[0] = {};
  if (o.socket !== undefined) options.socketPath = o.socket;
  if (o.maxMessageSize !== undefined) options.maxMessageSize = o.maxMessageSize;
  if (o.memoryBudget !== undefined) options.memoryBudget = o.memoryBudget;
  if (o.group !== undefined) options.group = o.group;
  if (o.revokeTimeout !== undefined) options.revokeTimeout = o.revokeTimeout;
  // Handlers first: a signal that arrives while the kernel starts must still stop it cleanly.
  let stopSignal: NodeJS.Signals | undefined;
  let wake: () => void = () => {};
  const stop = (sig: NodeJS.Signals) => {
    stopSignal = sig;
    wake();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const kernel = await startKernel(options);
  const sock = kernel.socketPath;
  if (stopSignal === undefined) {
    announce(
      o.json === true,
      `ipcbox kernel listening on ${sock} (pid ${process.pid})\ntry: IPCBOX_SOCKET=${sock} ipcbox status\n`,
      { event: 'listening', socket: sock, pid: process.pid },
    );
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  announce(o.json === true, `ipcbox kernel stopping (${stopSignal})\n`, {
    event: 'stopping',
    signal: stopSignal,
  });
  await kernel.close();
}
