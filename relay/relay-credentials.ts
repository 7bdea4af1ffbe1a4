import { createHash, timingSafeEqual } from 'node:crypto';
import { checkToken, readSecretFile, type TokenFileOptions } from '../src/auth/bearer-tokens.js';
import { UpgradeRefusal, type UpgradeRefusalReason } from '../src/relay-control/relay-endpoints.js';

/**
 * The relay's scoped credentials: its token file, one credential a line,
 *
 *     TOKEN ROLE SCOPE
 *
 * ROLE is `executor` (may register executors) or `client` (may connect clients); SCOPE is a
 * comma-separated list of environment ids or globs (`*` matches any run of characters:
 * `laptop-*`, `*`). A bare `TOKEN` line is accepted for both roles and every environment, with a
 * warning. `#` comments and blank lines are ignored; the same token twice is an error. The
 * endpoints' own token files (one token, first line) are `src/auth/bearer-tokens.ts`'s.
 */

export const RELAY_ROLES = ['executor', 'client'] as const;
export type RelayRole = (typeof RELAY_ROLES)[number];

/** One scope entry: an environment id, or a glob of environment-id characters and `*`. */
const SCOPE_ENTRY = /^[A-Za-z0-9._*-]{1,128}$/;
/** Scope entries on one line. */
const MAX_SCOPE_ENTRIES = 64;
/** Credentials in one file. */
export const MAX_RELAY_CREDENTIALS = 10_000;

/** One accepted token: what it may do, and its internal id. */
export interface RelayCredential {
  /**
   * A short hash of the token (8 characters): the same for the same token in every file and on
   * every fleet instance, so counts and stream ownership survive a re-read. Internal: never a
   * metric label, never logged.
   */
  readonly id: string;
  readonly roles: ReadonlySet<RelayRole>;
  /** The scope as written (`laptop-*`, `*`). */
  readonly scope: readonly string[];
  /** 1-based line in the file. */
  readonly line: number;
}

interface Entry {
  readonly credential: RelayCredential;
  readonly digest: Buffer;
  readonly scope: readonly RegExp[];
}

/** What an upgrade's token allows: a credential, or the refusal. */
export type CredentialCheck = { readonly ok: true; readonly credential: RelayCredential } | { readonly ok: false; readonly refusal: UpgradeRefusalReason };

/**
 * The accepted credentials. `check` compares the presented token with every accepted one in
 * constant time (SHA-256 digests and `timingSafeEqual`, as `BearerTokenVerifier`), then applies
 * the role and the scope.
 */
export class RelayCredentials {
  private readonly entries: readonly Entry[];
  private readonly byId: ReadonlyMap<string, Entry>;

  private constructor(entries: Entry[]) {
    if (entries.length === 0) throw new Error('no accepted tokens');
    this.entries = entries;
    this.byId = new Map(entries.map((entry) => [entry.credential.id, entry]));
  }

  /**
   * Bare tokens (both roles, every environment): the embedded relay of `quickstart` and tests
   * with one shared token.
   */
  static fromBareTokens(tokens: readonly string[]): RelayCredentials {
    return new RelayCredentials(
      tokens.map((token, index) => {
        checkToken(token, `token ${index + 1}`);
        return entry(token, [...RELAY_ROLES], ['*'], index + 1);
      }),
    );
  }

  /**
   * Parses a token file's text. Throws on the first bad line (naming its number, never a token);
   * `warnings` names each bare line.
   */
  static parse(text: string, source: string): { credentials: RelayCredentials; warnings: string[] } {
    const entries: Entry[] = [];
    const warnings: string[] = [];
    const seen = new Set<string>();
    text.split('\n').forEach((raw, index) => {
      const line = raw.trim();
      const number = index + 1;
      if (line === '' || line.startsWith('#')) return;
      const where = `${source} line ${number}`;
      const fields = line.split(/\s+/);
      const token = fields[0]!;
      checkToken(token, where);
      let roles: RelayRole[];
      let scope: string[];
      if (fields.length === 1) {
        roles = [...RELAY_ROLES];
        scope = ['*'];
        warnings.push(
          `${where}: a bare token is accepted for executors and clients of every environment; give it a role and a scope ("TOKEN executor|client SCOPE", e.g. "TOKEN client laptop-*")`,
        );
      } else if (fields.length === 3) {
        const role = fields[1]!;
        if (!(RELAY_ROLES as readonly string[]).includes(role)) throw new Error(`${where}: role must be "executor" or "client"`);
        roles = [role as RelayRole];
        scope = fields[2]!.split(',');
        if (scope.length > MAX_SCOPE_ENTRIES) throw new Error(`${where}: more than ${MAX_SCOPE_ENTRIES} scope entries`);
        for (const pattern of scope) {
          if (!SCOPE_ENTRY.test(pattern)) throw new Error(`${where}: scope entries are environment ids or globs of letters, digits, ".", "_", "-" and "*", separated by ","`);
        }
      } else {
        throw new Error(`${where}: expected "TOKEN ROLE SCOPE" (or a bare TOKEN)`);
      }
      const made = entry(token, roles, scope, number);
      if (seen.has(made.credential.id)) throw new Error(`${where}: the same token is listed twice`);
      seen.add(made.credential.id);
      entries.push(made);
      if (entries.length > MAX_RELAY_CREDENTIALS) throw new Error(`${source}: more than ${MAX_RELAY_CREDENTIALS} tokens`);
    });
    if (entries.length === 0) throw new Error(`${source} holds no token`);
    return { credentials: new RelayCredentials(entries), warnings };
  }

  /** Reads the relay's token file (the permissions policy of `readTokenFile`) and parses it. */
  static async read(path: string, options: TokenFileOptions = {}): Promise<{ credentials: RelayCredentials; warnings: string[] }> {
    return RelayCredentials.parse(await readSecretFile(path, 'token file', options), `token file ${path}`);
  }

  /** Accepted tokens. */
  get size(): number {
    return this.entries.length;
  }

  /** Accepted tokens that may act in `role` (somewhere). */
  countFor(role: RelayRole): number {
    let count = 0;
    for (const { credential } of this.entries) if (credential.roles.has(role)) count++;
    return count;
  }

  /** The credential of a presented token, or null. Every accepted token is compared, in constant time. */
  verify(token: string): RelayCredential | null {
    const presented = digest(token);
    let found: Entry | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(presented, entry.digest)) found = entry;
    }
    return token.length > 0 && found ? found.credential : null;
  }

  /**
   * An upgrade's `Authorization` header, for `role` and `environmentId` → its credential, or why
   * it is refused (401 unknown token, 403 wrong role or environment out of scope).
   */
  check(authorization: string | undefined, role: RelayRole, environmentId: string): CredentialCheck {
    const match = /^Bearer ([^\s]+)$/i.exec(authorization?.trim() ?? '');
    const credential = this.verify(match?.[1] ?? '');
    if (!credential) return { ok: false, refusal: UpgradeRefusal.Unauthorized };
    const refusal = this.refusal(credential.id, role, environmentId);
    return refusal ? { ok: false, refusal } : { ok: true, credential };
  }

  /** Whether the credential (by id) still exists and covers `role` in `environmentId` (live sockets after a re-read). */
  permits(credentialId: string, role: RelayRole, environmentId: string): boolean {
    return this.refusal(credentialId, role, environmentId) === null;
  }

  private refusal(credentialId: string, role: RelayRole, environmentId: string): UpgradeRefusalReason | null {
    const found = this.byId.get(credentialId);
    if (!found) return UpgradeRefusal.Unauthorized;
    if (!found.credential.roles.has(role)) return UpgradeRefusal.ForbiddenRole;
    if (!found.scope.some((pattern) => pattern.test(environmentId))) return UpgradeRefusal.EnvironmentNotInScope;
    return null;
  }
}

function entry(token: string, roles: RelayRole[], scope: string[], line: number): Entry {
  const tokenDigest = digest(token);
  return {
    credential: { id: credentialId(tokenDigest), roles: new Set(roles), scope, line },
    digest: tokenDigest,
    scope: scope.map(globPattern),
  };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** 48 bits of a second hash of the token's digest, base64url (a NATS subject token). */
function credentialId(tokenDigest: Buffer): string {
  return createHash('sha256').update('execrelay relay credential id\0').update(tokenDigest).digest().subarray(0, 6).toString('base64url');
}

/** A scope entry as an anchored pattern: `*` is any run of characters, everything else literal. */
function globPattern(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.]/g, '\\.')).join('.*')}$`);
}
