/**
 * Mailbox rights and ownership across real processes: restricted senders and
 * receivers, grant and revoke, passing ownership on, system versus
 * process-owned lifetime, and what other processes see when an owner is
 * killed. Capacity 1 keeps send credits out of the picture (a credit is a
 * send right granted earlier and would let a send in flight stand).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type IpcProcess, type MailboxClosedEvent } from '../../src/index.js';
import { type Daemon, startDaemon, waitFor } from '../helpers/kernel-harness.js';
import { type PeerMessage, RemotePeer, stopAll } from './remote-peer.js';

describe('rights and ownership across processes', () => {
  let daemon: Daemon;
  let me: IpcProcess;
  const closed: MailboxClosedEvent[] = [];

  async function peer(name: string): Promise<RemotePeer> {
    return RemotePeer.start(daemon.socketPath, name);
  }

  before(async () => {
    daemon = await startDaemon();
    me = await connect({ socketPath: daemon.socketPath, name: 'rights-test' });
    me.on('mailbox-closed', (e) => closed.push(e));
  });

  after(async () => {
    await stopAll();
    await me?.close();
    await daemon?.stop();
  });

  test('senders and receivers restricted at create: others get PERMISSION_DENIED, the named ones and the owner may', async () => {
    const mb = await me.createMailbox('restricted', {
      capacity: 1,
      senders: ['r-allowed'],
      receivers: ['r-allowed'],
    });
    const allowed = await peer('r-allowed');
    const other = await peer('r-other');
    assert.equal(
      (await other.fails('send', { mailbox: 'restricted', value: 'x' })).code,
      'PERMISSION_DENIED',
    );
    assert.equal(
      (await other.fails('receive', { mailbox: 'restricted', options: { nonblock: true } })).code,
      'PERMISSION_DENIED',
    );
    await allowed.ok('send', { mailbox: 'restricted', value: 'from allowed' });
    assert.equal((await allowed.ok<PeerMessage>('receive', { mailbox: 'restricted' })).data, 'from allowed');
    await mb.send('from owner');
    assert.equal(
      (await mb.receive({ timeout: 10_000 })).data,
      'from owner',
      'the owner may always send and receive',
    );
    assert.equal((await mb.stat()).depth, 0, 'refused sends never entered the mailbox');
    await mb.delete();
  });

  test('grant to a named process, grant to everyone, then revoke', async () => {
    const mb = await me.createMailbox('granted', { capacity: 1, senders: [], receivers: [] });
    const p = await peer('g-named');
    const q = await peer('g-anyone');
    assert.equal((await p.fails('send', { mailbox: 'granted', value: 1 })).code, 'PERMISSION_DENIED');

    await mb.grant('send', 'g-named');
    await p.ok('send', { mailbox: 'granted', value: 'p may send' });
    assert.equal(
      (await q.fails('send', { mailbox: 'granted', value: 2 })).code,
      'PERMISSION_DENIED',
      'only the named process gained the right',
    );
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'p may send');

    await mb.grant('receive', 'everyone');
    await mb.send('anyone may receive');
    assert.equal((await q.ok<PeerMessage>('receive', { mailbox: 'granted' })).data, 'anyone may receive');

    await mb.revoke('send', 'g-named');
    assert.equal(
      (await p.fails('send', { mailbox: 'granted', value: 3 })).code,
      'PERMISSION_DENIED',
      'revoked',
    );

    await mb.revoke('receive', 'everyone');
    assert.equal(
      (await q.fails('receive', { mailbox: 'granted', options: { nonblock: true } })).code,
      'PERMISSION_DENIED',
    );
    assert.equal(
      (await p.fails('grant', { mailbox: 'granted', right: 'send', who: 'g-anyone' })).code,
      'PERMISSION_DENIED',
      'only the owner grants',
    );
    await mb.delete();
  });

  test('transferOwnership: only the new owner may grant and delete, and the mailbox now lives as long as it does', async () => {
    const mb = await me.createMailbox('transferred', { capacity: 1, senders: [] });
    const heir = await peer('t-heir');
    const bystander = await peer('t-bystander');
    await heir.ok('open', { mailbox: 'transferred' });
    await bystander.ok('open', { mailbox: 'transferred' });
    await mb.transferOwnership('t-heir');
    assert.equal((await mb.stat()).owner, 't-heir');
    await assert.rejects(mb.grant('send', 'everyone'), { code: 'PERMISSION_DENIED' });
    await assert.rejects(mb.delete(), { code: 'PERMISSION_DENIED' });
    await assert.rejects(mb.transferOwnership('rights-test'), { code: 'PERMISSION_DENIED' });
    assert.equal((await bystander.fails('delete', { mailbox: 'transferred' })).code, 'PERMISSION_DENIED');

    await heir.ok('grant', { mailbox: 'transferred', right: 'send', who: 't-bystander' });
    await bystander.ok('send', { mailbox: 'transferred', value: 'granted by the heir' });
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'granted by the heir');

    // The creator leaving no longer matters; the heir's exit does.
    await heir.kill('SIGKILL');
    await bystander.waitEvent('mailbox-closed', (e) => e.mailbox === 'transferred');
    await assert.rejects(me.openMailbox('transferred'), { code: 'NO_SUCH_MAILBOX' });
  });

  test('the new owner deletes a transferred mailbox; the old owner is told it closed', async () => {
    const mb = await me.createMailbox('handed-over', { capacity: 1 });
    const heir = await peer('h-heir');
    await heir.ok('open', { mailbox: 'handed-over' });
    await mb.transferOwnership('h-heir');
    await heir.ok('delete', { mailbox: 'handed-over' });
    await waitFor(
      () => closed.some((e) => e.mailbox === 'handed-over'),
      10_000,
      'mailbox-closed at the old owner',
    );
    assert.deepEqual(
      (await me.listMailboxes()).filter((m) => m.name === 'handed-over'),
      [],
    );
  });

  test('a system mailbox survives its creator exiting; its messages stay', async () => {
    const creator = await peer('s-creator');
    await creator.ok('create', { mailbox: 'system-box', mailboxOptions: { owner: 'system', capacity: 4 } });
    await creator.ok('send', { mailbox: 'system-box', value: 'kept' });
    await creator.kill('SIGKILL');
    await waitFor(
      async () => !(await me.listProcesses()).some((p) => p.name === 's-creator'),
      10_000,
      'the creator to be gone',
    );
    const mb = await me.openMailbox('system-box');
    assert.equal(mb.info.ownership, 'system');
    assert.equal((await mb.receive({ timeout: 10_000 })).data, 'kept');
    await me.deleteMailbox('system-box', { force: true });
  });

  test("a process-owned mailbox dies with its SIGKILLed owner: others get 'mailbox-closed' and pending ops reject MAILBOX_CLOSED", async () => {
    const owner = await peer('o-owner');
    const receiver = await peer('o-receiver');
    await owner.ok('create', { mailbox: 'owned-recv', mailboxOptions: { capacity: 4 } });
    await owner.ok('create', { mailbox: 'owned-send', mailboxOptions: { capacity: 1 } });
    await owner.ok('send', { mailbox: 'owned-send', value: 'fills it' });

    const recvBox = await me.openMailbox('owned-recv');
    const sendBox = await me.openMailbox('owned-send');
    await receiver.ok('open', { mailbox: 'owned-recv' });
    const pendingReceive = receiver.start('receive', { mailbox: 'owned-recv' });
    const pendingSend = sendBox.send('blocked', { timeout: 60_000 });
    pendingSend.catch(() => {});
    await waitFor(async () => (await recvBox.stat()).waitingReceivers === 1, 10_000, 'the receive to park');
    await waitFor(async () => (await sendBox.stat()).waitingSenders === 1, 10_000, 'the send to park');

    await owner.kill('SIGKILL');

    const r = await pendingReceive.reply;
    assert.equal(r.code, 'MAILBOX_CLOSED', `receive in another process: ${r.code} ${r.message}`);
    await assert.rejects(pendingSend, { code: 'MAILBOX_CLOSED' });
    await receiver.waitEvent('mailbox-closed', (e) => e.mailbox === 'owned-recv');
    await waitFor(
      () => ['owned-recv', 'owned-send'].every((n) => closed.some((e) => e.mailbox === n)),
      10_000,
      "the test process's mailbox-closed notices",
    );
    await assert.rejects(
      recvBox.receive({ nonblock: true }),
      { code: 'MAILBOX_CLOSED' },
      'the handle stays closed',
    );
    await assert.rejects(me.openMailbox('owned-send'), { code: 'NO_SUCH_MAILBOX' });
  });

  test('an iteration whose receive right is revoked ends with PERMISSION_DENIED; what it had prefetched goes to the others, once', async () => {
    const mb = await me.createMailbox('revoke-iter', { capacity: 64 });
    const it = await connect({ socketPath: daemon.socketPath, name: 'revoke-iter-rx' });
    try {
      const theirs = await it.openMailbox('revoke-iter');
      for (let i = 0; i < 10; i++) await mb.send(i);
      const iter = theirs.messages({ prefetch: 16 });
      const seen = [(await iter.next()).value?.data, (await iter.next()).value?.data];
      assert.deepEqual(seen, [0, 1]);
      await waitFor(async () => (await mb.stat()).depth === 0, 10_000, 'the rest prefetched');
      await mb.revoke('receive', ['revoke-iter-rx']);
      const rest: number[] = [];
      for (let i = 0; i < 8; i++) rest.push((await mb.receive({ timeout: 10_000 })).data as number);
      assert.deepEqual(
        rest.sort((a, b) => a - b),
        [2, 3, 4, 5, 6, 7, 8, 9],
        'the unread ones came back',
      );
      await new Promise((r) => setTimeout(r, 100));
      // The loop does not hand out its prefetched copies of them: it ends.
      await assert.rejects(iter.next(), { code: 'PERMISSION_DENIED' });
      await assert.rejects(theirs.receive({ nonblock: true }), { code: 'PERMISSION_DENIED' });
    } finally {
      await it.close();
      await mb.delete();
    }
  });
});
