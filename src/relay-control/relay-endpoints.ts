import { STATUS_CODES } from 'node:http';

/**
 * The relay's HTTP surface and the JSON control messages it sends as WebSocket text messages
 * (relay frames travel as binary messages on the same sockets). Defined here and nowhere else.
 */

export const EXECUTOR_CONNECT_PATH = '/v1/executors/connect';
/** `/v1/environments/{environmentId}/connect` */
export const CLIENT_CONNECT_PATTERN = /^\/v1\/environments\/([^/]+)\/connect$/;

export function clientConnectPath(environmentId: string): string {
  return `/v1/environments/${encodeURIComponent(environmentId)}/connect`;
}

/** Environment ids: 1–128 of letters, digits, `.`, `_`, `-`. */
export const ENVIRONMENT_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

export function validateEnvironmentId(id: string): string | null {
  return ENVIRONMENT_ID_PATTERN.test(id) ? null : 'environment id must be 1-128 characters of letters, digits, ".", "_" or "-"';
}

/** The HTTP header in which the relay names why it refused a WebSocket upgrade (one of UpgradeRefusal). */
export const REFUSAL_REASON_HEADER = 'X-Execrelay-Reason';

/** One reason the relay refuses a WebSocket upgrade: the HTTP status, the reason, and what it means to a person. */
export interface UpgradeRefusalReason {
  readonly status: number;
  readonly reason: string;
  readonly explanation?: string;
}

/** Every reason the relay refuses a WebSocket upgrade. */
export const UpgradeRefusal = {
  Unauthorized: { status: 401, reason: 'unauthorized', explanation: 'the bearer token was missing or not accepted' },
  ForbiddenRole: {
    status: 403,
    reason: 'forbidden_role',
    explanation: "the relay accepts this token only for the other role (an executor token cannot connect clients, a client token cannot register executors)",
  },
  EnvironmentNotInScope: { status: 403, reason: 'environment_not_in_scope', explanation: "this environment id is outside the token's scope in the relay's token file" },
  InvalidEnvironmentId: { status: 400, reason: 'invalid_environment_id', explanation: 'environment ids are 1-128 letters, digits, ".", "_" or "-"' },
  TooManyExecutors: { status: 503, reason: 'too_many_executors' },
  TooManyClients: { status: 503, reason: 'too_many_clients' },
  TooManyExecutorsForToken: { status: 503, reason: 'too_many_executors_for_token', explanation: "this token registers as many executors as one token's share of the relay allows" },
  TooManyClientsForToken: { status: 503, reason: 'too_many_clients_for_token', explanation: "this token holds as many client sockets as one token's share of the relay allows" },
  ExecutorUnavailable: { status: 404, reason: 'executor_unavailable', explanation: 'no executor is registered for that environment' },
  FleetUnavailable: {
    status: 503,
    reason: 'fleet_unavailable',
    explanation: "this relay instance cannot reach its fleet's NATS to find the environment; retry, or use another instance",
  },
  NotFound: { status: 404, reason: 'not_found' },
  AgentProofRequired: {
    status: 401,
    reason: 'agent_proof_required',
    explanation: 'an executor registration must prove its agent identity (X-Execrelay-Agent-* headers); upgrade the agent',
  },
  InvalidAgentProof: {
    status: 403,
    reason: 'invalid_agent_proof',
    explanation: "the agent's proof of identity was not accepted (bad signature, another environment or relay, already used, or the clock is more than 5 minutes off)",
  },
  EnvironmentKeyMismatch: {
    status: 403,
    reason: 'environment_key_mismatch',
    explanation:
      'this environment is bound at the relay to another agent key; if the key changed on purpose, the relay operator releases it with: execrelay relay unbind ENVIRONMENT_ID',
  },
  TooManyEnvironments: {
    status: 503,
    reason: 'too_many_environments',
    explanation: 'the relay holds as many environment bindings as it may; the relay operator can remove unused ones with: execrelay relay unbind ENVIRONMENT_ID',
  },
  BindingsUnavailable: { status: 503, reason: 'bindings_unavailable', explanation: "the relay cannot read or write its environment bindings now; retry" },
  EnvironmentInUse: {
    status: 409,
    reason: 'environment_in_use',
    explanation: 'a codex executor holds this environment id now (one namespace for both kinds of executor)',
  },
} as const satisfies Record<string, UpgradeRefusalReason>;

/**
 * The raw HTTP response that refuses a WebSocket upgrade (written to the upgrade's socket, which
 * is then closed): the status, the reason in REFUSAL_REASON_HEADER and as the body.
 */
export function upgradeRefusalResponse({ status, reason }: UpgradeRefusalReason): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: text/plain\r\nConnection: close\r\n${REFUSAL_REASON_HEADER}: ${reason}\r\n\r\n${reason}\n`;
}

/** Reasons an agent's direct WebSocket listener refuses an upgrade that clients explain (see `ExecutorAgent.listenWebSocket`). */
export const DirectListenerRefusal = {
  /** The agent drains (shutting down) and takes no new connection. */
  Draining: { status: 503, reason: 'agent_draining', explanation: 'the agent is draining (shutting down); retry once it has restarted' },
} as const satisfies Record<string, UpgradeRefusalReason>;

/** What a refusal reason means, for an error message ('' for a reason without an explanation or an unknown one). */
export function explainRefusal(reason: string): string {
  const known: UpgradeRefusalReason | undefined = [...Object.values(UpgradeRefusal), ...Object.values(DirectListenerRefusal)].find((r) => r.reason === reason);
  return known?.explanation ?? '';
}

/** WebSocket close codes the relay uses (4000-4999 is the application range). */
export const RelayCloseCode = {
  /** The executor link was superseded by a newer registration of its environment. */
  Replaced: 4001,
  /** A client socket whose opens failed their handshake too often (`maxFailedHandshakesPerClient`). */
  TooManyFailedHandshakes: 4002,
  /** The socket's token was removed from the relay's token file (or no longer covers its role or environment). */
  CredentialRevoked: 4003,
} as const;

/** Sent to an executor once its registration is live. */
export interface RegisteredMessage {
  type: 'registered';
  environmentId: string;
  /** Streams the relay still routes for this environment (kept through a reconnect grace period). */
  resumableStreams: number;
}

/** Sent to every endpoint on a graceful relay shutdown: reconnect at once, streams will resume. */
export interface RestartingMessage {
  type: 'restarting';
}

export type RelayControlMessage = RegisteredMessage | RestartingMessage;

export function parseRelayControlMessage(text: string): RelayControlMessage | null {
  try {
    const value = JSON.parse(text) as { type?: unknown; environmentId?: unknown; resumableStreams?: unknown };
    if (value.type === 'registered' && typeof value.environmentId === 'string') {
      return { type: 'registered', environmentId: value.environmentId, resumableStreams: Number(value.resumableStreams) || 0 };
    }
    if (value.type === 'restarting') return { type: 'restarting' };
  } catch {
    /* not a control message */
  }
  return null;
}

/**
 * Reasons the relay (or an endpoint) gives in a `reset` frame. A fixed set: metrics label resets
 * with these and nothing else.
 */
export const ResetReason = {
  ExecutorUnavailable: 'executor_unavailable',
  TooManyStreams: 'too_many_streams',
  TooManyPendingOpens: 'too_many_pending_opens',
  HandshakeTimeout: 'handshake_timeout',
  HandshakeFailed: 'handshake_failed',
  IdleTimeout: 'idle_timeout',
  UnknownStream: 'unknown_stream',
  StreamIdInUse: 'stream_id_in_use',
  StreamIdRetired: 'stream_id_retired',
  ExecutorReplaced: 'executor_replaced',
  ClientGone: 'client_gone',
  RelayShutdown: 'relay_shutdown',
  FrameTooLarge: 'frame_too_large',
  /** The client's token failed too many handshakes towards this environment lately: its new streams wait out a cool-down. */
  TooManyFailedHandshakes: 'too_many_failed_handshakes',
  /** The token of the stream's client or executor was revoked (the relay's token file changed). */
  CredentialRevoked: 'credential_revoked',
  /** The agent is draining (shutting down): it takes no new stream; streams it serves go on until their processes finish. */
  ExecutorDraining: 'executor_draining',
  /**
   * An endpoint's writer into the stream failed (its Noise channel could not encrypt, or its
   * handshake broke off on a malformed message). The detail stays in the endpoint's own log: the
   * relay, which reads reset frames, learns only this.
   */
  WriterFailed: 'writer_failed',
} as const;
export type ResetReasonValue = (typeof ResetReason)[keyof typeof ResetReason];

/** What a reset reason means to the user whose stream it ended, where the reason alone does not say. */
const RESET_EXPLANATIONS: Partial<Record<ResetReasonValue, string>> = {
  [ResetReason.ExecutorDraining]: 'the agent is draining (shutting down) and takes no new connections; retry once it has restarted',
};

/** A reset reason's explanation for an error message ('' for one that needs none or an unknown one). */
export function explainResetReason(reason: string): string {
  return RESET_EXPLANATIONS[reason as ResetReasonValue] ?? '';
}

/**
 * The reset an agent sends for a client whose proven identity it does not authorize: a failed
 * handshake (`handshake_failed: ` like every other) with a fixed detail the client recognises (the
 * channel's own abort notice may lose the race with the reset). Not authenticated (the relay could
 * forge it, as it can refuse anything); the client names only its own identity on seeing it.
 */
export const CLIENT_NOT_AUTHORIZED_RESET_REASON = `${ResetReason.HandshakeFailed}: client_not_authorized`;
