/**
 * Noise SymmetricState over SHA-256 and AES-256-GCM: the handshake hash `h`, the chaining key `ck`
 * and the current CipherState. HKDF is node:crypto's RFC 5869 HKDF with salt = ck and empty info,
 * whose first two or three 32-byte blocks are exactly Noise's HKDF outputs.
 *
 * An optional observer sees every MixHash / MixKey / MixKeyAndHash with the values after it (the
 * step-by-step trace of the deterministic vectors); it is for tests only and receives key material.
 */
import { createHash, hkdfSync } from 'node:crypto';
import { CipherState } from './cipher-state.js';
import { HASH_BYTES } from './suite.js';
import { HybridNoiseError } from './hybrid-noise-error.js';

/** One step of the symmetric state, as the deterministic vectors' trace records it. */
export type SymmetricStep =
  | { readonly op: 'init'; readonly h: Uint8Array }
  | { readonly op: 'MixHash'; readonly len: number; readonly h: Uint8Array }
  | { readonly op: 'MixKey' | 'MixKeyAndHash'; readonly ck: Uint8Array; readonly k: Uint8Array };

/** Receives each {@link SymmetricStep} (tests only). */
export type SymmetricStepObserver = (step: SymmetricStep) => void;

export class SymmetricState {
  #h: Buffer;
  #ck: Buffer;
  #cipher: CipherState | undefined;
  readonly #observe: SymmetricStepObserver | undefined;

  /** InitializeSymmetric(protocolName): h = name padded to 32 bytes, or SHA-256(name) if longer. */
  constructor(protocolName: string, observe?: SymmetricStepObserver) {
    const name = Buffer.from(protocolName, 'utf8');
    this.#h = name.length <= HASH_BYTES ? Buffer.concat([name, Buffer.alloc(HASH_BYTES - name.length)]) : sha256(name);
    this.#ck = Buffer.from(this.#h);
    this.#observe = observe;
    observe?.({ op: 'init', h: Buffer.from(this.#h) });
  }

  /** The handshake hash (channel binding once the handshake is over). */
  get handshakeHash(): Buffer {
    return Buffer.from(this.#h);
  }

  mixHash(data: Uint8Array): void {
    this.#h = sha256(this.#h, data);
    this.#observe?.({ op: 'MixHash', len: data.length, h: Buffer.from(this.#h) });
  }

  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, k] = hkdf(this.#ck, inputKeyMaterial, 2);
    this.#ck = ck;
    this.#cipher = new CipherState(k);
    this.#observe?.({ op: 'MixKey', ck: Buffer.from(ck), k: Buffer.from(k) });
  }

  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempH, k] = hkdf(this.#ck, inputKeyMaterial, 3);
    this.#ck = ck;
    this.mixHash(tempH);
    this.#cipher = new CipherState(k);
    this.#observe?.({ op: 'MixKeyAndHash', ck: Buffer.from(ck), k: Buffer.from(k) });
  }

  /** Encrypts with AD = h while a key exists, else copies; then MixHash(the bytes written). */
  encryptAndHash(plaintext: Uint8Array): Buffer {
    const out = this.#cipher === undefined ? Buffer.from(plaintext) : this.#cipher.encryptWithAd(this.#h, plaintext);
    this.mixHash(out);
    return out;
  }

  /** Decrypts with AD = h while a key exists, else copies; then MixHash(the bytes read). */
  decryptAndHash(data: Uint8Array): Buffer {
    const out = this.#cipher === undefined ? Buffer.from(data) : this.#cipher.decryptWithAd(this.#h, data);
    this.mixHash(data);
    return out;
  }

  /** Split(): the two transport keys (initiator→responder, responder→initiator). */
  split(): [Buffer, Buffer] {
    const [k1, k2] = hkdf(this.#ck, Buffer.alloc(0), 2);
    return [k1, k2];
  }
}

function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function hkdf(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 2): [Buffer, Buffer];
function hkdf(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 3): [Buffer, Buffer, Buffer];
function hkdf(chainingKey: Uint8Array, inputKeyMaterial: Uint8Array, outputs: 2 | 3): Buffer[] {
  if (chainingKey.length !== HASH_BYTES) throw new HybridNoiseError('wrong-state', 'chaining key must be 32 bytes');
  const okm = Buffer.from(hkdfSync('sha256', inputKeyMaterial, chainingKey, Buffer.alloc(0), outputs * HASH_BYTES));
  return Array.from({ length: outputs }, (_, i) => okm.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
}
