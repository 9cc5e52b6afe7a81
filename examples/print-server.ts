/**
 * A print server with direct naming: the server receives from anyone
 * (`receive()` with no `from`; the message names its sender) and replies to
 * whoever sent the job. Each client sends its jobs one at a time to
 * 'printer' and waits for the reply with `receive({ from: 'printer' })`.
 * When every client is done, the operator (this example's main process)
 * sends the printer a shutdown message.
 *
 * Run: node dist/examples/print-server.js [clients=3] [jobs=4]
 */
import { connect } from '../src/index.js';
import { roleOf, startParticipant, withKernel } from './example-kernel.js';

type Request = { type: 'job'; id: string; text: string } | { type: 'shutdown' };

interface Receipt {
  id: string;
  /** The process the printer believes sent the job (message.sender). */
  owner: string;
  /** Position in the printer's spool, across all clients. */
  spool: number;
}

async function printer(): Promise<void> {
  await using proc = await connect({ name: 'printer' });
  console.log('ready');
  let spool = 0;
  for (;;) {
    const m = await proc.receive();
    const request = m.data as Request;
    if (request.type === 'shutdown') {
      console.log(`shutdown requested by ${m.sender}`);
      break;
    }
    spool++;
    console.log(`printing ${request.id} for ${m.sender}: "${request.text}" (spool #${spool})`);
    await proc.send(m.sender, { id: request.id, owner: m.sender, spool } satisfies Receipt);
  }
  console.log(`printer done: ${spool} jobs printed`);
}

async function client(name: string, jobs: number): Promise<void> {
  await using proc = await connect({ name });
  for (let j = 1; j <= jobs; j++) {
    const id = `${name}/job-${j}`;
    await proc.send('printer', { type: 'job', id, text: `page ${j} from ${name}` } satisfies Request);
    const reply = await proc.receive({ from: 'printer' });
    const receipt = reply.data as Receipt;
    if (receipt.id !== id || receipt.owner !== name)
      throw new Error(`wrong receipt ${JSON.stringify(receipt)} for ${id}`);
    console.log(`${id} printed (spool #${receipt.spool}), reply from ${reply.sender}`);
  }
  console.log(`${name} done: ${jobs} replies, all for its own jobs`);
}

async function main(): Promise<void> {
  const clients = Number(process.argv[2] ?? 3);
  const jobs = Number(process.argv[3] ?? 4);
  if (!Number.isInteger(clients) || clients < 1 || !Number.isInteger(jobs) || jobs < 1) {
    throw new RangeError('usage: print-server.js [clients >= 1] [jobs >= 1]');
  }
  await withKernel(async (socketPath) => {
    const server = startParticipant(import.meta.url, 'printer', ['printer'], socketPath);
    await server.ready;
    const names = Array.from({ length: clients }, (_, i) => `client-${i + 1}`);
    const running = names.map((n) =>
      startParticipant(import.meta.url, n, ['client', n, String(jobs)], socketPath),
    );
    await Promise.all(running.map((c) => c.done));
    await using operator = await connect({ name: 'operator', socketPath });
    await operator.send('printer', { type: 'shutdown' } satisfies Request);
    await server.done;
    // A client that got someone else's receipt exits with an error, so reaching here means each got its own.
    const printed = Number(server.lines.find((l) => l.startsWith('printer done:'))?.match(/(\d+) jobs/)?.[1]);
    if (printed !== clients * jobs) {
      console.log(`MISMATCH: the printer printed ${printed} jobs, the clients sent ${clients * jobs}`);
      process.exitCode = 1;
      return;
    }
    console.log(
      `all ${clients} clients got replies for their own ${jobs} jobs; the printer printed ${printed}`,
    );
  });
}

switch (roleOf()) {
  case 'printer':
    await printer();
    break;
  case 'client':
    await client(process.argv[3]!, Number(process.argv[4]));
    break;
  default:
    await main();
}
