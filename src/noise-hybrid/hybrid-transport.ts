/**
 * The transport after a hybrid IK handshake: one AES-256-GCM key per direction (Split: k1
 * initiator→responder, k2 responder→initiator), empty AD, implicit nonces from 0. One Noise message
 * per relay Data frame, so records must be opened strictly in order; a record out of order, replayed
 * or tampered fails authentication. No rekey: after {@link MAX_TRANSPORT_RECORDS} records a direction
 * is used up. After any failure the transport refuses every further call (the stream must be reset).
 */
import { CipherState } from './cipher-state.js';
import { HybridNoiseError } from './hybrid-noise-error.js';
import { AEAD_TAG_BYTES, MAX_NOISE_MESSAGE_BYTES, MAX_RECORD_PLAINTEXT_BYTES, MAX_TRANSPORT_RECORDS } from './suite.js';

const EMPTY = new Uint8Array(0);

export class HybridTransport {
  readonly #send: CipherState;
  readonly #receive: CipherState;
  readonly #handshakeHash: Buffer;
  #failed = false;

  /** @internal built by the handshake: `sendKey` and `receiveKey` from Split() for this side's role. */
  constructor(sendKey: Uint8Array, receiveKey: Uint8Array, handshakeHash: Uint8Array) {
    this.#send = new CipherState(sendKey, BigInt(MAX_TRANSPORT_RECORDS));
    this.#receive = new CipherState(receiveKey, BigInt(MAX_TRANSPORT_RECORDS));
    this.#handshakeHash = Buffer.from(handshakeHash);
  }

  /** The handshake hash h (both sides hold the same value; usable as channel binding). */
  get handshakeHash(): Buffer {
    return Buffer.from(this.#handshakeHash);
  }

  /** Records sent so far (the next sending nonce). */
  get recordsSent(): bigint {
    return this.#send.nonce;
  }

  /** Records opened so far (the next receiving nonce). */
  get recordsReceived(): bigint {
    return this.#receive.nonce;
  }

  /**
   * Seals one record. @throws HybridNoiseError `payload-too-large` over
   * {@link MAX_RECORD_PLAINTEXT_BYTES}, `nonce-exhausted`, `wrong-state` after a failure.
   */
  encrypt(plaintext: Uint8Array): Buffer {
    this.#usable();
    if (plaintext.length > MAX_RECORD_PLAINTEXT_BYTES) {
      throw new HybridNoiseError('payload-too-large', `record plaintext of ${plaintext.length} bytes exceeds ${MAX_RECORD_PLAINTEXT_BYTES}`);
    }
    return this.#guard(() => this.#send.encryptWithAd(EMPTY, plaintext));
  }

  /**
   * Opens the next record. @throws HybridNoiseError `bad-length` (under a tag or over 65,535 bytes),
   * `decrypt-failed`, `nonce-exhausted`, `wrong-state` after a failure.
   */
  decrypt(ciphertext: Uint8Array): Buffer {
    this.#usable();
    if (ciphertext.length < AEAD_TAG_BYTES || ciphertext.length > MAX_NOISE_MESSAGE_BYTES) {
      this.#failed = true;
      throw new HybridNoiseError('bad-length', `record of ${ciphertext.length} bytes (expected ${AEAD_TAG_BYTES}..${MAX_NOISE_MESSAGE_BYTES})`);
    }
    return this.#guard(() => this.#receive.decryptWithAd(EMPTY, ciphertext));
  }

  #usable(): void {
    if (this.#failed) throw new HybridNoiseError('wrong-state', 'the transport failed earlier; reset the stream');
  }

  #guard<T>(operation: () => T): T {
    try {
      return operation();
    } catch (error) {
      this.#failed = true;
      throw error;
    }
  }
}
