import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linesOf, runExample } from './example-process.js';

function checkChat(run: Awaited<ReturnType<typeof runExample>>, members: string[], lines: number): void {
  assert.equal(run.code, 0, run.stderr);
  for (const reader of members) {
    const seen = linesOf(run, reader)
      .map((l) => l.match(/^(\S+) saw (\S+): (.*)$/))
      .filter((m) => m !== null);
    assert.ok(seen.every((m) => m[1] === reader));
    for (const writer of members) {
      const fromWriter = seen.filter((m) => m[2] === writer).map((m) => m[3]);
      assert.deepEqual(
        fromWriter,
        Array.from({ length: lines }, (_, i) => `line ${i + 1} from ${writer}`),
        `${reader} saw each of ${writer}'s lines once, in order`,
      );
    }
    assert.ok(linesOf(run, reader).includes(`${reader} done: saw all ${members.length * lines} lines`));
  }
  assert.equal(
    run.lines.at(-1),
    `every one of ${members.length} members saw every other member's ${lines} lines`,
  );
}

test('chat-room: over a broadcast mailbox every member sees every line of every member, each once and in posting order', async () => {
  const members = ['alice', 'bob', 'carol', 'dave'];
  const lines = 4;
  checkChat(await runExample('chat-room', [String(members.length), String(lines)]), members, lines);
});

test('chat-room --cluster: the same across two kernels and one NATS (bob and dave on the node without the room)', async () => {
  const members = ['alice', 'bob', 'carol', 'dave'];
  const lines = 4;
  checkChat(
    await runExample('chat-room', [String(members.length), String(lines), '--cluster']),
    members,
    lines,
  );
});
