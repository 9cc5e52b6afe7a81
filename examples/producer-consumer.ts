/**
 * Producer-consumer with message passing, the textbook way (Tanenbaum,
 * "The producer-consumer problem with N messages"): the consumer starts by
 * sending N empty messages to the producer; the producer answers each empty
 * it receives with a full one (an item); the consumer takes the item out and
 * returns the empty. The producer can never be more than N items ahead, and
 * no buffer is shared: only messages move between the two processes. When
 * all items are made, the producer waits for its N empties to come home: then
 * the consumer has taken every item, and both may leave.
 *
 * Run: node dist/examples/producer-consumer.js [items=20] [slots=4]
 *
 * Each side keeps an order-sensitive checksum (FNV-1a) of the items it
 * produced or consumed; the last line compares them.
 */
import { connect } from '../src/index.js';
import { roleOf, startParticipant, withKernel } from './example-kernel.js';

interface Item {
  seq: number;
  text: string;
}

/** FNV-1a over the items' text, in order. */
class Checksum {
  private h = 0x811c9dc5;
  add(text: string): void {
    for (const byte of Buffer.from(text)) this.h = Math.imul(this.h ^ byte, 0x01000193) >>> 0;
  }
  get hex(): string {
    return this.h.toString(16).padStart(8, '0');
  }
}

const produce = (seq: number): string => `widget-${seq}-${((seq * 2654435761) >>> 0).toString(36)}`;

async function producer(items: number, slots: number): Promise<void> {
  await using proc = await connect({ name: 'producer' });
  console.log('ready');
  const sum = new Checksum();
  for (let seq = 1; seq <= items; seq++) {
    const text = produce(seq);
    // receive(anyone, &m): wait for an empty message; whoever sent it gets the item.
    const empty = await proc.receive();
    sum.add(text);
    await proc.send(empty.sender, { seq, text } satisfies Item);
    console.log(`produced item ${seq} (${text}) into an empty from ${empty.sender}`);
  }
  for (let i = 0; i < slots; i++) await proc.receive();
  console.log(`all ${slots} empty messages are back`);
  console.log(`producer done: ${items} items, checksum ${sum.hex}`);
}

async function consumer(items: number, slots: number): Promise<void> {
  await using proc = await connect({ name: 'consumer' });
  for (let i = 0; i < slots; i++) await proc.send('producer', '');
  console.log(`sent ${slots} empty messages to the producer`);
  const sum = new Checksum();
  for (let expected = 1; expected <= items; expected++) {
    const m = await proc.receive({ from: 'producer' });
    const item = m.data as Item;
    if (item.seq !== expected) throw new Error(`out of order: got item ${item.seq}, expected ${expected}`);
    await proc.send('producer', '');
    sum.add(item.text);
    console.log(`consumed item ${item.seq} (${item.text})`);
  }
  console.log(`consumer done: ${items} items in order, checksum ${sum.hex}`);
}

function checksumOf(lines: string[], who: string): string | undefined {
  return lines.find((l) => l.startsWith(`${who} done:`))?.match(/checksum ([0-9a-f]{8})/)?.[1];
}

async function main(): Promise<void> {
  const items = Number(process.argv[2] ?? 20);
  const slots = Number(process.argv[3] ?? 4);
  if (!Number.isInteger(items) || items < 1 || !Number.isInteger(slots) || slots < 1) {
    throw new RangeError('usage: producer-consumer.js [items >= 1] [slots >= 1]');
  }
  await withKernel(async (socketPath) => {
    const p = startParticipant(
      import.meta.url,
      'producer',
      ['producer', String(items), String(slots)],
      socketPath,
    );
    await p.ready;
    const c = startParticipant(
      import.meta.url,
      'consumer',
      ['consumer', String(items), String(slots)],
      socketPath,
    );
    await Promise.all([p.done, c.done]);
    const produced = checksumOf(p.lines, 'producer');
    const consumed = checksumOf(c.lines, 'consumer');
    if (produced === undefined || produced !== consumed) {
      console.log(`checksum MISMATCH: produced ${produced}, consumed ${consumed}`);
      process.exitCode = 1;
    } else {
      console.log(`checksum ok: ${produced} (${items} items, ${slots} empty messages in circulation)`);
    }
  });
}

switch (roleOf()) {
  case 'producer':
    await producer(Number(process.argv[3]), Number(process.argv[4]));
    break;
  case 'consumer':
    await consumer(Number(process.argv[3]), Number(process.argv[4]));
    break;
  default:
    await main();
}
