/**
 * The registry's JSON key object, as codex sends it at registration (`executor_public_key`) and at
 * connect (`harness_public_key`):
 *
 * ```json
 * { "suite": "Noise_hybridIK_X25519+MLKEM768_AESGCM_SHA256",
 *   "x25519_public_key": "<standard base64 of 32 bytes>",
 *   "mlkem768_public_key": "<standard base64 of 1184 bytes>" }
 * ```
 *
 * Parsing is strict: the exact suite tag, canonical padded standard base64 of exactly the key
 * sizes, an X25519 key that is not a low-order point, an ML-KEM-768 key that passes FIPS 203's
 * encapsulation key check. Unknown members are ignored (codex may add some).
 */
import { z } from 'zod';
import { mlkem768Encapsulate, x25519, x25519PrivateKeyObject, type HybridPublicKey } from './hybrid-keys.js';
import { HybridIdentityError } from './hybrid-identity-error.js';
import { isCanonicalBase64Of } from './canonical-base64.js';
import { HYBRID_SUITE_TAG, MLKEM768_PUBLIC_KEY_BYTES, X25519_KEY_BYTES } from './suite.js';

/** The JSON object. */
export interface RegistryPublicKeyJson {
  readonly suite: typeof HYBRID_SUITE_TAG;
  readonly x25519_public_key: string;
  readonly mlkem768_public_key: string;
}

const base64Of = (bytes: number, what: string) =>
  z.string({ error: `${what} must be standard base64 of ${bytes} bytes` }).refine((text) => isCanonicalBase64Of(text, bytes), `${what} must be standard base64 of ${bytes} bytes`);

const registryPublicKeySchema = z.object({
  suite: z.literal(HYBRID_SUITE_TAG, { error: `suite must be "${HYBRID_SUITE_TAG}"` }),
  x25519_public_key: base64Of(X25519_KEY_BYTES, 'x25519_public_key'),
  mlkem768_public_key: base64Of(MLKEM768_PUBLIC_KEY_BYTES, 'mlkem768_public_key'),
});

// Any X25519 scalar turns a low-order point into the all-zero secret, which node:crypto refuses.
const LOW_ORDER_PROBE = x25519PrivateKeyObject(Buffer.alloc(X25519_KEY_BYTES, 0x5a));

/** The JSON object of `key`. */
export function encodeRegistryPublicKey(key: HybridPublicKey): RegistryPublicKeyJson {
  return {
    suite: HYBRID_SUITE_TAG,
    x25519_public_key: Buffer.from(key.x25519).toString('base64'),
    mlkem768_public_key: Buffer.from(key.mlkem768).toString('base64'),
  };
}

/**
 * Parses and validates a key object (already JSON-parsed). `source` names it in error messages.
 * @throws HybridIdentityError naming the first problem.
 */
export function parseRegistryPublicKey(value: unknown, source = 'public key'): HybridPublicKey {
  const parsed = registryPublicKeySchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue !== undefined && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw new HybridIdentityError(`${source}: ${where}${issue?.message ?? 'not a hybrid key object'}`);
  }
  const key = {
    x25519: new Uint8Array(Buffer.from(parsed.data.x25519_public_key, 'base64')),
    mlkem768: new Uint8Array(Buffer.from(parsed.data.mlkem768_public_key, 'base64')),
  };
  try {
    x25519(LOW_ORDER_PROBE, key.x25519);
  } catch {
    throw new HybridIdentityError(`${source}: x25519_public_key is a low-order point`);
  }
  try {
    mlkem768Encapsulate(key.mlkem768);
  } catch {
    throw new HybridIdentityError(`${source}: mlkem768_public_key fails the FIPS 203 encapsulation key check`);
  }
  return key;
}
