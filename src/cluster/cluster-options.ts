/**
 * Options of a kernel that joins a cluster (`startKernel({ cluster })`, `ipcbox daemon --cluster`),
 * validated once at the boundary: a bad option is an immediate TypeError/RangeError naming it.
 *
 * Names are restricted so they can be NATS subject tokens and KV bucket names without escaping:
 * a cluster or node name is 1..64 of [A-Za-z0-9_-].
 */
import { hostname } from 'node:os';

/** How the kernel proves itself to NATS: at most one of these. Files are read at connect time. */
export type ClusterAuth =
  | { token: string }
  | { user: string; pass: string }
  | { credsFile: string }
  | { nkeySeedFile: string };

export interface ClusterTls {
  /** CA that signed the NATS servers' certificates (PEM file). */
  caFile?: string;
  /** Client certificate and key, for servers that verify clients (PEM files). */
  certFile?: string;
  keyFile?: string;
}

export interface ClusterOptions {
  /** NATS server URLs (`nats://host:port`, `tls://host:port`), one or several of one NATS cluster. */
  servers: string | string[];
  /** This kernel's node name, unique in the cluster. Default: the host name, cleaned to the allowed characters. */
  node?: string;
  /** Kernels with the same cluster name on one NATS are one system; other names never see them. Default 'ipcbox'. */
  name?: string;
  tls?: ClusterTls;
  auth?: ClusterAuth;
  /** How often this node proves it is alive. Default 1000 ms. */
  heartbeatMs?: number;
  /**
   * A node not heard from for this long is down: its names are free and monitors of its processes
   * fire `node-down`. Default 4000 ms, so names of a dead node are free within 5 s of its death
   * (4 s of silence plus at most half a heartbeat for the sweep to notice).
   */
  deadAfterMs?: number;
  /**
   * Copies JetStream keeps of the cluster's KV buckets (names, membership). 1 for one nats-server;
   * 3 on a NATS cluster of three or more, so the loss of a server loses no name. Default 1.
   */
  replicas?: number;
}

export interface ResolvedClusterOptions {
  servers: string[];
  node: string;
  name: string;
  tls: ClusterTls | undefined;
  auth: ClusterAuth | undefined;
  heartbeatMs: number;
  deadAfterMs: number;
  replicas: number;
}

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export function isClusterToken(s: string): boolean {
  return TOKEN.test(s);
}

/** The host name as a node name: characters outside [A-Za-z0-9_-] become '-', at most 64. */
export function defaultNodeName(): string {
  const cleaned = hostname()
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .slice(0, 64);
  return cleaned === '' ? 'node' : cleaned;
}

function positive(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max)
    throw new RangeError(`cluster.${name} must be an integer from ${min} to ${max}, not ${String(v)}`);
  return v;
}

export function resolveClusterOptions(o: ClusterOptions): ResolvedClusterOptions {
  if (o === null || typeof o !== 'object') throw new TypeError('cluster must be an object with servers');
  const servers = typeof o.servers === 'string' ? o.servers.split(',').map((s) => s.trim()) : o.servers;
  if (
    !Array.isArray(servers) ||
    servers.length === 0 ||
    servers.some((s) => typeof s !== 'string' || s === '')
  )
    throw new TypeError('cluster.servers must name at least one NATS server URL');
  for (const s of servers) {
    if (!/^(nats|tls):\/\/[^\s/]+$/.test(s) && !/^[^\s/:]+:\d+$/.test(s))
      throw new TypeError(`cluster.servers: "${s}" is not a nats://HOST:PORT or tls://HOST:PORT URL`);
  }
  const node = o.node ?? defaultNodeName();
  if (typeof node !== 'string' || !TOKEN.test(node))
    throw new TypeError(`cluster.node must be 1..64 of [A-Za-z0-9_-], not ${JSON.stringify(node)}`);
  const name = o.name ?? 'ipcbox';
  if (typeof name !== 'string' || !TOKEN.test(name))
    throw new TypeError(`cluster.name must be 1..64 of [A-Za-z0-9_-], not ${JSON.stringify(name)}`);
  if (o.auth !== undefined) {
    const kinds = ['token', 'user', 'credsFile', 'nkeySeedFile'].filter((k) => k in o.auth!);
    if (kinds.length !== 1)
      throw new TypeError('cluster.auth must hold exactly one of token, user+pass, credsFile, nkeySeedFile');
    if ('user' in o.auth && typeof o.auth.pass !== 'string')
      throw new TypeError('cluster.auth.user needs auth.pass');
  }
  const heartbeatMs = positive('heartbeatMs', o.heartbeatMs, 1000, 50, 60_000);
  const deadAfterMs = positive('deadAfterMs', o.deadAfterMs, 4000, 100, 600_000);
  if (deadAfterMs < 2 * heartbeatMs)
    throw new RangeError(
      'cluster.deadAfterMs must be at least twice cluster.heartbeatMs (one lost heartbeat is not death)',
    );
  const replicas = positive('replicas', o.replicas, 1, 1, 5);
  return { servers, node, name, tls: o.tls, auth: o.auth, heartbeatMs, deadAfterMs, replicas };
}
