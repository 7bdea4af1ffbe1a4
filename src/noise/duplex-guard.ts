import type { Uint8ArrayList } from 'uint8arraylist';
import type { ByteDuplex } from '../transport/byte-duplex.js';
import type { NoiseStream } from './secure-connection-hook.js';

const STOPPED = Symbol('stopped');

/**
 * Owns the raw ByteDuplex for the channel's lifetime: presents it to libp2p-noise as the async
 * generator duplex it expects, and can stop both directions at any time, even while a read of the
 * raw source or of the outbound plaintext is pending (which an async generator's `return()` cannot).
 */
export class DuplexGuard {
  readonly noiseStream: NoiseStream;
  /** Settles when the raw sink has finished (flushed, failed or stopped). */
  readonly sinkDone: Promise<void>;
  /** Set by the channel to learn about a failing raw sink. */
  onSinkError: ((error: unknown) => void) | undefined;
  private stopped = false;
  private sinkStarted = false;
  private stopError: Error | undefined;
  private readonly stopWaiters = new Set<() => void>();
  private readonly rawSource: AsyncIterator<Uint8Array>;
  private resolveSinkDone: () => void = () => undefined;

  /** The raw duplex's zero-copy chunk allocator, or a plain allocation. */
  readonly allocateChunk: (length: number) => Uint8Array;

  constructor(private readonly raw: ByteDuplex) {
    this.allocateChunk = raw.allocateChunk ?? ((length) => Buffer.allocUnsafe(length));
    this.rawSource = raw.source[Symbol.asyncIterator]();
    this.sinkDone = new Promise((resolve) => {
      this.resolveSinkDone = resolve;
    });
    this.noiseStream = {
      source: this.guardedSource(),
      sink: (source) => this.runSink(source),
    };
  }

  /**
   * Ends the raw sink and stops reading the raw source. Idempotent. With `error` the raw sink's
   * source throws it instead of ending (a reliable stream then resets rather than closes gracefully).
   */
  stop(error?: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopError = error;
    for (const wake of this.stopWaiters) wake();
    this.stopWaiters.clear();
    // Released before libp2p-noise attached to it: still end the raw sink, with nothing in it.
    if (!this.sinkStarted) this.runSink((async function* () {})()).catch(() => undefined);
    const iterator = this.rawSource;
    void Promise.resolve()
      .then(() => iterator.return?.())
      .catch(() => undefined);
  }

  private async *guardedSource(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const result = await this.untilStopped(this.rawSource.next());
      if (result === STOPPED || result.done === true) return;
      yield result.value;
    }
  }

  private async runSink(source: AsyncGenerator<Uint8Array | Uint8ArrayList>): Promise<void> {
    this.sinkStarted = true;
    const iterator = source[Symbol.asyncIterator]();
    const guard = this;
    async function* outbound(): AsyncGenerator<Uint8Array> {
      for (;;) {
        const result = await guard.untilStopped(iterator.next());
        if (result === STOPPED && guard.stopError !== undefined) throw guard.stopError;
        if (result === STOPPED || result.done === true) return;
        const chunk = result.value;
        yield chunk instanceof Uint8Array ? chunk : chunk.subarray();
      }
    }
    try {
      await this.raw.sink(outbound());
    } catch (error) {
      if (!this.stopped) this.onSinkError?.(error);
      throw error;
    } finally {
      this.resolveSinkDone();
    }
  }

  /** Resolves like `promise`, or with STOPPED as soon as the guard is stopped. */
  private untilStopped<T>(promise: Promise<T>): Promise<T | typeof STOPPED> {
    if (this.stopped) {
      promise.catch(() => undefined);
      return Promise.resolve(STOPPED);
    }
    return new Promise((resolve, reject) => {
      const wake = (): void => resolve(STOPPED);
      this.stopWaiters.add(wake);
      promise.then(
        (value) => {
          this.stopWaiters.delete(wake);
          resolve(value);
        },
        (error: unknown) => {
          this.stopWaiters.delete(wake);
          reject(error);
        },
      );
    });
  }
}
