import type { ResetReasonValue } from '../src/relay-control/relay-endpoints.js';

/** Direction of a routed frame. */
export type FrameDirection = 'client_to_executor' | 'executor_to_client';

/** Frames crossing NATS between fleet instances: sent by this instance, or received by it. */
export type FleetFrameDirection = 'published' | 'received';

/** What went wrong talking to NATS. */
export type FleetErrorKind = 'connection' | 'publish' | 'registry' | 'control';

/**
 * What the relay reports about itself (metrics and logs hook onto this). Every value is from a
 * fixed set: no ids, tokens or addresses.
 */
export interface RelayEvents {
  frameRouted(direction: FrameDirection, bytes: number): void;
  frameDropped(reason: 'no_route' | 'endpoint_detached' | 'backpressure' | 'invalid' | 'fleet_unavailable'): void;
  streamOpened(): void;
  streamAccepted(handshakeMs: number): void;
  /** How a routed stream left this instance: closed, reset, or moved to another fleet instance with its executor. */
  streamEnded(result: 'closed' | 'reset' | 'moved'): void;
  reset(reason: ResetReasonValue): void;
  registration(result: 'registered' | 'replaced' | 'rejected'): void;
  authFailure(endpoint: 'executor' | 'client'): void;
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
