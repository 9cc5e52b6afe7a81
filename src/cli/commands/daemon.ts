import { readFileSync } from 'node:fs';
import type { ClusterOptions } from '../../cluster/cluster-options.js';
import { IpcError } from '../../errors.js';
import { startKernel } from '../../kernel/kernel.js';
import { UsageError } from '../failure.js';
import { type HttpFlags, httpOptions } from '../http-address.js';

export interface DaemonOptions extends HttpFlags {
  socket?: string;
  maxMessageSize?: number;
  memoryBudget?: number;
  group?: string;
  revokeTimeout?: number;
  cluster?: string;
  node?: string;
  clusterName?: string;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
  natsTokenFile?: string;
  natsUser?: string;
  natsCreds?: string;
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  tokenFile?: string;
  json?: boolean;
}

/** The cluster options the flags spell, or undefined without --cluster (then no NATS is needed). */
function clusterOptions(o: DaemonOptions): ClusterOptions | undefined {
  const clusterOnly = [
    o.node,
    o.clusterName,
    o.natsCa,
    o.natsCert,
    o.natsKey,
    o.natsTokenFile,
    o.natsUser,
    o.natsCreds,
  ];
  if (o.cluster === undefined) {
    if (clusterOnly.some((v) => v !== undefined))
      throw new UsageError('--node, --cluster-name and the --nats-* options need --cluster', 'daemon');
    return undefined;
  }
  const c: ClusterOptions = { servers: o.cluster };
  if (o.node !== undefined) c.node = o.node;
  if (o.clusterName !== undefined) c.name = o.clusterName;
  if (o.natsCa !== undefined || o.natsCert !== undefined || o.natsKey !== undefined) {
    c.tls = {};
    if (o.natsCa !== undefined) c.tls.caFile = o.natsCa;
    if (o.natsCert !== undefined) c.tls.certFile = o.natsCert;
    if (o.natsKey !== undefined) c.tls.keyFile = o.natsKey;
  }
  const auths = [o.natsTokenFile, o.natsUser, o.natsCreds].filter((v) => v !== undefined);
  if (auths.length > 1)
    throw new UsageError('give one of --nats-token-file, --nats-user, --nats-creds', 'daemon');
  if (o.natsTokenFile !== undefined) c.auth = { token: readFileSync(o.natsTokenFile, 'utf8').trim() };
  else if (o.natsUser !== undefined) {
    const pass = process.env.IPCBOX_NATS_PASS;
    if (pass === undefined)
      throw new UsageError('--nats-user needs the password in $IPCBOX_NATS_PASS', 'daemon');
    c.auth = { user: o.natsUser, pass };
  } else if (o.natsCreds !== undefined) c.auth = { credsFile: o.natsCreds };
  return c;
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
  const cluster = clusterOptions(o);
  if (cluster !== undefined) options.cluster = cluster;
  if (o.listen !== undefined) {
    if (o.tlsCert === undefined || o.tlsKey === undefined || o.tokenFile === undefined)
      throw new UsageError('--listen needs --tls-cert, --tls-key and --token-file', 'daemon');
    options.listen = { url: o.listen, certFile: o.tlsCert, keyFile: o.tlsKey, tokenFile: o.tokenFile };
  } else if (o.tlsCert !== undefined || o.tlsKey !== undefined || o.tokenFile !== undefined) {
    throw new UsageError('--tls-cert, --tls-key and --token-file need --listen', 'daemon');
  }
  const http = httpOptions(o);
  if (http !== undefined) options.http = http;
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
    const joined =
      cluster === undefined ? '' : ` as node ${kernel.cluster?.node} of cluster ${cluster.name ?? 'ipcbox'}`;
    const net = kernel.networkAddress;
    const tls =
      net === undefined
        ? ''
        : `; and on tls://${net.host.includes(':') ? `[${net.host}]` : net.host}:${net.port}`;
    // A generated token is shown in the address (its fragment never reaches a server); a given one the user has.
    const d = kernel.dashboard;
    const page = d === undefined ? undefined : d.options.generatedToken ? d.urlWithToken : d.url;
    announce(
      o.json === true,
      `ipcbox kernel listening on ${sock} (pid ${process.pid})${joined}${tls}\ntry: IPCBOX_SOCKET=${sock} npx ipcbox status\n${page === undefined ? '' : `dashboard: ${page}\n`}`,
      {
        event: 'listening',
        socket: sock,
        pid: process.pid,
        ...(net === undefined ? {} : { tls: net }),
        ...(cluster === undefined ? {} : { node: kernel.cluster?.node }),
        ...(page === undefined ? {} : { dashboard: page }),
      },
    );
    let fenced: string | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        wake = resolve;
      }),
      kernel.stoppedByItself.then((why) => {
        fenced = why;
      }),
    ]);
    if (fenced !== undefined) {
      announce(o.json === true, `ipcbox kernel stopped: ${fenced}\n`, { event: 'stopped', reason: fenced });
      throw new IpcError('NAME_TAKEN', fenced);
    }
  }
  announce(o.json === true, `ipcbox kernel stopping (${stopSignal})\n`, {
    event: 'stopping',
    signal: stopSignal,
  });
  await kernel.close();
}
