import type { ByteDuplex } from '../../src/transport/byte-duplex.js';

/** Rewrites a chunk travelling through a memory pipe (e.g. to flip a bit, like a malicious relay). */
export type ChunkTamper = (chunk: Uint8Array, index: number) => Uint8Array;

/** One end of an in-memory duplex pair, with hooks for tests to observe it. */
export interface MemoryDuplexEnd extends ByteDuplex {
  /** Resolves when this end's sink has ended (its source ran out or was stopped). */
  readonly sinkEnded: Promise<void>;
  /** True once this end's source was stopped by its reader (`return()`). */
  readonly sourceStopped: boolean;
  /** Bytes written into this end's sink so far. */
  readonly bytesWritten: number;
  /** What the source given to this end's sink threw (how a writer asks a reliable stream to reset). */
  readonly sinkFailure: unknown;
  /** Makes this end's source throw `error` (like a reset reliable stream). */
  failSource(error: Error): void;
}

export interface MemoryDuplexOptions {
  /** Rewrites chunks written by end A before end B reads them. */
  tamperAToB?: ChunkTamper;
  /** Rewrites chunks written by end B before end A reads them. */
  tamperBToA?: ChunkTamper;
  /** Chunks a pipe holds before the writer waits (backpressure). Default 8. */
  capacityChunks?: number;
}

/**
 * Two connected ByteDuplex ends: what A's sink consumes B's source yields, and the reverse. Chunks
 * are copied (as a network would) and each direction is bounded, so a writer feels backpressure.
 */
export function createMemoryDuplexPair(options: MemoryDuplexOptions = {}): [MemoryDuplexEnd, MemoryDuplexEnd] {
  const capacity = options.capacityChunks ?? 8;
  const aToB = new MemoryPipe(capacity, options.tamperAToB);
  const bToA = new MemoryPipe(capacity, options.tamperBToA);
  return [new MemoryEnd(bToA, aToB), new MemoryEnd(aToB, bToA)];
}

class MemoryEnd implements MemoryDuplexEnd {
  readonly source: AsyncIterable<Uint8Array>;
  readonly sinkEnded: Promise<void>;
  sinkFailure: unknown;
  private resolveSinkEnded: () => void = () => undefined;

  constructor(
    private readonly incoming: MemoryPipe,
    private readonly outgoing: MemoryPipe,
  ) {
    this.source = { [Symbol.asyncIterator]: () => incoming.reader() };
    this.sinkEnded = new Promise((resolve) => {
      this.resolveSinkEnded = resolve;
    });
  }

  get sourceStopped(): boolean {
    return this.incoming.readerStopped;
  }

  get bytesWritten(): number {
    return this.outgoing.bytesWritten;
  }

  failSource(error: Error): void {
    this.incoming.fail(error);
  }

  sink = async (source: AsyncIterable<Uint8Array>): Promise<void> => {
    try {
      for await (const chunk of source) await this.outgoing.push(chunk);
    } catch (error) {
      this.sinkFailure = error;
      throw error;
    } finally {
      this.outgoing.end();
      this.resolveSinkEnded();
    }
  };
}

class MemoryPipe {
  readerStopped = false;
  bytesWritten = 0;
  private readonly queue: Uint8Array[] = [];
  private ended = false;
  private failure: Error | undefined;
  private chunkIndex = 0;
  private wakeReader: (() => void) | undefined;
  private wakeWriter: (() => void) | undefined;

  constructor(
    private readonly capacity: number,
    private readonly tamper: ChunkTamper | undefined,
  ) {}

  async push(chunk: Uint8Array): Promise<void> {
    while (this.queue.length >= this.capacity && !this.readerStopped) {
      await new Promise<void>((resolve) => {
        this.wakeWriter = resolve;
      });
    }
    this.bytesWritten += chunk.byteLength;
    if (this.readerStopped || this.ended) return;
    const copy = Uint8Array.from(chunk);
    this.queue.push(this.tamper ? this.tamper(copy, this.chunkIndex) : copy);
    this.chunkIndex++;
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(error: Error): void {
    this.failure = error;
    this.wake();
  }

  reader(): AsyncIterator<Uint8Array> {
    return {
      next: async () => {
        for (;;) {
          if (this.readerStopped) return { done: true, value: undefined };
          if (this.failure) throw this.failure;
          const chunk = this.queue.shift();
          if (chunk !== undefined) {
            const wakeWriter = this.wakeWriter;
            this.wakeWriter = undefined;
            wakeWriter?.();
            return { done: false, value: chunk };
          }
          if (this.ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => {
            this.wakeReader = resolve;
          });
        }
      },
      return: async () => {
        this.readerStopped = true;
        this.queue.length = 0;
        this.wake();
        return { done: true, value: undefined };
      },
    };
  }

  private wake(): void {
    const reader = this.wakeReader;
    this.wakeReader = undefined;
    reader?.();
    const writer = this.wakeWriter;
    this.wakeWriter = undefined;
    writer?.();
  }
}
