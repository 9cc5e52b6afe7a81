/**
 * A multi-user daemon (`--group`): members of the group connect through a
 * 0660 socket, and rights are held by uid, read from the socket's peer
 * credentials. Needs root (to run a client as another user) and the native
 * addon (peer credentials); skipped otherwise, with the reason.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connect } from '../../src/index.js';
import { type DaemonProcess, ROOT, spawnDaemon, tempDir } from '../helpers/kernel-harness.js';

const NOBODY = 65534;
const skip = process.getuid?.() !== 0 ? 'needs root to run a client as another user' : false;

/** Run a client as uid/gid 65534 (nobody/nogroup) and return what it printed as JSON. */
function asNobody(socketPath: string, script: string): Promise<Record<string, unknown>> {
  const index = join(ROOT, 'dist', 'src', 'index.js');
  const code = `import(${JSON.stringify(index)}).then(async (ipc) => {
    const out = {};
    const code = (e) => e?.code ?? String(e);
    try { ${script} } catch (e) { out.error = code(e); }
    process.stdout.write(JSON.stringify(out));
    process.exit(0);
  });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], {
      uid: NOBODY,
      gid: NOBODY,
      env: { ...process.env, IPCBOX_SOCKET: socketPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('exit', () => {
      try {
        resolve(JSON.parse(out) as Record<string, unknown>);
      } catch {
        reject(new Error(`the client as nobody printed ${JSON.stringify(out)}; stderr: ${err}`));
      }
    });
  });
}

describe('a group daemon: rights by uid', { skip }, () => {
  let daemon: DaemonProcess | undefined;
  after(() => {
    daemon?.child.kill('SIGKILL');
  });

  test('group members connect; a name bound to one uid gives another uid nothing; status shows the uid', async () => {
    const base = tempDir();
    chmodSync(base, 0o755);
    const socketPath = join(base, 'run', 'kernel.sock');
    daemon = await spawnDaemon(socketPath, ['--group', 'nogroup']);
    assert.equal(statSync(socketPath).mode & 0o777, 0o660, 'the socket is 0660');
    assert.equal(statSync(socketPath).gid, NOBODY, 'for the group');
    assert.equal(statSync(join(base, 'run')).mode & 0o777, 0o750);

    // A root process named 'worker' is given the receive right: the name is bound to uid 0.
    const worker = await connect({ socketPath, name: 'worker' });
    const owner = await connect({ socketPath, name: 'owner' });
    const vault = await owner.createMailbox('vault', { owner: 'system', receivers: ['worker'] });
    await vault.send('for the real worker');
    await worker.close();

    // Another user takes the freed name: it inherits nothing.
    const r = await asNobody(
      socketPath,
      `const p = await ipc.connect({ name: 'worker' });
       const mb = await p.openMailbox('vault');
       out.uid = (await p.status()).processes.find((x) => x.name === 'worker')?.uid;
       try { await mb.tryReceive(); out.receive = 'taken'; } catch (e) { out.receive = code(e); }
       try { await p.deleteMailbox('vault', { force: true }); out.forceDelete = 'deleted'; } catch (e) { out.forceDelete = code(e); }
       try { await mb.grant('receive', 'everyone'); out.grant = 'granted'; } catch (e) { out.grant = code(e); }
       await p.close();`,
    );
    assert.equal(r.error, undefined, `the client as nobody ran: ${JSON.stringify(r)}`);
    assert.equal(r.uid, NOBODY, 'status shows the process by its uid');
    assert.equal(r.receive, 'PERMISSION_DENIED', 'the name bound to uid 0 gives uid 65534 no receive right');
    assert.equal(r.forceDelete, 'PERMISSION_DENIED', 'only root or the daemon user may force a delete');
    assert.equal(r.grant, 'PERMISSION_DENIED', 'only the owner uid administers a system mailbox');

    // The message is still there for the uid it was meant for.
    const again = await connect({ socketPath, name: 'worker' });
    const mb = await again.openMailbox('vault');
    assert.equal((await mb.receive({ timeout: 5000 })).data, 'for the real worker');
    await again.close();
    await owner.close();
  });

  test('a user outside the group cannot connect at all', async () => {
    const base = tempDir();
    chmodSync(base, 0o755);
    const socketPath = join(base, 'run', 'kernel.sock');
    const d = await spawnDaemon(socketPath, ['--group', 'root']);
    try {
      const r = await asNobody(socketPath, `await ipc.connect({ name: 'outsider', timeout: 2000 });`);
      assert.ok(
        r.error === 'KERNEL_UNAVAILABLE' || r.error === 'PERMISSION_DENIED',
        `refused: ${JSON.stringify(r)}`,
      );
      const me = await connect({ socketPath, name: 'insider' });
      await me.close();
    } finally {
      d.child.kill('SIGKILL');
    }
  });
});
