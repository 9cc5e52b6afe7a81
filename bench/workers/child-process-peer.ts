/**
 * child_process IPC bench peer. The `parent` role forks this same script as
 * the `child` role with the scenario's serialization ('json' or 'advanced'),
 * so both ends are the same kind of process as in the other transports.
 * - one-way: the parent streams Buffers with `child.send`, at most a bounded
 *   number unacknowledged by the send callback (backpressure); the child measures.
 * - round trip: the parent pings, the child echoes what it received; the parent measures.
 * Markers are the strings 'start' and 'end' (both serializations carry them as strings).
 * Usage: node dist/bench/workers/child-process-peer.js parent <scenario-json>
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  END,
  OneWayMeter,
  payloadOf,
  pingFor,
  type RunResult,
  report,
  type ScenarioConfig,
  START,
  streamFor,
  workerArgs,
} from '../scenario.js';

/** Bytes the parent may have handed to `send` but not yet seen written. */
const IN_FLIGHT_BYTES = 1024 * 1024;

function markerOf(m: unknown): number {
  if (m === 'start') return START;
  if (m === 'end') return END;
  return 0;
}

function child(config: ScenarioConfig): void {
  if (config.mode === 'one-way') {
    const meter = new OneWayMeter(config.size);
    process.on('message', (m) => {
      const marker = markerOf(m);
      const result = meter.onMessage(marker === 0 ? config.size : 1, marker);
      if (result !== undefined) {
        process.send!({ result });
        process.disconnect();
      }
    });
  } else {
    process.on('message', (m) => {
      if (m === 'end') process.disconnect();
      else process.send!(m);
    });
  }
}

async function parent(config: ScenarioConfig): Promise<void> {
  const peer = fork(fileURLToPath(import.meta.url), ['child', JSON.stringify(config)], {
    serialization: config.serialization ?? 'json',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const payload = payloadOf(config.size);
  const result =
    config.mode === 'one-way' ? await oneWay(peer, config, payload) : await roundTrip(peer, config, payload);
  report(result);
  if (peer.connected) peer.disconnect();
}

async function oneWay(peer: ChildProcess, config: ScenarioConfig, payload: Buffer): Promise<RunResult> {
  const result = new Promise<RunResult>((resolve) =>
    peer.on('message', (m: { result: RunResult }) => resolve(m.result)),
  );
  const limit = Math.max(8, Math.floor(IN_FLIGHT_BYTES / config.size));
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const written = (): void => {
    inFlight--;
    if (wake !== undefined && inFlight <= limit / 2) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  const send = (m: unknown): undefined | Promise<void> => {
    inFlight++;
    peer.send(m as Buffer, written);
    if (inFlight < limit) return undefined;
    return new Promise<void>((r) => {
      wake = r;
    });
  };
  await streamFor(
    config,
    () => send(payload),
    (marker) => send(marker[0] === START ? 'start' : 'end'),
  );
  return result;
}

async function roundTrip(peer: ChildProcess, config: ScenarioConfig, payload: Buffer): Promise<RunResult> {
  let answer: (() => void) | undefined;
  peer.on('message', () => {
    const a = answer;
    answer = undefined;
    a?.();
  });
  const result = await pingFor(
    config,
    () =>
      new Promise<void>((resolve) => {
        answer = resolve;
        peer.send(payload);
      }),
  );
  peer.send('end');
  return result;
}

const { role, config } = workerArgs();
if (role === 'child') child(config);
else if (role === 'parent') await parent(config);
else throw new Error(`unknown role ${role}`);
