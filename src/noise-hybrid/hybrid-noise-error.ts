/**
 * The one error the hybrid IK handshake and transport throw. `reason` is from a fixed set, so it can
 * label telemetry and choose a reset without parsing the message.
 */
export const HYBRID_NOISE_FAILURES = [
  /** A handshake message or record of the wrong size (truncated, oversized, message 2 with a payload). */
  'bad-length',
  /** Authentication failed: a tampered message, a wrong key, a wrong prologue, a replayed record. */
  'decrypt-failed',
  /** A public key the primitives refuse (X25519 low-order point, ML-KEM key failing the FIPS 203 check). */
  'bad-key',
  /** A payload over its limit (authorization > 4096 bytes, record plaintext > 65,519 bytes). */
  'payload-too-large',
  /** A call out of order: a second message 1, a read before a write, use after a failure. */
  'wrong-state',
  /** The record counter of one direction is used up (no rekey in this suite). */
  'nonce-exhausted',
] as const;

/** Why a hybrid handshake or transport operation failed. */
export type HybridNoiseFailure = (typeof HYBRID_NOISE_FAILURES)[number];

/** Any failure of the hybrid Noise handshake or transport. Never carries key material. */
export class HybridNoiseError extends Error {
  override readonly name = 'HybridNoiseError';

  constructor(
    readonly reason: HybridNoiseFailure,
    message: string,
  ) {
    super(message);
  }
}
