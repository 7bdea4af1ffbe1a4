import { describe, expect, it } from 'vitest';
import { HybridIdentityError } from '../../../../src/noise-hybrid/hybrid-identity-error.js';
import { generateHybridKeyPair, sameHybridPublicKey } from '../../../../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey, parseRegistryPublicKey } from '../../../../src/noise-hybrid/registry-public-key.js';
import { liveVector } from '../../../support/codex-vectors.js';

const live = liveVector().executor_public_key;

function refusal(value: unknown): string {
  try {
    parseRegistryPublicKey(value, 'executor_public_key');
  } catch (error) {
    expect(error).toBeInstanceOf(HybridIdentityError);
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('registry key object {suite, x25519_public_key, mlkem768_public_key}', () => {
  it('parses the key the real 0.169.0 executor registered, and encodes it back to the same JSON', () => {
    const key = parseRegistryPublicKey(live);
    expect(key.x25519.length).toBe(32);
    expect(key.mlkem768.length).toBe(1184);
    expect(encodeRegistryPublicKey(key)).toEqual(live);
  });

  it('round-trips a fresh key and ignores unknown members', () => {
    const { publicKey } = generateHybridKeyPair();
    const json = encodeRegistryPublicKey(publicKey);
    expect(sameHybridPublicKey(parseRegistryPublicKey(JSON.parse(JSON.stringify({ ...json, extra: 1 }))), publicKey)).toBe(true);
  });

  it('refuses a wrong suite (the Noise protocol name is not the suite tag), with the member named', () => {
    expect(refusal({ ...live, suite: 'Noise_hybridIK_25519+MLKEM768_AESGCM_SHA256' })).toMatch(/executor_public_key: suite: suite must be/);
    expect(refusal({ ...live, suite: undefined })).toMatch(/suite/);
  });

  it('refuses bad base64 and wrong sizes', () => {
    const x = Buffer.from(live.x25519_public_key, 'base64');
    expect(refusal({ ...live, x25519_public_key: x.toString('base64url') })).toMatch(/x25519_public_key/); // url alphabet / no padding
    expect(refusal({ ...live, x25519_public_key: x.subarray(1).toString('base64') })).toMatch(/x25519_public_key/);
    expect(refusal({ ...live, x25519_public_key: `${x.toString('base64')}AAAA` })).toMatch(/x25519_public_key/);
    expect(refusal({ ...live, x25519_public_key: ` ${x.toString('base64')}` })).toMatch(/x25519_public_key/);
    expect(refusal({ ...live, mlkem768_public_key: Buffer.alloc(1183).toString('base64') })).toMatch(/mlkem768_public_key/);
    expect(refusal({ ...live, mlkem768_public_key: 'A'.repeat(10_000_000) })).toMatch(/mlkem768_public_key/);
    expect(refusal({ ...live, mlkem768_public_key: 5 })).toMatch(/mlkem768_public_key/);
    for (const value of [null, 'key', [], 42]) refusal(value);
  });

  it('refuses a low-order X25519 point and an ML-KEM key failing the FIPS 203 check', () => {
    expect(refusal({ ...live, x25519_public_key: Buffer.alloc(32).toString('base64') })).toMatch(/low-order/);
    expect(refusal({ ...live, mlkem768_public_key: Buffer.alloc(1184, 0xff).toString('base64') })).toMatch(/FIPS 203/);
  });
});
