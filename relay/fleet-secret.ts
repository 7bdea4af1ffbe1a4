import { readSecretFile, type TokenFileOptions } from '../src/auth/bearer-tokens.js';

/** A fleet secret shorter than this (in bytes, after trimming) is refused. */
export const MIN_FLEET_SECRET_BYTES = 32;
/** ... and one longer than this: the file is a secret, not a document. */
export const MAX_FLEET_SECRET_BYTES = 1024;

/**
 * The fleet secret (`execrelay relay --fleet-secret-file FILE`): one secret shared by every
 * instance of a relay fleet, from which each instance derives the same key for what one instance
 * signs and another checks (the codex rendezvous URLs and harness key authorizations,
 * `RendezvousSigner.fromFleetSecret`). The file holds the secret on one line (e.g.
 * `head -c 32 /dev/urandom | base64`); surrounding whitespace is ignored; its bytes (UTF-8) are the
 * secret. Read under the token files' permission policy: group- or other-readable is refused
 * unless `allowInsecurePermissions`.
 */
export async function readFleetSecret(path: string, options: TokenFileOptions = {}): Promise<Uint8Array> {
  return parseFleetSecret(await readSecretFile(path, 'fleet secret file', options), `fleet secret file ${path}`);
}

/** The secret of a fleet secret file's text; throws a clear error for a short, long or multi-line one. */
export function parseFleetSecret(text: string, source: string): Uint8Array {
  const secret = Buffer.from(text.trim(), 'utf8');
  if (/[\r\n]/.test(text.trim())) throw new Error(`${source} holds more than one line; it holds the fleet secret alone`);
  if (secret.length < MIN_FLEET_SECRET_BYTES) throw new Error(`${source} holds a secret of ${secret.length} bytes; it must be at least ${MIN_FLEET_SECRET_BYTES} (make one with: head -c 32 /dev/urandom | base64)`);
  if (secret.length > MAX_FLEET_SECRET_BYTES) throw new Error(`${source} holds more than ${MAX_FLEET_SECRET_BYTES} bytes; it holds the fleet secret alone`);
  return secret;
}
