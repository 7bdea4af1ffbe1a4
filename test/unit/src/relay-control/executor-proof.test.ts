import { describe, expect, it } from 'vitest';
import type { IncomingHttpHeaders } from 'node:http';
import {
  AGENT_IDENTITY_HEADER,
  AGENT_PROOF_HEADER,
  AGENT_PROOF_NONCE_HEADER,
  AGENT_PROOF_TIME_HEADER,
  PROOF_MAX_SKEW_MS,
  executorProofHeaders,
  proofHost,
  verifyExecutorProof,
} from '../../../../src/relay-control/executor-proof.js';
import { generateIdentity } from '../../../../src/noise/identity.js';

const RELAY = 'ws://relay.example:7700';
const HOST = 'relay.example:7700';

/** The headers as the relay's `IncomingMessage` has them (lower-case names). */
function received(headers: Record<string, string>): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

describe('the executor proof of identity', () => {
  it('a proof made for an environment at a relay is verified there, naming its identity', async () => {
    const identity = await generateIdentity();
    const headers = received(await executorProofHeaders(identity, 'env-a', RELAY));
    const result = await verifyExecutorProof(headers, 'env-a', HOST);
    expect(result).toMatchObject({ ok: true, identity: identity.publicIdentity });
    if (!result.ok) throw new Error('unreachable');
    expect(result.expiresAt - Date.now()).toBeGreaterThan(PROOF_MAX_SKEW_MS - 5_000);
    // Every proof is fresh: another call, another nonce.
    const again = received(await executorProofHeaders(identity, 'env-a', RELAY));
    expect(again[AGENT_PROOF_NONCE_HEADER.toLowerCase()]).not.toBe(headers[AGENT_PROOF_NONCE_HEADER.toLowerCase()]);
  });

  it('is refused for another environment, another relay host, or when any field was changed', async () => {
    const identity = await generateIdentity();
    const other = await generateIdentity();
    const headers = received(await executorProofHeaders(identity, 'env-a', RELAY));
    expect(await verifyExecutorProof(headers, 'env-b', HOST)).toEqual({ ok: false, problem: 'bad_signature' });
    expect(await verifyExecutorProof(headers, 'env-a', 'other-relay.example:7700')).toEqual({ ok: false, problem: 'bad_signature' });
    const tampered = (name: string, value: string) => ({ ...headers, [name.toLowerCase()]: value });
    const time = Number(headers[AGENT_PROOF_TIME_HEADER.toLowerCase()]);
    expect(await verifyExecutorProof(tampered(AGENT_PROOF_TIME_HEADER, String(time + 1)), 'env-a', HOST)).toEqual({ ok: false, problem: 'bad_signature' });
    expect(await verifyExecutorProof(tampered(AGENT_PROOF_NONCE_HEADER, 'A'.repeat(22)), 'env-a', HOST)).toEqual({ ok: false, problem: 'bad_signature' });
    // Claiming another identity with this signature.
    expect(await verifyExecutorProof(tampered(AGENT_IDENTITY_HEADER, other.publicIdentity), 'env-a', HOST)).toEqual({ ok: false, problem: 'bad_signature' });
    // One flipped bit of the signature.
    const signature = Buffer.from(headers[AGENT_PROOF_HEADER.toLowerCase()] as string, 'base64url');
    signature[10] = signature[10]! ^ 1;
    expect(await verifyExecutorProof(tampered(AGENT_PROOF_HEADER, signature.toString('base64url')), 'env-a', HOST)).toEqual({ ok: false, problem: 'bad_signature' });
    // The other key signing the same message is no proof of the first identity either.
    const theirs = received(await executorProofHeaders(other, 'env-a', RELAY));
    expect(await verifyExecutorProof(tampered(AGENT_PROOF_HEADER, theirs[AGENT_PROOF_HEADER.toLowerCase()] as string), 'env-a', HOST)).toEqual({ ok: false, problem: 'bad_signature' });
  });

  it('is refused when older or newer than five minutes', async () => {
    const identity = await generateIdentity();
    const now = Date.now();
    const old = received(await executorProofHeaders(identity, 'env-a', RELAY, now - PROOF_MAX_SKEW_MS - 1000));
    expect(await verifyExecutorProof(old, 'env-a', HOST, now)).toEqual({ ok: false, problem: 'stale' });
    const future = received(await executorProofHeaders(identity, 'env-a', RELAY, now + PROOF_MAX_SKEW_MS + 1000));
    expect(await verifyExecutorProof(future, 'env-a', HOST, now)).toEqual({ ok: false, problem: 'stale' });
    const slightlyOff = received(await executorProofHeaders(identity, 'env-a', RELAY, now - PROOF_MAX_SKEW_MS + 1000));
    expect((await verifyExecutorProof(slightlyOff, 'env-a', HOST, now)).ok).toBe(true);
  });

  it('missing or malformed headers are refused, never thrown', async () => {
    const identity = await generateIdentity();
    const headers = received(await executorProofHeaders(identity, 'env-a', RELAY));
    expect(await verifyExecutorProof({}, 'env-a', HOST)).toEqual({ ok: false, problem: 'missing' });
    for (const name of [AGENT_IDENTITY_HEADER, AGENT_PROOF_HEADER, AGENT_PROOF_TIME_HEADER, AGENT_PROOF_NONCE_HEADER]) {
      const without = { ...headers };
      delete without[name.toLowerCase()];
      expect(await verifyExecutorProof(without, 'env-a', HOST)).toEqual({ ok: false, problem: 'missing' });
    }
    const malformed: Array<[string, string]> = [
      [AGENT_IDENTITY_HEADER, 'not-an-identity'],
      [AGENT_IDENTITY_HEADER, 'x'.repeat(5000)],
      [AGENT_IDENTITY_HEADER, 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'], // an RSA (not Ed25519) peer id
      [AGENT_PROOF_HEADER, 'short'],
      [AGENT_PROOF_TIME_HEADER, '-5'],
      [AGENT_PROOF_TIME_HEADER, '1e12'],
      [AGENT_PROOF_NONCE_HEADER, 'has spaces and is the wrong length'],
    ];
    for (const [name, value] of malformed) {
      expect(await verifyExecutorProof({ ...headers, [name.toLowerCase()]: value }, 'env-a', HOST), `${name}: ${value.slice(0, 20)}`).toEqual({ ok: false, problem: 'malformed' });
    }
    expect(await verifyExecutorProof(headers, 'env-a', undefined)).toEqual({ ok: false, problem: 'malformed' });
  });

  it('the relay host is compared without case or a default port', async () => {
    expect(proofHost('Relay.Example:443')).toBe('relay.example');
    expect(proofHost('relay.example:80')).toBe('relay.example');
    expect(proofHost('[::1]:7700')).toBe('[::1]:7700');
    const identity = await generateIdentity();
    const headers = received(await executorProofHeaders(identity, 'env-a', 'wss://Relay.Example/'));
    expect((await verifyExecutorProof(headers, 'env-a', 'relay.example:443')).ok).toBe(true);
    expect((await verifyExecutorProof(headers, 'env-a', 'relay.example')).ok).toBe(true);
  });
});
