/**
 * A chat room over a broadcast mailbox: every attached receiver gets its own
 * copy of every message. The host (this example's main process) creates the
 * room; each member process opens it, starts reading, and once the host says
 * welcome, posts its lines. Every member reads until it has seen every line
 * posted (its own included, since it is a receiver too).
 *
 * Run: node dist/examples/chat-room.js [members=3] [lines=3] [--cluster]
 *
 * With --cluster the room is homed on one kernel and half the members are connected to another,
 * the two kernels one cluster over a private nats-server: the same code, across nodes.
 */
import { connect, type Message } from '../src/index.js';
import { roleOf, startParticipant, withKernel, withTwoNodes } from './example-kernel.js';

const ROOM = 'room';
const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

async function member(name: string, members: number, lines: number): Promise<void> {
  await using proc = await connect({ name });
  const room = await proc.openMailbox(ROOM);
  const incoming = room.messages();
  // The iteration attached us as a receiver; a control call answered after it proves the kernel has seen that.
  await room.stat();
  console.log('ready');
  const expected = members * lines;
  let seen = 0;
  let posted = false;
  for await (const m of incoming as AsyncIterable<Message<string>>) {
    if (m.sender === 'host') {
      if (!posted) {
        posted = true;
        for (let i = 1; i <= lines; i++) await room.send(`line ${i} from ${name}`);
      }
      continue;
    }
    seen++;
    console.log(`${name} saw ${m.sender}: ${m.data}`);
    if (seen === expected) break;
  }
  console.log(`${name} done: saw all ${expected} lines`);
}

/** Check the members' reports: each saw every line of every other member. */
function missing(members: { name: string; lines: string[] }[], lines: number): string[] {
  const problems: string[] = [];
  for (const reader of members) {
    for (const writer of members) {
      if (writer === reader) continue;
      for (let i = 1; i <= lines; i++) {
        const line = `${reader.name} saw ${writer.name}: line ${i} from ${writer.name}`;
        if (!reader.lines.includes(line)) problems.push(line);
      }
    }
  }
  return problems;
}

async function main(): Promise<void> {
  const cluster = process.argv.includes('--cluster');
  const args = process.argv.slice(2).filter((a) => a !== '--cluster');
  const count = Number(args[0] ?? 3);
  const lines = Number(args[1] ?? 3);
  if (
    !Number.isInteger(count) ||
    count < 2 ||
    count > NAMES.length ||
    !Number.isInteger(lines) ||
    lines < 1
  ) {
    throw new RangeError(`usage: chat-room.js [members 2..${NAMES.length}] [lines >= 1] [--cluster]`);
  }
  const run = async ([socketPath, other]: [string, string]) => {
    await using host = await connect({ name: 'host', socketPath });
    const room = await host.createMailbox(ROOM, { delivery: 'broadcast', capacity: 'unbounded' });
    // Every other member on the second node when there is one.
    const members = NAMES.slice(0, count).map((n, i) =>
      startParticipant(
        import.meta.url,
        n,
        ['member', n, String(count), String(lines)],
        i % 2 === 1 ? other : socketPath,
      ),
    );
    await Promise.all(members.map((m) => m.ready));
    await room.send('welcome, everyone is here');
    await Promise.all(members.map((m) => m.done));
    const problems = missing(members, lines);
    if (problems.length > 0) {
      console.log(`MISSING ${problems.length} lines, e.g. "${problems[0]}"`);
      process.exitCode = 1;
      return;
    }
    console.log(`every one of ${count} members saw every other member's ${lines} lines`);
  };
  if (cluster) await withTwoNodes(run);
  else await withKernel((socketPath) => run([socketPath, socketPath]));
}

switch (roleOf()) {
  case 'member':
    await member(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]));
    break;
  default:
    await main();
}
