/**
 * Noise CipherState for AES-256-GCM (node:crypto): a key and a 64-bit counter. The 12-byte nonce is
 * 4 zero bytes then the counter big-endian; the 16-byte tag is appended to the ciphertext.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AEAD_TAG_BYTES, HASH_BYTES } from './suite.js';
import { HybridNoiseError } from './hybrid-noise-error.js';

const NONCE_BYTES = 12;

/** One AEAD key with its nonce counter. */
export class CipherState {
  #key: Buffer;
  #nonce = 0n;
  readonly #maxNonce: bigint;

  /** `maxNonce` is the first nonce that may not be used (2^64 - 1 per Noise, lower for transports). */
  constructor(key: Uint8Array, maxNonce = 0xffff_ffff_ffff_ffffn) {
    if (key.length !== HASH_BYTES) throw new HybridNoiseError('wrong-state', `cipher key must be ${HASH_BYTES} bytes`);
    this.#key = Buffer.from(key);
    this.#maxNonce = maxNonce;
  }

  /** The next nonce (tests and the trace read it; it is not secret). */
  get nonce(): bigint {
    return this.#nonce;
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Buffer {
    const nonce = this.#takeNonce();
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(ad);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([body, cipher.getAuthTag()]);
  }

  /**
   * Decrypts and authenticates. The counter advances only on success (a forged record does not
   * desynchronise the channel, but callers tear the channel down anyway).
   * @throws HybridNoiseError `decrypt-failed` on any authentication failure, `bad-length` below a tag.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Buffer {
    if (ciphertext.length < AEAD_TAG_BYTES) {
      throw new HybridNoiseError('bad-length', `encrypted field of ${ciphertext.length} bytes is shorter than its tag`);
    }
    if (this.#nonce >= this.#maxNonce) throw new HybridNoiseError('nonce-exhausted', 'no nonces left for this key');
    const nonce = nonceBytes(this.#nonce);
    const split = ciphertext.length - AEAD_TAG_BYTES;
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce);
      decipher.setAAD(ad);
      decipher.setAuthTag(ciphertext.subarray(split));
      plaintext = Buffer.concat([decipher.update(ciphertext.subarray(0, split)), decipher.final()]);
    } catch {
      throw new HybridNoiseError('decrypt-failed', 'authentication failed (tampered data, wrong key or out-of-order record)');
    }
    this.#nonce += 1n;
    return plaintext;
  }

  #takeNonce(): Buffer {
    if (this.#nonce >= this.#maxNonce) throw new HybridNoiseError('nonce-exhausted', 'no nonces left for this key');
    const nonce = nonceBytes(this.#nonce);
    this.#nonce += 1n;
    return nonce;
  }
}

function nonceBytes(counter: bigint): Buffer {
  const nonce = Buffer.alloc(NONCE_BYTES);
  nonce.writeBigUInt64BE(counter, 4);
  return nonce;
}
