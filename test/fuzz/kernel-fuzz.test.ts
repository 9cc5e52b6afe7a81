/**
 * The kernel under generated hostile frames (test/fuzz/): a few thousand
 * inputs from a fixed seed and from a random one, against the real daemon
 * with a well-behaved pair exchanging numbered messages throughout. The
 * kernel must survive, the pair must lose nothing, no well-behaved
 * connection may be closed, and the kernel's RSS must stay bounded (the
 * checks are listed in fuzz-harness.ts). A failure is replayed alone and
 * shrunk, and the message names the finding with its replay command.
 *
 * `npm run fuzz` runs the same fuzzer for a million inputs.
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

async function campaign(seed: number): Promise<void> {
  const h = await FuzzHarness.start({ concurrency: CONCURRENCY, pairSeed: seed });
  let failures: Failure[];
  try {
    await h.campaign((i) => mixSeed(seed, i), INPUTS);
  } finally {
    failures = await h.conclude();
  }
  if (failures.length === 0) return;
  // Name the first finding precisely: the input that does it alone, shrunk, with its replay command.
  const first = await triage(failures[0]!, { budgetMs: 60_000 });
  const others = failures.slice(1).map((f) => `also: ${f.signature}`);
  assert.fail(
    `kernel fuzz with seed ${hex(seed)} (${INPUTS} inputs) found ${failures.length} problem(s)\n\n` +
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
});
