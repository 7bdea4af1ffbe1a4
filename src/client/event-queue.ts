import { FifoQueue } from '../queue/fifo-queue.js';
import type { ClientProcessEvent } from './process-events.js';

function costOf(event: ClientProcessEvent): number {
  return event.type === 'output' ? event.chunk.length + 64 : 64;
}

/** Hears a queue fill up to its capacity and drain back to half of it. */
export interface EventQueuePressure {
  onFull(): void;
  onDrained(): void;
}

/**
 * The bounded buffer between a process's tracker and the one consumer of its `events` iterable.
 * `push` always accepts (the tracker's owner stops reading the connection once the queue reports
 * full, so what still arrives is bounded by one read of the transport); `offer` refuses an event
 * that would pass the capacity (the read-fallback mode). Full is reported once when the capacity is
 * reached and drained once when the consumer brings it back to half. A consumer that stops
 * iterating early (`break`) abandons the queue: its events are discarded and it is never full again.
 */
export class EventQueue implements AsyncIterable<ClientProcessEvent> {
  private readonly queued = new FifoQueue<ClientProcessEvent>(costOf);
  private full = false;
  private ended = false;
  private abandoned = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private iterating = false;

  constructor(
    readonly capacityBytes: number,
    private readonly pressure: EventQueuePressure,
  ) {}

  get bufferedBytes(): number {
    return this.queued.byteLength;
  }

  get isFull(): boolean {
    return this.full;
  }

  /** Adds an event whatever the capacity; reports full when it reaches it. */
  push(event: ClientProcessEvent): void {
    if (this.abandoned) return;
    this.append(event);
    if (this.queued.byteLength >= this.capacityBytes) this.setFull();
  }

  /** Adds an event unless that would pass the capacity (one event is always accepted when empty). */
  offer(event: ClientProcessEvent): boolean {
    if (this.abandoned) return true;
    if (this.queued.byteLength > 0 && this.queued.byteLength + costOf(event) > this.capacityBytes) {
      this.setFull();
      return false;
    }
    this.append(event);
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
    let finished = false;
    try {
      for (;;) {
        const event = this.queued.shift();
        if (event !== undefined) {
          if (this.full && this.queued.byteLength * 2 <= this.capacityBytes) this.setDrained();
          yield event;
          continue;
        }
        if (this.ended) {
          finished = true;
          if (this.failure) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      }
    } finally {
      if (!finished) this.abandon();
    }
  }

  private append(event: ClientProcessEvent): void {
    this.queued.push(event);
    this.wake?.();
  }

  private abandon(): void {
    this.abandoned = true;
    this.queued.clear();
    if (this.full) this.setDrained();
  }

  private setFull(): void {
    if (this.full) return;
    this.full = true;
    this.pressure.onFull();
  }

  private setDrained(): void {
    this.full = false;
    this.pressure.onDrained();
  }
}
