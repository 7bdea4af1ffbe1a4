import { describe, expect, it } from 'vitest';
import { executorProofHeaders, verifyExecutorProof } from '../../../src/relay-control/executor-proof.js';
import { generateIdentity } from '../../../src/noise/identity.js';
import { RecentProofs } from '../../../relay/recent-proofs.js';

describe('RecentProofs: the relay remembers accepted proofs to refuse a replay', () => {
  it('a proof is accepted once; the cache is bounded and forgets its oldest entry when full', async () => {
    const identity = await generateIdentity();
    const headers = Object.fromEntries(Object.entries(await executorProofHeaders(identity, 'env-a', 'ws://relay:1')).map(([k, v]) => [k.toLowerCase(), v]));
    const result = await verifyExecutorProof(headers, 'env-a', 'relay:1');
    if (!result.ok) throw new Error('expected a valid proof');
    const recent = new RecentProofs(2);
    const now = Date.now();
    expect(recent.remember(result.replayKey, result.expiresAt, now)).toBe('fresh');
    expect(recent.remember(result.replayKey, result.expiresAt, now + 1000)).toBe('replayed');
    expect(recent.remember('other', now + 60_000, now)).toBe('fresh');
    // Full, nothing expired: a new proof is still accepted (registrations never stop), the oldest is forgotten.
    expect(recent.remember('third', now + 60_000, now)).toBe('fresh');
    expect(recent.size).toBe(2);
    expect(recent.remember('other', now + 60_000, now + 2000)).toBe('replayed');
    expect(recent.remember('third', now + 60_000, now + 2000)).toBe('replayed');
    // Expired entries make room before anything fresh is forgotten.
    expect(recent.remember('fourth', now + 20 * 60_000, now + 61_000)).toBe('fresh');
    expect(recent.remember('fourth', now + 20 * 60_000, now + 62_000)).toBe('replayed');
    expect(recent.size).toBeLessThanOrEqual(2);
  });
});
