import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * Options of the kernel's HTTP dashboard (`startKernel({ http })`,
 * `ipcbox daemon --http [ADDR:]PORT`). See docs/dashboard.md.
 *
 * The security rules are checked here, before anything listens:
 * - the default address is loopback (127.0.0.1);
 * - any other address needs `tls` and an explicit `token`: nothing is served in
 *   clear text off the host, and no generated token has to be read from a log;
 * - a token always exists: given, or 32 random bytes made at start.
 */
export interface DashboardOptions {
  /** TCP port; 0 picks a free one (the server's `url` tells which). */
  port: number;
  /** Address to bind. Default '127.0.0.1'. Anything but loopback needs `tls` and `token`. */
  host?: string;
  /** The bearer token for message contents and actions. Default: generated at start. */
  token?: string;
  /** PEM certificate and key: the dashboard then speaks HTTPS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface ResolvedDashboardOptions {
  port: number;
  host: string;
  token: string;
  /** The token was generated (the daemon prints it) rather than given. */
  generatedToken: boolean;
  loopback: boolean;
  tls: { cert: string | Buffer; key: string | Buffer } | undefined;
}

/** Loopback addresses and the names that resolve to them everywhere. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1';
}

export function resolveDashboardOptions(o: DashboardOptions): ResolvedDashboardOptions {
  if (typeof o !== 'object' || o === null)
    throw new TypeError('http must be an object { port, host?, token?, tls? }');
  const { port } = o;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError('http.port must be an integer from 0 to 65535');
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw new TypeError('http.host must be a non-empty string');
  if (o.token !== undefined && (typeof o.token !== 'string' || o.token.length < 16)) {
    throw new RangeError('http.token must be a string of at least 16 characters');
  }
  if (o.tls !== undefined && (o.tls.cert === undefined || o.tls.key === undefined)) {
    throw new TypeError('http.tls needs both cert and key');
  }
  const loopback = isLoopback(host);
  if (!loopback && (o.tls === undefined || o.token === undefined)) {
    throw new TypeError(
      `http.host ${host} is not loopback: serving it needs tls (a certificate and key) and a token (not a generated one)`,
    );
  }
  return {
    port,
    host,
    token: o.token ?? randomBytes(32).toString('base64url'),
    generatedToken: o.token === undefined,
    loopback,
    tls: o.tls,
  };
}
