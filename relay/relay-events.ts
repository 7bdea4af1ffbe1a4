import type { ResetReasonValue } from '../src/relay-control/relay-endpoints.js';
import type {
  AUTH_ENDPOINTS,
  DIRECTIONS,
  DropReason,
  FLEET_DIRECTIONS,
  FLEET_ERROR_KINDS,
  RELAY_REGISTRATION_RESULTS,
  SecurityProfile,
  STREAM_END_RESULTS,
} from '../src/telemetry/labels.js';

// The value sets are defined once, as label values, in src/telemetry/labels.ts.

/** Direction of a routed frame. */
export type FrameDirection = (typeof DIRECTIONS)[number];

/** Frames crossing NATS between fleet instances: sent by this instance, or received by it. */
export type FleetFrameDirection = (typeof FLEET_DIRECTIONS)[number];

/** What went wrong talking to NATS. */
export type FleetErrorKind = (typeof FLEET_ERROR_KINDS)[number];

/**
 * What the relay reports about itself (metrics and logs hook onto this). Every value is from a
 * fixed set: no ids, tokens or addresses. The stream and traffic events carry the stream's
 * `SecurityProfile`: `classical` from `StreamRouter` (execrelay's Noise XX), `pq_hybrid` from
 * `CodexRendezvousRouter` (codex's hybrid IK).
 */
export interface RelayEvents {
  frameRouted(direction: FrameDirection, bytes: number, profile: SecurityProfile): void;
  frameDropped(reason: DropReason): void;
  streamOpened(profile: SecurityProfile): void;
  streamAccepted(handshakeMs: number, profile: SecurityProfile): void;
  /** How a routed stream left this instance: closed, reset, or moved to another fleet instance with its executor. */
  streamEnded(result: (typeof STREAM_END_RESULTS)[number], profile: SecurityProfile): void;
  reset(reason: ResetReasonValue): void;
  registration(result: (typeof RELAY_REGISTRATION_RESULTS)[number]): void;
  authFailure(endpoint: (typeof AUTH_ENDPOINTS)[number]): void;
  socketPaused(): void;
  heartbeatMissed(): void;
  /** A frame crossed NATS (relay fleet only). */
  fleetFrame(direction: FleetFrameDirection, bytes: number): void;
  fleetError(kind: FleetErrorKind): void;
  /** The NATS connection came back after a loss. */
  fleetReconnected(): void;
}

export const NO_RELAY_EVENTS: RelayEvents = {
  frameRouted() {},
  frameDropped() {},
  streamOpened() {},
  streamAccepted() {},
  streamEnded() {},
  reset() {},
  registration() {},
  authFailure() {},
  socketPaused() {},
  heartbeatMissed() {},
  fleetFrame() {},
  fleetError() {},
  fleetReconnected() {},
};
