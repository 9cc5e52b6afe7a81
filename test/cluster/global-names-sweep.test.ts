/**
 * Entries a node may have left in the names bucket without holding them (a claim NATS applied after
 * the kernel stopped waiting for its answer, a release whose delete did not get through) are
 * deleted by the node's own sweep, so no other node sees such a name held by it for as long as it
 * runs. Against a real nats-server and KV bucket; the entries are written by hand as NATS would have
 * applied them, since when a real create times out after being applied depends on nats.js's retries.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { GlobalNames, nameKey } from '../../src/cluster/global-names.js';
import type { Membership } from '../../src/cluster/membership.js';
import { waitFor } from '../helpers/kernel-harness.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-harness.js';

const self = { node: 'sweeper', incarnation: 'inc-1', host: 'h', pid: 1, since: 0 };
const membership = { self, isAlive: () => true } as unknown as Membership;
const entry = (node: string, incarnation: string) =>
  new TextEncoder().encode(JSON.stringify({ node, incarnation, info: {} }));

describe('a node sweeps the names it left in the bucket without holding them', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let kv: KV;
  let names: GlobalNames;

  before(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    kv = await new Kvm(nc).create('ipcbox_sweep_names', { history: 1 });
    names = await GlobalNames.open(kv, membership);
  });
  after(async () => {
    names?.close();
    await nc?.close();
    await nats?.stop();
  });

  const doubt = (key: string) => (names as unknown as { doubt(key: string): void }).doubt(key);
  const present = async (key: string) => (await kv.get(key))?.operation === 'PUT';

  test('its own entry for a name it does not hold goes; one it holds and another node’s stay', async () => {
    const ghost = nameKey('process', 'ghost');
    const held = nameKey('process', 'held');
    const theirs = nameKey('process', 'theirs');
    await kv.create(ghost, entry(self.node, self.incarnation));
    await names.claim('process', 'held');
    await kv.create(theirs, entry('other-node', 'inc-9'));
    for (const k of [ghost, held, theirs]) doubt(k);
    await waitFor(async () => !(await present(ghost)), 10_000, 'the ghost entry to be deleted');
    // Two more sweeps' time: nothing else is touched.
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal(await present(held), true, 'a name this node holds stays');
    assert.equal(await present(theirs), true, "another node's name stays");
    // The held name is still this node's to release.
    await names.release('process', 'held');
    assert.equal(await present(held), false);
  });

  test('a claim of the name racing the sweep ends with the name claimed, once', async () => {
    const key = nameKey('mailbox', 'raced');
    await kv.create(key, entry(self.node, self.incarnation));
    doubt(key);
    await names.claim('mailbox', 'raced');
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal(await present(key), true, 'the claim holds it after the sweep');
    await names.release('mailbox', 'raced');
    assert.equal(await present(key), false);
  });
});
