import { MESSAGE_OVERHEAD, type MemoryBudget } from './message-store.js';
import type { Timer } from './timer.js';
import { startTimer } from './timer.js';

/**
 * Send credits on one mailbox and the rounds that take them back.
 *
 * A credit is a promise made to one sender: `slots` free places of the
 * mailbox (they count as taken for everyone else) and `bytes` of the memory
 * budget. Within credit a sender sends without a round trip and without an
 * answer, so the kernel must accept every credited send it was promised.
 *
 * State, all explicit:
 * - `holders`: each session's unspent credit, as the kernel counts it (the
 *   client's own count is never trusted).
 * - `round`: a revocation in progress: its `epoch`, the holders that still owe
 *   an answer, and a deadline. No credit is granted during a round.
 * - `barred`: sessions that get no credit here until they return what they
 *   hold: they lost the send right, or let a round's deadline pass (a stuck or
 *   merely busy event loop).
 * - a holder's `voided` slots: taken back at a deadline and given to the
 *   mailbox; the holder's credited sends already on the wire spend them and
 *   enter past the capacity. That is the one way a mailbox exceeds its
 *   capacity, by at most one credit window per sender that missed a deadline.
 *
 * Transitions: `grant` (no round, not barred) -> `revoke` opens a round: REVOKE
 * with the epoch to every holder of slots -> `returned(s, epoch)` drops the
 * holder's credit and takes it out of the round (a return always hands back
 * everything, so a holder that returns unasked owes nothing either; only a
 * matching epoch is an answer, which is what the epoch on the wire records)
 * -> the round ends when nobody owes, or at the deadline, which voids what
 * the silent holders had. `drop(s)` when a session closes its handle or ends.
 */

export interface Credit {
  slots: number;
  bytes: number;
  /** Slots voided at a deadline that late credited sends may still spend. */
  voided: number;
}

export interface CreditHolder {
  sendCredit(mailboxId: number, slots: number, bytes: number): void;
  sendRevoke(mailboxId: number, epoch: number): void;
}

/** What a credit book needs from its mailbox. */
export interface CreditEnv<S extends CreditHolder> {
  readonly mailboxId: number;
  readonly budget: MemoryBudget;
  /** How long a holder may take to answer REVOKE. */
  readonly revokeTimeout: number;
  /** Promise up to n free slots; returns how many. */
  reserve(n: number): number;
  /** Free promised slots again (admits waiting senders). */
  unreserve(n: number): void;
  /** A round ended: settle what waited for it. */
  roundEnded(): void;
  /** A holder missed the deadline (for the record; it is barred). */
  missed?(holder: S): void;
}

export type Spend = 'credit' | 'over' | 'none';

interface Round<S> {
  readonly epoch: number;
  readonly awaiting: Set<S>;
  timer: Timer | undefined;
}

export class CreditBook<S extends CreditHolder> {
  readonly holders = new Map<S, Credit>();
  readonly barred = new Set<S>();
  private round: Round<S> | undefined;
  private epoch = 0;

  constructor(private readonly env: CreditEnv<S>) {}

  get revoking(): boolean {
    return this.round !== undefined;
  }

  /**
   * Top `s` up to `window` slots and `maxBytes` bytes (taking at most
   * `bytesRoom` from the budget) if it is running low. Returns false if
   * nothing was granted.
   */
  grant(
    s: S,
    window: number,
    lowWater: number,
    maxBytes: number,
    lowBytes: number,
    bytesRoom: number,
  ): boolean {
    if (this.round !== undefined || this.barred.has(s) || window <= 0) return false;
    const c = this.holders.get(s) ?? { slots: 0, bytes: 0, voided: 0 };
    if (c.slots > lowWater && c.bytes >= lowBytes) return false;
    if (bytesRoom <= 0) return false;
    // The room pays for the bytes and for a record per slot: half each at most.
    const bytes = Math.max(0, Math.min(maxBytes - c.bytes, Math.floor(bytesRoom / 2)));
    const slotRoom = Math.floor((bytesRoom - bytes) / MESSAGE_OVERHEAD);
    const slots = this.env.reserve(Math.max(0, Math.min(window - c.slots, slotRoom)));
    if (slots === 0 && bytes === 0) return false;
    c.slots += slots;
    c.bytes += bytes;
    // Each slot will cost a message record too: reserve it with the bytes, so credited sends fit.
    this.env.budget.reserved += bytes + slots * MESSAGE_OVERHEAD;
    this.holders.set(s, c);
    s.sendCredit(this.env.mailboxId, slots, bytes);
    return true;
  }

  /** A credited send of `size` bytes from `s`: spend a slot (or a voided one) and the bytes. */
  spend(s: S, size: number): Spend {
    const c = this.holders.get(s);
    if (c === undefined || c.bytes < size) return 'none';
    let how: Spend;
    if (c.slots > 0) {
      c.slots--;
      how = 'credit';
    } else if (c.voided > 0) {
      c.voided--;
      how = 'over';
    } else {
      return 'none';
    }
    c.bytes -= size;
    this.env.budget.reserved -= size + MESSAGE_OVERHEAD;
    return how;
  }

  /**
   * Ask holders of slots to give them back (a sender waits for room). With
   * `only`, ask just that holder and bar it (it lost the send right).
   */
  revoke(only?: S): void {
    if (only !== undefined) {
      this.barred.add(only);
      const c = this.holders.get(only);
      if (c === undefined) return;
      if (c.slots === 0) {
        // Bytes alone cannot be spent; without voided slots in flight nothing is owed.
        if (c.voided === 0) this.release(only);
        return;
      }
      if (this.round !== undefined) {
        if (!this.round.awaiting.has(only)) {
          this.round.awaiting.add(only);
          only.sendRevoke(this.env.mailboxId, this.round.epoch);
        }
        return;
      }
      this.open([only]);
      return;
    }
    if (this.round !== undefined) return;
    const owing: S[] = [];
    for (const [holder, c] of this.holders) if (c.slots > 0) owing.push(holder);
    if (owing.length === 0) {
      this.env.roundEnded();
      return;
    }
    this.open(owing);
  }

  /** CREDIT_RETURN from `s` answering round `epoch` (0 or stale: unasked). */
  returned(s: S, epoch: number): void {
    const round = this.round;
    this.release(s);
    // A holder that missed a deadline has answered now: its late sends are behind it, it may hold
    // credit again (a lost send right is checked at every grant, not here).
    this.barred.delete(s);
    if (round === undefined) return;
    // A return hands everything back, so `s` owes nothing now whichever round it answered.
    if (round.awaiting.delete(s) || epoch === round.epoch) this.endIfSettled();
  }

  /** `s` closed its handle or ended: its credits come back and it owes nothing. */
  drop(s: S): void {
    this.release(s);
    this.barred.delete(s);
    if (this.round?.awaiting.delete(s)) this.endIfSettled();
  }

  /** The mailbox is gone: give every reservation back to the budget. */
  clear(): void {
    for (const c of this.holders.values()) this.env.budget.reserved -= reservation(c);
    this.holders.clear();
    this.barred.clear();
    this.round?.timer?.clear();
    this.round = undefined;
  }

  private open(owing: S[]): void {
    const epoch = ++this.epoch;
    if (this.epoch >= 0xffffffff) this.epoch = 0;
    const round: Round<S> = { epoch, awaiting: new Set(owing), timer: undefined };
    this.round = round;
    for (const s of owing) s.sendRevoke(this.env.mailboxId, epoch);
    round.timer = startTimer(this.env.revokeTimeout, () => this.deadline(round));
  }

  private deadline(round: Round<S>): void {
    if (this.round !== round) return;
    for (const s of round.awaiting) {
      const c = this.holders.get(s);
      if (c !== undefined && c.slots > 0) {
        c.voided += c.slots;
        const n = c.slots;
        c.slots = 0;
        this.env.unreserve(n);
      }
      this.barred.add(s);
      this.env.missed?.(s);
    }
    round.awaiting.clear();
    this.endIfSettled();
  }

  private endIfSettled(): void {
    const round = this.round;
    if (round === undefined || round.awaiting.size > 0) return;
    round.timer?.clear();
    this.round = undefined;
    this.env.roundEnded();
  }

  private release(s: S): void {
    const c = this.holders.get(s);
    if (c === undefined) return;
    this.holders.delete(s);
    this.env.budget.reserved -= reservation(c);
    if (c.slots > 0) this.env.unreserve(c.slots);
  }
}

/** What a credit holds of the budget: its bytes and a record's worth per slot (voided ones too). */
function reservation(c: Credit): number {
  return c.bytes + (c.slots + c.voided) * MESSAGE_OVERHEAD;
}
