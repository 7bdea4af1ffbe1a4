/**
 * The registration proofs the relay accepted lately, each remembered until it would be stale
 * anyway, so that a proof is accepted once (`executor-proof.ts`). Bounded: when `maxEntries` are
 * remembered and none has expired, a new proof is refused (`full`) rather than an old one
 * forgotten — forgetting would let it be replayed.
 */
export class RecentProofs {
  private readonly expiries = new Map<string, number>();
  private lastSweep = 0;

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.expiries.size;
  }

  /** Records a proof seen at `now`: `fresh` (first time), `replayed` (seen before), or `full`. */
  remember(key: string, expiresAt: number, now = Date.now()): 'fresh' | 'replayed' | 'full' {
    const known = this.expiries.get(key);
    if (known !== undefined && known >= now) return 'replayed';
    if (this.expiries.size >= this.maxEntries) this.sweep(now);
    if (this.expiries.size >= this.maxEntries) return 'full';
    this.expiries.set(key, expiresAt);
    return 'fresh';
  }

  private sweep(now: number): void {
    // At most once a second: while full, every refused proof would otherwise walk the whole map.
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const [key, expiresAt] of this.expiries) if (expiresAt < now) this.expiries.delete(key);
  }
}
