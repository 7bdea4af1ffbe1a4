/**
 * The short printable name of a hybrid public key, the one place it is defined:
 *
 *   `hyb1:` + base32 (RFC 4648 alphabet, lowercase, no padding) of the first 20 bytes of
 *   SHA-256( UTF-8 suite tag ‖ X25519 public key (32 B) ‖ ML-KEM-768 public key (1184 B) )
 *
 * e.g. `hyb1:3q7m…` (37 characters). The suite tag is `Noise_hybridIK_X25519+MLKEM768_AESGCM_SHA256`
 * (the registry's `suite`), so a key of another suite can never share a fingerprint; the two keys
 * have fixed sizes, so the concatenation is unambiguous. 160 bits: finding a second key with a
 * given fingerprint costs ~2^160 hashes. `hyb1` versions the recipe. Users pin an executor with it
 * (`--agent-key hyb1:…`) as they pin an Ed25519 agent with `12D3KooW…`.
 */
import { createHash } from 'node:crypto';
import type { HybridPublicKey } from './hybrid-keys.js';
import { HybridIdentityError } from './hybrid-identity-error.js';
import { HYBRID_SUITE_TAG, MLKEM768_PUBLIC_KEY_BYTES, X25519_KEY_BYTES } from './suite.js';

/** The prefix of every hybrid fingerprint. */
export const HYBRID_FINGERPRINT_PREFIX = 'hyb1:';
/** Bytes of the SHA-256 digest a fingerprint keeps. */
export const HYBRID_FINGERPRINT_DIGEST_BYTES = 20;
const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** Base32 characters of a fingerprint (20 bytes = 160 bits = 32 characters). */
const FINGERPRINT_BODY_CHARS = Math.ceil((HYBRID_FINGERPRINT_DIGEST_BYTES * 8) / 5);
const FINGERPRINT_PATTERN = new RegExp(`^${HYBRID_FINGERPRINT_PREFIX}[${BASE32_ALPHABET}]{${FINGERPRINT_BODY_CHARS}}$`);

/** The fingerprint of `key`. */
export function hybridFingerprint(key: HybridPublicKey): string {
  if (key.x25519.length !== X25519_KEY_BYTES || key.mlkem768.length !== MLKEM768_PUBLIC_KEY_BYTES) {
    throw new HybridIdentityError('a hybrid public key is a 32-byte X25519 key and a 1184-byte ML-KEM-768 key');
  }
  const digest = createHash('sha256').update(HYBRID_SUITE_TAG, 'utf8').update(key.x25519).update(key.mlkem768).digest();
  return HYBRID_FINGERPRINT_PREFIX + base32(digest.subarray(0, HYBRID_FINGERPRINT_DIGEST_BYTES));
}

/**
 * Checks a fingerprint a user typed (surrounding whitespace ignored, letters case-insensitive) and
 * returns its canonical form. @throws HybridIdentityError saying what is wrong.
 */
export function parseHybridFingerprint(text: string): string {
  const canonical = text.trim().toLowerCase();
  if (!FINGERPRINT_PATTERN.test(canonical)) {
    const shown = canonical.length > 60 ? `${canonical.slice(0, 57)}...` : canonical;
    throw new HybridIdentityError(
      `invalid hybrid key fingerprint "${shown}": expected ${HYBRID_FINGERPRINT_PREFIX} and ${FINGERPRINT_BODY_CHARS} base32 characters (a-z, 2-7)`,
    );
  }
  return canonical;
}

/** True when `text` looks like a hybrid fingerprint (so a flag can tell it from a `12D3KooW…` id). */
export function isHybridFingerprint(text: string): boolean {
  return text.trim().toLowerCase().startsWith(HYBRID_FINGERPRINT_PREFIX);
}

function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}
