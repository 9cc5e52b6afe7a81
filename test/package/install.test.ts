/**
 * The package as a user gets it: `npm pack` (its prepack builds dist/ and the prebuilt addon) from a
 * staged copy of the sources, then `npm install --ignore-scripts` of the tarball into a fresh project on
 * a PATH that has node and npm but no compiler. There: an ESM script starts an embedded kernel, passes
 * messages with a second real process and creates a shared-memory Segment (the prebuild, no compiling);
 * `npx ipcbox --version` works; the types check for a consumer under moduleResolution node16, nodenext
 * and bundler. Then without a fitting prebuild: the install script compiles, fails for want of a
 * compiler, and still exits 0; shared memory then names the command that fixes it.
 *
 * The pack runs in a staged copy, not in this checkout: prebuildify rebuilds native/build, which the
 * tests running beside this one load.
 */
import assert from 'node:assert/strict';
import { type SpawnOptions, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, tempDir } from '../helpers/kernel-harness.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Where a command lives on this machine's PATH (the test's own PATH, not the user's). */
async function which(cmd: string): Promise<string> {
  const r = await run('sh', ['-c', `command -v ${cmd}`]);
  assert.equal(r.code, 0, `${cmd} is on this machine's PATH`);
  return r.stdout.trim();
}

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

const COMPILERS = ['cc', 'c++', 'gcc', 'g++', 'clang', 'make'];

describe('the packed package, installed without scripts or a compiler', () => {
  let work: string;
  let pack: PackResult;
  let tarball: string;
  let consumer: string;
  /** A PATH with node, npm, npx and sh only. */
  let env: NodeJS.ProcessEnv;

  before(async () => {
    work = tempDir('ipcbox-pack-');
    const stage = join(work, 'stage');
    mkdirSync(stage);
    for (const f of [
      'package.json',
      'tsconfig.json',
      'tsconfig.package.json',
      'README.md',
      'LICENSE',
      'src',
      'docs',
      'scripts',
    ])
      cpSync(join(ROOT, f), join(stage, f), { recursive: true });
    mkdirSync(join(stage, 'native'));
    for (const f of ['binding.gyp', 'ipcbox_shm.cc', 'ipcbox_unix.cc', 'install.mjs'])
      cpSync(join(ROOT, 'native', f), join(stage, 'native', f));
    symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'));
    const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: stage });
    assert.equal(packed.code, 0, `npm pack failed:\n${packed.stderr}`);
    // npm pack prints the lifecycle scripts' output before its JSON.
    pack = (JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[\n'))) as PackResult[])[0] as PackResult;
    tarball = join(work, pack.filename);

    const bin = join(work, 'bin');
    mkdirSync(bin);
    for (const cmd of ['node', 'npm', 'npx', 'sh']) symlinkSync(await which(cmd), join(bin, cmd));
    env = { ...process.env, PATH: bin, npm_config_update_notifier: 'false' };
    delete env.IPCBOX_SOCKET;
    delete env.IPCBOX_NATIVE_ADDON;

    consumer = join(work, 'consumer');
    mkdirSync(consumer);
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }),
    );
    const installed = await run(
      'npm',
      ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball],
      { cwd: consumer, env },
    );
    assert.equal(installed.code, 0, `npm install failed:\n${installed.stderr}`);
  });

  after(() => {
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  test('the PATH used for the install has no compiler', async () => {
    for (const cmd of COMPILERS) {
      const r = await run('sh', ['-c', `command -v ${cmd}`], { env });
      assert.notEqual(r.code, 0, `${cmd} must not be found, found ${r.stdout.trim()}`);
    }
  });

  test('the tarball holds the library, its types, the prebuilt addon and its sources, and nothing else', (t) => {
    const paths = pack.files.map((f) => f.path);
    t.diagnostic(`tarball: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${paths.length} files`);
    // A guard against shipping something by mistake (a results file, a test tree), not a budget for
    // the code: of 2026-12-03's 301 kB, the stripped prebuilt addon is 118 kB and its C++ sources
    // 77 kB unpacked; a stray directory would add hundreds.
    assert.ok(pack.size < 360 * 1024, `tarball is ${pack.size} bytes, over 360 kB`);
    for (const p of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/main.js',
      'native/binding.gyp',
      'native/ipcbox_shm.cc',
      'native/ipcbox_unix.cc',
      'native/install.mjs',
      `native/prebuilds/${process.platform}-${process.arch}/node.abi${process.versions.modules}.glibc.node`,
    ])
      assert.ok(paths.includes(p), `the tarball has ${p}`);
    // A compile at install (no prebuild fits) needs every source binding.gyp names.
    const gyp = JSON.parse(readFileSync(join(ROOT, 'native', 'binding.gyp'), 'utf8')) as {
      targets: { sources: string[] }[];
    };
    for (const src of gyp.targets.flatMap((t) => t.sources))
      assert.ok(paths.includes(`native/${src}`), `the tarball has native/${src}, which binding.gyp builds`);
    const stray = paths.filter(
      (p) =>
        /^(dist\/(test|bench|examples)|test|bench|examples|src|\.ci|bench\/results)\//.test(p) ||
        /\.map$|^biome\.json$|^tsconfig(\.\w+)?\.json$|native\/build\//.test(p),
    );
    assert.deepEqual(stray, [], 'no tests, benchmarks, sources maps, build trees or tool configs');
  });

  test('an ESM program passes messages with a second process and maps a Segment, all from the install', async () => {
    const socketPath = join(consumer, 'kernel.sock');
    writeFileSync(
      join(consumer, 'child.mjs'),
      `import { connect } from 'ipcbox';
const p = await connect({ socketPath: process.argv[2], name: 'child' });
const m = await p.receive({ from: 'parent', timeout: 10000 });
await p.send('parent', { echo: m.data, pid: process.pid });
await p.close();
`,
    );
    const segment = `ipcbox-pack-${process.pid}`;
    writeFileSync(
      join(consumer, 'app.mjs'),
      `import { spawn } from 'node:child_process';
import { connect, Segment, startKernel } from 'ipcbox';
const kernel = await startKernel({ socketPath: process.argv[2] });
const parent = await connect({ socketPath: process.argv[2], name: 'parent' });
const child = spawn(process.execPath, ['child.mjs', process.argv[2]], { stdio: 'inherit' });
await parent.waitForProcess('child', { timeout: 10000 });
await parent.send('child', 'ping');
const reply = await parent.receive({ from: 'child', timeout: 10000 });
const seg = Segment.create(${JSON.stringify(segment)}, { size: 4096 });
new Uint8Array(seg.buffer)[7] = 42;
const again = Segment.open(${JSON.stringify(segment)});
const seen = new Uint8Array(again.buffer)[7];
Segment.unlink(${JSON.stringify(segment)});
console.log(JSON.stringify({ reply: reply.data, sender: reply.sender, childPid: child.pid, seen }));
await parent.close();
await kernel.close();
`,
    );
    const r = await run('node', ['app.mjs', socketPath], { cwd: consumer, env, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() as string) as {
      reply: { echo: string; pid: number };
      sender: string;
      childPid: number;
      seen: number;
    };
    assert.equal(out.reply.echo, 'ping');
    assert.equal(out.sender, 'child');
    assert.equal(out.reply.pid, out.childPid, 'the reply came from the second process');
    assert.equal(out.seen, 42, 'a second mapping of the segment sees the first one’s write');
  });

  test('npx ipcbox --version prints the package version', async () => {
    const r = await run('npx', ['--no-install', 'ipcbox', '--version'], { cwd: consumer, env });
    assert.equal(r.code, 0, r.stderr);
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
      .version;
    assert.equal(r.stdout.trim(), version);
  });

  for (const [moduleResolution, module] of [
    ['node16', 'node16'],
    ['nodenext', 'nodenext'],
    ['bundler', 'esnext'],
  ] as const) {
    test(`the types check for a consumer with moduleResolution ${moduleResolution}`, async () => {
      writeFileSync(
        join(consumer, 'typed.ts'),
        `import { connect, IpcError, type Message, Segment, startKernel } from 'ipcbox';
const kernel = await startKernel({ socketPath: '/tmp/x.sock' });
const p = await connect({ socketPath: kernel.socketPath, name: 'typed' });
const m: Message = await p.receive({ timeout: 1 });
const n: number = m.priority;
const code: string = new IpcError('TIMEOUT', 'x').code;
const s: SharedArrayBuffer = Segment.create('x', { size: 1 }).buffer;
// @ts-expect-error a misspelt option is a type error, so the types are really in use
await p.send('x', 1, { priorty: 1 });
export { n, code, s };
`,
      );
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = await run(
        'node',
        [
          tsc,
          '--noEmit',
          '--strict',
          '--target',
          'es2022',
          '--module',
          module,
          '--moduleResolution',
          moduleResolution,
          '--types',
          'node',
          '--typeRoots',
          join(ROOT, 'node_modules', '@types'),
          'typed.ts',
        ],
        { cwd: consumer, env },
      );
      assert.equal(r.code, 0, `tsc:\n${r.stdout}${r.stderr}`);
    });
  }

  test('with no prebuild that fits and no compiler, the install script still succeeds and shared memory names the fix', async () => {
    const installed = join(consumer, 'node_modules', 'ipcbox');
    rmSync(join(installed, 'native', 'prebuilds'), { recursive: true });
    const rebuilt = await run('npm', ['rebuild', 'ipcbox', '--foreground-scripts'], {
      cwd: consumer,
      env,
      timeoutMs: 120_000,
    });
    assert.equal(rebuilt.code, 0, `npm rebuild must not fail:\n${rebuilt.stderr}`);
    assert.match(
      rebuilt.stdout + rebuilt.stderr,
      /npm rebuild ipcbox/,
      'the install script says what fixes it',
    );
    assert.equal(existsSync(join(installed, 'native', 'build', 'Release', 'ipcbox_shm.node')), false);
    writeFileSync(
      join(consumer, 'no-addon.mjs'),
      `import { IpcError, Segment, connect, startKernel } from 'ipcbox';
let shm;
try { Segment.create('ipcbox-pack-none', { size: 4096 }); shm = 'created'; }
catch (e) { shm = e instanceof IpcError ? e.code + ': ' + e.message : String(e); }
const kernel = await startKernel({ socketPath: process.argv[2] });
const p = await connect({ socketPath: process.argv[2], name: 'solo' });
await p.send('solo', 'still works');
const m = await p.receive({ timeout: 5000 });
console.log(JSON.stringify({ shm, message: m.data }));
await p.close();
await kernel.close();
`,
    );
    const r = await run('node', ['no-addon.mjs', join(consumer, 'none.sock')], {
      cwd: consumer,
      env,
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim()) as { shm: string; message: string };
    assert.match(out.shm, /^NATIVE_UNAVAILABLE: /);
    assert.match(out.shm, /npm rebuild ipcbox/);
    assert.equal(out.message, 'still works', 'message passing needs no addon');
  });
});
