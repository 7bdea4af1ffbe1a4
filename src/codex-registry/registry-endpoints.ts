/**
 * The codex-compatible registry and rendezvous surface of the relay (codex exec-server 0.169.0's
 * remote protocol, protocol notes §1-§6): paths, the security profile, headers, the rendezvous
 * URL's query parameters, the registry's error codes and the rendezvous rejection reasons.
 * Defined here and nowhere else; the relay serves them (`relay/codex-registry.ts`,
 * `relay/codex-rendezvous-router.ts`) and the client calls them (`registry-client.ts`).
 */

/** The only security profile: the hybrid Noise IK of `src/noise-hybrid/`. */
export const CODEX_SECURITY_PROFILE = 'noise_hybrid_ik_v1';

export const CODEX_REGISTRY_ACTIONS = ['register', 'connect', 'validate'] as const;
export type CodexRegistryAction = (typeof CODEX_REGISTRY_ACTIONS)[number];

/** `/cloud/environment/{environmentId}/{register|connect|validate}` */
export const CODEX_REGISTRY_PATH_PATTERN = /^\/cloud\/environment\/([^/]+)\/(register|connect|validate)$/;

export function codexRegistryPath(environmentId: string, action: CodexRegistryAction): string {
  return `/cloud/environment/${encodeURIComponent(environmentId)}/${action}`;
}

/** The rendezvous WebSocket (executors and harnesses; the signed query says which). */
export const CODEX_RENDEZVOUS_PATH = '/cloud/rendezvous';

/** Sent by the executor with `/validate`: the stream whose handshake is being validated. */
export const CODEX_NOISE_STREAM_ID_HEADER = 'x-codex-noise-stream-id';
/** The header of a refused rendezvous upgrade naming why (codex logs it). */
export const CODEX_REJECTION_REASON_HEADER = 'x-codex-rendezvous-rejection-reason';

/** Largest registry request body (a register or connect body is ≈ 1.8 KB, a validate body ≈ 6 KB). */
export const MAX_CODEX_REGISTRY_BODY_BYTES = 16 * 1024;

/** The rendezvous URL's query parameters: every one required, no other allowed. */
export const RENDEZVOUS_QUERY = {
  version: 'v',
  role: 'role',
  environment: 'environment_id',
  registration: 'executor_registration_id',
  credential: 'credential',
  expiry: 'expires',
  signature: 'signature',
} as const;
/** The only version of the signed rendezvous query. */
export const RENDEZVOUS_QUERY_VERSION = '1';

export const RENDEZVOUS_ROLES = ['executor', 'harness'] as const;
export type RendezvousRole = (typeof RENDEZVOUS_ROLES)[number];

/**
 * Why a rendezvous upgrade is refused: the reasons codex knows (strings in the 0.169.0 binary),
 * with the HTTP status. A 4xx makes a codex executor register again; 503 makes it only reconnect.
 */
export const RendezvousRejection = {
  Expired: { status: 403, reason: 'expired' },
  MissingRole: { status: 400, reason: 'missing_role' },
  MissingExpiry: { status: 400, reason: 'missing_expiry' },
  MissingSignature: { status: 400, reason: 'missing_signature' },
  MissingVersion: { status: 400, reason: 'missing_version' },
  MissingRegistrationId: { status: 400, reason: 'missing_executor_registration_id' },
  UnexpectedRegistrationId: { status: 403, reason: 'unexpected_executor_registration_id' },
  MalformedQuery: { status: 400, reason: 'malformed_query' },
  InvalidRole: { status: 400, reason: 'invalid_role' },
  InvalidExpiry: { status: 400, reason: 'invalid_expiry' },
  InvalidSignature: { status: 403, reason: 'invalid_signature' },
  ExtraQueryParam: { status: 400, reason: 'extra_query_param' },
  UnknownRoute: { status: 404, reason: 'unknown_route' },
  RouteUnavailable: { status: 503, reason: 'route_unavailable' },
} as const satisfies Record<string, { status: number; reason: string }>;
export type RendezvousRejectionReason = (typeof RendezvousRejection)[keyof typeof RendezvousRejection];

/** The raw HTTP response refusing a rendezvous upgrade (the socket is closed after it). */
export function rendezvousRejectionResponse({ status, reason }: RendezvousRejectionReason): string {
  return `HTTP/1.1 ${status} ${status === 503 ? 'Service Unavailable' : status === 404 ? 'Not Found' : status === 403 ? 'Forbidden' : 'Bad Request'}\r\nContent-Type: text/plain\r\nConnection: close\r\n${CODEX_REJECTION_REASON_HEADER}: ${reason}\r\n\r\n${reason}\n`;
}

/**
 * The registry's error codes (`{"error":{"code","message"}}`), each with its HTTP status and what
 * it means to a person. Token refusals reuse the relay's upgrade refusal names.
 */
export const CodexRegistryError = {
  Unauthorized: { status: 401, code: 'unauthorized', message: 'the bearer token was missing or not accepted' },
  ForbiddenRole: {
    status: 403,
    code: 'forbidden_role',
    message: 'the relay accepts this token only for the other role (an executor token cannot connect clients, a client token cannot register executors)',
  },
  EnvironmentNotInScope: { status: 403, code: 'environment_not_in_scope', message: "this environment id is outside the token's scope in the relay's token file" },
  InvalidEnvironmentId: { status: 400, code: 'invalid_environment_id', message: 'environment ids are 1-128 letters, digits, ".", "_" or "-"' },
  InvalidRequest: { status: 400, code: 'invalid_request', message: 'the request body is not what this endpoint takes' },
  BodyTooLarge: { status: 413, code: 'body_too_large', message: `request bodies are at most ${MAX_CODEX_REGISTRY_BODY_BYTES} bytes` },
  MethodNotAllowed: { status: 405, code: 'method_not_allowed', message: 'registry endpoints take POST' },
  UnsupportedSecurityProfile: { status: 400, code: 'unsupported_security_profile', message: `the only security profile is ${CODEX_SECURITY_PROFILE}` },
  EnvironmentKeyMismatch: {
    status: 403,
    code: 'environment_key_mismatch',
    message: 'this environment is bound at the relay to another executor key; the relay operator releases it with: execrelay relay unbind ENVIRONMENT_ID',
  },
  EnvironmentInUse: {
    status: 409,
    code: 'environment_in_use',
    message: 'an execrelay agent holds this environment id now (one namespace for both kinds of executor)',
  },
  TooManyEnvironments: { status: 503, code: 'too_many_environments', message: 'the relay holds as many environments as it may' },
  BindingsUnavailable: { status: 503, code: 'bindings_unavailable', message: 'the relay cannot read or write its environment bindings now; retry' },
  ExecutorUnavailable: { status: 404, code: 'executor_unavailable', message: 'no codex executor is connected for that environment' },
  FleetUnavailable: {
    status: 503,
    code: 'fleet_unavailable',
    message: "this relay instance cannot reach its fleet (NATS) to find the environment's executor now; retry",
  },
} as const satisfies Record<string, { status: number; code: string; message: string }>;
export type CodexRegistryErrorReason = (typeof CodexRegistryError)[keyof typeof CodexRegistryError];

/** Why a validation answered `{"valid":false}` (logged by the relay; never sent). A fixed set. */
export const AUTHORIZATION_REFUSALS = [
  'malformed',
  'bad_signature',
  'expired',
  'other_environment',
  'other_registration',
  'other_key',
  'replayed',
  'unknown_registration',
  /** Relay fleet: the registration could not be looked up (NATS down). */
  'fleet_unavailable',
  /** Relay fleet: the relay process that minted it cannot be asked whether it was used (down, restarted, NATS down). */
  'minter_unavailable',
] as const;
export type AuthorizationRefusal = (typeof AUTHORIZATION_REFUSALS)[number];
