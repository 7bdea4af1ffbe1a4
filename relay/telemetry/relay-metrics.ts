import { ROOT_CONTEXT, type Tracer } from '@opentelemetry/api';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FleetState } from '../nats-fleet.js';
import type { FrameDirection, RelayEvents } from '../relay-events.js';
import type { ResetReasonValue } from '../../src/relay-control/relay-endpoints.js';
import { PHASE_DURATION_BUCKETS } from '../../src/telemetry/histogram-buckets.js';
import { AUTH_ENDPOINTS, DIRECTIONS, DROP_REASONS, FLEET_DIRECTIONS, FLEET_ERROR_KINDS, OTHER_REASON, RELAY_REGISTRATION_RESULTS, RESET_REASONS, SECURITY_PROFILES, SpanAttribute, STREAM_END_RESULTS } from '../../src/telemetry/labels.js';
import { registerRuntimeMetrics } from '../../src/telemetry/runtime-metrics.js';
import { metricsRoute, type HttpRoute } from '../../src/telemetry/metrics-server.js';

/** Metric name prefix of everything the relay exports. */
export const RELAY_METRIC_PREFIX = 'execrelay_relay_';

const KNOWN_RESET_REASONS: ReadonlySet<string> = new Set(RESET_REASONS);

/** What the relay's gauges read at scrape time (a `RelayServer` satisfies it). */
export interface RelayGaugeSource {
  readonly router: { readonly executorCount: number; readonly streamCount: number };
  /** Client WebSockets connected now. */
  readonly clientCount?: number;
  /** Bytes queued on all of the relay's sockets now. */
  readonly queuedBytes?: number;
  /** A fleet member's NATS state (undefined for a single relay). */
  readonly fleetState?: FleetState | undefined;
}

export interface RelayMetricsOptions {
  /** Defaults to a new Registry (one per process). */
  registry?: Registry;
  /** Records short spans for registrations and stream handshakes/ends when given a recording tracer. */
  tracer?: Tracer;
}

export interface RelayMetrics {
  readonly registry: Registry;
  /** `RelayServerOptions.events`. */
  readonly events: RelayEvents;
  /** The `GET /metrics` handler. */
  readonly httpRoute: HttpRoute;
  /** `RelayServerOptions.httpRoutes`: `{ '/metrics': httpRoute }`. */
  readonly httpRoutes: Record<string, HttpRoute>;
  /** The Prometheus text exposition. */
  expose(): Promise<string>;
}

/**
 * The relay's Prometheus metrics (prefix `execrelay_relay_`) as a `RelayEvents` implementation,
 * with gauges read from the running server at scrape time. `getServer` may return undefined until
 * the server exists (the events object must be passed to its constructor).
 */
export function createRelayMetrics(getServer: () => RelayGaugeSource | undefined, options: RelayMetricsOptions = {}): RelayMetrics {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const p = RELAY_METRIC_PREFIX;
  registerRuntimeMetrics(registry, { component: 'relay', prefix: p });
  const gauge = (name: string, help: string, read: (server: RelayGaugeSource) => number | undefined) =>
    new Gauge({
      name: p + name,
      help,
      registers,
      collect() {
        const server = getServer();
        this.set((server && read(server)) ?? 0);
      },
    });
  gauge('executors_registered', 'Executors with a live registration now.', (s) => s.router.executorCount);
  gauge('client_sessions', 'Client WebSockets connected now.', (s) => s.clientCount);
  gauge('streams_open', 'Streams routed now (pending, accepted, or waiting for an endpoint to come back).', (s) => s.router.streamCount);
  gauge('queued_bytes', 'Bytes queued on the relay\'s sockets now (queue depth).', (s) => s.queuedBytes);

  // Stream, handshake and traffic metrics by `security_profile` (classical: execrelay's Noise XX;
  // pq_hybrid: codex's hybrid IK), every combination created at 0 so the series count is flat.
  const profiled = ['security_profile'] as const;
  const streamOpens = new Counter({ name: `${p}stream_opens_total`, help: 'Stream opens routed to an executor, by security profile.', labelNames: profiled, registers });
  const streamsAccepted = new Counter({ name: `${p}streams_accepted_total`, help: 'Streams the executor accepted (its Noise handshake completed), by security profile.', labelNames: profiled, registers });
  const streamCloses = new Counter({ name: `${p}stream_closes_total`, help: 'Routed streams that ended here, by result (moved: it went on through another fleet instance, with its executor) and security profile.', labelNames: ['result', 'security_profile'], registers });
  const handshakeDuration = new Histogram({
    name: `${p}stream_handshake_duration_seconds`,
    help: 'Time from a stream\'s open to the executor accepting it (the handshake phase), by security profile.',
    buckets: PHASE_DURATION_BUCKETS,
    labelNames: profiled,
    registers,
  });
  const frames = new Counter({ name: `${p}frames_routed_total`, help: 'Frames routed, by direction and security profile.', labelNames: ['direction', 'security_profile'], registers });
  const bytes = new Counter({ name: `${p}bytes_routed_total`, help: 'Frame bytes routed, by direction and security profile.', labelNames: ['direction', 'security_profile'], registers });
  const dropped = new Counter({ name: `${p}frames_dropped_total`, help: 'Frames not routed, by reason.', labelNames: ['reason'], registers });
  const resets = new Counter({ name: `${p}resets_total`, help: 'Resets the relay sent, by reason.', labelNames: ['reason'], registers });
  const registrations = new Counter({ name: `${p}registrations_total`, help: 'Executor registrations, by result.', labelNames: ['result'], registers });
  const authFailures = new Counter({ name: `${p}auth_failures_total`, help: 'Refused bearer tokens, by endpoint.', labelNames: ['endpoint'], registers });
  const pauses = new Counter({ name: `${p}socket_pauses_total`, help: 'Times a client socket was paused because the socket it feeds was congested.', registers });
  const fleetFrames = new Counter({ name: `${p}fleet_frames_total`, help: 'Frames that crossed NATS between relay instances, by direction (published or received here).', labelNames: ['direction'], registers });
  const fleetBytes = new Counter({ name: `${p}fleet_bytes_total`, help: 'Frame bytes that crossed NATS between relay instances, by direction.', labelNames: ['direction'], registers });
  const fleetErrors = new Counter({ name: `${p}fleet_errors_total`, help: 'NATS problems, by kind (connection, publish, registry, control).', labelNames: ['kind'], registers });
  const fleetReconnects = new Counter({ name: `${p}fleet_reconnects_total`, help: 'Times the NATS connection came back after a loss.', registers });
  gauge('fleet_member', '1 for a relay started as a fleet member (--nats), 0 for a single relay.', (s) => (s.fleetState?.member ? 1 : 0));
  gauge('fleet_connected', '1 while this fleet member is connected to NATS (0 when disconnected, or a single relay).', (s) => (s.fleetState?.connected ? 1 : 0));
  gauge('registry_environments', 'Environments this instance holds with a live entry in the fleet registry (sum over instances: the fleet).', (s) => s.fleetState?.registeredEnvironments);
  gauge('fleet_remote_clients', 'Client sockets held by other instances that this instance routes streams for.', (s) => s.fleetState?.remoteClients);
  const heartbeatMisses = new Counter({ name: `${p}heartbeat_misses_total`, help: 'Sockets dropped for missing the pong deadline.', registers });

  for (const security_profile of SECURITY_PROFILES) {
    streamOpens.inc({ security_profile }, 0);
    streamsAccepted.inc({ security_profile }, 0);
    handshakeDuration.zero({ security_profile });
    for (const result of STREAM_END_RESULTS) streamCloses.inc({ result, security_profile }, 0);
    for (const direction of DIRECTIONS) {
      frames.inc({ direction, security_profile }, 0);
      bytes.inc({ direction, security_profile }, 0);
    }
  }
  for (const reason of DROP_REASONS) dropped.inc({ reason }, 0);
  for (const reason of RESET_REASONS) resets.inc({ reason }, 0);
  for (const result of RELAY_REGISTRATION_RESULTS) registrations.inc({ result }, 0);
  for (const endpoint of AUTH_ENDPOINTS) authFailures.inc({ endpoint }, 0);
  for (const direction of FLEET_DIRECTIONS) {
    fleetFrames.inc({ direction }, 0);
    fleetBytes.inc({ direction }, 0);
  }
  for (const kind of FLEET_ERROR_KINDS) fleetErrors.inc({ kind }, 0);

  const tracer = options.tracer;
  const pointSpan = (name: string, attributes: Record<string, string>, startedMsAgo = 0) => {
    if (!tracer) return;
    const now = Date.now();
    const span = tracer.startSpan(name, { attributes, startTime: now - startedMsAgo }, ROOT_CONTEXT);
    span.end(now);
  };

  const events: RelayEvents = {
    frameRouted(direction: FrameDirection, size: number, security_profile) {
      frames.inc({ direction, security_profile });
      bytes.inc({ direction, security_profile }, size);
    },
    frameDropped(reason) {
      dropped.inc({ reason });
    },
    streamOpened(security_profile) {
      streamOpens.inc({ security_profile });
    },
    streamAccepted(handshakeMs, security_profile) {
      streamsAccepted.inc({ security_profile });
      handshakeDuration.observe({ security_profile }, handshakeMs / 1000);
      pointSpan('relay.stream.handshake', { [SpanAttribute.Result]: 'accepted', [SpanAttribute.SecurityProfile]: security_profile }, handshakeMs);
    },
    streamEnded(result, security_profile) {
      streamCloses.inc({ result, security_profile });
      pointSpan('relay.stream.end', { [SpanAttribute.Result]: result, [SpanAttribute.SecurityProfile]: security_profile });
    },
    reset(reason: ResetReasonValue) {
      resets.inc({ reason: KNOWN_RESET_REASONS.has(reason) ? reason : OTHER_REASON });
    },
    registration(result) {
      registrations.inc({ result });
      pointSpan('relay.registration', { [SpanAttribute.Result]: result });
    },
    authFailure(endpoint) {
      authFailures.inc({ endpoint });
    },
    socketPaused() {
      pauses.inc();
    },
    heartbeatMissed() {
      heartbeatMisses.inc();
    },
    fleetFrame(direction, size) {
      fleetFrames.inc({ direction });
      fleetBytes.inc({ direction }, size);
    },
    fleetError(kind) {
      fleetErrors.inc({ kind });
    },
    fleetReconnected() {
      fleetReconnects.inc();
    },
  };
  const httpRoute = metricsRoute(registry);
  return { registry, events, httpRoute, httpRoutes: { '/metrics': httpRoute }, expose: () => registry.metrics() };
}
