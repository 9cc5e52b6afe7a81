/**
 * What the well-behaved pair (pair-client.ts, its own process) and the
 * harness say to each other over the IPC channel, and the names the pair
 * uses (the generator aims hostile inputs at them).
 */

export const PAIR_A = 'fuzz-pair-a';
export const PAIR_B = 'fuzz-pair-b';
export const PAIR_MAILBOX = 'fuzz-pair';
/** A rendezvous (capacity 0) mailbox with the same rights. */
export const PAIR_RENDEZVOUS = 'fuzz-pair-rv';

export type Stream = 'mailbox' | 'rendezvous' | 'direct';

/** The pair's targets in the order `ready` reports their ids (hostile inputs pick among them). */
export const PAIR_TARGETS = [PAIR_MAILBOX, PAIR_RENDEZVOUS, `@${PAIR_A}`, `@${PAIR_B}`] as const;
/** The pair's processes in the order `ready` reports their pids. */
export const PAIR_PROCESSES = [PAIR_A, PAIR_B] as const;

/** Pair -> harness. */
export type PairReport =
  /** targets: ids of PAIR_TARGETS, in that order; pids: of PAIR_PROCESSES. */
  | { type: 'ready'; targets: number[]; pids: number[] }
  | { type: 'progress'; sent: number; received: number; retries: number; foreign: number }
  | { type: 'violation'; kind: string; detail: string }
  | { type: 'done'; sent: Record<Stream, number>; received: Record<Stream, number>; foreign: number };

/** Harness -> pair: stop sending, drain, report `done`, exit. */
export interface PairCommand {
  type: 'stop';
}
