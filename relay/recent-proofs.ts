/**
 * The registration proofs the relay accepted lately, each remembered until it would be stale
 * anyway, so that a proof is accepted once (`executor-proof.ts`). Bounded: when `maxEntries` are
 * remembered and none has expired, the oldest is forgotten. Refusing new proofs instead would let
 * anyone with an executor token stop every agent from registering by registering fast; forgetting
 * costs less: only a party that saw the forgotten proof's headers (the relay itself, or whoever
 * breaks its TLS) could replay it, within its five minutes, and only as the same key for the same
 * environment, which replaces that agent's link and takes nothing over.
 */
export class RecentProofs {
  private readonly expiries = new Map<string, number>();
  private lastSweep = 0;

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.expiries.size;
  }

  /** Records a proof seen at `now`: `fresh` (first time) or `replayed` (seen before). */
  remember(key: string, expiresAt: number, now = Date.now()): 'fresh' | 'replayed' {
    const known = this.expiries.get(key);
    if (known !== undefined && known >= now) return 'replayed';
    if (this.expiries.size >= this.maxEntries) this.sweep(now);
    if (this.expiries.size >= this.maxEntries) {
      // Still full: forget the oldest (a Map iterates in insertion order).
      const oldest = this.expiries.keys().next().value;
      if (oldest !== undefined) this.expiries.delete(oldest);
    }
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
