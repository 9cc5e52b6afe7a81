/**
 * The kernel's limit on name operations out to NATS (src/kernel/cluster-link.ts), against a stand-in
 * for the cluster whose answers the test gives by hand: the limit is about how many requests are
 * outstanding at once, which a real NATS answers too fast to hold still. test/cluster/name-churn
 * runs the same path against a real, stopped nats-server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Cluster } from '../../src/cluster/cluster.js';
import { IpcError } from '../../src/errors.js';
import { ClusterLink } from '../../src/kernel/cluster-link.js';

const IN_FLIGHT = 128;
const WAITING = 4096;

interface Asked {
  op: 'claim' | 'lookup';
  name: string;
  answer: () => void;
  fail: (e: Error) => void;
}

function standIn(): { link: ClusterLink; asked: Asked[]; released: string[] } {
  const asked: Asked[] = [];
  const released: string[] = [];
  const ask = (op: Asked['op'], name: string) =>
    new Promise<void>((resolve, reject) => asked.push({ op, name, answer: resolve, fail: reject }));
  const cluster = {
    claimName: (_kind: string, name: string) => ask('claim', name),
    lookup: (_kind: string, name: string) => ask('lookup', name).then(() => undefined),
    releaseName: async (_kind: string, name: string) => {
      released.push(name);
    },
  };
  const Make = ClusterLink as unknown as new (c: Cluster) => ClusterLink;
  return { link: new Make(cluster as unknown as Cluster), asked, released };
}

const turn = () => new Promise((r) => setImmediate(r));

/** Answer every request asked so far, `turns` times over (each answer lets a waiting one go out). */
async function answerAll(asked: Asked[], turns: number): Promise<void> {
  for (let i = 0; i < turns; i++) {
    await turn();
    for (const a of asked) a.answer();
  }
}

describe('name operations out to NATS, kernel-wide', () => {
  test(`at most ${IN_FLIGHT} at once; the next goes out when one is answered`, async () => {
    const { link, asked } = standIn();
    const claims = Array.from({ length: IN_FLIGHT + 50 }, (_, i) =>
      link.claim('process', `p${i}`, {}, () => true),
    );
    await turn();
    assert.equal(asked.length, IN_FLIGHT);
    asked[0]!.answer();
    await claims[0];
    await turn();
    assert.equal(asked.length, IN_FLIGHT + 1);
    assert.equal(asked[IN_FLIGHT]!.name, `p${IN_FLIGHT}`, 'in the order asked');
    await answerAll(asked, 60);
    assert.deepEqual(
      await Promise.all(claims),
      claims.map(() => true),
    );
    assert.equal(asked.length, IN_FLIGHT + 50);
  });

  test('a waiting claim whose requester has gone is never sent, and its name is free at once', async () => {
    const { link, asked } = standIn();
    const first = Array.from({ length: IN_FLIGHT }, (_, i) => link.claim('process', `p${i}`, {}, () => true));
    let wanted = true;
    const gone = link.claim('process', 'bob', {}, () => wanted);
    await turn();
    assert.equal(link.isPending('process', 'bob'), true, 'held while its requester is there');
    wanted = false;
    assert.equal(link.isPending('process', 'bob'), false, 'free as soon as its requester has gone');
    assert.equal(await gone, false);
    // bob comes back: his new claim is the one asked, once.
    const back = link.claim('process', 'bob', {}, () => true);
    assert.equal(link.isPending('process', 'bob'), true);
    for (const a of asked) a.answer();
    await Promise.all(first);
    await turn();
    const bobs = asked.filter((a) => a.name === 'bob');
    assert.equal(bobs.length, 1);
    bobs[0]!.answer();
    assert.equal(await back, true);
    assert.equal(link.isPending('process', 'bob'), false);
  });

  test(`past ${WAITING} waiting: a claim fails CLUSTER_UNAVAILABLE and a lookup is skipped; gone requesters make room`, async () => {
    const { link, asked } = standIn();
    const wanted = new Array<boolean>(IN_FLIGHT + WAITING).fill(true);
    const claims = wanted.map((_, i) => link.claim('mailbox', `m${i}`, {}, () => wanted[i]!));
    await turn();
    assert.equal(asked.length, IN_FLIGHT);
    await assert.rejects(
      link.claim('mailbox', 'one-too-many', {}, () => true),
      (e: unknown) => e instanceof IpcError && e.code === 'CLUSTER_UNAVAILABLE',
    );
    assert.equal(link.isPending('mailbox', 'one-too-many'), false);
    await link.confirm('process', 'someone', () => true);
    assert.ok(!asked.some((a) => a.op === 'lookup'), 'the lookup was not sent');
    // Ten waiting requesters go: ten new claims fit.
    for (let i = IN_FLIGHT; i < IN_FLIGHT + 10; i++) wanted[i] = false;
    const late = Array.from({ length: 10 }, (_, i) => link.claim('mailbox', `late${i}`, {}, () => true));
    for (const c of claims.slice(IN_FLIGHT, IN_FLIGHT + 10)) assert.equal(await c, false);
    await answerAll(asked, 80);
    assert.deepEqual(
      await Promise.all(late),
      late.map(() => true),
    );
    assert.equal(asked.length, IN_FLIGHT + WAITING - 10 + 10);
    assert.ok(!asked.some((a) => /^m(12[89]|13[0-7])$/.test(a.name)), 'the gone requesters were never sent');
  });

  test('a claim NATS refuses settles and lets the next one go', async () => {
    const { link, asked } = standIn();
    const claims = Array.from({ length: IN_FLIGHT + 1 }, (_, i) =>
      link.claim('process', `p${i}`, {}, () => true),
    );
    await turn();
    asked[0]!.fail(new IpcError('NAME_TAKEN', 'process name "p0" is taken (on node x)'));
    await assert.rejects(claims[0]!, (e: unknown) => e instanceof IpcError && e.code === 'NAME_TAKEN');
    await turn();
    assert.equal(asked.length, IN_FLIGHT + 1);
  });
});
