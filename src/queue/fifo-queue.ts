/**
 * A first-in first-out queue that counts the bytes it holds, with O(1) amortized `push` and `shift`:
 * an array and a head index, the taken front cut off once the head passes 1024 and more than half
 * of the array. The bound is its owner's: each queue built on it decides what full means (wait,
 * refuse, evict) from {@link FifoQueue.byteLength}.
 */
export class FifoQueue<T> {
  private items: Array<T | undefined> = [];
  private head = 0;
  private bytes = 0;

  /** @param sizeOf the bytes an item counts for; the same item must always count the same. */
  constructor(private readonly sizeOf: (item: T) => number) {}

  /** Number of items held. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Bytes of the items held, as counted by `sizeOf`. */
  get byteLength(): number {
    return this.bytes;
  }

  push(item: T): void {
    this.items.push(item);
    this.bytes += this.sizeOf(item);
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.items[this.head];
  }

  /** The item `index` places after the oldest (0), or undefined past the newest. */
  at(index: number): T | undefined {
    return index < 0 ? undefined : this.items[this.head + index];
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head] as T;
    this.items[this.head] = undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.bytes -= this.sizeOf(item);
    return item;
  }

  /** Removes and returns every item, oldest first. */
  drain(): T[] {
    const drained = (this.head === 0 ? this.items : this.items.slice(this.head)) as T[];
    this.clear();
    return drained;
  }

  /** Drops every item. */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }
}
