import { startKernel } from '../../kernel/kernel.js';

export interface DaemonOptions {
  socket?: string;
  maxMessageSize?: number;
  memoryBudget?: number;
}

/** Run the kernel in the foreground until SIGINT/SIGTERM; the socket file is removed on the way out. */
export async function daemon(o: DaemonOptions): Promise<void> {
  const options: Parameters<typeof startKernel>[0] = {};
  if (o.socket !== undefined) options.socketPath = o.socket;
  if (o.maxMessageSize !== undefined) options.maxMessageSize = o.maxMessageSize;
  if (o.memoryBudget !== undefined) options.memoryBudget = o.memoryBudget;
  const kernel = await startKernel(options);
  const sock = kernel.socketPath;
  process.stdout.write(`ipcbox kernel listening on ${sock} (pid ${process.pid})\n`);
  process.stdout.write(`try: IPCBOX_SOCKET=${sock} npx ipcbox status\n`);
  await new Promise<void>((resolve) => {
    const stop = (sig: NodeJS.Signals) => {
      process.stdout.write(`ipcbox kernel stopping (${sig})\n`);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await kernel.close();
}
