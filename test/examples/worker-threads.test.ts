import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runExample } from './example-process.js';

test('worker-threads: each worker is a named process; answers name their sender; a terminated worker is lost to its monitor', async () => {
  const workers = 3;
  const jobs = 4;
  const run = await runExample('worker-threads', [String(workers), String(jobs)]);
  assert.equal(run.code, 0, run.stderr);
  for (let i = 1; i <= workers; i++) assert.ok(run.lines.includes(`worker-${i} is up`));
  const answers = run.lines
    .map((l) => l.match(/^(worker-\d+) squared (\d+) = (\d+)$/))
    .filter((m) => m !== null);
  assert.equal(answers.length, workers * jobs);
  for (const m of answers) {
    const n = Number(m[2]);
    assert.equal(Number(m[3]), n * n);
    assert.equal(m[1], `worker-${Math.floor(n / 10)}`, 'the sender is the worker that got that number');
  }
  for (let i = 1; i < workers; i++)
    assert.ok(run.lines.includes(`worker-${i} exited: normal`), run.lines.join('\n'));
  assert.ok(run.lines.includes(`worker-${workers} exited: lost`), run.lines.join('\n'));
  let sum = 0;
  for (let i = 1; i <= workers; i++) for (let j = 1; j <= jobs; j++) sum += (10 * i + j) ** 2;
  assert.equal(run.lines.at(-1), `all ${workers * jobs} answers in, sum of squares ${sum}`);
});
