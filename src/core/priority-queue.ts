import { Deque } from './deque.js';

/** Priorities run 0..31; higher is served first, FIFO within one priority. */
export const MIN_PRIORITY = 0;
export const MAX_PRIORITY = 31;
export const PRIORITY_LEVELS = 32;

export interface Prioritized {
  readonly priority: number;
}

/** Levels index an array: a priority outside 0..31 must never reach one (the kernel validates first). */
function checkedPriority(p: number): number {
  if (!Number.isInteger(p) || p < MIN_PRIORITY || p > MAX_PRIORITY) {
    throw new RangeError(`priority ${p} is out of range ${MIN_PRIORITY}..${MAX_PRIORITY}`);
  }
  return p;
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
    const p = checkedPriority(item.priority);
    this.levels[p]!.push(item);
    this.nonEmpty |= 1 << p;
    this.length++;
  }

  /** Put an item back at the front of its priority (redelivery keeps its place). */
  unshift(item: T): void {
    const p = checkedPriority(item.priority);
    this.levels[p]!.unshift(item);
    this.nonEmpty |= 1 << p;
    this.length++;
  }

  /**
   * Put an item back in its priority where `before` says it belongs: ahead of
   * the first item `before(item, other)` holds for (redelivery in accept order).
   * Scans from the front, so giving back the oldest message is O(1).
   */
  insertBy(item: T, before: (item: T, other: T) => boolean): void {
    const p = checkedPriority(item.priority);
    const level = this.levels[p]!;
    let i = 0;
    while (i < level.length && !before(item, level.at(i) as T)) i++;
    level.insertAt(i, item);
    this.nonEmpty |= 1 << p;
    this.length++;
  }

  /** Remove one item (identity); true if it was queued. O(n) in its priority: for withdrawals, not hot paths. */
  remove(item: T): boolean {
    const p = item.priority;
    if (p < 0 || p >= PRIORITY_LEVELS) return false;
    const level = this.levels[p]!;
    if (!level.remove(item)) return false;
    if (level.length === 0) this.nonEmpty &= ~(1 << p);
    this.length--;
    return true;
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
