/**
 * The kernel's HTTP side against the real daemon (`ipcbox daemon --http`): /metrics in the Prometheus
 * text format checked against counts this test made; the security rules (non-loopback refused without
 * TLS and a token; message contents and actions refused without the token, or with a wrong one; a
 * foreign Host header refused on loopback; HTTPS with the token off loopback); and the actions
 * themselves (peek leaves the message queued, send, delete).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type Mailbox } from '../../src/index.js';
import { dashboardUrl } from '../helpers/dashboard-harness.js';
import { type Daemon, runCli, startDaemon, tempDir, waitFor } from '../helpers/kernel-harness.js';
import { makeTestCerts } from '../helpers/tls-certs.js';

/** Parse the Prometheus text format: sample name{labels} -> value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe('dashboard over HTTP', () => {
  let d: Daemon;
  let base: string;
  let token: string;
  let p: IpcProcess;
  let mb: Mailbox;

  before(async () => {
    d = await startDaemon(['--http', '0']);
    ({ base, token } = dashboardUrl(d));
    p = await connect({ socketPath: d.socketPath, name: 'metrics-test' });
    mb = await p.createMailbox('jobs', { capacity: 50 });
  });
  after(async () => {
    await p?.close();
    await d?.stop();
  });

  const auth = (t = token) => ({ authorization: `Bearer ${t}`, 'content-type': 'application/json' });

  test('the printed address is loopback and carries a generated token', () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.ok(token.length >= 32);
  });

  test('/metrics reports the counts this test made', async () => {
    for (let i = 0; i < 7; i++) await mb.send({ i });
    for (let i = 0; i < 3; i++) (await mb.receive({ ack: true })).ack();
    const m = await mb.receive({ ack: true });
    m.nack();
    const r = await fetch(`${base}metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await r.text();
    assert.match(text, /# TYPE ipcbox_mailbox_wait_seconds histogram/);
    const v = parseMetrics(text);
    const L = '{mailbox="jobs"}';
    assert.equal(v.get(`ipcbox_mailbox_sent_total${L}`), 7);
    assert.equal(v.get(`ipcbox_mailbox_received_total${L}`), 4);
    assert.equal(v.get(`ipcbox_mailbox_acked_total${L}`), 3);
    assert.equal(v.get(`ipcbox_mailbox_redelivered_total${L}`), 1);
    assert.equal(v.get(`ipcbox_mailbox_depth${L}`), 4);
    assert.equal(v.get(`ipcbox_mailbox_capacity${L}`), 50);
    assert.equal(v.get(`ipcbox_mailbox_wait_seconds_count${L}`), 4);
    assert.equal(v.get('ipcbox_mailbox_wait_seconds_bucket{mailbox="jobs",le="+Inf"}'), 4);
    // Cumulative buckets never decrease.
    const buckets = [...v].filter(
      ([k]) => k.startsWith('ipcbox_mailbox_wait_seconds_bucket') && k.includes('"jobs"'),
    );
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]![1] >= buckets[i - 1]![1]);
    assert.equal(v.get('ipcbox_process_sent_total{process="metrics-test"}'), 7);
    assert.equal(v.get('ipcbox_process_received_total{process="metrics-test"}'), 4);
    assert.equal(v.get('ipcbox_kernel_memory_budget_bytes'), 256 * 1024 * 1024);
    assert.ok((v.get('ipcbox_kernel_memory_used_bytes') ?? -1) >= 0);
    // metrics-test and the dashboard's own process.
    assert.equal(v.get('ipcbox_kernel_connections'), 2);
  });

  test('message contents need the token: peek without it, or with a wrong one, is refused', async () => {
    for (const headers of [{ 'content-type': 'application/json' }, auth('x'.repeat(43))]) {
      const r = await fetch(`${base}api/peek`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ mailbox: 'jobs' }),
      });
      assert.equal(r.status, 401);
      const body = (await r.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'UNAUTHORIZED');
      assert.doesNotMatch(JSON.stringify(body), /"i"/);
    }
    // Nothing else that is served carries contents: the snapshot has names and counts only.
    const snap = await (await fetch(`${base}api/snapshot`)).text();
    assert.doesNotMatch(snap, /"i":/);
  });

  test('actions need the token: send and delete without it are refused and change nothing', async () => {
    const before = (await mb.stat()).depth;
    let r = await fetch(`${base}api/send`, {
      method: 'POST',
      body: JSON.stringify({ target: 'jobs', data: 'x' }),
    });
    assert.equal(r.status, 401);
    r = await fetch(`${base}api/delete`, { method: 'POST', body: JSON.stringify({ mailbox: 'jobs' }) });
    assert.equal(r.status, 401);
    assert.equal((await mb.stat()).depth, before);
  });

  test('peek with the token shows the first messages and leaves them queued', async () => {
    const depth = (await mb.stat()).depth;
    const r = await fetch(`${base}api/peek`, {
      method: 'POST',
      headers: auth(),
      body: JSON.stringify({ mailbox: 'jobs', count: 2 }),
    });
    assert.equal(r.status, 200);
    const v = (await r.json()) as {
      messages: { preview: string; codec: string; sender: string }[];
      more: boolean;
    };
    assert.equal(v.messages.length, 2);
    assert.equal(v.more, true);
    assert.equal(v.messages[0]!.codec, 'json');
    assert.equal(v.messages[0]!.sender, 'metrics-test');
    assert.deepEqual(JSON.parse(v.messages[0]!.preview), { i: 3 });
    assert.equal((await mb.stat()).depth, depth);
    const next = await mb.receive({ ack: true });
    assert.deepEqual(next.data, { i: 3 });
    next.nack();
  });

  test('bytes are previewed as hex; send with the token arrives; delete with the token removes', async () => {
    const raw = await p.createMailbox('raw');
    await raw.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    const r = await fetch(`${base}api/peek`, {
      method: 'POST',
      headers: auth(),
      body: JSON.stringify({ mailbox: 'raw' }),
    });
    const v = (await r.json()) as { messages: { preview: string; codec: string }[] };
    assert.equal(v.messages[0]!.codec, 'bytes');
    assert.equal(v.messages[0]!.preview, 'de ad be ef');
    await raw.receive();
    const s = await fetch(`${base}api/send`, {
      method: 'POST',
      headers: auth(),
      body: JSON.stringify({ target: 'raw', data: '{"hello":1}', codec: 'json' }),
    });
    assert.equal(s.status, 200);
    assert.deepEqual((await raw.receive()).data, { hello: 1 });
    const del = await fetch(`${base}api/delete`, {
      method: 'POST',
      headers: auth(),
      body: JSON.stringify({ mailbox: 'raw' }),
    });
    // 'raw' is owned by metrics-test: the dashboard's process may not delete it without force.
    assert.equal(del.status, 403);
    assert.equal(((await del.json()) as { error: { code: string } }).error.code, 'PERMISSION_DENIED');
    const forced = await fetch(`${base}api/delete`, {
      method: 'POST',
      headers: auth(),
      body: JSON.stringify({ mailbox: 'raw', force: true }),
    });
    assert.equal(forced.status, 200);
    await waitFor(async () => (await p.listMailboxes()).every((m) => m.name !== 'raw'), 5000, 'raw to go');
  });

  test('peek meets the rights of the API: a mailbox the dashboard may not receive from is refused', async () => {
    const secret = await p.createMailbox('secret', { receivers: ['metrics-test'] });
    await secret.send('hidden');
    const r = await fetch(`${base}api/peek`, {
      method: 'POST',
      headers: auth(),
      body: JSON.stringify({ mailbox: 'secret' }),
    });
    assert.equal(r.status, 403);
    assert.doesNotMatch(await r.text(), /hidden/);
  });

  test('on loopback, a Host header that is not a loopback name is refused (DNS rebinding)', async () => {
    const url = new URL(`${base}api/snapshot`);
    const status = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ request: httpRequest }) => {
        const req = httpRequest(
          { host: url.hostname, port: url.port, path: url.pathname, headers: { host: 'evil.example:80' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      }, reject);
    });
    assert.equal(status, 403);
  });

  test('live-update streams are bounded: past 32 open a new one is refused 503, and one closing makes room', async () => {
    const open = (): Promise<{ status: number; req: ReturnType<typeof httpGet> }> =>
      new Promise((resolve, reject) => {
        const req = httpGet(`${base}api/events`, (res) => {
          res.on('data', () => undefined);
          res.on('error', () => undefined);
          resolve({ status: res.statusCode ?? 0, req });
        });
        req.on('error', reject);
      });
    const streams = [];
    for (let i = 0; i < 32; i++) streams.push(await open());
    assert.deepEqual(
      streams.map((s) => s.status),
      streams.map(() => 200),
    );
    const refused = await open();
    assert.equal(refused.status, 503);
    refused.req.destroy();
    streams.pop()!.req.destroy();
    let again = 0;
    await waitFor(
      async () => {
        const s = await open();
        again = s.status;
        if (s.status === 200) streams.push(s);
        else s.req.destroy();
        return s.status === 200;
      },
      5000,
      () => `a stream once one closed (last status ${again})`,
    );
    for (const s of streams) s.req.destroy();
    // The rest of the dashboard kept serving throughout.
    assert.equal((await fetch(`${base}metrics`)).status, 200);
  });

  test("the snapshot names each mailbox's path; a shared-memory one's counts are unknown to the kernel, not zero", async () => {
    const bulk = await p.createMailbox('bulk-shm', { transport: 'shm', capacity: 4 });
    await bulk.send('x');
    const snap = (await (await fetch(`${base}api/snapshot`)).json()) as {
      cols: { M: string[] };
      M: unknown[][];
    };
    const row = (name: string) => {
      const r = snap.M.find((m) => m[snap.cols.M.indexOf('name')] === name);
      assert.ok(r, `${name} in the snapshot`);
      return (col: string) => r[snap.cols.M.indexOf(col)];
    };
    const jobs = row('jobs');
    assert.equal(jobs('path'), 'kernel');
    assert.equal(typeof jobs('depth'), 'number');
    const shm = row('bulk-shm');
    assert.match(String(shm('path')), /^shm \S+/);
    assert.equal(shm('depth'), null, 'the queued message is in the segment, which the kernel does not read');
    assert.equal(shm('sent'), null);
    await runCli(['mailbox', 'delete', 'bulk-shm'], d.socketPath);
  });

  test('the rates and wait percentiles reach status --json', async () => {
    await waitFor(
      async () => {
        const r = await runCli(['status', '--json'], d.socketPath);
        const s = JSON.parse(r.stdout) as {
          mailboxes: { name: string; stats?: { wait: { p50: number | null } } }[];
        };
        return s.mailboxes.find((m) => m.name === 'jobs')?.stats?.wait.p50 !== null;
      },
      5000,
      'status to show p50',
    );
  });
});

describe('dashboard security at start', () => {
  test('a non-loopback address without TLS and a token is refused before the kernel starts', async () => {
    const dir = tempDir();
    const r = await runCli(['daemon', '--http', '0.0.0.0:0'], join(dir, 'k.sock'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not loopback.*tls.*token/);
    const certs = makeTestCerts();
    const t = await runCli(
      ['daemon', '--http', '0.0.0.0:0', '--http-cert', certs.cert, '--http-key', certs.key],
      join(dir, 'k.sock'),
    );
    assert.equal(t.code, 2, 'TLS without a token file is refused too');
  });

  test('off loopback with TLS and a token: HTTPS, and even names and counts need the token', async () => {
    const certs = makeTestCerts();
    const tokenFile = join(certs.dir, 'token');
    const secret = 'a-token-of-some-length-0123456789';
    writeFileSync(tokenFile, `${secret}\n`);
    const d = await startDaemon([
      '--http',
      '0.0.0.0:0',
      '--http-cert',
      certs.cert,
      '--http-key',
      certs.key,
      '--http-token-file',
      tokenFile,
    ]);
    try {
      const m = /dashboard: https:\/\/0\.0\.0\.0:(\d+)\/\n/.exec(d.output());
      assert.ok(m, `the given token is not printed: ${d.output()}`);
      assert.doesNotMatch(d.output(), new RegExp(secret));
      const get = (path: string, headers: Record<string, string> = {}) =>
        new Promise<number>((resolve, reject) => {
          const req = request(
            {
              host: '127.0.0.1',
              port: Number(m[1]),
              path,
              ca: readFileSync(certs.ca),
              servername: 'localhost',
              headers,
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        });
      assert.equal(await get('/'), 200);
      assert.equal(await get('/api/snapshot'), 401);
      assert.equal(await get('/metrics'), 401);
      assert.equal(await get('/metrics', { authorization: `Bearer ${secret}` }), 200);
    } finally {
      await d.stop();
    }
  });
});
