/**
 * ipcbox bench peer: one process of a pair talking through the kernel daemon.
 * Roles:
 * - `receiver` (one-way): creates the mailbox, iterates it with prefetch, measures.
 * - `sender` (one-way): opens the mailbox and loops `await mb.send(payload)`.
 * - `responder` (round trip): creates `<mailbox>.ping` and `<mailbox>.pong`, echoes every ping.
 * - `pinger` (round trip): sends a ping, waits for the pong, measures.
 * Usage: node dist/bench/workers/ipcbox-peer.js <role> <scenario-json>
 */
import { connect, type IpcProcess, type Message } from '../../src/index.js';
import {
  MARKER_SIZE,
  OneWayMeter,
  payloadOf,
  pingFor,
  ready,
  report,
  type ScenarioConfig,
  streamFor,
  workerArgs,
} from '../scenario.js';

const CAPACITY = 1024;
const PREFETCH = 512;

async function receiver(proc: IpcProcess, config: ScenarioConfig, name: string): Promise<void> {
  const mb = await proc.createMailbox(name, { capacity: CAPACITY });
  const meter = new OneWayMeter(config.size);
  const messages = mb.messages({ prefetch: PREFETCH });
  ready();
  for await (const m of messages) {
    const result = meter.onMessage(m.bytes.length, m.bytes[0]!);
    if (result !== undefined) {
      report(result);
      break;
    }
  }
}

async function sender(proc: IpcProcess, config: ScenarioConfig, name: string): Promise<void> {
  const mb = await proc.openMailbox(name);
  const payload = payloadOf(config.size);
  await streamFor(
    config,
    () => mb.send(payload),
    (marker) => mb.send(marker),
  );
}

async function responder(proc: IpcProcess, name: string): Promise<void> {
  const ping = await proc.createMailbox(`${name}.ping`, { capacity: CAPACITY });
  const pong = await proc.createMailbox(`${name}.pong`, { capacity: CAPACITY });
  ready();
  for await (const m of ping.messages({ prefetch: 16 })) {
    if (m.bytes.length === MARKER_SIZE) break;
    await pong.send(m.bytes);
  }
}

async function pinger(proc: IpcProcess, config: ScenarioConfig, name: string): Promise<void> {
  const ping = await proc.openMailbox(`${name}.ping`);
  const pong = await proc.openMailbox(`${name}.pong`);
  const replies = pong.messages({ prefetch: 16 });
  const payload = payloadOf(config.size);
  const result = await pingFor(config, async () => {
    await ping.send(payload);
    const r: IteratorResult<Message> = await replies.next();
    if (r.done === true || r.value.bytes.length !== config.size) throw new Error('bad pong');
  });
  await replies.return?.();
  await ping.send(Buffer.from([0]));
  report(result);
}

async function main(): Promise<void> {
  const { role, config } = workerArgs();
  const name = config.mailbox ?? 'bench';
  const proc = await connect({ name: `bench-${role}`, socketPath: config.socketPath! });
  try {
    switch (role) {
      case 'receiver':
        return await receiver(proc, config, name);
      case 'sender':
        return await sender(proc, config, name);
      case 'responder':
        return await responder(proc, name);
      case 'pinger':
        return await pinger(proc, config, name);
      default:
        throw new Error(`unknown role ${role}`);
    }
  } finally {
    await proc.close();
  }
}

await main();
