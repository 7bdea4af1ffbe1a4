import { FifoQueue } from '../queue/fifo-queue.js';

/**
 * FIFO of framed plaintext with a byte bound: `push` waits while the bound is reached, which is how
 * `send` feels backpressure from the Noise pipeline and the raw sink. The consumer takes it as
 * Noise records packed full: the queued bytes are one stream, cut into records of `maxRecordBytes`
 * regardless of where the pushed buffers start and end (views, never a copy).
 */
export class RecordQueue {
  private readonly queued = new FifoQueue<Uint8Array>((buffer) => buffer.byteLength);
  /** Bytes of the oldest queued buffer already handed out in a record. */
  private headOffset = 0;
  private ended = false;
  private failure: Error | undefined;
  private wakeConsumer: (() => void) | undefined;
  private spaceWaiters: Array<() => void> = [];

  constructor(private readonly capacityBytes: number) {}

  /** Bytes queued and not yet handed out in a record. */
  get queuedBytes(): number {
    return this.queued.byteLength - this.headOffset;
  }

  /** Queues `buffers` together (no record is cut between them while the consumer waits). */
  async push(buffers: Uint8Array | readonly Uint8Array[], options: { unbounded?: boolean } = {}): Promise<void> {
    const list = buffers instanceof Uint8Array ? [buffers] : buffers;
    let byteLength = 0;
    for (const buffer of list) byteLength += buffer.byteLength;
    while (
      this.failure === undefined &&
      options.unbounded !== true &&
      this.queuedBytes > 0 &&
      this.queuedBytes + byteLength > this.capacityBytes
    ) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) throw new Error('record queue already ended');
    for (const buffer of list) this.queued.push(buffer);
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
    this.headOffset = 0;
    this.notifySpace();
    this.notifyConsumer();
  }

  /**
   * Yields the queued bytes as Noise records, each the parts (views) of one record's plaintext:
   * as many bytes as are queued, up to `maxRecordBytes`. Never waits for more bytes than are there.
   */
  async *records(maxRecordBytes: number): AsyncGenerator<Uint8Array[]> {
    for (;;) {
      if (this.failure !== undefined) return;
      if (this.queued.length > 0) {
        const parts = this.take(maxRecordBytes);
        this.notifySpace();
        if (parts.length > 0) yield parts;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
    }
  }

  /** Takes up to `maxBytes` from the front, cutting the last buffer taken if it does not fit. */
  private take(maxBytes: number): Uint8Array[] {
    const parts: Uint8Array[] = [];
    let size = 0;
    while (size < maxBytes) {
      const head = this.queued.peek();
      if (head === undefined) break;
      const take = Math.min(head.byteLength - this.headOffset, maxBytes - size);
      if (take > 0) {
        parts.push(this.headOffset === 0 && take === head.byteLength ? head : head.subarray(this.headOffset, this.headOffset + take));
        size += take;
        this.headOffset += take;
      }
      if (this.headOffset === head.byteLength) {
        this.queued.shift();
        this.headOffset = 0;
      }
    }
    return parts;
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
