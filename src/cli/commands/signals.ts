import type { IpcProcess, SignalEvent } from '../../client/process.js';
import { IpcError, TimeoutError } from '../../errors.js';
import { writeErr, writeJsonLine, writeOut } from '../output.js';
import { connectFromCli, type GlobalOptions, untilInterrupted } from './common.js';

export interface SignalsCliOptions {
  count?: number;
  follow?: boolean;
  timeout?: number;
  json?: boolean;
}

/**
 * Signals in arrival order, whether or not someone waits for them yet. A
 * wait ends with the next signal, a timeout, the abort signal, or the
 * connection's loss.
 */
class SignalQueue {
  private readonly queued: SignalEvent[] = [];
  private waiter: ((r: SignalEvent | IpcError) => void) | undefined;
  private lost: IpcError | undefined;

  constructor(p: IpcProcess) {
    p.on('signal', (e) => this.settle(e));
    p.on('disconnect', (e) => {
      this.lost = e;
      this.settle(e);
    });
  }

  private settle(r: SignalEvent | IpcError): void {
    const w = this.waiter;
    this.waiter = undefined;
    if (w !== undefined) w(r);
    else if (!(r instanceof IpcError)) this.queued.push(r);
  }

  next(timeout: number | undefined, signal: AbortSignal | undefined): Promise<SignalEvent | IpcError> {
    const first = this.queued.shift();
    if (first !== undefined) return Promise.resolve(first);
    if (this.lost !== undefined) return Promise.resolve(this.lost);
    if (signal?.aborted) return Promise.resolve(new IpcError('ABORTED', 'interrupted'));
    return new Promise((resolve) => {
      const timer =
        timeout === undefined
          ? undefined
          : setTimeout(() => done(new TimeoutError(`no signal within ${timeout} ms`)), timeout);
      const onAbort = () => done(new IpcError('ABORTED', 'interrupted'));
      const done = (r: SignalEvent | IpcError) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.waiter === done) this.waiter = undefined;
        resolve(r);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiter = done;
    });
  }
}

/**
 * Connect (as --name, or a name the kernel assigns and this prints on
 * stderr) and print the signals sent to this process: one (default), N
 * (--count), or all until SIGINT/SIGTERM (--follow, exit 0; with --timeout
 * it also ends, with 0, when none comes in time). Text: `TYPE from SENDER
 * PAYLOAD-AS-JSON`; --json: {type, from, payload} per line. Signals are not
 * acknowledged: one that arrives as stdout closes is lost.
 */
export async function signals(g: GlobalOptions, o: SignalsCliOptions): Promise<void> {
  const follow = o.follow === true;
  const count = follow ? Number.POSITIVE_INFINITY : (o.count ?? 1);
  const interrupt = follow ? untilInterrupted() : undefined;
  const p = await connectFromCli(g);
  try {
    const queue = new SignalQueue(p);
    if (g.name === undefined && !o.json) writeErr(`ipcbox: receiving signals as ${p.name}\n`);
    for (let i = 0; i < count; i++) {
      const s = await queue.next(o.timeout, interrupt?.signal);
      if (s instanceof IpcError) {
        if (follow && (s.code === 'ABORTED' || s.code === 'TIMEOUT')) return;
        throw s;
      }
      if (o.json) await writeJsonLine({ type: s.type, from: s.from, payload: s.payload });
      else await writeOut(`${s.type} from ${s.from} ${JSON.stringify(s.payload)}\n`);
    }
  } finally {
    interrupt?.done();
    await p.close();
  }
}
