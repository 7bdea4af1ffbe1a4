/**
 * The persistent hybrid identity: a key file holding the two secrets a hybrid key pair is made of.
 * Written with mode 0600, never overwritten; loading refuses a file group or others can access
 * (unless `allowInsecurePermissions`, for secret mounts), as `src/noise/identity.ts` does for
 * Ed25519 key files.
 *
 * ```json
 * {
 *   "type": "execrelay-hybrid-identity",
 *   "version": 1,
 *   "suite": "Noise_hybridIK_X25519+MLKEM768_AESGCM_SHA256",
 *   "fingerprint": "hyb1:…",
 *   "x25519PrivateKey": "<standard base64, 32 bytes>",
 *   "mlkem768Seed": "<standard base64, 64 bytes: FIPS 203 d ‖ z>"
 * }
 * ```
 *
 * `fingerprint` is informational (so `cat` shows whose key it is); on load it must match the key
 * the secrets make, otherwise the file is refused as inconsistent.
 */
import { open, unlink } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { z } from 'zod';
import { hybridFingerprint } from './hybrid-fingerprint.js';
import { generateHybridKeyPair, hybridKeyPairFromSecrets, type HybridKeyPair } from './hybrid-keys.js';
import { HybridIdentityError } from './hybrid-identity-error.js';
import { isCanonicalBase64Of } from './canonical-base64.js';
import { HYBRID_SUITE_TAG, MLKEM768_SEED_BYTES, X25519_KEY_BYTES } from './suite.js';

/** The `type` member of a hybrid key file. */
export const HYBRID_KEY_FILE_TYPE = 'execrelay-hybrid-identity';
/** The `version` member this code writes and reads. */
export const HYBRID_KEY_FILE_VERSION = 1;
/** Mode of a new key file. */
export const HYBRID_KEY_FILE_MODE = 0o600;
/** Largest key file read (a real one is under 300 bytes). */
export const MAX_HYBRID_KEY_FILE_BYTES = 16 * 1024;

/** Options for {@link loadHybridKeyFile}. */
export interface LoadHybridKeyFileOptions {
  /** Accept a key file readable by group or others (default false: refused). */
  readonly allowInsecurePermissions?: boolean;
}

const secretOf = (bytes: number) =>
  z.string({ error: `must be standard base64 of ${bytes} bytes` }).refine((text) => isCanonicalBase64Of(text, bytes), `must be standard base64 of ${bytes} bytes`);

const keyFileSchema = z.object({
  type: z.literal(HYBRID_KEY_FILE_TYPE, { error: `type must be "${HYBRID_KEY_FILE_TYPE}"` }),
  version: z.literal(HYBRID_KEY_FILE_VERSION, { error: `unsupported version (expected ${HYBRID_KEY_FILE_VERSION})` }),
  suite: z.literal(HYBRID_SUITE_TAG, { error: `suite must be "${HYBRID_SUITE_TAG}"` }),
  fingerprint: z.string().optional(),
  x25519PrivateKey: secretOf(X25519_KEY_BYTES),
  mlkem768Seed: secretOf(MLKEM768_SEED_BYTES),
});

/** The key file text of `keyPair` (JSON, trailing newline). */
export function encodeHybridKeyFile(keyPair: HybridKeyPair): string {
  const document = {
    type: HYBRID_KEY_FILE_TYPE,
    version: HYBRID_KEY_FILE_VERSION,
    suite: HYBRID_SUITE_TAG,
    fingerprint: hybridFingerprint(keyPair.publicKey),
    x25519PrivateKey: Buffer.from(keyPair.secrets.x25519Private).toString('base64'),
    mlkem768Seed: Buffer.from(keyPair.secrets.mlkem768Seed).toString('base64'),
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** Parses key file text. `source` names it in errors. @throws HybridIdentityError. */
export function decodeHybridKeyFile(text: string, source = 'hybrid key file'): HybridKeyPair {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new HybridIdentityError(`${source} is not an execrelay hybrid key file (not JSON)`);
  }
  const parsed = keyFileSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue !== undefined && issue.path.length > 0 ? `"${issue.path.join('.')}" ` : '';
    throw new HybridIdentityError(`${source} is not a valid execrelay hybrid key file: ${where}${issue?.message ?? 'invalid'}`);
  }
  const keyPair = hybridKeyPairFromSecrets({
    x25519Private: Buffer.from(parsed.data.x25519PrivateKey, 'base64'),
    mlkem768Seed: Buffer.from(parsed.data.mlkem768Seed, 'base64'),
  });
  const fingerprint = hybridFingerprint(keyPair.publicKey);
  if (parsed.data.fingerprint !== undefined && parsed.data.fingerprint !== fingerprint) {
    throw new HybridIdentityError(
      `${source} is inconsistent: "fingerprint" is ${JSON.stringify(parsed.data.fingerprint)} but the secrets make ${fingerprint}`,
    );
  }
  return keyPair;
}

/**
 * Writes `keyPair` to a new file at `path` (mode 0600). Refuses to overwrite; the directory must exist.
 * @throws HybridIdentityError naming the path.
 */
export async function writeHybridKeyFile(path: string, keyPair: HybridKeyPair): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'wx', HYBRID_KEY_FILE_MODE);
  } catch (error) {
    const code = errorCode(error);
    throw new HybridIdentityError(
      code === 'EEXIST'
        ? `refusing to overwrite existing file ${path} (key files are never overwritten)`
        : `cannot create hybrid key file ${path}: ${code ?? (error as Error).message}`,
    );
  }
  try {
    await handle.writeFile(encodeHybridKeyFile(keyPair), 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw new HybridIdentityError(`cannot write hybrid key file ${path}: ${(error as Error).message}`);
  }
  await handle.close();
}

/** Generates a hybrid key pair and writes it to a new key file. */
export async function createHybridKeyFile(path: string): Promise<HybridKeyPair> {
  const keyPair = generateHybridKeyPair();
  await writeHybridKeyFile(path, keyPair);
  return keyPair;
}

/** Loads a hybrid key file. @throws HybridIdentityError naming the path. */
export async function loadHybridKeyFile(path: string, options: LoadHybridKeyFileOptions = {}): Promise<HybridKeyPair> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (error) {
    const code = errorCode(error);
    throw new HybridIdentityError(code === 'ENOENT' ? `hybrid key file ${path} does not exist` : `cannot read hybrid key file ${path}: ${code ?? (error as Error).message}`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new HybridIdentityError(`hybrid key file ${path} is not a regular file`);
    const mode = stats.mode & 0o777;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0 && options.allowInsecurePermissions !== true) {
      throw new HybridIdentityError(
        `hybrid key file ${path} has mode 0${mode.toString(8).padStart(3, '0')}; it must not be accessible by group or others (run: chmod 600 ${path})`,
      );
    }
    if (stats.size > MAX_HYBRID_KEY_FILE_BYTES) throw new HybridIdentityError(`hybrid key file ${path} is too large to be a key file`);
    return decodeHybridKeyFile(await handle.readFile('utf8'), `hybrid key file ${path}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}
