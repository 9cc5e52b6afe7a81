/**
 * The kernel under generated hostile frames (test/fuzz/): a few thousand
 * inputs from a fixed seed and from a random one, against the real daemon
 * with a well-behaved pair exchanging numbered messages throughout. The
 * kernel must survive, the pair must lose nothing, no well-behaved
 * connection may be closed, and the kernel's RSS must stay bounded (the
 * checks are listed in fuzz-harness.ts). A failure is replayed alone and
 * shrunk, and the message names the finding with its replay command.
 *
 * `npm run fuzz` runs the same fuzzer for a million inputs (`--cluster`: across two kernels).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hex, mixSeed } from './frame-fuzzer.js';
import { type Failure, FuzzHarness } from './fuzz-harness.js';
import { formatTriage, triage } from './triage.js';

/** The seed every run tries. */
const FIXED_SEED = 0x1badb002;
const INPUTS = 3000;
const CONCURRENCY = 16;
/** The cross-node campaign's inputs (npm run fuzz -- --cluster runs any number, any seed). */
const CLUSTER_INPUTS = 3000;

async function campaign(seed: number, inputs = INPUTS, cluster = false): Promise<void> {
  const h = await FuzzHarness.start({ concurrency: CONCURRENCY, pairSeed: seed, cluster });
  let failures: Failure[];
  try {
    await h.campaign((i) => mixSeed(seed, i), inputs);
  } finally {
    failures = await h.conclude();
  }
  if (failures.length === 0) return;
  // Name the first finding precisely: the input that does it alone, shrunk, with its replay command.
  const first = await triage(failures[0]!, { budgetMs: 60_000 });
  const others = failures.slice(1).map((f) => `also: ${f.signature}`);
  assert.fail(
    `kernel fuzz${cluster ? ' across nodes' : ''} with seed ${hex(seed)} (${inputs} inputs) found ${failures.length} problem(s)\n\n` +
      `${formatTriage(first, seed)}\n${others.join('\n')}`,
  );
}

describe('the kernel under generated hostile frames', () => {
  test(`fixed seed ${hex(FIXED_SEED)}: ${INPUTS} inputs; the kernel survives, the pair loses nothing, RSS stays bounded`, async () => {
    await campaign(FIXED_SEED);
  });

  const randomSeed = (Math.random() * 0x100000000) >>> 0;
  test(`random seed ${hex(randomSeed)}: ${INPUTS} inputs; the same checks (replay: npm run fuzz -- --seed ${hex(randomSeed)} --inputs ${INPUTS} --concurrency ${CONCURRENCY})`, async () => {
    await campaign(randomSeed);
  });

  // Hostile connections on one node of a cluster, the pair's mailboxes and sender homed on the other
  // (fuzz-harness.ts, HarnessOptions.cluster): what they send reaches the home through routes and
  // proxy sessions, and must cost neither kernel anything but their own connections. The fixed seed
  // only: a random one is `npm run fuzz -- --cluster`.
  test(`across nodes, fixed seed ${hex(FIXED_SEED)}: ${CLUSTER_INPUTS} inputs on kernel B against a pair homed on kernel A; both kernels survive, the pair loses nothing, both let go of everything`, async () => {
    await campaign(FIXED_SEED, CLUSTER_INPUTS, true);
  });
});
