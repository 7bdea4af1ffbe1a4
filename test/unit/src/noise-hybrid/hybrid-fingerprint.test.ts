import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hybridFingerprint, isHybridFingerprint, parseHybridFingerprint } from '../../../../src/noise-hybrid/hybrid-fingerprint.js';
import { HybridIdentityError } from '../../../../src/noise-hybrid/hybrid-identity-error.js';
import { generateHybridKeyPair } from '../../../../src/noise-hybrid/hybrid-keys.js';
import { HYBRID_SUITE_TAG } from '../../../../src/noise-hybrid/suite.js';
import { liveVector } from '../../../support/codex-vectors.js';

/** RFC 4648 base32 decoding (lowercase, no padding), written independently of the encoder under test. */
function base32Decode(text: string): Buffer {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bits = [...text].map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

const v = liveVector();
const executorKey = {
  x25519: Buffer.from(v.executor_public_key.x25519_public_key, 'base64'),
  mlkem768: Buffer.from(v.executor_public_key.mlkem768_public_key, 'base64'),
};

describe('hybrid fingerprint', () => {
  it('is hyb1: and 32 base32 characters of the first 20 bytes of SHA-256(suite ‖ x25519 ‖ mlkem)', () => {
    const fingerprint = hybridFingerprint(executorKey);
    expect(fingerprint).toMatch(/^hyb1:[a-z2-7]{32}$/);
    const digest = createHash('sha256').update(HYBRID_SUITE_TAG).update(executorKey.x25519).update(executorKey.mlkem768).digest();
    expect(base32Decode(fingerprint.slice(5)).equals(digest.subarray(0, 20))).toBe(true);
  });

  it('changes with either key', () => {
    const fingerprint = hybridFingerprint(executorKey);
    const otherX = { ...executorKey, x25519: Buffer.from(executorKey.x25519).fill(9, 0, 1) };
    const otherM = { ...executorKey, mlkem768: Buffer.from(executorKey.mlkem768).fill(9, 1183) };
    expect(hybridFingerprint(otherX)).not.toBe(fingerprint);
    expect(hybridFingerprint(otherM)).not.toBe(fingerprint);
    expect(hybridFingerprint(generateHybridKeyPair().publicKey)).not.toBe(fingerprint);
  });

  it('parses a typed fingerprint (case and surrounding whitespace ignored) and refuses anything else', () => {
    const fingerprint = hybridFingerprint(executorKey);
    expect(parseHybridFingerprint(`  ${fingerprint.toUpperCase().replace('HYB1', 'hyb1')} \n`)).toBe(fingerprint);
    for (const bad of ['', 'hyb1:', fingerprint.slice(0, -1), `${fingerprint}a`, fingerprint.replace(/.$/, '1'), `hyb2:${fingerprint.slice(5)}`, '12D3KooWabc']) {
      expect(() => parseHybridFingerprint(bad)).toThrow(HybridIdentityError);
    }
    expect(isHybridFingerprint(fingerprint)).toBe(true);
    expect(isHybridFingerprint('12D3KooWQ')).toBe(false);
  });

  it('refuses keys of the wrong sizes', () => {
    expect(() => hybridFingerprint({ x25519: new Uint8Array(31), mlkem768: executorKey.mlkem768 })).toThrow(HybridIdentityError);
  });
});
