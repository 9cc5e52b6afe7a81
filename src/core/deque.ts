/**
 * A growable ring-buffer deque. Queue operations in the kernel's hot path use
 * it instead of Array#shift (which is O(n) once V8 leaves its fast path).
 * Invariant: capacity is a power of two; `head` indexes the first element and
 * `length` elements follow it, wrapping around.
 */
export class Deque<T> {
  private items: (T | undefined)[];
  private head = 0;
  private mask: number;
  length = 0;

  constructor(initialCapacity = 16) {
    let cap = 4;
    while (cap < initialCapacity) cap <<= 1;
    this.items = new Array(cap);
    this.mask = cap - 1;
  }

  push(item: T): void {
    if (this.length > this.mask) this.grow();
    this.items[(this.head + this.length) & this.mask] = item;
    this.length++;
  }

  unshift(item: T): void {
    if (this.length > this.mask) this.grow();
    this.head = (this.head - 1) & this.mask;
    this.items[this.head] = item;
    this.length++;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.length--;
    return item;
  }

  peek(): T | undefined {
    return this.length === 0 ? undefined : this.items[this.head];
  }

  at(index: number): T | undefined {
    if (index < 0 || index >= this.length) return undefined;
    return this.items[(this.head + index) & this.mask];
  }

  /** Remove and return the element at `index` (0 = head), keeping the order of the rest. */
  removeAt(index: number): T | undefined {
    if (index < 0 || index >= this.length) return undefined;
    if (index === 0) return this.shift();
    const item = this.items[(this.head + index) & this.mask];
    for (let i = index; i < this.length - 1; i++) {
      this.items[(this.head + i) & this.mask] = this.items[(this.head + i + 1) & this.mask];
    }
    this.items[(this.head + this.length - 1) & this.mask] = undefined;
    this.length--;
    return item;
  }

  /** Insert `item` before the element at `index` (0 = front, length = back), keeping the order of the rest. */
  insertAt(index: number, item: T): void {
    if (index <= 0) return this.unshift(item);
    if (index >= this.length) return this.push(item);
    if (this.length > this.mask) this.grow();
    for (let i = this.length; i > index; i--) {
      this.items[(this.head + i) & this.mask] = this.items[(this.head + i - 1) & this.mask];
    }
    this.items[(this.head + index) & this.mask] = item;
    this.length++;
  }

  /** Remove the first element equal (===) to `item`; true if found. */
  remove(item: T): boolean {
    for (let i = 0; i < this.length; i++) {
      if (this.items[(this.head + i) & this.mask] === item) {
        this.removeAt(i);
        return true;
      }
    }
    return false;
  }

  clear(): T[] {
    const out: T[] = [];
    while (this.length > 0) out.push(this.shift() as T);
    return out;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.length; i++) yield this.items[(this.head + i) & this.mask] as T;
  }

  private grow(): void {
    const old = this.items;
    const oldCap = this.mask + 1;
    const next: (T | undefined)[] = new Array(oldCap * 2);
    for (let i = 0; i < this.length; i++) next[i] = old[(this.head + i) & this.mask];
    this.items = next;
    this.head = 0;
    this.mask = oldCap * 2 - 1;
  }
}
