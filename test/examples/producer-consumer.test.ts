import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linesOf, runExample } from './example-process.js';

test('producer-consumer: every item produced is consumed exactly once, in order, with matching checksums', async () => {
  const items = 40;
  const slots = 5;
  const run = await runExample('producer-consumer', [String(items), String(slots)]);
  assert.equal(run.code, 0, run.stderr);

  const produced = linesOf(run, 'producer')
    .map((l) => l.match(/^produced item (\d+) \((\S+)\) into an empty from consumer$/))
    .filter((m) => m !== null)
    .map((m) => ({ seq: Number(m[1]), text: m[2] }));
  const consumed = linesOf(run, 'consumer')
    .map((l) => l.match(/^consumed item (\d+) \((\S+)\)$/))
    .filter((m) => m !== null)
    .map((m) => ({ seq: Number(m[1]), text: m[2] }));
  const sequence = Array.from({ length: items }, (_, i) => i + 1);
  assert.deepEqual(
    produced.map((p) => p.seq),
    sequence,
  );
  assert.deepEqual(
    consumed.map((c) => c.seq),
    sequence,
  );
  assert.deepEqual(consumed, produced, 'the consumer got exactly the items the producer made');
  assert.ok(linesOf(run, 'consumer').includes(`sent ${slots} empty messages to the producer`));
  assert.ok(linesOf(run, 'producer').includes(`all ${slots} empty messages are back`));

  const last = run.lines.at(-1)!;
  assert.match(
    last,
    new RegExp(`^checksum ok: [0-9a-f]{8} \\(${items} items, ${slots} empty messages in circulation\\)$`),
  );
});
