import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { IpcError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import { APP_CSS } from './assets/app-css.js';
import { APP_JS } from './assets/app-js.js';
import { INDEX_HTML } from './assets/index-html.js';
import {
  type DashboardOptions,
  isLoopback,
  type ResolvedDashboardOptions,
  resolveDashboardOptions,
} from './dashboard-options.js';
import { DashboardPrincipal } from './dashboard-principal.js';
import { kernelMetrics } from './metrics.js';
import { takeSnapshot } from './snapshot.js';

/** How often the page gets a snapshot (ms): one a second, whatever the message rate. */
const PUSH_INTERVAL = 1000;
/** A client with this much unsent output skips snapshots until it catches up (never buffered without bound). */
const MAX_CLIENT_BACKLOG = 4 * 1024 * 1024;
/**
 * Live-update streams at once, and HTTP connections at all: each stream may hold MAX_CLIENT_BACKLOG
 * of a reader that stops reading, so their number bounds the dashboard's memory.
 */
const MAX_STREAMS = 32;
const MAX_HTTP_CONNECTIONS = 256;
/** A client gets this long to send its request headers (node's default is a minute). */
const HEADERS_TIMEOUT = 10_000;
/** Largest POST body (an action's JSON, a message to send). */
const MAX_BODY = 1024 * 1024;
const MAX_PEEK = 100;

interface Asset {
  type: string;
  body: Buffer;
}

/** uPlot's files, shipped by its package (a dependency), read once. */
function vendorAssets(): Record<string, Asset> {
  const require = createRequire(import.meta.url);
  const dir = (f: string) => readFileSync(require.resolve(`uplot/dist/${f}`));
  return {
    '/vendor/uPlot.iife.min.js': { type: 'text/javascript; charset=utf-8', body: dir('uPlot.iife.min.js') },
    '/vendor/uPlot.min.css': { type: 'text/css; charset=utf-8', body: dir('uPlot.min.css') },
  };
}

const HTTP_STATUS: Partial<Record<string, number>> = {
  INVALID_ARGUMENT: 400,
  PERMISSION_DENIED: 403,
  NO_SUCH_MAILBOX: 404,
  NO_SUCH_PROCESS: 404,
  WOULD_BLOCK: 409,
  MAILBOX_CLOSED: 409,
  MESSAGE_TOO_LARGE: 413,
  WRONG_MESSAGE_SIZE: 413,
  KERNEL_FULL: 503,
};

class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The kernel's HTTP server: the dashboard page and its assets, a JSON
 * snapshot, a server-sent event stream of snapshots, `/metrics`, and the
 * actions (peek, send, delete). It runs inside the daemon and reads the
 * kernel's objects directly (a snapshot is what `status` answers, built once
 * per tick for every client); actions go through DashboardPrincipal, a process
 * connected to this kernel, so they meet the API's rights checks unchanged.
 *
 * Access (docs/dashboard.md):
 * - the page and its static assets: anyone who can reach the address;
 * - snapshot, events, mailbox details, /metrics (names and counts, never
 *   contents): on loopback anyone whose Host header is a loopback name (a page
 *   from another site, rebound by DNS to 127.0.0.1, is refused); elsewhere the token;
 * - peek (message contents), send, delete: always the token, as
 *   `Authorization: Bearer <token>` (a header, never a cookie, so another site's
 *   page cannot make the browser send it).
 */
export class DashboardServer {
  private readonly server: Server;
  private readonly clients = new Set<ServerResponse>();
  private pushTimer: NodeJS.Timeout | undefined;
  private readonly tokenDigest: Buffer;
  private readonly metrics: Registry;
  private readonly assets: Record<string, Asset>;
  private principal: DashboardPrincipal | undefined;

  private constructor(
    private readonly kernel: Kernel,
    readonly options: ResolvedDashboardOptions,
  ) {
    this.tokenDigest = digest(options.token);
    this.metrics = kernelMetrics(kernel);
    this.assets = {
      '/': { type: 'text/html; charset=utf-8', body: Buffer.from(INDEX_HTML) },
      '/app.js': { type: 'text/javascript; charset=utf-8', body: Buffer.from(APP_JS) },
      '/app.css': { type: 'text/css; charset=utf-8', body: Buffer.from(APP_CSS) },
      ...vendorAssets(),
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((e: unknown) => this.fail(res, e));
    };
    this.server =
      options.tls === undefined ? createHttpServer(handler) : createHttpsServer(options.tls, handler);
    this.server.maxConnections = MAX_HTTP_CONNECTIONS;
    this.server.headersTimeout = HEADERS_TIMEOUT;
    this.server.requestTimeout = 2 * HEADERS_TIMEOUT;
  }

  /** Listen (the kernel is listening already: the principal connects to it). */
  static async start(kernel: Kernel, o: DashboardOptions): Promise<DashboardServer> {
    const d = new DashboardServer(kernel, resolveDashboardOptions(o));
    d.principal = await DashboardPrincipal.connect(kernel.socketPath, kernel.cluster?.node);
    try {
      await new Promise<void>((resolve, reject) => {
        d.server.once('error', reject);
        d.server.listen(d.options.port, d.options.host, () => {
          d.server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      await d.principal.close();
      throw new IpcError(
        'INVALID_ARGUMENT',
        `the dashboard cannot listen on ${d.options.host}:${d.options.port}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    return d;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The page's address (without the token). */
  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${this.options.tls === undefined ? 'http' : 'https'}://${host}:${this.port}/`;
  }

  /** The address with the token in its fragment: the page reads it, the browser never sends it to a server. */
  get urlWithToken(): string {
    return `${this.url}#token=${this.options.token}`;
  }

  async close(): Promise<void> {
    if (this.pushTimer !== undefined) clearInterval(this.pushTimer);
    this.pushTimer = undefined;
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.principal?.close().catch(() => undefined);
  }

  // ---------------------------------------------------------------- requests

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const path = url.pathname;
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', 'no-store');
    if (req.method === 'GET') {
      const asset = this.assets[path === '/index.html' ? '/' : path];
      if (asset !== undefined) {
        res.setHeader('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'");
        return this.reply(res, 200, asset.type, asset.body);
      }
      switch (path) {
        case '/metrics':
          this.requireRead(req);
          return this.reply(res, 200, this.metrics.contentType, await this.metrics.metrics());
        case '/api/snapshot':
          this.requireRead(req);
          return this.json(res, 200, takeSnapshot(this.kernel));
        case '/api/events':
          this.requireRead(req);
          return this.stream(req, res);
        case '/api/mailbox': {
          this.requireRead(req);
          const rec = this.kernel.mailboxByName.get(url.searchParams.get('name') ?? '');
          if (rec === undefined)
            throw new IpcError('NO_SUCH_MAILBOX', `no such mailbox: ${url.searchParams.get('name')}`);
          return this.json(res, 200, rec.describe());
        }
        case '/api/session':
          this.requireToken(req);
          return this.json(res, 200, { principal: this.principal?.name, actions: true });
      }
      throw new HttpRefusal(404, 'NOT_FOUND', `no such page: ${path}`);
    }
    if (req.method === 'POST') {
      const principal = this.principal;
      if (principal === undefined)
        throw new HttpRefusal(503, 'KERNEL_UNAVAILABLE', 'the dashboard is not connected');
      switch (path) {
        case '/api/peek': {
          this.requireToken(req);
          const a = await body(req);
          const count = a.count ?? 10;
          if (!Number.isInteger(count) || (count as number) < 1 || (count as number) > MAX_PEEK)
            throw new IpcError('INVALID_ARGUMENT', `count must be an integer from 1 to ${MAX_PEEK}`);
          return this.json(res, 200, await principal.peek(name(a.mailbox, 'mailbox'), count as number));
        }
        case '/api/send': {
          this.requireToken(req);
          const a = await body(req);
          const codec = a.codec ?? 'string';
          if (codec !== 'string' && codec !== 'json')
            throw new IpcError('INVALID_ARGUMENT', "codec must be 'string' or 'json'");
          if (typeof a.data !== 'string')
            throw new IpcError('INVALID_ARGUMENT', 'data must be a string (JSON text for the json codec)');
          let value: unknown = a.data;
          if (codec === 'json') {
            try {
              value = JSON.parse(a.data);
            } catch {
              throw new IpcError('INVALID_ARGUMENT', 'data is not valid JSON');
            }
          }
          await principal.send(name(a.target, 'target'), value, codec);
          return this.json(res, 200, { sent: true });
        }
        case '/api/delete': {
          this.requireToken(req);
          const a = await body(req);
          await principal.deleteMailbox(name(a.mailbox, 'mailbox'), a.force === true);
          return this.json(res, 200, { deleted: true });
        }
      }
      throw new HttpRefusal(404, 'NOT_FOUND', `no such action: ${path}`);
    }
    res.setHeader('Allow', 'GET, POST');
    throw new HttpRefusal(405, 'METHOD_NOT_ALLOWED', `${req.method} is not served`);
  }

  private hasToken(req: IncomingMessage): boolean {
    const h = req.headers.authorization;
    if (h === undefined || !h.startsWith('Bearer ')) return false;
    // Digests of equal length, compared in constant time: the token's length and prefix do not leak.
    return timingSafeEqual(digest(h.slice(7).trim()), this.tokenDigest);
  }

  private requireToken(req: IncomingMessage): void {
    if (!this.hasToken(req))
      throw new HttpRefusal(
        401,
        'UNAUTHORIZED',
        'this needs the dashboard token (Authorization: Bearer <token>)',
      );
  }

  /** Names and counts: on loopback for a loopback Host, elsewhere with the token. */
  private requireRead(req: IncomingMessage): void {
    if (this.hasToken(req)) return;
    if (!this.options.loopback) this.requireToken(req);
    const host = req.headers.host ?? '';
    const bare = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
    if (!isLoopback(bare))
      throw new HttpRefusal(403, 'FORBIDDEN', `Host ${host} is not a loopback name: give the token`);
  }

  // ---------------------------------------------------------------- live updates

  private stream(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= MAX_STREAMS)
      throw new HttpRefusal(503, 'BUSY', `${MAX_STREAMS} live-update streams are open: try again later`);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    });
    res.write(`retry: 2000\ndata: ${JSON.stringify(takeSnapshot(this.kernel))}\n\n`);
    this.clients.add(res);
    req.once('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0 && this.pushTimer !== undefined) {
        clearInterval(this.pushTimer);
        this.pushTimer = undefined;
      }
    });
    if (this.pushTimer === undefined) {
      this.pushTimer = setInterval(() => this.push(), PUSH_INTERVAL);
      this.pushTimer.unref();
    }
  }

  /** One snapshot, serialised once, to every client that keeps up. */
  private push(): void {
    const frame = `data: ${JSON.stringify(takeSnapshot(this.kernel))}\n\n`;
    for (const c of this.clients) if (c.writableLength < MAX_CLIENT_BACKLOG) c.write(frame);
  }

  // ---------------------------------------------------------------- answers

  private reply(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  private json(res: ServerResponse, status: number, v: unknown): void {
    this.reply(res, status, 'application/json; charset=utf-8', JSON.stringify(v));
  }

  private fail(res: ServerResponse, e: unknown): void {
    let status = 500;
    let code = 'ERROR';
    let message = String(e);
    if (e instanceof HttpRefusal) ({ status, code, message } = e);
    else if (e instanceof IpcError) {
      status = HTTP_STATUS[e.code] ?? 500;
      code = e.code;
      message = e.message;
    } else if (e instanceof Error) message = e.message;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.json(res, status, { error: { code, message } });
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function name(v: unknown, key: string): string {
  if (typeof v !== 'string' || v === '')
    throw new IpcError('INVALID_ARGUMENT', `${key} must be a non-empty string`);
  return v;
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY)
      throw new HttpRefusal(413, 'TOO_LARGE', `the request body exceeds ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new IpcError('INVALID_ARGUMENT', 'the request body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new IpcError('INVALID_ARGUMENT', 'the request body must be a JSON object');
  return v as Record<string, unknown>;
}
