import { IpcError } from '../errors.js';
import type { ProcessInfo } from '../wire/info-types.js';
import type { Session } from './session.js';
import { startTimer, type Timer } from './timer.js';

/**
 * `process.wait` calls parked until a process of the name completes its
 * handshake: the startup race of "send to bob before bob has connected"
 * solved in the kernel, without clients polling.
 *
 * Invariants:
 * - A parked wait is in `byName` (under its name) and in `bySession` (under
 *   its session and request id), or in neither. It leaves both exactly once:
 *   answered (RESULT when the name is bound, ERROR TIMEOUT or ABORTED), or
 *   dropped without an answer when its own session ends.
 * - At most MAX_PROCESS_WAITS are parked per session; beyond it the call is
 *   refused KERNEL_FULL, so no client can make the kernel keep unbounded state.
 * - Every timed wait has a kernel timer, cleared whenever the wait leaves.
 */

/** Most `process.wait` calls one session may have parked. */
export const MAX_PROCESS_WAITS = 1024;

interface ProcessWait {
  readonly session: Session;
  readonly reqId: number;
  readonly name: string;
  timer: Timer | undefined;
}

export class ProcessWaits {
  private readonly byName = new Map<string, Set<ProcessWait>>();
  private readonly bySession = new Map<Session, Map<number, ProcessWait>>();
  private count = 0;

  constructor(private readonly describe: (s: Session) => ProcessInfo) {}

  /** Waits parked across all sessions. */
  get size(): number {
    return this.count;
  }

  /** Whether `s` has a wait parked under request id `reqId` (a request id may not be reused while it is). */
  has(s: Session, reqId: number): boolean {
    return this.bySession.get(s)?.has(reqId) === true;
  }

  /** Park a wait for `name`, answered TIMEOUT after `timeout` ms unless the name is bound first. */
  park(s: Session, reqId: number, name: string, timeout: number | undefined): void {
    let mine = this.bySession.get(s);
    if ((mine?.size ?? 0) >= MAX_PROCESS_WAITS) {
      throw new IpcError(
        'KERNEL_FULL',
        `${s.name} has ${MAX_PROCESS_WAITS} process waits parked: wait for ${name} refused`,
      );
    }
    const w: ProcessWait = { session: s, reqId, name, timer: undefined };
    if (mine === undefined) {
      mine = new Map();
      this.bySession.set(s, mine);
    }
    mine.set(reqId, w);
    let waiting = this.byName.get(name);
    if (waiting === undefined) {
      waiting = new Set();
      this.byName.set(name, waiting);
    }
    waiting.add(w);
    this.count++;
    if (timeout !== undefined) {
      w.timer = startTimer(timeout, () => {
        this.remove(w);
        s.sendError(reqId, 'TIMEOUT', `no process named ${name} connected within ${timeout} ms`);
      });
    }
  }

  /** A process completed its handshake: every wait for its name is answered with it. */
  bound(s: Session): void {
    const waiting = this.byName.get(s.name);
    if (waiting === undefined) return;
    const info = this.describe(s);
    for (const w of [...waiting]) {
      this.remove(w);
      w.session.sendResult(w.reqId, info);
    }
  }

  /**
   * A process of `name` connected on another node: its waits leave this kernel unanswered, for
   * the caller to forward to that node (which answers at once).
   */
  takeAll(name: string): { session: Session; reqId: number }[] {
    const waiting = this.byName.get(name);
    if (waiting === undefined) return [];
    const out = [...waiting].map((w) => ({ session: w.session, reqId: w.reqId }));
    for (const w of [...waiting]) this.remove(w);
    return out;
  }

  /** CANCEL: withdraw a parked wait (answered ABORTED); false if `reqId` names none. */
  cancel(s: Session, reqId: number): boolean {
    const w = this.bySession.get(s)?.get(reqId);
    if (w === undefined) return false;
    this.remove(w);
    s.sendError(reqId, 'ABORTED', `wait for ${w.name} aborted`);
    return true;
  }

  /** The session ended: its waits go unanswered (there is no one left to answer). */
  drop(s: Session): void {
    const mine = this.bySession.get(s);
    if (mine === undefined) return;
    for (const w of [...mine.values()]) this.remove(w);
  }

  private remove(w: ProcessWait): void {
    w.timer?.clear();
    w.timer = undefined;
    const mine = this.bySession.get(w.session);
    if (mine?.get(w.reqId) !== w) return;
    mine.delete(w.reqId);
    if (mine.size === 0) this.bySession.delete(w.session);
    const waiting = this.byName.get(w.name);
    waiting?.delete(w);
    if (waiting?.size === 0) this.byName.delete(w.name);
    this.count--;
  }
}
