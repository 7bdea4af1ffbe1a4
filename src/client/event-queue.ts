import type { ClientProcessEvent } from './process-events.js';

function costOf(event: ClientProcessEvent): number {
  return event.type === 'output' ? event.chunk.length + 64 : 64;
}

/**
 * The bounded buffer between a process's tracker and the one consumer of its `events` iterable.
 * `offer` refuses an event when the buffer is full; the tracker then falls back to
 * `process/read` once the consumer has drained it to half, signalled through `onDrained`.
 */
export class EventQueue implements AsyncIterable<ClientProcessEvent> {
  private readonly items: ClientProcessEvent[] = [];
  private head = 0;
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private iterating = false;

  constructor(
    readonly capacityBytes: number,
    private readonly onDrained: () => void,
  ) {}

  get bufferedBytes(): number {
    return this.bytes;
  }

  /** Adds an event unless that would pass the capacity (one event is always accepted when empty). */
  offer(event: ClientProcessEvent): boolean {
    const cost = costOf(event);
    if (this.bytes > 0 && this.bytes + cost > this.capacityBytes) return false;
    this.items.push(event);
    this.bytes += cost;
    this.wake?.();
    return true;
  }

  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ClientProcessEvent> {
    if (this.iterating) throw new Error('process events can be iterated only once');
    this.iterating = true;
    for (;;) {
      if (this.head < this.items.length) {
        const event = this.items[this.head]!;
        this.items[this.head] = undefined as unknown as ClientProcessEvent;
        this.head++;
        if (this.head > 1024 && this.head * 2 > this.items.length) {
          this.items.splice(0, this.head);
          this.head = 0;
        }
        this.bytes -= costOf(event);
        if (this.bytes * 2 <= this.capacityBytes) this.onDrained();
        yield event;
        continue;
      }
      if (this.ended) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
