import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { z } from 'zod';
import {
  CODEX_RENDEZVOUS_PATH,
  CODEX_SECURITY_PROFILE,
  CodexRegistryError,
  MAX_CODEX_REGISTRY_BODY_BYTES,
  type CodexRegistryAction,
  type AuthorizationRefusal,
  type CodexRegistryErrorReason,
} from '../src/codex-registry/registry-endpoints.js';
import { ConnectRequest, RegisterRequest, ValidateRequest, type RegisterResponse, type ConnectResponse } from '../src/codex-registry/registry-messages.js';
import { hybridFingerprint } from '../src/noise-hybrid/hybrid-fingerprint.js';
import type { HybridPublicKey } from '../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey, parseRegistryPublicKey } from '../src/noise-hybrid/registry-public-key.js';
import { UpgradeRefusal, validateEnvironmentId, type UpgradeRefusalReason } from '../src/relay-control/relay-endpoints.js';
import type { Logger } from '../src/logging/logger.js';
import type { EnvironmentBindings } from './environment-bindings.js';
import { RecentProofs } from './recent-proofs.js';
import type { RelayLimits } from './relay-config.js';
import type { RelayCredential, RelayCredentials, RelayRole } from './relay-credentials.js';
import type { CodexRendezvousRouter } from './codex-rendezvous-router.js';
import type { RendezvousSigner } from './rendezvous-signer.js';
import type { RelayEvents } from './relay-events.js';
import type { RelayAudit } from './relay-audit.js';
import type { AuthorizationMinter, AuthorizationUse } from './fleet-authorizations.js';
import type { EnvironmentEntry } from './fleet-wire.js';

/**
 * What the registry needs of a relay fleet (`NatsFleet`): registrations held by other instances,
 * and one use per authorization fleet-wide.
 */
export interface CodexRegistryFleet {
  /** This relay process, named in the authorizations it mints. */
  readonly minter: AuthorizationMinter;
  /** The registry entry of a codex executor another live instance holds, or null. Rejects when NATS is down. */
  codexRegistrationElsewhere(environmentId: string): Promise<EnvironmentEntry | null>;
  /** Uses an authorization's nonce (asking its minter); `unavailable` is refused. */
  useAuthorization(minter: AuthorizationMinter | null, nonce: string, expiresAt: number): Promise<AuthorizationUse>;
}

/** A registration found for `connect`, `validate` or a harness socket: held here, or by another fleet instance. */
export interface FoundRegistration {
  readonly registration: CodexRegistration;
  /** Its executor's socket is on this instance (false: another instance of the fleet holds it). */
  readonly here: boolean;
}

/** One codex executor's registration of an environment (the latest one wins). */
export interface CodexRegistration {
  readonly environmentId: string;
  readonly registrationId: string;
  readonly executorKey: HybridPublicKey;
  /** `hyb1:` fingerprint of the executor key: what the environment is bound to. */
  readonly fingerprint: string;
  readonly credentialId: string;
  readonly registeredAt: number;
}

export interface CodexRegistryOptions {
  /** The relay's accepted tokens now (they change when the token file is re-read). */
  readonly credentials: () => RelayCredentials;
  /** The relay's environment bindings: a codex environment is bound to its executor's hybrid key fingerprint. */
  readonly bindings: EnvironmentBindings;
  readonly signer: RendezvousSigner;
  readonly router: CodexRendezvousRouter;
  /** Whether an execrelay agent holds the environment now (one namespace for both kinds). */
  readonly nativeExecutorLive: (environmentId: string) => boolean;
  readonly limits: RelayLimits;
  readonly logger: Logger;
  /** The relay's metrics: registrations and token failures (the same series as execrelay agents'). */
  readonly events: RelayEvents;
  /** Served over TLS: rendezvous URLs are `wss://`. */
  readonly tls: boolean;
  /** With `--audit-log`: registrations and refusals. */
  readonly audit?: RelayAudit;
  /** In a relay fleet: registrations of other instances, and fleet-wide single use of authorizations. */
  readonly fleet?: CodexRegistryFleet;
}

/** An answer of the registry: a status and a JSON body (and what the audit log records of it). */
interface Answer {
  readonly status: number;
  readonly body: unknown;
  /** A refusal's reason (an error code, or why a validation answered `{"valid":false}`). */
  readonly refusal?: string;
  /** A registration's executor key fingerprint. */
  readonly executorKey?: string;
  /** The token's line in the token file, once recognised. */
  tokenLine?: number;
}

/** Host header values we build rendezvous URLs from: a host name or address and an optional port. */
const HOST_HEADER = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/**
 * The codex-compatible environment registry (codex exec-server 0.169.0, protocol notes §1, §3,
 * §6), on the relay's own listener:
 *
 * - `POST /cloud/environment/{id}/register` — a codex executor, bearer = a relay token with the
 *   executor role for the environment, body = its hybrid public key. The environment is bound to
 *   the key's fingerprint (first key wins, as for execrelay agents). Answers a registration id and
 *   the executor's signed rendezvous URL.
 * - `POST /cloud/environment/{id}/connect` — a client, bearer = a client-role token, body = its
 *   hybrid public key. Answers the harness's signed rendezvous URL, the registered executor key
 *   and registration id, and a `harness_key_authorization` bound to the client key, environment
 *   and registration, valid for a minute and once.
 * - `POST /cloud/environment/{id}/validate` — the executor, bearer = the token it registered
 *   with, asks whether the harness key its handshake proved is authorized: `{"valid":true}` only
 *   for an authorization minted here for exactly that key, environment and registration, unexpired
 *   and not used before.
 *
 * In a relay fleet (`fleet`) `connect` and `validate` also find registrations other instances
 * hold (the fleet registry), and an authorization is used once fleet-wide: its minting process is
 * asked (`FleetAuthorizations`), and without its answer it is refused.
 *
 * Every bad input is a 4xx with `{"error":{"code","message"}}`; bodies are bounded.
 */
export class CodexRegistry {
  private readonly registrations = new Map<string, CodexRegistration>();
  private readonly usedAuthorizations: RecentProofs;

  constructor(private readonly options: CodexRegistryOptions) {
    this.usedAuthorizations = new RecentProofs(options.limits.maxRecentProofs);
  }

  /** The environment's registration, while it holds the environment id. */
  registration(environmentId: string): CodexRegistration | undefined {
    const registration = this.registrations.get(environmentId);
    if (!registration) return undefined;
    if (this.options.router.hasLiveExecutor(environmentId) || Date.now() - registration.registeredAt < this.options.limits.codexRegistrationTtlMs) return registration;
    this.registrations.delete(environmentId);
    return undefined;
  }

  /**
   * The registration a client may reach now: the one whose executor's socket is here or, in a
   * fleet, the one another live instance holds (from the fleet registry). Rejects when the fleet
   * cannot be asked (NATS is down).
   */
  async findRegistration(environmentId: string): Promise<FoundRegistration | null> {
    const local = this.registration(environmentId);
    const fleet = this.options.fleet;
    if (local && (!fleet || this.options.router.executor(environmentId)?.registrationId === local.registrationId)) return { registration: local, here: true };
    if (!fleet) return null;
    const entry = await fleet.codexRegistrationElsewhere(environmentId);
    if (!entry?.codex) return null;
    let executorKey: HybridPublicKey;
    try {
      executorKey = parseRegistryPublicKey(entry.codex.executorKey, 'executor_public_key');
    } catch {
      this.options.logger.warn({ environmentId }, 'the fleet registry holds a codex registration with an invalid executor key; ignored');
      return null;
    }
    const registration: CodexRegistration = {
      environmentId,
      registrationId: entry.codex.registrationId,
      executorKey,
      fingerprint: hybridFingerprint(executorKey),
      credentialId: entry.codex.credentialId,
      registeredAt: entry.registeredAt,
    };
    return { registration, here: false };
  }

  /** The grant of a rendezvous upgrade's signed query, or why it is refused. */
  verifyRendezvousQuery(query: URLSearchParams): ReturnType<RendezvousSigner['verifyQuery']> {
    return this.options.signer.verifyQuery(query);
  }

  /** Whether a codex executor holds the environment id now (connected, or registered lately). */
  isLive(environmentId: string): boolean {
    return this.registration(environmentId) !== undefined;
  }

  /** Answers one registry request (`rawEnvironmentId` as it appeared in the path). Never rejects. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, rawEnvironmentId: string, action: CodexRegistryAction): Promise<void> {
    let answer: Answer;
    try {
      answer = await this.answer(req, rawEnvironmentId, action);
    } catch (error) {
      this.options.logger.error({ err: (error as Error).message, action }, 'codex registry request failed');
      answer = { status: 500, body: { error: { code: 'internal', message: 'internal error' } }, refusal: 'internal' };
    }
    const environmentId = safeDecode(rawEnvironmentId);
    if (answer.status === 200 && answer.refusal === undefined) {
      if (action === 'register') this.options.audit?.codexRegistered(req, environmentId, answer.tokenLine, answer.executorKey ?? null);
    } else if (answer.status !== 405) {
      this.options.audit?.codexRefused(req, action, environmentId, answer.tokenLine, answer.refusal ?? 'unknown');
    }
    if (res.headersSent) return;
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(text);
  }

  private async answer(req: http.IncomingMessage, rawEnvironmentId: string, action: CodexRegistryAction): Promise<Answer> {
    if (req.method !== 'POST') {
      req.resume();
      return refusal(CodexRegistryError.MethodNotAllowed);
    }
    const environmentId = safeDecode(rawEnvironmentId);
    const role: RelayRole = action === 'connect' ? 'client' : 'executor';
    const check = this.options.credentials().check(req.headers.authorization, role, environmentId);
    const endpoint = role === 'client' ? 'client' : 'executor';
    if (!check.ok && check.refusal === UpgradeRefusal.Unauthorized) {
      req.resume();
      this.options.events.authFailure(endpoint);
      if (action === 'register') this.options.events.registration('rejected');
      return refusal(CodexRegistryError.Unauthorized);
    }
    if (validateEnvironmentId(environmentId)) {
      req.resume();
      return refusal(CodexRegistryError.InvalidEnvironmentId);
    }
    if (!check.ok) {
      req.resume();
      this.options.events.authFailure(endpoint);
      if (action === 'register') this.options.events.registration('rejected');
      return refusal(tokenRefusal(check.refusal));
    }
    const body = await readJsonBody(req);
    let answer: Answer;
    if (!body.ok) answer = refusal(body.error, body.message);
    else if (action === 'register') answer = await this.register(req, environmentId, check.credential, body.value);
    else if (action === 'connect') answer = await this.connect(req, environmentId, check.credential, body.value);
    else answer = await this.validate(environmentId, check.credential, body.value);
    if (action === 'register') this.options.events.registration(answer.status === 200 ? 'registered' : 'rejected');
    answer.tokenLine = check.credential.line;
    return answer;
  }

  private async register(req: http.IncomingMessage, environmentId: string, credential: RelayCredential, value: unknown): Promise<Answer> {
    const request = RegisterRequest.safeParse(value);
    if (!request.success) return refusal(CodexRegistryError.InvalidRequest, `register takes {"security_profile","executor_public_key"}: ${firstIssue(request.error)}`);
    if (request.data.security_profile !== CODEX_SECURITY_PROFILE) return refusal(CodexRegistryError.UnsupportedSecurityProfile);
    let executorKey: HybridPublicKey;
    try {
      executorKey = parseRegistryPublicKey(request.data.executor_public_key, 'executor_public_key');
    } catch (error) {
      return refusal(CodexRegistryError.InvalidRequest, (error as Error).message);
    }
    const base = this.rendezvousBase(req);
    if (!base) return refusal(CodexRegistryError.InvalidRequest, 'the Host header is not a host name or address');
    if (this.options.nativeExecutorLive(environmentId)) return refusal(CodexRegistryError.EnvironmentInUse);
    const fingerprint = hybridFingerprint(executorKey);
    if (!this.registrations.has(environmentId) && this.registrations.size >= this.options.limits.maxExecutors) {
      this.sweep();
      if (this.registrations.size >= this.options.limits.maxExecutors) return refusal(CodexRegistryError.TooManyEnvironments);
    }
    let bound;
    try {
      bound = await this.options.bindings.bind(environmentId, fingerprint);
    } catch (error) {
      this.options.logger.error({ err: (error as Error).message }, 'codex registration refused: the environment bindings cannot be read');
      return refusal(CodexRegistryError.BindingsUnavailable);
    }
    if (bound === 'mismatch') {
      this.options.logger.warn({ environmentId, executorKey: fingerprint }, 'codex registration refused: the environment is bound to another key');
      return refusal(CodexRegistryError.EnvironmentKeyMismatch);
    }
    if (bound === 'full') return refusal(CodexRegistryError.TooManyEnvironments);
    if (bound === 'bound') this.options.logger.info({ environmentId, executorKey: fingerprint }, 'environment bound to its first codex executor key');
    const now = Date.now();
    const registration: CodexRegistration = { environmentId, registrationId: `reg-${randomUUID()}`, executorKey, fingerprint, credentialId: credential.id, registeredAt: now };
    this.registrations.set(environmentId, registration);
    this.options.logger.info({ environmentId }, 'codex executor registered');
    const answer: RegisterResponse = {
      environment_id: environmentId,
      url: this.options.signer.signedUrl(base, {
        role: 'executor',
        environmentId,
        registrationId: registration.registrationId,
        credentialId: credential.id,
        expiresAt: now + this.options.limits.codexExecutorUrlTtlMs,
      }),
      security_profile: CODEX_SECURITY_PROFILE,
      executor_registration_id: registration.registrationId,
    };
    return { status: 200, body: answer, executorKey: fingerprint };
  }

  private async connect(req: http.IncomingMessage, environmentId: string, credential: RelayCredential, value: unknown): Promise<Answer> {
    const request = ConnectRequest.safeParse(value);
    if (!request.success) return refusal(CodexRegistryError.InvalidRequest, 'connect takes {"harness_public_key"}');
    let harnessKey: HybridPublicKey;
    try {
      harnessKey = parseRegistryPublicKey(request.data.harness_public_key, 'harness_public_key');
    } catch (error) {
      return refusal(CodexRegistryError.InvalidRequest, (error as Error).message);
    }
    const base = this.rendezvousBase(req);
    if (!base) return refusal(CodexRegistryError.InvalidRequest, 'the Host header is not a host name or address');
    let found: FoundRegistration | null;
    try {
      found = await this.findRegistration(environmentId);
    } catch {
      return refusal(CodexRegistryError.FleetUnavailable);
    }
    if (!found) return refusal(CodexRegistryError.ExecutorUnavailable);
    const { registration } = found;
    const executor = this.options.router.executor(environmentId);
    if (found.here && (!executor || executor.registrationId !== registration.registrationId)) return refusal(CodexRegistryError.ExecutorUnavailable);
    const now = Date.now();
    const minter = this.options.fleet?.minter;
    const answer: ConnectResponse = {
      environment_id: environmentId,
      url: this.options.signer.signedUrl(base, {
        role: 'harness',
        environmentId,
        registrationId: registration.registrationId,
        credentialId: credential.id,
        expiresAt: now + this.options.limits.codexHarnessUrlTtlMs,
      }),
      security_profile: CODEX_SECURITY_PROFILE,
      executor_registration_id: registration.registrationId,
      executor_public_key: encodeRegistryPublicKey(registration.executorKey),
      harness_key_authorization: this.options.signer.mintAuthorization({
        environmentId,
        registrationId: registration.registrationId,
        harnessFingerprint: hybridFingerprint(harnessKey),
        expiresAt: now + this.options.limits.codexAuthorizationTtlMs,
        ...(minter ? { minter } : {}),
      }),
    };
    return { status: 200, body: answer };
  }

  private async validate(environmentId: string, credential: RelayCredential, value: unknown): Promise<Answer> {
    const request = ValidateRequest.safeParse(value);
    if (!request.success) return refusal(CodexRegistryError.InvalidRequest, 'validate takes {"executor_registration_id","harness_public_key","harness_key_authorization"}');
    const invalid = (reason: AuthorizationRefusal): Answer => {
      this.options.logger.warn({ environmentId, reason }, 'codex harness key refused');
      return { status: 200, body: { valid: false }, refusal: reason };
    };
    let found: FoundRegistration | null;
    try {
      found = await this.findRegistration(environmentId);
    } catch {
      return invalid('fleet_unavailable');
    }
    const registration = found?.registration;
    // Only the executor that registered (its token, its registration) asks about its harnesses.
    if (!registration || registration.credentialId !== credential.id) return invalid('unknown_registration');
    if (request.data.executor_registration_id !== registration.registrationId) return invalid('other_registration');
    let harnessKey: HybridPublicKey;
    try {
      harnessKey = parseRegistryPublicKey(request.data.harness_public_key, 'harness_public_key');
    } catch {
      return invalid('malformed');
    }
    const check = this.options.signer.verifyAuthorization(request.data.harness_key_authorization, {
      environmentId,
      registrationId: registration.registrationId,
      harnessFingerprint: hybridFingerprint(harnessKey),
    });
    if (!check.ok) return invalid(check.refusal);
    // Once fleet-wide: the process that minted it is asked (and without an answer it is refused).
    const fleet = this.options.fleet;
    const use = fleet ? await fleet.useAuthorization(check.minter, check.nonce, check.expiresAt) : this.usedAuthorizations.remember(check.nonce, check.expiresAt);
    if (use === 'replayed') return invalid('replayed');
    if (use === 'unavailable') return invalid('minter_unavailable');
    return { status: 200, body: { valid: true } };
  }

  /** `ws://HOST/cloud/rendezvous` for the host the request was sent to (null for a malformed Host). */
  private rendezvousBase(req: http.IncomingMessage): string | null {
    const host = req.headers.host ?? '';
    if (!HOST_HEADER.test(host)) return null;
    return `${this.options.tls ? 'wss' : 'ws'}://${host}${CODEX_RENDEZVOUS_PATH}`;
  }

  private sweep(): void {
    for (const environmentId of [...this.registrations.keys()]) this.registration(environmentId);
  }
}

function refusal(reason: CodexRegistryErrorReason, message: string = reason.message): Answer {
  return { status: reason.status, body: { error: { code: reason.code, message } }, refusal: reason.code };
}

function safeDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return '';
  }
}

/** A known token's refusal (wrong role, environment out of scope) as the registry's error. */
function tokenRefusal(reason: UpgradeRefusalReason): CodexRegistryErrorReason {
  if (reason === UpgradeRefusal.ForbiddenRole) return CodexRegistryError.ForbiddenRole;
  if (reason === UpgradeRefusal.EnvironmentNotInScope) return CodexRegistryError.EnvironmentNotInScope;
  return CodexRegistryError.Unauthorized;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'not an object';
}

type BodyResult = { ok: true; value: unknown } | { ok: false; error: CodexRegistryErrorReason; message?: string };

/** The request's JSON body, at most MAX_CODEX_REGISTRY_BODY_BYTES (a larger one is refused unread). */
function readJsonBody(req: http.IncomingMessage): Promise<BodyResult> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_CODEX_REGISTRY_BODY_BYTES) {
    req.resume();
    return Promise.resolve({ ok: false, error: CodexRegistryError.BodyTooLarge });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult) => {
      if (done) return;
      done = true;
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_CODEX_REGISTRY_BODY_BYTES) {
        chunks.length = 0;
        finish({ ok: false, error: CodexRegistryError.BodyTooLarge });
        return;
      }
      if (!done) chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        finish({ ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown });
      } catch {
        finish({ ok: false, error: CodexRegistryError.InvalidRequest, message: 'the body is not JSON' });
      }
    });
    req.on('error', () => finish({ ok: false, error: CodexRegistryError.InvalidRequest, message: 'the body could not be read' }));
  });
}
