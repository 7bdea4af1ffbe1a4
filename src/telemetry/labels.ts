/**
 * Every label value telemetry may emit, defined once. Metrics and span attributes take their values
 * from these fixed sets and nothing else: no ids, commands, paths, URLs, hostnames or tokens.
 */
import { ErrorCode } from '../protocol/error-codes.js';
import { Method } from '../protocol/methods.js';
import { FsMethod } from '../protocol/methods.js';
import { HttpMethod } from '../protocol/methods.js';
import { ResetReason } from '../relay-control/relay-endpoints.js';
import { RUNTIME_LABEL_VALUES } from './runtime-metrics.js';

/** The label for a method that is not a known exec-protocol method (or was not routed). */
export const UNKNOWN_METHOD = 'unknown';

/** Known exec-protocol request methods (from src/protocol, where they are defined) plus `unknown`. */
export const METHOD_LABELS: readonly string[] = [
  ...Object.values(Method),
  ...Object.values(FsMethod),
  ...Object.values(HttpMethod),
  UNKNOWN_METHOD,
];
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHOD_LABELS);

/** `method` label: the method name when it is a known protocol method, `unknown` otherwise. */
export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : UNKNOWN_METHOD;
}

/** How a request ended, by JSON-RPC error code; `not_sent` when the response could not be queued. */
export const REQUEST_RESULTS = [
  'ok',
  'invalid_request',
  'method_not_found',
  'invalid_params',
  'not_found',
  'internal_error',
  'other_error',
  'not_sent',
] as const;
export type RequestResult = (typeof REQUEST_RESULTS)[number];

/** `result` label of a request from the response that was (or could not be) queued. */
export function requestResult(outcome: { queued: boolean; errorCode?: number }): RequestResult {
  if (!outcome.queued) return 'not_sent';
  switch (outcome.errorCode) {
    case undefined:
      return 'ok';
    case ErrorCode.InvalidRequest:
      return 'invalid_request';
    case ErrorCode.MethodNotFound:
      return 'method_not_found';
    case ErrorCode.InvalidParams:
      return 'invalid_params';
    case ErrorCode.NotFound:
      return 'not_found';
    case ErrorCode.Internal:
      return 'internal_error';
    default:
      return 'other_error';
  }
}

/** `transport` label: `MessageTransport.kind`. */
export const TRANSPORT_LABELS = ['websocket', 'stdio', 'relay', 'memory', 'other'] as const;
export type TransportLabel = (typeof TRANSPORT_LABELS)[number];
const KNOWN_TRANSPORTS: ReadonlySet<string> = new Set(TRANSPORT_LABELS);

export function transportLabel(kind: string): TransportLabel {
  return KNOWN_TRANSPORTS.has(kind) ? (kind as TransportLabel) : 'other';
}

/** How a process ended (ManagedProcess `onFinished`). */
export const PROCESS_RESULTS = ['success', 'failure', 'signaled'] as const;
export type ProcessResult = (typeof PROCESS_RESULTS)[number];

/** Agent → relay registration: the relay answered `registered`, or refused the upgrade. */
export const REGISTRATION_RESULTS = ['success', 'refused'] as const;
export type RegistrationResult = (typeof REGISTRATION_RESULTS)[number];

/** Agent → relay WebSocket connect. */
export const RENDEZVOUS_CONNECT_RESULTS = ['success', 'refused', 'unreachable'] as const;
export type RendezvousConnectResult = (typeof RENDEZVOUS_CONNECT_RESULTS)[number];

/** Why the agent's relay link went away. */
export const RECONNECT_REASONS = ['relay_restarting', 'link_lost', 'replaced'] as const;
export type ReconnectReason = (typeof RECONNECT_REASONS)[number];

/** Noise handshake outcome (agent side). */
export const HANDSHAKE_RESULTS = ['success', 'failure'] as const;
export type HandshakeResult = (typeof HANDSHAKE_RESULTS)[number];

/** Relay: direction of a routed frame. */
export const DIRECTIONS = ['client_to_executor', 'executor_to_client'] as const;
export type Direction = (typeof DIRECTIONS)[number];

/** Relay: why a frame was dropped. */
export const DROP_REASONS = ['no_route', 'endpoint_detached', 'backpressure', 'invalid', 'fleet_unavailable'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Relay: `reset` reasons (the relay-control fixed set). */
export const RESET_REASONS: readonly string[] = Object.values(ResetReason);
/** A reason outside its fixed set (defensive; the typed callers never produce one). */
export const OTHER_REASON = 'other';

/** Relay fleet: frames crossing NATS, sent or received by this instance. */
export const FLEET_DIRECTIONS = ['published', 'received'] as const;

/** Relay fleet: what went wrong talking to NATS. */
export const FLEET_ERROR_KINDS = ['connection', 'publish', 'registry', 'control'] as const;

/** Relay: executor registration outcome. */
export const RELAY_REGISTRATION_RESULTS = ['registered', 'replaced', 'rejected'] as const;

/** Relay: which endpoint failed bearer-token authentication. */
export const AUTH_ENDPOINTS = ['executor', 'client'] as const;

/** Relay: how a routed stream ended. */
export const STREAM_END_RESULTS = ['closed', 'reset', 'moved'] as const;

/**
 * Relay: which end-to-end channel a routed stream carries, so the two kinds of executor sharing one
 * relay are told apart: `classical` for execrelay's own Noise XX (X25519, ChaCha20-Poly1305),
 * `pq_hybrid` for the codex wire's `Noise_hybridIK_25519+MLKEM768_AESGCM_SHA256`. Fixed at two
 * values, so every series that carries it at most doubles, and all of them exist from the start.
 */
export const SECURITY_PROFILES = ['classical', 'pq_hybrid'] as const;
export type SecurityProfile = (typeof SECURITY_PROFILES)[number];

/** Every label name with its fixed set of values (the leak test checks each exported series against this). */
export const LABEL_VALUES: Readonly<Record<string, readonly string[]>> = {
  method: METHOD_LABELS,
  transport: TRANSPORT_LABELS,
  direction: [...DIRECTIONS, ...FLEET_DIRECTIONS],
  kind: [...FLEET_ERROR_KINDS, ...RUNTIME_LABEL_VALUES.kind],
  reason: [...new Set<string>([...RECONNECT_REASONS, ...DROP_REASONS, ...RESET_REASONS, OTHER_REASON])],
  endpoint: AUTH_ENDPOINTS,
  security_profile: SECURITY_PROFILES,
  result: [
    ...new Set<string>([
      ...REQUEST_RESULTS,
      ...PROCESS_RESULTS,
      ...REGISTRATION_RESULTS,
      ...RENDEZVOUS_CONNECT_RESULTS,
      ...HANDSHAKE_RESULTS,
      ...RELAY_REGISTRATION_RESULTS,
      ...STREAM_END_RESULTS,
    ]),
  ],
  // prom-client's own histogram label.
  le: [],
  // Build info and prom-client's runtime metrics (versions of this build, V8 heap spaces).
  version: RUNTIME_LABEL_VALUES.version,
  node_version: RUNTIME_LABEL_VALUES.node_version,
  major: RUNTIME_LABEL_VALUES.major,
  minor: RUNTIME_LABEL_VALUES.minor,
  patch: RUNTIME_LABEL_VALUES.patch,
  component: RUNTIME_LABEL_VALUES.component,
  space: RUNTIME_LABEL_VALUES.space,
};

/** Service names for traces. */
export const SERVICE_NAMES = ['execrelay-relay', 'execrelay-agent', 'execrelay-client'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** Instrumentation scope name of every execrelay tracer. */
export const TRACER_NAME = 'execrelay';

/** Span attribute names (OpenTelemetry RPC semantic conventions, plus execrelay's own). */
export const SpanAttribute = {
  RpcSystem: 'rpc.system',
  RpcMethod: 'rpc.method',
  JsonRpcErrorCode: 'rpc.jsonrpc.error_code',
  Result: 'execrelay.result',
  /** A `SECURITY_PROFILES` value (the relay's stream spans). */
  SecurityProfile: 'execrelay.security_profile',
} as const;
