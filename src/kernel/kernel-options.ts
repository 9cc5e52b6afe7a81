/**
 * The kernel's options: one typed object, validated once at construction (a bad option is an
 * immediate TypeError/RangeError, or INVALID_ARGUMENT for a group that does not exist), with the
 * defaults documented on each field.
 */
import { readFileSync } from 'node:fs';
import { type ClusterOptions, resolveClusterOptions } from '../cluster/cluster-options.js';
import { type DashboardOptions, resolveDashboardOptions } from '../dashboard/dashboard-options.js';
import { IpcError } from '../errors.js';
import { DEFAULT_MAX_MESSAGE } from '../wire/protocol.js';
import { defaultSocketPath } from '../wire/socket-path.js';

export interface KernelOptions {
  /** Unix socket path. Default: see defaultSocketPath(). */
  socketPath?: string;
  /** Largest message payload in bytes. Default 16 MiB. */
  maxMessageSize?: number;
  /**
   * Bytes the kernel may hold for messages (queued, parked, in flight),
   * credit reservations and unread output before refusing sends with
   * KERNEL_FULL. Default 256 MiB.
   */
  memoryBudget?: number;
  /** Most send credits one process holds for one mailbox. Default 1024. */
  creditWindow?: number;
  /** How long a credit holder may take to answer REVOKE before its credits are voided (ms). Default 1000. */
  revokeTimeout?: number;
  /** How long a new connection may take to send HELLO (ms). Default 5000. */
  helloTimeout?: number;
  /** Most connections at once (with or without HELLO). Default 1024. */
  maxConnections?: number;
  /** Most connections that have not sent HELLO yet; beyond it the oldest is closed. Default 64. */
  maxHandshakes?: number;
  /**
   * Most mailboxes at once, on either path (their records are kernel memory the message budget does
   * not see); a create beyond it is KERNEL_FULL. Default 65536.
   */
  maxMailboxes?: number;
  /**
   * Most registered shared-memory segments at once (shm mailboxes included); beyond it KERNEL_FULL.
   * Their `meta` together may take at most memoryBudget / 16 bytes. Default 16384.
   */
  maxSegments?: number;
  /**
   * A multi-user daemon: members of this group (name or gid) may connect
   * (socket 0660, directory 0750, both of that group). Rights are then held
   * by uid, read from each connection's peer credentials, so it needs the
   * native addon. Default: only the kernel's own user (socket 0600).
   */
  group?: string | number;
  /**
   * Join a cluster of kernels on NATS (docs/cluster.md): process and mailbox names become unique
   * across every kernel of the cluster. Without it the kernel needs no NATS.
   */
  cluster?: ClusterOptions;
  /**
   * Serve the web dashboard and /metrics over HTTP from this kernel (docs/dashboard.md).
   * Loopback by default; another address needs TLS and a token.
   */
  http?: DashboardOptions;
  /**
   * Also listen on TCP with TLS, for processes on hosts without a kernel of their own
   * (`connect({ url: 'tls://HOST:PORT', token, ca })`). A client there must send the token before
   * HELLO; it then acts with the daemon's uid. There is no plain-TCP listener.
   */
  listen?: NetworkListenOptions;
}

export interface NetworkListenOptions {
  /** `tls://ADDR:PORT` (port 0: any free port; see `Kernel.networkAddress`). */
  url: string;
  /** Server certificate and key (PEM files). */
  certFile: string;
  keyFile: string;
  /** File holding the token clients must present (whitespace around it is ignored). */
  tokenFile: string;
}

export interface ResolvedListen {
  host: string;
  port: number;
  cert: Buffer;
  key: Buffer;
  token: Buffer;
}

function resolveListen(l: NetworkListenOptions | undefined): ResolvedListen | undefined {
  if (l === undefined) return undefined;
  const m = typeof l.url === 'string' ? /^tls:\/\/(\[[^\]]+\]|[^:/\s]+):(\d{1,5})$/.exec(l.url) : null;
  if (m === null)
    throw new TypeError(
      `listen.url must be tls://ADDR:PORT (there is no plain-TCP listener), not ${String(l.url)}`,
    );
  const port = Number(m[2]);
  if (port > 65535) throw new RangeError(`listen.url: port ${port} is out of range`);
  const token = Buffer.from(readFileSync(l.tokenFile, 'utf8').trim(), 'utf8');
  if (token.length < 16) throw new RangeError(`the token in ${l.tokenFile} is shorter than 16 bytes`);
  return {
    host: (m[1] as string).replace(/^\[|\]$/g, ''),
    port,
    cert: readFileSync(l.certFile),
    key: readFileSync(l.keyFile),
    token,
  };
}

export interface ResolvedKernelOptions {
  socketPath: string;
  maxMessageSize: number;
  memoryBudget: number;
  creditWindow: number;
  revokeTimeout: number;
  helloTimeout: number;
  maxConnections: number;
  maxHandshakes: number;
  maxMailboxes: number;
  maxSegments: number;
  group: number | undefined;
  cluster: ClusterOptions | undefined;
  http: DashboardOptions | undefined;
  listen: ResolvedListen | undefined;
}

/** A group name or gid as a gid, from /etc/group. */
function resolveGroup(g: string | number | undefined): number | undefined {
  if (g === undefined) return undefined;
  if (typeof g === 'number') return positiveInt(g, 'group', 0);
  if (/^\d+$/.test(g)) return Number(g);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === g && gid !== undefined) return Number(gid);
  }
  throw new IpcError('INVALID_ARGUMENT', `no such group: ${g}`);
}

function positiveInt(v: number, name: string, min = 1): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}`);
  return v;
}

/** Cluster options checked now (a bad one is a TypeError at construction), joined at listen(). */
function checkedCluster(c: ClusterOptions | undefined): ClusterOptions | undefined {
  if (c !== undefined) resolveClusterOptions(c);
  return c;
}

/** Dashboard options checked now (a non-loopback address without TLS and token is refused here), served at listen(). */
function checkedHttp(h: DashboardOptions | undefined): DashboardOptions | undefined {
  if (h !== undefined) resolveDashboardOptions(h);
  return h;
}

export function resolveKernelOptions(o: KernelOptions): ResolvedKernelOptions {
  const maxMessageSize = o.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
  if (!Number.isInteger(maxMessageSize) || maxMessageSize < 1 || maxMessageSize > 1024 * 1024 * 1024) {
    throw new RangeError('maxMessageSize must be an integer from 1 to 1 GiB');
  }
  const socketPath = o.socketPath ?? defaultSocketPath();
  if (typeof socketPath !== 'string' || socketPath.length === 0)
    throw new TypeError('socketPath must be a non-empty string');
  return {
    socketPath,
    maxMessageSize,
    memoryBudget: positiveInt(o.memoryBudget ?? 256 * 1024 * 1024, 'memoryBudget'),
    creditWindow: positiveInt(o.creditWindow ?? 1024, 'creditWindow', 0),
    revokeTimeout: positiveInt(o.revokeTimeout ?? 1000, 'revokeTimeout'),
    helloTimeout: positiveInt(o.helloTimeout ?? 5000, 'helloTimeout'),
    maxConnections: positiveInt(o.maxConnections ?? 1024, 'maxConnections'),
    maxHandshakes: positiveInt(o.maxHandshakes ?? 64, 'maxHandshakes'),
    maxMailboxes: positiveInt(o.maxMailboxes ?? 65536, 'maxMailboxes'),
    maxSegments: positiveInt(o.maxSegments ?? 16384, 'maxSegments'),
    group: resolveGroup(o.group),
    cluster: checkedCluster(o.cluster),
    http: checkedHttp(o.http),
    listen: resolveListen(o.listen),
  };
}
