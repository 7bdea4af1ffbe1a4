import { describe, expect, it } from 'vitest';
import { RendezvousSigner } from '../../../relay/rendezvous-signer.js';

const grant = { role: 'harness' as const, environmentId: 'env-1', registrationId: 'reg-1', credentialId: 'cred', expiresAt: Date.now() + 60_000 };
const claims = { environmentId: 'env-1', registrationId: 'reg-1', harnessFingerprint: 'hyb1:aaaa', expiresAt: Date.now() + 60_000 };

describe('RendezvousSigner', () => {
  it('a signed URL verifies; any changed parameter, another secret or expiry does not', () => {
    const signer = new RendezvousSigner();
    const url = new URL(signer.signedUrl('ws://127.0.0.1:9/cloud/rendezvous', grant));
    expect(signer.verifyQuery(url.searchParams)).toEqual({ ok: true, grant });
    for (const [name, value] of [['role', 'executor'], ['environment_id', 'env-2'], ['executor_registration_id', 'reg-2'], ['credential', 'other'], ['expires', String(grant.expiresAt + 1)]] as const) {
      const changed = new URLSearchParams(url.searchParams);
      changed.set(name, value);
      expect(signer.verifyQuery(changed), name).toMatchObject({ ok: false, rejection: { reason: 'invalid_signature' } });
    }
    expect(new RendezvousSigner().verifyQuery(url.searchParams)).toMatchObject({ ok: false, rejection: { reason: 'invalid_signature' } });
    expect(signer.verifyQuery(url.searchParams, grant.expiresAt + 1)).toMatchObject({ ok: false, rejection: { reason: 'expired' } });
  });

  it('names what is missing or malformed in a query', () => {
    const signer = new RendezvousSigner();
    const url = new URL(signer.signedUrl('ws://h/cloud/rendezvous', grant));
    const without = (name: string) => {
      const q = new URLSearchParams(url.searchParams);
      q.delete(name);
      return signer.verifyQuery(q);
    };
    expect(without('v')).toMatchObject({ rejection: { reason: 'missing_version' } });
    expect(without('role')).toMatchObject({ rejection: { reason: 'missing_role' } });
    expect(without('expires')).toMatchObject({ rejection: { reason: 'missing_expiry' } });
    expect(without('signature')).toMatchObject({ rejection: { reason: 'missing_signature' } });
    expect(without('executor_registration_id')).toMatchObject({ rejection: { reason: 'missing_executor_registration_id' } });
    const q = new URLSearchParams(url.searchParams);
    q.set('role', 'admin');
    expect(signer.verifyQuery(q)).toMatchObject({ rejection: { reason: 'invalid_role' } });
    q.set('role', 'harness');
    q.set('expires', 'soon');
    expect(signer.verifyQuery(q)).toMatchObject({ rejection: { reason: 'invalid_expiry' } });
    q.append('expires', '1');
    expect(signer.verifyQuery(q)).toMatchObject({ rejection: { reason: 'malformed_query' } });
  });

  it('an authorization verifies for exactly its environment, registration and key, unexpired', () => {
    const signer = new RendezvousSigner();
    const token = signer.mintAuthorization(claims);
    expect(token.length).toBeLessThan(400);
    const expected = { environmentId: 'env-1', registrationId: 'reg-1', harnessFingerprint: 'hyb1:aaaa' };
    expect(signer.verifyAuthorization(token, expected)).toMatchObject({ ok: true, nonce: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(signer.verifyAuthorization(token, { ...expected, environmentId: 'env-2' })).toEqual({ ok: false, refusal: 'other_environment' });
    expect(signer.verifyAuthorization(token, { ...expected, registrationId: 'reg-2' })).toEqual({ ok: false, refusal: 'other_registration' });
    expect(signer.verifyAuthorization(token, { ...expected, harnessFingerprint: 'hyb1:bbbb' })).toEqual({ ok: false, refusal: 'other_key' });
    expect(signer.verifyAuthorization(token, expected, claims.expiresAt + 1)).toEqual({ ok: false, refusal: 'expired' });
    expect(new RendezvousSigner().verifyAuthorization(token, expected)).toEqual({ ok: false, refusal: 'bad_signature' });
    const [prefix, body, signature] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body!, 'base64url').toString()), k: 'hyb1:bbbb' })).toString('base64url');
    expect(signer.verifyAuthorization(`${prefix}.${forged}.${signature}`, { ...expected, harnessFingerprint: 'hyb1:bbbb' })).toEqual({ ok: false, refusal: 'bad_signature' });
    expect(signer.verifyAuthorization('garbage', expected)).toEqual({ ok: false, refusal: 'malformed' });
  });

  describe('fromFleetSecret (the instances of a fleet)', () => {
    const fleetSecret = Buffer.from('a-fleet-secret-of-at-least-32-bytes-0123456789', 'utf8');

    it('instances with one fleet secret verify each other\'s URLs and authorizations', () => {
      const instanceA = RendezvousSigner.fromFleetSecret(fleetSecret);
      const instanceB = RendezvousSigner.fromFleetSecret(Buffer.from(fleetSecret));
      const url = new URL(instanceB.signedUrl('ws://relay-b:8080/cloud/rendezvous', grant));
      expect(instanceA.verifyQuery(url.searchParams)).toEqual({ ok: true, grant });
      const authorization = instanceB.mintAuthorization(claims);
      expect(instanceA.verifyAuthorization(authorization, claims)).toMatchObject({ ok: true, expiresAt: claims.expiresAt });
      // Still bound to exactly its key, environment and registration.
      expect(instanceA.verifyAuthorization(authorization, { ...claims, harnessFingerprint: 'hyb1:bbbb' })).toEqual({ ok: false, refusal: 'other_key' });
    });

    it('an authorization names the relay process that minted it (its instance and boot), under the signature; a single relay\'s names none', () => {
      const signer = RendezvousSigner.fromFleetSecret(fleetSecret);
      const minted = signer.mintAuthorization({ ...claims, minter: { instance: 'relay-b', boot: 'b00t' } });
      expect(signer.verifyAuthorization(minted, claims)).toMatchObject({ ok: true, minter: { instance: 'relay-b', boot: 'b00t' } });
      expect(signer.verifyAuthorization(signer.mintAuthorization(claims), claims)).toMatchObject({ ok: true, minter: null });
      // Naming another minter breaks the signature.
      const [prefix, body, signature] = minted.split('.');
      const claimed = JSON.parse(Buffer.from(body!, 'base64url').toString()) as Record<string, unknown>;
      const moved = Buffer.from(JSON.stringify({ ...claimed, i: 'relay-c' })).toString('base64url');
      expect(signer.verifyAuthorization(`${prefix}.${moved}.${signature}`, claims)).toEqual({ ok: false, refusal: 'bad_signature' });
      // A signed minter that is not two strings is malformed.
      const bare = new RendezvousSigner();
      const oneSided = bare.mintAuthorization({ ...claims, minter: { instance: 'relay-b', boot: 'b00t' } });
      const parts = oneSided.split('.');
      const half = Buffer.from(JSON.stringify({ ...(JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as object), b: 7 })).toString('base64url');
      const resigned = (bare as unknown as { authorizationSignature(body: string): string }).authorizationSignature(half);
      expect(bare.verifyAuthorization(`${parts[0]}.${half}.${resigned}`, claims)).toEqual({ ok: false, refusal: 'malformed' });
    });

    it('another fleet secret, a single relay\'s own secret, or the fleet secret used as the key itself verify nothing', () => {
      const url = new URL(RendezvousSigner.fromFleetSecret(fleetSecret).signedUrl('ws://h/cloud/rendezvous', grant));
      const authorization = RendezvousSigner.fromFleetSecret(fleetSecret).mintAuthorization(claims);
      const others = [
        RendezvousSigner.fromFleetSecret(Buffer.from('another-fleet-secret-of-32-bytes-or-more-xyz', 'utf8')),
        new RendezvousSigner(),
        // The derived key is not the fleet secret: a signer keyed with the secret itself is another signer.
        new RendezvousSigner(fleetSecret),
      ];
      for (const other of others) {
        expect(other.verifyQuery(url.searchParams)).toMatchObject({ ok: false, rejection: { reason: 'invalid_signature' } });
        expect(other.verifyAuthorization(authorization, claims)).toEqual({ ok: false, refusal: 'bad_signature' });
      }
    });

    it('refuses a fleet secret shorter than 32 bytes', () => {
      expect(() => RendezvousSigner.fromFleetSecret(Buffer.alloc(31, 1))).toThrow('the fleet secret must be at least 32 bytes');
    });
  });
});
