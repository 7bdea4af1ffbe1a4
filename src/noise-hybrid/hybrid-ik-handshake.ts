/**
 * The `Noise_hybridIK_25519+MLKEM768_AESGCM_SHA256` handshake exactly as codex exec-server 0.169.0
 * (clatter 2.2.0) speaks it. The initiator (harness) knows the responder's (executor's) static
 * hybrid key in advance (pinned from the registry):
 *
 * ```
 *   <- s                                   pre-message: MixHash(rs.x25519), MixHash(rs.mlkem)
 *   -> skem, e, es, s, ss   + payload      payload = harness_key_authorization (≤ 4096 B)
 *   <- ekem, skem, e, ee, se + payload     payload must be empty
 * ```
 *
 * Tokens (a hybrid `e` and `s` each carry an X25519 key then an ML-KEM-768 key, hashed separately):
 * - `skem` (msg 1): encapsulate to rs.mlkem; EncryptAndHash(ct) (in clear: no key yet);
 *   MixKeyAndHash(secret). `skem` (msg 2): encapsulate to the initiator's static ML-KEM key;
 *   EncryptAndHash(ct) → 1104 B; MixKeyAndHash(secret).
 * - `ekem` (msg 2): encapsulate to re.mlkem; MixHash(ct) (clear); MixKey(secret).
 * - `e`: X25519 pub (32) then ML-KEM pub (1184), each in clear and MixHash'ed (no PSK, no MixKey).
 *   The responder's ephemeral ML-KEM key is sent but never used.
 * - `es`, `ss`, `ee`, `se`: MixKey(X25519(...)).
 * - `s`: EncryptAndHash(s.x25519) → 48 B, EncryptAndHash(s.mlkem) → 1200 B.
 *
 * Message layouts (offsets in bytes):
 * | msg | range           | field                                 |
 * |-----|-----------------|---------------------------------------|
 * |  1  | [0, 1088)       | skem ciphertext (clear)               |
 * |  1  | [1088, 1120)    | e.x25519                              |
 * |  1  | [1120, 2304)    | e.mlkem                               |
 * |  1  | [2304, 2352)    | s.x25519, encrypted                   |
 * |  1  | [2352, 3552)    | s.mlkem, encrypted                    |
 * |  1  | [3552, …)       | payload, encrypted (3568 + payload B) |
 * |  2  | [0, 1088)       | ekem ciphertext (clear)               |
 * |  2  | [1088, 2192)    | skem ciphertext, encrypted            |
 * |  2  | [2192, 2224)    | e.x25519                              |
 * |  2  | [2224, 3408)    | e.mlkem                               |
 * |  2  | [3408, 3424)    | empty payload's tag                   |
 *
 * Each side is a one-shot state machine: any failure (wrong size, failed authentication, bad key,
 * a payload in message 2, which its fixed size refuses) throws a {@link HybridNoiseError} and leaves the object refusing every further
 * call. Ephemeral keys and KEM randomness can be fixed for replaying test vectors (`fixed`); nothing
 * else may set them.
 */
import { HybridNoiseError } from './hybrid-noise-error.js';
import {
  generateHybridKeyPair,
  hybridKeyPairFromSecrets,
  mlkem768Decapsulate,
  mlkem768Encapsulate,
  x25519,
  type HybridKeyPair,
  type HybridKeySecrets,
  type HybridPublicKey,
} from './hybrid-keys.js';
import { HybridTransport } from './hybrid-transport.js';
import {
  AEAD_TAG_BYTES,
  HYBRID_NOISE_PROTOCOL_NAME,
  MAX_AUTHORIZATION_PAYLOAD_BYTES,
  MESSAGE1_FIXED_BYTES,
  MESSAGE2_BYTES,
  MLKEM768_CIPHERTEXT_BYTES,
  MLKEM768_PUBLIC_KEY_BYTES,
  X25519_KEY_BYTES,
} from './suite.js';
import { SymmetricState, type SymmetricStepObserver } from './symmetric-state.js';

/** Fixed randomness of an initiator, for test vectors only. */
export interface InitiatorFixedRandomness {
  readonly ephemeral?: HybridKeySecrets;
  /** `m` of the msg-1 `skem` encapsulation (32 bytes). */
  readonly skemRandomness?: Uint8Array;
}

/** Fixed randomness of a responder, for test vectors only. */
export interface ResponderFixedRandomness {
  readonly ephemeral?: HybridKeySecrets;
  /** `m` of the msg-2 `ekem` encapsulation (32 bytes). */
  readonly ekemRandomness?: Uint8Array;
  /** `m` of the msg-2 `skem` encapsulation (32 bytes). */
  readonly skemRandomness?: Uint8Array;
}

export interface HybridIkInitiatorOptions {
  /** This side's static key (the harness key the registry authorized). */
  readonly staticKeyPair: HybridKeyPair;
  /** The responder's static key, pinned in advance. */
  readonly responderStaticKey: HybridPublicKey;
  /** See `hybridPrologue`. */
  readonly prologue: Uint8Array;
  /** Test vectors only. */
  readonly fixed?: InitiatorFixedRandomness;
  /** Test vectors only: sees every symmetric-state step (with key material). */
  readonly observe?: SymmetricStepObserver;
}

export interface HybridIkResponderOptions {
  /** This side's static key (the executor key in the registry). */
  readonly staticKeyPair: HybridKeyPair;
  /** See `hybridPrologue`. */
  readonly prologue: Uint8Array;
  /** Test vectors only. */
  readonly fixed?: ResponderFixedRandomness;
  /** Test vectors only: sees every symmetric-state step (with key material). */
  readonly observe?: SymmetricStepObserver;
}

/** What a responder learns from message 1. */
export interface Message1Contents {
  /** The initiator's static key, authenticated by the handshake (check it against an allow list). */
  readonly initiatorStaticKey: HybridPublicKey;
  /** The decrypted payload (codex: the `harness_key_authorization`, UTF-8). */
  readonly payload: Buffer;
}

type Phase = 'start' | 'awaiting-message2' | 'awaiting-write' | 'done' | 'failed';

/** Shared by both roles: the symmetric state after the pre-message, and the one-shot guard. */
abstract class HybridIkHandshake {
  protected readonly symmetric: SymmetricState;
  protected phase: Phase = 'start';

  protected constructor(prologue: Uint8Array, responderStatic: HybridPublicKey, observe: SymmetricStepObserver | undefined) {
    this.symmetric = new SymmetricState(HYBRID_NOISE_PROTOCOL_NAME, observe);
    this.symmetric.mixHash(prologue);
    this.symmetric.mixHash(requireSize(responderStatic.x25519, X25519_KEY_BYTES, 'responder X25519 key'));
    this.symmetric.mixHash(requireSize(responderStatic.mlkem768, MLKEM768_PUBLIC_KEY_BYTES, 'responder ML-KEM key'));
  }

  protected step<T>(expected: Phase, what: string, operation: () => T): T {
    if (this.phase !== expected) {
      throw new HybridNoiseError('wrong-state', `cannot ${what} now (handshake is ${this.phase})`);
    }
    try {
      return operation();
    } catch (error) {
      this.phase = 'failed';
      if (error instanceof HybridNoiseError) throw error;
      throw new HybridNoiseError('bad-key', `handshake primitive failed while trying to ${what}`);
    }
  }
}

/** The harness side: writes message 1, reads message 2, yields the transport. */
export class HybridIkInitiator extends HybridIkHandshake {
  readonly #static: HybridKeyPair;
  readonly #responderStatic: HybridPublicKey;
  readonly #fixed: InitiatorFixedRandomness;
  #ephemeral: HybridKeyPair | undefined;

  constructor(options: HybridIkInitiatorOptions) {
    super(options.prologue, options.responderStaticKey, options.observe);
    this.#static = options.staticKeyPair;
    this.#responderStatic = options.responderStaticKey;
    this.#fixed = options.fixed ?? {};
  }

  /** Message 1 carrying `payload` (≤ 4096 bytes). */
  writeMessage1(payload: Uint8Array): Buffer {
    return this.step('start', 'write message 1', () => {
      if (payload.length > MAX_AUTHORIZATION_PAYLOAD_BYTES) {
        throw new HybridNoiseError('payload-too-large', `message 1 payload of ${payload.length} bytes exceeds ${MAX_AUTHORIZATION_PAYLOAD_BYTES}`);
      }
      const s = this.symmetric;
      const parts: Buffer[] = [];
      // skem
      const skem = mlkem768Encapsulate(this.#responderStatic.mlkem768, this.#fixed.skemRandomness);
      parts.push(s.encryptAndHash(skem.ciphertext));
      s.mixKeyAndHash(skem.sharedSecret);
      // e
      const e = this.#fixed.ephemeral === undefined ? generateHybridKeyPair() : hybridKeyPairFromSecrets(this.#fixed.ephemeral);
      this.#ephemeral = e;
      parts.push(Buffer.from(e.publicKey.x25519), Buffer.from(e.publicKey.mlkem768));
      s.mixHash(e.publicKey.x25519);
      s.mixHash(e.publicKey.mlkem768);
      // es
      s.mixKey(x25519(e.x25519PrivateKey, this.#responderStatic.x25519));
      // s
      parts.push(s.encryptAndHash(this.#static.publicKey.x25519), s.encryptAndHash(this.#static.publicKey.mlkem768));
      // ss
      s.mixKey(x25519(this.#static.x25519PrivateKey, this.#responderStatic.x25519));
      parts.push(s.encryptAndHash(payload));
      this.phase = 'awaiting-message2';
      return Buffer.concat(parts);
    });
  }

  /** Reads message 2 (exactly 3424 bytes: a non-empty payload is refused as `bad-length`) and returns the transport. */
  readMessage2(message: Uint8Array): HybridTransport {
    return this.step('awaiting-message2', 'read message 2', () => {
      if (message.length !== MESSAGE2_BYTES) {
        throw new HybridNoiseError('bad-length', `message 2 is ${message.length} bytes (expected ${MESSAGE2_BYTES})`);
      }
      const e = this.#ephemeral as HybridKeyPair;
      const s = this.symmetric;
      const reader = new FieldReader(message);
      // ekem
      const ekemCiphertext = reader.take(MLKEM768_CIPHERTEXT_BYTES);
      s.mixHash(ekemCiphertext);
      s.mixKey(mlkem768Decapsulate(ekemCiphertext, e.mlkem768SecretKey));
      // skem
      const skemCiphertext = s.decryptAndHash(reader.take(MLKEM768_CIPHERTEXT_BYTES + AEAD_TAG_BYTES));
      s.mixKeyAndHash(mlkem768Decapsulate(skemCiphertext, this.#static.mlkem768SecretKey));
      // e
      const reX25519 = reader.take(X25519_KEY_BYTES);
      s.mixHash(reX25519);
      s.mixHash(reader.take(MLKEM768_PUBLIC_KEY_BYTES));
      // ee, se
      s.mixKey(x25519(e.x25519PrivateKey, reX25519));
      s.mixKey(x25519(this.#static.x25519PrivateKey, reX25519));
      s.decryptAndHash(reader.rest()); // exactly a tag: the size check above refuses any payload
      const [initiatorToResponder, responderToInitiator] = s.split();
      this.phase = 'done';
      return new HybridTransport(initiatorToResponder, responderToInitiator, s.handshakeHash);
    });
  }
}

/** The executor side: reads message 1, (the caller validates), writes message 2, yields the transport. */
export class HybridIkResponder extends HybridIkHandshake {
  readonly #static: HybridKeyPair;
  readonly #fixed: ResponderFixedRandomness;
  #remoteEphemeral: HybridPublicKey | undefined;
  #remoteStatic: HybridPublicKey | undefined;

  constructor(options: HybridIkResponderOptions) {
    super(options.prologue, options.staticKeyPair.publicKey, options.observe);
    this.#static = options.staticKeyPair;
    this.#fixed = options.fixed ?? {};
  }

  /** Reads message 1 (3568..3568+4096 bytes): the initiator's authenticated static key and payload. */
  readMessage1(message: Uint8Array): Message1Contents {
    return this.step('start', 'read message 1', () => {
      if (message.length < MESSAGE1_FIXED_BYTES || message.length > MESSAGE1_FIXED_BYTES + MAX_AUTHORIZATION_PAYLOAD_BYTES) {
        throw new HybridNoiseError(
          'bad-length',
          `message 1 is ${message.length} bytes (expected ${MESSAGE1_FIXED_BYTES}..${MESSAGE1_FIXED_BYTES + MAX_AUTHORIZATION_PAYLOAD_BYTES})`,
        );
      }
      const s = this.symmetric;
      const reader = new FieldReader(message);
      // skem
      const skemCiphertext = s.decryptAndHash(reader.take(MLKEM768_CIPHERTEXT_BYTES));
      s.mixKeyAndHash(mlkem768Decapsulate(skemCiphertext, this.#static.mlkem768SecretKey));
      // e
      const re = { x25519: reader.take(X25519_KEY_BYTES), mlkem768: reader.take(MLKEM768_PUBLIC_KEY_BYTES) };
      s.mixHash(re.x25519);
      s.mixHash(re.mlkem768);
      // es
      s.mixKey(x25519(this.#static.x25519PrivateKey, re.x25519));
      // s
      const rs = {
        x25519: new Uint8Array(s.decryptAndHash(reader.take(X25519_KEY_BYTES + AEAD_TAG_BYTES))),
        mlkem768: new Uint8Array(s.decryptAndHash(reader.take(MLKEM768_PUBLIC_KEY_BYTES + AEAD_TAG_BYTES))),
      };
      // ss
      s.mixKey(x25519(this.#static.x25519PrivateKey, rs.x25519));
      const payload = s.decryptAndHash(reader.rest());
      this.#remoteEphemeral = { x25519: new Uint8Array(re.x25519), mlkem768: new Uint8Array(re.mlkem768) };
      this.#remoteStatic = rs;
      this.phase = 'awaiting-write';
      return { initiatorStaticKey: rs, payload };
    });
  }

  /** Message 2 (empty payload) and the transport. */
  writeMessage2(): { readonly message: Buffer; readonly transport: HybridTransport } {
    return this.step('awaiting-write', 'write message 2', () => {
      const re = this.#remoteEphemeral as HybridPublicKey;
      const rs = this.#remoteStatic as HybridPublicKey;
      const s = this.symmetric;
      const parts: Buffer[] = [];
      // ekem
      const ekem = mlkem768Encapsulate(re.mlkem768, this.#fixed.ekemRandomness);
      parts.push(Buffer.from(ekem.ciphertext));
      s.mixHash(ekem.ciphertext);
      s.mixKey(ekem.sharedSecret);
      // skem
      const skem = mlkem768Encapsulate(rs.mlkem768, this.#fixed.skemRandomness);
      parts.push(s.encryptAndHash(skem.ciphertext));
      s.mixKeyAndHash(skem.sharedSecret);
      // e
      const e = this.#fixed.ephemeral === undefined ? generateHybridKeyPair() : hybridKeyPairFromSecrets(this.#fixed.ephemeral);
      parts.push(Buffer.from(e.publicKey.x25519), Buffer.from(e.publicKey.mlkem768));
      s.mixHash(e.publicKey.x25519);
      s.mixHash(e.publicKey.mlkem768);
      // ee, se
      s.mixKey(x25519(e.x25519PrivateKey, re.x25519));
      s.mixKey(x25519(e.x25519PrivateKey, rs.x25519));
      parts.push(s.encryptAndHash(new Uint8Array(0)));
      const [initiatorToResponder, responderToInitiator] = s.split();
      this.phase = 'done';
      return { message: Buffer.concat(parts), transport: new HybridTransport(responderToInitiator, initiatorToResponder, s.handshakeHash) };
    });
  }
}

/** Cuts consecutive fixed-size fields out of a message whose total size was checked first. */
class FieldReader {
  #offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  take(length: number): Uint8Array {
    const field = this.bytes.subarray(this.#offset, this.#offset + length);
    if (field.length !== length) throw new HybridNoiseError('bad-length', 'message ended inside a field');
    this.#offset += length;
    return field;
  }

  rest(): Uint8Array {
    const field = this.bytes.subarray(this.#offset);
    this.#offset = this.bytes.length;
    return field;
  }
}

function requireSize(bytes: Uint8Array, expected: number, what: string): Uint8Array {
  if (bytes.length !== expected) throw new HybridNoiseError('bad-length', `${what} must be ${expected} bytes`);
  return bytes;
}
