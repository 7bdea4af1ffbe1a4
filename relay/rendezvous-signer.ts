import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  RENDEZVOUS_QUERY,
  RENDEZVOUS_QUERY_VERSION,
  RENDEZVOUS_ROLES,
  RendezvousRejection,
  type AuthorizationRefusal,
  type RendezvousRejectionReason,
  type RendezvousRole,
} from '../src/codex-registry/registry-endpoints.js';

/** What a signed rendezvous URL lets in: one role, for one environment and registration, until `expiresAt`. */
export interface RendezvousGrant {
  readonly role: RendezvousRole;
  readonly environmentId: string;
  readonly registrationId: string;
  /** The relay credential (token id) the URL was issued to: shares and revocation follow it. */
  readonly credentialId: string;
  readonly expiresAt: number;
}

/** What a harness key authorization is bound to. */
export interface HarnessAuthorizationClaims {
  readonly environmentId: string;
  readonly registrationId: string;
  /** `hyb1:` fingerprint of the harness's hybrid key. */
  readonly harnessFingerprint: string;
  readonly expiresAt: number;
  /**
   * In a relay fleet: the relay process that mints it (instance id and boot), which owns its
   * nonce: every use is asked of it (`FleetAuthorizations`).
   */
  readonly minter?: { readonly instance: string; readonly boot: string };
}

export type AuthorizationCheck =
  | { readonly ok: true; readonly nonce: string; readonly expiresAt: number; readonly minter: { readonly instance: string; readonly boot: string } | null }
  | { readonly ok: false; readonly refusal: AuthorizationRefusal };

const URL_LABEL = 'execrelay codex rendezvous url v1\0';
const AUTHORIZATION_LABEL = 'execrelay codex harness authorization v1\0';
const AUTHORIZATION_PREFIX = 'hka1';
/** HKDF-SHA256 `info` of the signing key derived from a fleet secret (a key for this use only). */
const FLEET_KEY_INFO = 'execrelay codex rendezvous signing key v1';

/**
 * The relay's signatures on what it hands out for the codex wire, HMAC-SHA256 (node:crypto) with a
 * secret of its own: the rendezvous WebSocket URLs (role, environment, registration, credential,
 * expiry in the query) and the harness key authorizations (environment, registration, harness key
 * fingerprint, expiry, a nonce). A single relay makes its secret at start: only it can mint them
 * and check them (an authorization outlives no restart, which is shorter than its minute anyway).
 * The instances of a relay fleet given one fleet secret (`--fleet-secret-file`) each derive the
 * same key from it (`fromFleetSecret`, HKDF-SHA256), so what one instance signs every instance
 * verifies; the fleet secret itself signs nothing. There an authorization also names the relay
 * process that minted it, which alone says whether it was used (`FleetAuthorizations`).
 */
export class RendezvousSigner {
  private readonly secret: Buffer;

  constructor(secret: Uint8Array = randomBytes(32)) {
    if (secret.length < 32) throw new Error('the rendezvous secret must be at least 32 bytes');
    this.secret = Buffer.from(secret);
  }

  /** The signer of every instance of a fleet that shares `fleetSecret` (at least 32 bytes). */
  static fromFleetSecret(fleetSecret: Uint8Array): RendezvousSigner {
    if (fleetSecret.length < 32) throw new Error('the fleet secret must be at least 32 bytes');
    return new RendezvousSigner(Buffer.from(hkdfSync('sha256', fleetSecret, Buffer.alloc(0), FLEET_KEY_INFO, 32)));
  }

  /** `base` (`ws://HOST:PORT/cloud/rendezvous`) with the signed query of `grant`. */
  signedUrl(base: string, grant: RendezvousGrant): string {
    const url = new URL(base);
    url.search = '';
    const expires = String(grant.expiresAt);
    url.searchParams.set(RENDEZVOUS_QUERY.version, RENDEZVOUS_QUERY_VERSION);
    url.searchParams.set(RENDEZVOUS_QUERY.role, grant.role);
    url.searchParams.set(RENDEZVOUS_QUERY.environment, grant.environmentId);
    url.searchParams.set(RENDEZVOUS_QUERY.registration, grant.registrationId);
    url.searchParams.set(RENDEZVOUS_QUERY.credential, grant.credentialId);
    url.searchParams.set(RENDEZVOUS_QUERY.expiry, expires);
    url.searchParams.set(RENDEZVOUS_QUERY.signature, this.urlSignature(grant.role, grant.environmentId, grant.registrationId, grant.credentialId, expires));
    return url.toString();
  }

  /** The grant of a rendezvous upgrade's query, or why it is refused. Never throws. */
  verifyQuery(query: URLSearchParams, now = Date.now()): { ok: true; grant: RendezvousGrant } | { ok: false; rejection: RendezvousRejectionReason } {
    const known = new Set<string>(Object.values(RENDEZVOUS_QUERY));
    const seen = new Set<string>();
    for (const key of query.keys()) {
      if (!known.has(key)) return { ok: false, rejection: RendezvousRejection.ExtraQueryParam };
      if (seen.has(key)) return { ok: false, rejection: RendezvousRejection.MalformedQuery };
      seen.add(key);
    }
    const get = (name: string) => query.get(name);
    const version = get(RENDEZVOUS_QUERY.version);
    if (version === null) return { ok: false, rejection: RendezvousRejection.MissingVersion };
    if (version !== RENDEZVOUS_QUERY_VERSION) return { ok: false, rejection: RendezvousRejection.MalformedQuery };
    const role = get(RENDEZVOUS_QUERY.role);
    if (role === null) return { ok: false, rejection: RendezvousRejection.MissingRole };
    if (!(RENDEZVOUS_ROLES as readonly string[]).includes(role)) return { ok: false, rejection: RendezvousRejection.InvalidRole };
    const registrationId = get(RENDEZVOUS_QUERY.registration);
    if (registrationId === null || registrationId === '') return { ok: false, rejection: RendezvousRejection.MissingRegistrationId };
    const expires = get(RENDEZVOUS_QUERY.expiry);
    if (expires === null) return { ok: false, rejection: RendezvousRejection.MissingExpiry };
    if (!/^[0-9]{1,15}$/.test(expires)) return { ok: false, rejection: RendezvousRejection.InvalidExpiry };
    const signature = get(RENDEZVOUS_QUERY.signature);
    if (signature === null || signature === '') return { ok: false, rejection: RendezvousRejection.MissingSignature };
    const environmentId = get(RENDEZVOUS_QUERY.environment);
    const credentialId = get(RENDEZVOUS_QUERY.credential);
    if (environmentId === null || credentialId === null) return { ok: false, rejection: RendezvousRejection.MalformedQuery };
    const expected = Buffer.from(this.urlSignature(role, environmentId, registrationId, credentialId, expires), 'base64url');
    const presented = Buffer.from(signature, 'base64url');
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return { ok: false, rejection: RendezvousRejection.InvalidSignature };
    const expiresAt = Number(expires);
    if (expiresAt < now) return { ok: false, rejection: RendezvousRejection.Expired };
    return { ok: true, grant: { role: role as RendezvousRole, environmentId, registrationId, credentialId, expiresAt } };
  }

  /** A harness key authorization: `hka1.<claims, base64url JSON>.<HMAC, base64url>` (≈ 250 bytes). */
  mintAuthorization(claims: HarnessAuthorizationClaims): string {
    const body = Buffer.from(
      JSON.stringify({
        e: claims.environmentId,
        r: claims.registrationId,
        k: claims.harnessFingerprint,
        x: claims.expiresAt,
        n: randomBytes(16).toString('hex'),
        ...(claims.minter ? { i: claims.minter.instance, b: claims.minter.boot } : {}),
      }),
      'utf8',
    ).toString('base64url');
    return `${AUTHORIZATION_PREFIX}.${body}.${this.authorizationSignature(body)}`;
  }

  /**
   * Checks an authorization against what the validating executor presents: minted here, for exactly
   * this environment, registration and harness key, unexpired. Replays are the caller's (the nonce).
   */
  verifyAuthorization(text: string, expected: Omit<HarnessAuthorizationClaims, 'expiresAt'>, now = Date.now()): AuthorizationCheck {
    const parts = text.split('.');
    if (parts.length !== 3 || parts[0] !== AUTHORIZATION_PREFIX) return { ok: false, refusal: 'malformed' };
    const [, body, signature] = parts as [string, string, string];
    const wanted = Buffer.from(this.authorizationSignature(body), 'base64url');
    const presented = Buffer.from(signature, 'base64url');
    if (presented.length !== wanted.length || !timingSafeEqual(presented, wanted)) return { ok: false, refusal: 'bad_signature' };
    let claims: { e?: unknown; r?: unknown; k?: unknown; x?: unknown; n?: unknown; i?: unknown; b?: unknown };
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return { ok: false, refusal: 'malformed' };
    }
    if (typeof claims.x !== 'number' || typeof claims.n !== 'string') return { ok: false, refusal: 'malformed' };
    const minted = claims.i !== undefined || claims.b !== undefined;
    if (minted && (typeof claims.i !== 'string' || typeof claims.b !== 'string')) return { ok: false, refusal: 'malformed' };
    if (claims.e !== expected.environmentId) return { ok: false, refusal: 'other_environment' };
    if (claims.r !== expected.registrationId) return { ok: false, refusal: 'other_registration' };
    if (claims.k !== expected.harnessFingerprint) return { ok: false, refusal: 'other_key' };
    if (claims.x < now) return { ok: false, refusal: 'expired' };
    return { ok: true, nonce: claims.n, expiresAt: claims.x, minter: minted ? { instance: claims.i as string, boot: claims.b as string } : null };
  }

  private urlSignature(role: string, environmentId: string, registrationId: string, credentialId: string, expires: string): string {
    return createHmac('sha256', this.secret).update(URL_LABEL).update([role, environmentId, registrationId, credentialId, expires].join('\0')).digest('base64url');
  }

  private authorizationSignature(body: string): string {
    return createHmac('sha256', this.secret).update(AUTHORIZATION_LABEL).update(body).digest('base64url');
  }
}
