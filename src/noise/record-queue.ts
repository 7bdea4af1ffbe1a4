import { FifoQueue } from '../queue/fifo-queue.js';

/**
 * FIFO of plaintext records with a byte bound: `push` waits while the bound is reached, which is
 * how `send` feels backpressure from the Noise pipeline and the raw sink.
 */
export class RecordQueue {
  private readonly queued = new FifoQueue<Uint8Array>((record) => record.byteLength);
  private ended = false;
  private failure: Error | undefined;
  private wakeConsumer: (() => void) | undefined;
  private spaceWaiters: Array<() => void> = [];

  constructor(private readonly capacityBytes: number) {}

  async push(record: Uint8Array, options: { unbounded?: boolean } = {}): Promise<void> {
    while (
      this.failure === undefined &&
      options.unbounded !== true &&
      this.queued.byteLength > 0 &&
      this.queued.byteLength + record.byteLength > this.capacityBytes
    ) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) throw new Error('record queue already ended');
    this.queued.push(record);
    this.notifyConsumer();
  }

  /** No more records: the consumer ends after taking the queued ones. */
  end(): void {
    this.ended = true;
    this.notifyConsumer();
  }

  /** Drops queued records; pending and future pushes reject with `error`; the consumer ends. */
  fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.queued.clear();
    this.notifySpace();
    this.notifyConsumer();
  }

  /**
   * Yields the queued bytes as Noise records: a large record as is, consecutive small ones
   * coalesced up to `maxRecordBytes` (fewer, fuller Noise messages for bursts of small messages).
   */
  async *records(maxRecordBytes: number): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.failure !== undefined) return;
      const first = this.take();
      if (first !== undefined) {
        let next = this.queued.peek();
        if (next === undefined || first.byteLength + next.byteLength > maxRecordBytes) {
          yield first;
          continue;
        }
        const parts = [first];
        let size = first.byteLength;
        while (next !== undefined && size + next.byteLength <= maxRecordBytes) {
          parts.push(next);
          size += next.byteLength;
          this.take();
          next = this.queued.peek();
        }
        yield Buffer.concat(parts, size);
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
    }
  }

  private take(): Uint8Array | undefined {
    const record = this.queued.shift();
    if (record !== undefined) this.notifySpace();
    return record;
  }

  private notifyConsumer(): void {
    const wake = this.wakeConsumer;
    this.wakeConsumer = undefined;
    wake?.();
  }

  private notifySpace(): void {
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const wake of waiters) wake();
  }
}
