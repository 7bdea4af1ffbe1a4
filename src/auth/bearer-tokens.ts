import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** Tokens shorter than this are refused: a bearer token is the relay's only gate. */
export const MIN_TOKEN_LENGTH = 16;
const MAX_TOKEN_LENGTH = 4096;

/**
 * Reads a token file: one token per line, `#` comments and blank lines ignored. The relay accepts
 * any token in its file; an endpoint sends the first one in its own.
 */
export async function readTokenFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read token file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseTokens(text, `token file ${path}`);
}

export function parseTokens(text: string, source: string): string[] {
  const tokens: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.length < MIN_TOKEN_LENGTH) throw new Error(`${source} line ${index + 1}: token shorter than ${MIN_TOKEN_LENGTH} characters`);
    if (line.length > MAX_TOKEN_LENGTH || /\s/.test(line)) throw new Error(`${source} line ${index + 1}: not a valid token`);
    tokens.push(line);
  });
  if (tokens.length === 0) throw new Error(`${source} holds no token`);
  return tokens;
}

/** Token from an option value, or from a file named by another option (env var or flag). */
export async function resolveToken(direct: string | undefined, file: string | undefined, what: string): Promise<string> {
  if (direct) return parseTokens(direct, what)[0]!;
  if (file) return (await readTokenFile(file))[0]!;
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
