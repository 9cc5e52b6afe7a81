import { readFileSync } from 'node:fs';
import { type DashboardOptions, resolveDashboardOptions } from '../dashboard/dashboard-options.js';
import { UsageError } from './failure.js';

export interface HttpFlags {
  http?: string;
  httpTokenFile?: string;
  httpCert?: string;
  httpKey?: string;
}

/**
 * `--http [ADDR:]PORT` and its companions as the kernel's `http` option, or
 * undefined without --http. ADDR may be a name, an IPv4 address or a bracketed
 * IPv6 address; without it the dashboard is on 127.0.0.1. Whether an address
 * needs TLS and a token is the kernel's rule (dashboard-options.ts), not repeated
 * here; its refusal is a usage error, before the kernel starts.
 */
export function httpOptions(o: HttpFlags): DashboardOptions | undefined {
  if (o.http === undefined) {
    if (o.httpTokenFile !== undefined || o.httpCert !== undefined || o.httpKey !== undefined)
      throw new UsageError('--http-token-file, --http-cert and --http-key need --http', 'daemon');
    return undefined;
  }
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):)?(\d{1,5})$/.exec(o.http);
  const port = Number(m?.[2]);
  if (m === null || port > 65535) throw new UsageError(`--http takes [ADDR:]PORT, not ${o.http}`, 'daemon');
  const h: DashboardOptions = { port };
  if (m[1] !== undefined) h.host = m[1].replace(/^\[|\]$/g, '');
  if (o.httpTokenFile !== undefined) h.token = readFileSync(o.httpTokenFile, 'utf8').trim();
  if ((o.httpCert === undefined) !== (o.httpKey === undefined))
    throw new UsageError('--http-cert and --http-key go together', 'daemon');
  if (o.httpCert !== undefined && o.httpKey !== undefined)
    h.tls = { cert: readFileSync(o.httpCert), key: readFileSync(o.httpKey) };
  try {
    resolveDashboardOptions(h);
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError)
      throw new UsageError(`--http: ${e.message}`, 'daemon');
    throw e;
  }
  return h;
}
