/**
 * The hybrid IK suite as codex exec-server 0.169.0 speaks it (docs/codex-remote.md,
 * `Noise_hybridIK_25519+MLKEM768_AESGCM_SHA256`): every name, size and limit of the handshake and
 * its transport, defined once here.
 */

/**
 * The Noise protocol name that initialises the handshake hash. clatter (the binary's Noise crate)
 * names X25519 `25519`; this is NOT the JSON suite tag below, and using the tag here breaks the
 * handshake.
 */
export const HYBRID_NOISE_PROTOCOL_NAME = 'Noise_hybridIK_25519+MLKEM768_AESGCM_SHA256';

/** The `suite` member of a registry key object (`{suite, x25519_public_key, mlkem768_public_key}`). */
export const HYBRID_SUITE_TAG = 'Noise_hybridIK_X25519+MLKEM768_AESGCM_SHA256';

/** The first prologue part: the codex relay Noise label. */
export const HYBRID_PROLOGUE_LABEL = 'codex-exec-server-relay-noise/v1';

/** Bytes of each prologue part's length prefix (u64 big-endian; a u32 prefix breaks the handshake). */
export const PROLOGUE_LENGTH_PREFIX_BYTES = 8;

/** An X25519 public key, private key or shared secret. */
export const X25519_KEY_BYTES = 32;
/** An ML-KEM-768 encapsulation (public) key. */
export const MLKEM768_PUBLIC_KEY_BYTES = 1184;
/** An ML-KEM-768 decapsulation (secret) key as `@noble/post-quantum` expands it. */
export const MLKEM768_SECRET_KEY_BYTES = 2400;
/** An ML-KEM-768 ciphertext. */
export const MLKEM768_CIPHERTEXT_BYTES = 1088;
/** An ML-KEM-768 key-generation seed `d ‖ z` (FIPS 203). */
export const MLKEM768_SEED_BYTES = 64;
/** ML-KEM encapsulation randomness `m` (FIPS 203). */
export const MLKEM768_ENCAPSULATION_RANDOMNESS_BYTES = 32;
/** The AES-256-GCM key, and the SHA-256 hash / chaining key. */
export const HASH_BYTES = 32;
/** The AES-256-GCM authentication tag appended to every encrypted field. */
export const AEAD_TAG_BYTES = 16;

/** Message 1 without its payload: skem ct, e (X25519 ‖ ML-KEM), encrypted s (X25519, ML-KEM), payload tag. */
export const MESSAGE1_FIXED_BYTES =
  MLKEM768_CIPHERTEXT_BYTES +
  X25519_KEY_BYTES +
  MLKEM768_PUBLIC_KEY_BYTES +
  (X25519_KEY_BYTES + AEAD_TAG_BYTES) +
  (MLKEM768_PUBLIC_KEY_BYTES + AEAD_TAG_BYTES) +
  AEAD_TAG_BYTES; // 3568

/**
 * Message 2 exactly: ekem ct, encrypted skem ct, e (X25519 ‖ ML-KEM), the empty payload's tag.
 * The payload must be empty; an initiator refuses anything else.
 */
export const MESSAGE2_BYTES =
  MLKEM768_CIPHERTEXT_BYTES +
  (MLKEM768_CIPHERTEXT_BYTES + AEAD_TAG_BYTES) +
  X25519_KEY_BYTES +
  MLKEM768_PUBLIC_KEY_BYTES +
  AEAD_TAG_BYTES; // 3424

/**
 * Largest message-1 payload (the `harness_key_authorization`, UTF-8): the binary resets a stream
 * whose authorization is longer, so neither side of ours writes or reads more.
 */
export const MAX_AUTHORIZATION_PAYLOAD_BYTES = 4096;

/** Largest Noise message (handshake or transport record), ciphertext and tag included. */
export const MAX_NOISE_MESSAGE_BYTES = 65_535;

/** Largest plaintext of one transport record (a Noise message minus its tag). */
export const MAX_RECORD_PLAINTEXT_BYTES = MAX_NOISE_MESSAGE_BYTES - AEAD_TAG_BYTES;

/**
 * Records per direction of one transport: the binary keeps at most u32::MAX; the nonce of the
 * (2^32 - 1)-th record is never used, and a transport that reaches it refuses to go on (no rekey in
 * this suite: a new stream and handshake is the way forward).
 */
export const MAX_TRANSPORT_RECORDS = 0xffff_ffff;
