/**
 * Hybrid key pairs (an X25519 key pair and an ML-KEM-768 key pair) and the three primitive
 * operations the handshake needs: X25519 (node:crypto), ML-KEM-768 encapsulate / decapsulate
 * (`@noble/post-quantum`, FIPS 203). Nothing here implements a primitive; it only adapts encodings.
 *
 * A key pair is made from its secrets: a raw 32-byte X25519 private key and the 64-byte ML-KEM
 * key-generation seed `d ‖ z`. Those two are what a key file stores and what the test vectors fix.
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { ml_kem768 } from '@noble/post-quantum/ml-kem';
import {
  MLKEM768_CIPHERTEXT_BYTES,
  MLKEM768_ENCAPSULATION_RANDOMNESS_BYTES,
  MLKEM768_PUBLIC_KEY_BYTES,
  MLKEM768_SEED_BYTES,
  X25519_KEY_BYTES,
} from './suite.js';
import { HybridNoiseError } from './hybrid-noise-error.js';

// Fixed DER prefixes of an X25519 PKCS#8 private key and SPKI public key (RFC 8410), followed by the raw 32 bytes.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** A hybrid public key: what the registry publishes and the Noise handshake transmits. */
export interface HybridPublicKey {
  /** 32 bytes. */
  readonly x25519: Uint8Array;
  /** 1184 bytes (ML-KEM-768 encapsulation key). */
  readonly mlkem768: Uint8Array;
}

/** The secrets a hybrid key pair is made from (and stored as). */
export interface HybridKeySecrets {
  /** Raw X25519 private key, 32 bytes. */
  readonly x25519Private: Uint8Array;
  /** ML-KEM-768 key-generation seed `d ‖ z`, 64 bytes. */
  readonly mlkem768Seed: Uint8Array;
}

/** A hybrid key pair. */
export interface HybridKeyPair {
  readonly publicKey: HybridPublicKey;
  readonly secrets: HybridKeySecrets;
  /** @internal the X25519 private key as node:crypto uses it. */
  readonly x25519PrivateKey: KeyObject;
  /** @internal the expanded ML-KEM-768 decapsulation key. */
  readonly mlkem768SecretKey: Uint8Array;
}

/** Makes the key pair of given secrets (deterministic: the vectors and key files use this). */
export function hybridKeyPairFromSecrets(secrets: HybridKeySecrets): HybridKeyPair {
  requireLength(secrets.x25519Private, X25519_KEY_BYTES, 'X25519 private key');
  requireLength(secrets.mlkem768Seed, MLKEM768_SEED_BYTES, 'ML-KEM-768 seed');
  const x25519PrivateKey = x25519PrivateKeyObject(secrets.x25519Private);
  const x25519Public = Buffer.from(createPublicKey(x25519PrivateKey).export({ format: 'jwk' }).x ?? '', 'base64url');
  const { publicKey: mlkem768, secretKey } = ml_kem768.keygen(Uint8Array.from(secrets.mlkem768Seed));
  return {
    publicKey: { x25519: new Uint8Array(x25519Public), mlkem768 },
    secrets: { x25519Private: Uint8Array.from(secrets.x25519Private), mlkem768Seed: Uint8Array.from(secrets.mlkem768Seed) },
    x25519PrivateKey,
    mlkem768SecretKey: secretKey,
  };
}

/** A raw 32-byte X25519 private key as a node:crypto KeyObject. */
export function x25519PrivateKeyObject(raw: Uint8Array): KeyObject {
  requireLength(raw, X25519_KEY_BYTES, 'X25519 private key');
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

/** Generates a fresh hybrid key pair (node:crypto X25519 key generation, 64 random seed bytes). */
export function generateHybridKeyPair(): HybridKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const x25519Private = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
  return hybridKeyPairFromSecrets({ x25519Private, mlkem768Seed: randomBytes(MLKEM768_SEED_BYTES) });
}

/** True when two public keys are the same key. */
export function sameHybridPublicKey(a: HybridPublicKey, b: HybridPublicKey): boolean {
  return Buffer.from(a.x25519).equals(b.x25519) && Buffer.from(a.mlkem768).equals(b.mlkem768);
}

/**
 * X25519(private, public). @throws HybridNoiseError `bad-key` for a public key that yields the
 * all-zero secret (a low-order point; OpenSSL refuses it) or has the wrong length.
 */
export function x25519(privateKey: KeyObject, publicKey: Uint8Array): Buffer {
  requireLength(publicKey, X25519_KEY_BYTES, 'X25519 public key');
  try {
    const peer = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    return diffieHellman({ privateKey, publicKey: peer });
  } catch {
    throw new HybridNoiseError('bad-key', 'X25519 with the peer key failed (low-order or invalid public key)');
  }
}

/**
 * ML-KEM-768 encapsulation to `publicKey`; `randomness` (32 bytes, `m` of FIPS 203) only for test
 * vectors. @throws HybridNoiseError `bad-key` when the key fails FIPS 203's encapsulation key check.
 */
export function mlkem768Encapsulate(
  publicKey: Uint8Array,
  randomness?: Uint8Array,
): { readonly ciphertext: Uint8Array; readonly sharedSecret: Uint8Array } {
  requireLength(publicKey, MLKEM768_PUBLIC_KEY_BYTES, 'ML-KEM-768 public key');
  if (randomness !== undefined) requireLength(randomness, MLKEM768_ENCAPSULATION_RANDOMNESS_BYTES, 'ML-KEM encapsulation randomness');
  if (!passesModulusCheck(publicKey)) {
    throw new HybridNoiseError('bad-key', 'ML-KEM-768 public key fails the FIPS 203 encapsulation key check');
  }
  try {
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(Uint8Array.from(publicKey), randomness === undefined ? undefined : Uint8Array.from(randomness));
    return { ciphertext: cipherText, sharedSecret };
  } catch {
    throw new HybridNoiseError('bad-key', 'ML-KEM-768 public key fails the FIPS 203 encapsulation key check');
  }
}

/**
 * ML-KEM-768 decapsulation. Never fails on a well-sized ciphertext: a tampered one yields an
 * unrelated secret (implicit rejection), and the next authenticated field fails instead.
 */
export function mlkem768Decapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array {
  requireLength(ciphertext, MLKEM768_CIPHERTEXT_BYTES, 'ML-KEM-768 ciphertext');
  return ml_kem768.decapsulate(Uint8Array.from(ciphertext), secretKey);
}

/** Coefficients of the encoded vector t̂ of an ML-KEM-768 public key (k = 3 polynomials of 256). */
const MLKEM768_ENCODED_VECTOR_BYTES = 3 * 384;
const MLKEM_Q = 3329;

/**
 * FIPS 203 §7.2 input check of an encapsulation key: ByteEncode12(ByteDecode12(ek)) = ek, i.e. every
 * 12-bit coefficient of t̂ is below q. Done here because `@noble/post-quantum` 0.4.1's own check is
 * ineffective (its 12-bit decode does not reduce mod q, so the round trip always matches).
 */
function passesModulusCheck(publicKey: Uint8Array): boolean {
  for (let i = 0; i < MLKEM768_ENCODED_VECTOR_BYTES; i += 3) {
    const b0 = publicKey[i]!;
    const b1 = publicKey[i + 1]!;
    const b2 = publicKey[i + 2]!;
    if ((b0 | ((b1 & 0x0f) << 8)) >= MLKEM_Q || ((b1 >> 4) | (b2 << 4)) >= MLKEM_Q) return false;
  }
  return true;
}

function requireLength(bytes: Uint8Array, expected: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected) {
    throw new HybridNoiseError('bad-length', `${what} must be ${expected} bytes`);
  }
}
