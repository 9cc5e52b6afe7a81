/**
 * `npm run fuzz`: the kernel fuzzer from the command line.
 *
 *   npm run fuzz -- [--inputs N] [--seed S] [--concurrency C] [--keep-going]
 *                   [--exclude REGEX]... [--findings FILE] [--cluster]
 *   npm run fuzz -- --replay SEED[,SEED...]
 *
 * Runs N generated inputs (default a million) against a fresh daemon with the
 * well-behaved pair running, printing progress. On a failure it replays the
 * suspects alone to find the input, shrinks it, prints the finding with its
 * replay seed, and exits 1. With --keep-going it records the finding, starts
 * a fresh kernel and goes on (each signature is triaged once); --exclude
 * skips inputs whose scenario name and description (the first line is the
 * scenario) match (to look past a known bug);
 * --findings appends each finding to a markdown file. --replay runs one
 * input alone (or several together) and shrinks what fails. --cluster runs the
 * campaign across nodes (fuzz-harness.ts, HarnessOptions.cluster): the hostile
 * inputs on one kernel, the pair's home on another, over a nats-server started
 * for it (triage then replays on one kernel, so a cross-node finding may not
 * reproduce there: replay it with --cluster and the seed).
 */
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type FuzzInput, generateInput, hex, mixSeed } from './frame-fuzzer.js';
import { type CampaignProgress, type Failure, FuzzHarness, fuzzContext } from './fuzz-harness.js';
import { describeInput, formatTriage, triage } from './triage.js';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '1000000' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    replay: { type: 'string' },
    'keep-going': { type: 'boolean', default: false },
    exclude: { type: 'string', multiple: true, default: [] },
    findings: { type: 'string' },
    cluster: { type: 'boolean', default: false },
  },
});

function number(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new RangeError(`--${name} must be an integer (decimal or 0x hex), got ${text}`);
  return n;
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

const started = Date.now();

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

function progressLine(p: CampaignProgress, offset: number, total: number): string {
  const secs = (Date.now() - started) / 1000;
  return (
    `[${secs.toFixed(0)}s] ${offset + p.done}/${total} inputs (${Math.round(p.done / (p.elapsedMs / 1000 || 1))}/s), ` +
    `protocol errors ${p.protocolErrors}, kernel RSS ${mib(p.rss)} MiB (peak ${mib(p.peak)}, bound ${mib(p.bound)}), ` +
    `pair ${p.pairSent} sent / ${p.pairReceived} received`
  );
}

async function report(failure: Failure, runSeed: number | undefined): Promise<void> {
  print(`\n${failure.kind}: ${failure.signature} — triaging…`);
  const t = await triage(failure, { log: print });
  const text = formatTriage(t, runSeed);
  print(`\n${text}\n`);
  if (values.findings !== undefined) {
    appendFileSync(values.findings, `\n### ${failure.signature}\n\n\`\`\`\n${text}\n\`\`\`\n`);
  }
}

/** Replay inputs alone (one seed) or together (several, comma-separated); shrink what fails. */
async function replay(seeds: number[]): Promise<number> {
  const ctx = fuzzContext();
  const inputs = seeds.map((seed) => generateInput(seed, ctx));
  for (const input of inputs)
    print(`input ${hex(input.seed)} (${input.scenario}):\n${describeInput(input)}\n`);
  const h = await FuzzHarness.start({ concurrency: inputs.length, cluster: values.cluster });
  const outcomes = await h.runTogether(inputs, 600);
  for (const o of outcomes) {
    print(
      `${hex(o.seed)} wrote ${o.bytesWritten} bytes; ${o.protocolError ? 'the kernel refused it with PROTOCOL' : 'no protocol error'}`,
    );
  }
  const failures = await h.conclude();
  if (failures.length === 0) {
    print('no failure: the kernel, the pair and the sentinel are fine');
    return 0;
  }
  for (const f of failures)
    await report(seeds.length === 1 ? { ...f, seed: seeds[0]! } : { ...f, suspects: seeds }, undefined);
  return 1;
}

async function run(): Promise<number> {
  const total = number(values.inputs!, 'inputs');
  const seed = values.seed !== undefined ? number(values.seed, 'seed') : (Math.random() * 0x100000000) >>> 0;
  const concurrency = Math.max(1, number(values.concurrency!, 'concurrency'));
  const excludes = values.exclude!.map((e) => new RegExp(e));
  const accept = (input: FuzzInput): boolean =>
    excludes.length === 0 || !excludes.some((e) => e.test(`${input.scenario}\n${describeInput(input)}`));
  print(
    `ipcbox kernel fuzz: seed ${hex(seed)}, ${total} inputs, ${concurrency} hostile connections at a time`,
  );
  const known = new Set<string>();
  let peak = 0;
  let bound = 0;
  let findings = 0;
  let index = 0;
  while (index < total) {
    const h = await FuzzHarness.start({ concurrency, pairSeed: seed, cluster: values.cluster });
    if (index === 0)
      print(`kernel pid ${h.kernel.pid}, baseline RSS ${mib(h.baseline)} MiB, bound ${mib(h.bound)} MiB`);
    const base = index;
    const done = await h.campaign(
      (i) => mixSeed(seed, base + i),
      total - base,
      (p) => print(progressLine(p, base, total)),
      2000,
      accept,
    );
    index = base + done;
    peak = Math.max(peak, h.peak);
    bound = h.bound;
    // The end-of-run checks belong to the end of the run; a run cut short by a failure is just torn down.
    if (index < total) await h.kill();
    const failures = index < total ? h.failures : await h.conclude();
    if (failures.length > 0 && failures.every((f) => known.has(f.signature)) && done <= concurrency) {
      print(`a fresh kernel fails again at once (${failures.map((f) => f.signature).join('; ')}): stopping`);
      break;
    }
    for (const f of failures) {
      if (known.has(f.signature)) {
        print(`(again: ${f.signature})`);
        continue;
      }
      known.add(f.signature);
      findings++;
      await report(f, seed);
    }
    if (failures.length > 0 && !values['keep-going']) break;
  }
  const secs = (Date.now() - started) / 1000;
  print(
    `${index} inputs in ${secs.toFixed(0)} s (${Math.round(index / secs)}/s), ${findings} finding(s); seed ${hex(seed)}`,
  );
  if (peak > 0) print(`kernel peak RSS ${mib(peak)} MiB (bound ${mib(bound)} MiB)`);
  return findings > 0 ? 1 : 0;
}

// ^C and kill end the run through process.exit, so the harness's exit hook stops the daemon and the pair.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const main =
  values.replay !== undefined ? replay(values.replay.split(',').map((s) => number(s, 'replay'))) : run();
main.then(
  (code) => process.exit(code),
  (e: unknown) => {
    print(`fuzz run failed: ${(e as Error).stack ?? String(e)}`);
    process.exit(2);
  },
);
