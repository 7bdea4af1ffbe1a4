import { createHash, timingSafeEqual } from 'node:crypto';
import { open } from 'node:fs/promises';

/** Tokens shorter than this are refused: a bearer token is the relay's only gate. */
export const MIN_TOKEN_LENGTH = 16;
const MAX_TOKEN_LENGTH = 4096;

/** Options for {@link readTokenFile} and {@link resolveToken}. */
export interface TokenFileOptions {
  /** Accept a token file readable by group or others (default false: such a file is refused). */
  allowInsecurePermissions?: boolean;
  /** Told when an insecure file is accepted because of `allowInsecurePermissions`. */
  warn?: (message: string) => void;
}

/** The flag (and its EXECRELAY_ALLOW_INSECURE_TOKEN_PERMISSIONS variable) that sets `allowInsecurePermissions`. */
export const ALLOW_INSECURE_TOKEN_PERMISSIONS_FLAG = '--allow-insecure-token-permissions';

/**
 * Reads a token file: one token per line, `#` comments and blank lines ignored. The relay accepts
 * any token in its file; an endpoint sends the first one in its own.
 *
 * Permissions policy (as for key files, `src/noise/identity.ts`): a file that grants any permission
 * to group or others (mode & 0o077) is refused unless `options.allowInsecurePermissions` is set (for
 * secret mounts that default to 0644), and then `options.warn` is told. Not checked on Windows.
 */
export async function readTokenFile(path: string, options: TokenFileOptions = {}): Promise<string[]> {
  return parseTokens(await readSecretFile(path, 'token file', options), `token file ${path}`);
}

/**
 * Reads a secret file (a token file, the relay's scoped token file) under the permissions policy
 * of {@link readTokenFile}. `what` names the file in errors ("token file").
 */
export async function readSecretFile(path: string, what: string, options: TokenFileOptions = {}): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new Error(`${what} ${path} is not a regular file`);
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    if (process.platform !== 'win32' && (stats.mode & 0o077) !== 0) {
      if (options.allowInsecurePermissions !== true) {
        throw new Error(
          `${what} ${path} has mode ${mode}; it must not be accessible by group or others (run: chmod 600 ${path}; ${ALLOW_INSECURE_TOKEN_PERMISSIONS_FLAG} accepts it anyway)`,
        );
      }
      options.warn?.(`${what} ${path} has mode ${mode} (accessible by group or others); accepted because of ${ALLOW_INSECURE_TOKEN_PERMISSIONS_FLAG}`);
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close().catch(() => undefined);
  }
}

export function parseTokens(text: string, source: string): string[] {
  const tokens: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    checkToken(line, `${source} line ${index + 1}`);
    tokens.push(line);
  });
  if (tokens.length === 0) throw new Error(`${source} holds no token`);
  return tokens;
}

/** Throws (naming `where`, never the token) unless `token` is a well-formed bearer token. */
export function checkToken(token: string, where: string): void {
  if (token.length < MIN_TOKEN_LENGTH) throw new Error(`${where}: token shorter than ${MIN_TOKEN_LENGTH} characters`);
  if (token.length > MAX_TOKEN_LENGTH || /\s/.test(token)) throw new Error(`${where}: not a valid token`);
}

/** Token from an option value, or from a file named by another option (env var or flag). */
export async function resolveToken(direct: string | undefined, file: string | undefined, what: string, options: TokenFileOptions = {}): Promise<string> {
  if (direct) return parseTokens(direct, what)[0]!;
  if (file) return (await readTokenFile(file, options))[0]!;
  throw new Error(`${what}: give --token-file FILE (or set EXECRELAY_TOKEN)`);
}

/**
 * Checks presented bearer tokens against the accepted set in constant time: both sides are hashed
 * to fixed-length digests before `timingSafeEqual`, and every accepted token is compared.
 */
export class BearerTokenVerifier {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    if (tokens.length === 0) throw new Error('no accepted tokens');
    this.digests = tokens.map(digest);
  }

  /** `Authorization` header value → whether it carries an accepted bearer token. */
  verifyHeader(header: string | undefined): boolean {
    const match = /^Bearer ([^\s]+)$/i.exec(header?.trim() ?? '');
    return this.verify(match?.[1] ?? '');
  }

  verify(token: string): boolean {
    const presented = digest(token);
    let ok = false;
    for (const accepted of this.digests) ok = timingSafeEqual(presented, accepted) || ok;
    return ok && token.length > 0;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
