/**
 * Barrier: a cyclic barrier for a fixed number of parties in shared memory,
 * usable from any process or thread that maps the same segment.
 *
 * Layout (8 bytes, 4-byte aligned):
 *   +0  state    i32  generation (bits 16-31, wrapping) << 16 | arrived
 *                     (bits 0-15): parties waiting in the current
 *                     generation. The futex word. Written by arriving
 *                     parties (CAS arrived+1, or CAS to (gen+1, 0) by the
 *                     last one) and by parties withdrawing on timeout/abort
 *                     (CAS arrived-1 within the same generation).
 *   +4  parties  i32  set by init(), read-only afterwards.
 *
 * Contract:
 * - wait({timeout, signal}) / waitSync(timeoutMs): arrive and wait until
 *   `parties` parties have arrived in this generation; then all of them
 *   return and the barrier is ready for the next generation. Exactly one
 *   party per generation (the last to arrive, which released the others)
 *   gets `true`, the rest `false` (pthread's "serial thread").
 * - Timeout/abort withdraws the party (its arrival is undone), so the
 *   barrier stays usable and the others keep waiting. Generation and count
 *   share one word, so the withdrawal CAS cannot take back an arrival from a
 *   later generation; if the generation completed first, the call returns
 *   normally instead of throwing (the release is never lost).
 * - No lost wakeups: the last party changes the word before waking, and a
 *   parker sleeps only while the word still holds the value it saw.
 * - A party that dies after arriving counts as arrived (the generation may
 *   complete without it); one that dies before arriving stalls the
 *   generation: timeouts are the way out. Parties: 1..65535. The generation
 *   wraps at 2^16, harmless since every generation needs every party.
 * - There is no try form: arriving is not an operation that "would block"
 *   and could be retried without side effects.
 */
import { IpcError, TimeoutError } from '../errors.js';
import {
  DEFAULT_SPIN,
  deadlineAfter,
  futexWaitAsync,
  futexWaitSync,
  futexWake,
  remaining,
  throwIfAborted,
  type WaitOptions,
} from './futex.js';
import { checkInteger, wordsAt } from './layout-checks.js';

const STATE = 0;
const PARTIES = 1;
const WORDS = 2;

const COUNT_MASK = 0xffff;
const MAX_PARTIES = 0xffff;
const WAKE_ALL = 0x7fffffff;

export class Barrier {
  static readonly BYTES = WORDS * 4;

  readonly #w: Int32Array;
  readonly #parties: number;

  /** Attach to a barrier already initialised at `byteOffset`. */
  constructor(buffer: SharedArrayBuffer, byteOffset: number) {
    this.#w = wordsAt(buffer, byteOffset, WORDS, 'Barrier');
    this.#parties = Atomics.load(this.#w, PARTIES);
    if (this.#parties < 1 || this.#parties > MAX_PARTIES)
      throw new IpcError('INVALID_ARGUMENT', `no initialised Barrier at offset ${byteOffset}`);
  }

  /** Initialise for `parties` parties (once, before anyone waits) and attach. */
  static init(buffer: SharedArrayBuffer, byteOffset: number, parties: number): Barrier {
    checkInteger(parties, 1, MAX_PARTIES, 'parties');
    const w = wordsAt(buffer, byteOffset, WORDS, 'Barrier');
    Atomics.store(w, STATE, 0);
    Atomics.store(w, PARTIES, parties);
    return new Barrier(buffer, byteOffset);
  }

  get parties(): number {
    return this.#parties;
  }

  /** Parties waiting in the current generation (a snapshot). */
  get arrived(): number {
    return Atomics.load(this.#w, STATE) & COUNT_MASK;
  }

  /** Generation number (wraps at 2^16; a snapshot). */
  get generation(): number {
    return Atomics.load(this.#w, STATE) >>> 16;
  }

  /** Arrive and block this thread until every party has arrived. */
  waitSync(timeoutMs: number = Number.POSITIVE_INFINITY): boolean {
    const deadline = deadlineAfter(timeoutMs);
    const arrival = this.#arrive();
    if (arrival === true) return true;
    const w = this.#w;
    const gen = arrival;
    for (let i = 0; ; i++) {
      const v = Atomics.load(w, STATE);
      if (v >>> 16 !== gen) return false;
      if (i < DEFAULT_SPIN) continue;
      const left = remaining(deadline);
      if (left === 0) {
        if (this.#withdraw(gen)) throw new TimeoutError('barrier wait timed out');
        return false;
      }
      futexWaitSync(w, STATE, v, left);
    }
  }

  /** Arrive and wait, without blocking the event loop, until every party has arrived. */
  async wait(options: WaitOptions = {}): Promise<boolean> {
    const { signal } = options;
    throwIfAborted(signal);
    const deadline = deadlineAfter(options.timeout);
    const arrival = this.#arrive();
    if (arrival === true) return true;
    const w = this.#w;
    const gen = arrival;
    for (let i = 0; ; i++) {
      const v = Atomics.load(w, STATE);
      if (v >>> 16 !== gen) return false;
      if (i < DEFAULT_SPIN) continue;
      const left = remaining(deadline);
      try {
        if (left === 0) throw new TimeoutError('barrier wait timed out');
        await futexWaitAsync(w, STATE, v, { timeout: left, signal });
      } catch (err) {
        if (this.#withdraw(gen)) throw err;
        return false;
      }
    }
  }

  /** Count this party in; true if it completed the generation, else the generation to wait out. */
  #arrive(): true | number {
    const w = this.#w;
    let v = Atomics.load(w, STATE);
    for (;;) {
      const gen = v >>> 16;
      const arrived = (v & COUNT_MASK) + 1;
      const next = arrived === this.#parties ? ((gen + 1) & 0xffff) << 16 : (v + 1) | 0;
      const seen = Atomics.compareExchange(w, STATE, v, next);
      if (seen === v) {
        if (arrived < this.#parties) return gen;
        futexWake(w, STATE, WAKE_ALL);
        return true;
      }
      v = seen;
    }
  }

  /** Undo this party's arrival in `gen`; false if `gen` already completed (the party passed). */
  #withdraw(gen: number): boolean {
    const w = this.#w;
    let v = Atomics.load(w, STATE);
    for (;;) {
      if (v >>> 16 !== gen) return false;
      const seen = Atomics.compareExchange(w, STATE, v, (v - 1) | 0);
      if (seen === v) return true;
      v = seen;
    }
  }
}
