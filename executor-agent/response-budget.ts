/**
 * A byte budget for responses being built or sent: a large response is admitted only when its
 * estimated size fits next to what is already in flight, and otherwise waits (FIFO, so a large one
 * is not starved by small ones). A response larger than the whole budget is admitted alone.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: Array<{ bytes: number; admit: () => void }> = [];

  constructor(readonly capacity: number) {}

  get inFlight(): number {
    return this.used;
  }

  /** Waits for room for `bytes`; resolves with the release function (call it exactly once). */
  acquire(bytes: number, signal?: AbortSignal): Promise<() => void> {
    const cost = Math.max(0, Math.min(bytes, this.capacity));
    const release = this.releaser(cost);
    if (this.waiters.length === 0 && this.fits(cost)) {
      this.used += cost;
      return Promise.resolve(release);
    }
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const waiter = {
        bytes: cost,
        admit: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index === -1) return;
        this.waiters.splice(index, 1);
        reject(abortError(signal!));
        this.admitWaiters();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private fits(cost: number): boolean {
    return this.used === 0 || this.used + cost <= this.capacity;
  }

  private releaser(cost: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= cost;
      this.admitWaiters();
    };
  }

  private admitWaiters(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const waiter = this.waiters.shift()!;
      this.used += waiter.bytes;
      waiter.admit();
    }
  }
}

function abortError(signal: AbortSignal): Error {
  return new Error(`response admission aborted: ${String(signal.reason ?? 'connection closed')}`);
}

/** Wire size of `bytes` of data sent base64 in a JSON string, plus `overhead` for the rest of the message. */
export function base64ResponseBytes(bytes: number, overhead = 256): number {
  return Math.ceil(bytes / 3) * 4 + overhead;
}
