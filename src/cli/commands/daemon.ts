import { startKernel } from '../../kernel/kernel.js';

export interface DaemonOptions {
  socket?: string;
  maxMessageSize?: number;
  memoryBudget?: number;
  group?: string;
  revokeTimeout?: number;
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
    process.stdout.write(`ipcbox kernel listening on ${sock} (pid ${process.pid})\n`);
    process.stdout.write(`try: IPCBOX_SOCKET=${sock} ipcbox status\n`);
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  process.stdout.write(`ipcbox kernel stopping (${stopSignal})\n`);
  await kernel.close();
}
