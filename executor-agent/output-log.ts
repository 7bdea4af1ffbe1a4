import type { OutputStream } from '../src/protocol/process.js';
import { FifoQueue } from '../src/queue/fifo-queue.js';

export interface RetainedChunk {
  seq: number;
  stream: OutputStream;
  chunk: Buffer;
}

/** Default bytes of output retained per process: the newest 1 MiB. */
export const DEFAULT_RETAINED_OUTPUT_BYTES = 1024 * 1024;

/**
 * The newest output chunks of one process, bounded in bytes. Older chunks are evicted and the
 * highest evicted seq is remembered so a reader asking for them learns they are gone.
 */
export class OutputLog {
  private readonly chunks = new FifoQueue<RetainedChunk>((retained) => retained.chunk.length);
  /** Highest seq whose chunk was evicted (0: nothing evicted). */
  evictedThroughSeq = 0;

  constructor(private readonly capacityBytes: number = DEFAULT_RETAINED_OUTPUT_BYTES) {}

  get retainedBytes(): number {
    return this.chunks.byteLength;
  }

  append(chunk: RetainedChunk): void {
    this.chunks.push(chunk);
    // Keep at least the newest chunk, even alone over capacity, so nothing just produced is lost.
    while (this.chunks.byteLength > this.capacityBytes && this.chunks.length > 1) {
      const evicted = this.chunks.shift()!;
      this.evictedThroughSeq = evicted.seq;
    }
  }

  /** Retained chunks with seq > afterSeq, at most `maxBytes` of chunk data (but at least one chunk). */
  after(afterSeq: number, maxBytes: number): { chunks: RetainedChunk[]; truncated: boolean } {
    const out: RetainedChunk[] = [];
    let total = 0;
    let index = this.firstIndexAfter(afterSeq);
    for (; index < this.chunks.length; index++) {
      const chunk = this.chunks.at(index)!;
      if (out.length > 0 && total + chunk.chunk.length > maxBytes) return { chunks: out, truncated: true };
      out.push(chunk);
      total += chunk.chunk.length;
    }
    return { chunks: out, truncated: false };
  }

  private firstIndexAfter(afterSeq: number): number {
    let lo = 0;
    let hi = this.chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.chunks.at(mid)!.seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
