/**
 * How a Noise message that fails authentication (a flipped bit injected by the relay, a replayed or
 * reordered record) is told apart from a failing stream: libp2p-noise's own decrypt primitive,
 * with its failures tagged (no cryptography of our own).
 */
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';

/** The message of every {@link RecordAuthenticationError}; it survives libp2p-noise rewrapping an error without `cause`. */
export const RECORD_AUTHENTICATION_FAILED = 'ChaCha20-Poly1305 record authentication failed';

/** Thrown by the decrypt primitive below so a tampered record is told apart from a failing stream. */
export class RecordAuthenticationError extends Error {
  override readonly name = 'RecordAuthenticationError';
  constructor(cause: unknown) {
    super(RECORD_AUTHENTICATION_FAILED, { cause });
  }
}

/** libp2p-noise's own crypto, with decryption failures tagged. */
export const authenticationTaggingCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
    try {
      return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst);
    } catch (error) {
      throw new RecordAuthenticationError(error);
    }
  },
};
