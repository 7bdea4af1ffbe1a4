import { FifoQueue } from '../queue/fifo-queue.js';

/**
 * Whole messages received in order but not yet consumed by the local reader. Its byte count is
 * part of the receive budget, so a slow reader slows the peer down instead of growing memory.
 * Consumed either by draining it into listeners ({@link DeliveryQueue.drain}) or by iterating it
 * once as an async iterable (the duplex source).
 */
export class DeliveryQueue implements AsyncIterable<Uint8Array> {
  private readonly queued = new FifoQueue<Uint8Array>((message) => message.length);
  private ended = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;
  private iterated = false;

  /** @param onConsumed called after messages leave the queue (room may have opened). */
  constructor(private readonly onConsumed: () => void) {}

  /** Bytes of queued messages. */
  get bufferedBytes(): number {
    return this.queued.byteLength;
  }

  /** Appends a message. Ignored once ended or failed. */
  push(message: Uint8Array): void {
    if (this.ended || this.failure !== undefined) return;
    this.queued.push(message);
    this.wake();
  }

  /** No more messages: the iteration ends after the queued ones. */
  end(): void {
    this.ended = true;
    this.wake();
  }

  /** The iteration throws `error` at once; queued messages are discarded. */
  fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.queued.clear();
    this.wake();
  }

  /** Removes and returns every queued message. */
  drain(): Uint8Array[] {
    const drained = this.queued.drain();
    if (drained.length > 0) this.onConsumed();
    return drained;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) throw new Error('DeliveryQueue can be iterated only once');
    this.iterated = true;
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const message = this.queued.shift();
      if (message !== undefined) {
        this.onConsumed();
        yield message;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
