import { Deque } from './deque.js';

/** Priorities run 0..31; higher is served first, FIFO within one priority. */
export const MIN_PRIORITY = 0;
export const MAX_PRIORITY = 31;
export const PRIORITY_LEVELS = 32;

export interface Prioritized {
  readonly priority: number;
}

/**
 * 32 FIFO deques plus a bitmap of the non-empty ones, so finding the highest
 * non-empty priority is one `Math.clz32`. Bit p of `nonEmpty` is set iff
 * `levels[p]` holds at least one element.
 */
export class PriorityQueue<T extends Prioritized> {
  private readonly levels: Deque<T>[] = [];
  private nonEmpty = 0;
  length = 0;

  constructor() {
    for (let p = 0; p < PRIORITY_LEVELS; p++) this.levels.push(new Deque<T>(4));
  }

  push(item: T): void {
    const p = item.priority;
    this.levels[p]!.push(item);
    this.nonEmpty |= 1 << p;
    this.length++;
  }

  /** Put an item back at the front of its priority (redelivery keeps its place). */
  unshift(item: T): void {
    const p = item.priority;
    this.levels[p]!.unshift(item);
    this.nonEmpty |= 1 << p;
    this.length++;
  }

  peek(): T | undefined {
    if (this.nonEmpty === 0) return undefined;
    return this.levels[31 - Math.clz32(this.nonEmpty)]!.peek();
  }

  shift(): T | undefined {
    if (this.nonEmpty === 0) return undefined;
    const p = 31 - Math.clz32(this.nonEmpty);
    const level = this.levels[p]!;
    const item = level.shift();
    if (level.length === 0) this.nonEmpty &= ~(1 << p);
    this.length--;
    return item;
  }

  /** Remove and return the first item, in delivery order, that satisfies `match`. */
  takeFirst(match: (item: T) => boolean): T | undefined {
    for (let p = PRIORITY_LEVELS - 1; p >= 0; p--) {
      if ((this.nonEmpty & (1 << p)) === 0) continue;
      const level = this.levels[p]!;
      for (let i = 0; i < level.length; i++) {
        const item = level.at(i) as T;
        if (match(item)) {
          level.removeAt(i);
          if (level.length === 0) this.nonEmpty &= ~(1 << p);
          this.length--;
          return item;
        }
      }
    }
    return undefined;
  }

  /** All items in delivery order (highest priority first, FIFO within). */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let p = PRIORITY_LEVELS - 1; p >= 0; p--) yield* this.levels[p]!;
  }

  clear(): T[] {
    const out: T[] = [...this];
    for (const level of this.levels) level.clear();
    this.nonEmpty = 0;
    this.length = 0;
    return out;
  }
}
