import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linesOf, runExample } from './example-process.js';

test('print-server: each client gets a reply for each of its own jobs, and the server saw who sent each', async () => {
  const clients = 3;
  const jobs = 5;
  const run = await runExample('print-server', [String(clients), String(jobs)]);
  assert.equal(run.code, 0, run.stderr);

  const printed = linesOf(run, 'printer')
    .map((l) => l.match(/^printing (\S+)\/job-(\d+) for (\S+): /))
    .filter((m) => m !== null);
  assert.equal(printed.length, clients * jobs);
  for (const m of printed) assert.equal(m[3], m[1], 'message.sender names the client that sent the job');
  const spools = linesOf(run, 'printer').flatMap((l) => l.match(/\(spool #(\d+)\)$/)?.[1] ?? []);
  assert.deepEqual(
    spools.map(Number),
    Array.from({ length: clients * jobs }, (_, i) => i + 1),
  );

  for (let c = 1; c <= clients; c++) {
    const name = `client-${c}`;
    const replies = linesOf(run, name)
      .map((l) => l.match(/^(\S+) printed \(spool #\d+\), reply from printer$/)?.[1])
      .filter((id) => id !== undefined);
    assert.deepEqual(
      replies,
      Array.from({ length: jobs }, (_, j) => `${name}/job-${j + 1}`),
      `${name} got replies for exactly its own jobs, in order`,
    );
    assert.ok(linesOf(run, name).includes(`${name} done: ${jobs} replies, all for its own jobs`));
  }
  assert.ok(linesOf(run, 'printer').includes('shutdown requested by operator'));
  assert.equal(
    run.lines.at(-1),
    `all ${clients} clients got replies for their own ${jobs} jobs; the printer printed ${clients * jobs}`,
  );
});
