import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  HANDSHAKE_RESULTS,
  PROCESS_RESULTS,
  RECONNECT_REASONS,
  REGISTRATION_RESULTS,
  RENDEZVOUS_CONNECT_RESULTS,
  TRANSPORT_LABELS,
  type HandshakeResult,
  type ProcessResult,
  type ReconnectReason,
  type RegistrationResult,
  type RendezvousConnectResult,
  type RequestResult,
  type TransportLabel,
} from '../../src/telemetry/labels.js';

import { registerRuntimeMetrics } from '../../src/telemetry/runtime-metrics.js';
import { PHASE_DURATION_BUCKETS, PROCESS_DURATION_BUCKETS, REQUEST_DURATION_BUCKETS } from '../../src/telemetry/histogram-buckets.js';

/** Metric name prefix of the agent's own metrics (and of its process/runtime metrics). */
export const AGENT_METRIC_PREFIX = 'exec_server_';

/**
 * The agent's Prometheus metrics, on its own Registry (one per process). Label values come only
 * from the fixed sets in labels.ts. Counters whose label sets are small are created at zero for
 * every value, so dashboards and alerts see a series before the first event.
 */
export class AgentMetrics {
  readonly registry: Registry;
  readonly connectionsActive: Gauge<'transport'>;
  readonly connectionsTotal: Counter<'transport'>;
  readonly requestsTotal: Counter<'method' | 'result'>;
  readonly requestDuration: Histogram<'method' | 'result'>;
  readonly processesActive: Gauge;
  readonly processesFinished: Counter<'result'>;
  readonly processDuration: Histogram<'result'>;
  readonly registrationTotal: Counter<'result'>;
  readonly registrationDuration: Histogram;
  readonly rendezvousConnectTotal: Counter<'result'>;
  readonly rendezvousConnectDuration: Histogram;
  readonly reconnectsTotal: Counter<'reason'>;
  readonly handshakesTotal: Counter<'result'>;
  readonly handshakeDuration: Histogram<'result'>;
  readonly draining: Gauge;
  readonly drainTerminatedProcesses: Counter;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    registerRuntimeMetrics(registry, { component: 'agent', prefix: AGENT_METRIC_PREFIX });
    this.connectionsActive = new Gauge({
      name: 'exec_server_connections_active',
      help: 'Exec-protocol connections open now, by transport.',
      labelNames: ['transport'],
      registers,
    });
    this.connectionsTotal = new Counter({
      name: 'exec_server_connections_total',
      help: 'Exec-protocol connections accepted, by transport.',
      labelNames: ['transport'],
      registers,
    });
    this.requestsTotal = new Counter({
      name: 'exec_server_requests_total',
      help: 'JSON-RPC requests answered, by method (known method or "unknown") and result.',
      labelNames: ['method', 'result'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'exec_server_request_duration_seconds',
      help: 'Time from receiving a request to queueing its response, by method and result.',
      labelNames: ['method', 'result'],
      buckets: REQUEST_DURATION_BUCKETS,
      registers,
    });
    this.processesActive = new Gauge({
      name: 'exec_server_processes_active',
      help: 'Processes started and not yet exited.',
      registers,
    });
    this.processesFinished = new Counter({
      name: 'exec_server_processes_finished_total',
      help: 'Processes that exited, by result (success: exit 0, failure: non-zero, signaled: killed or terminated).',
      labelNames: ['result'],
      registers,
    });
    this.processDuration = new Histogram({
      name: 'exec_server_process_duration_seconds',
      help: 'Process lifetime from spawn to exit, by result.',
      labelNames: ['result'],
      buckets: PROCESS_DURATION_BUCKETS,
      registers,
    });
    this.registrationTotal = new Counter({
      name: 'exec_server_remote_registration_total',
      help: 'Registrations with the relay, by result.',
      labelNames: ['result'],
      registers,
    });
    this.registrationDuration = new Histogram({
      name: 'exec_server_remote_registration_duration_seconds',
      help: 'Time from dialling the relay to its "registered" answer.',
      buckets: PHASE_DURATION_BUCKETS,
      registers,
    });
    this.rendezvousConnectTotal = new Counter({
      name: 'exec_server_remote_rendezvous_connect_total',
      help: 'WebSocket connects to the relay, by result.',
      labelNames: ['result'],
      registers,
    });
    this.rendezvousConnectDuration = new Histogram({
      name: 'exec_server_remote_rendezvous_connect_duration_seconds',
      help: 'Time to a live relay link (connect and registration are one step on execrelay).',
      buckets: PHASE_DURATION_BUCKETS,
      registers,
    });
    this.reconnectsTotal = new Counter({
      name: 'exec_server_remote_reconnects_total',
      help: 'Relay links lost, by reason (relay_restarting and link_lost reconnect; replaced stops).',
      labelNames: ['reason'],
      registers,
    });
    this.handshakesTotal = new Counter({
      name: 'exec_server_noise_handshakes_total',
      help: 'Noise handshakes on relay streams (agent as responder), by result.',
      labelNames: ['result'],
      registers,
    });
    this.handshakeDuration = new Histogram({
      name: 'exec_server_noise_handshake_duration_seconds',
      help: 'Noise handshake duration on relay streams, by result.',
      labelNames: ['result'],
      buckets: PHASE_DURATION_BUCKETS,
      registers,
    });
    this.draining = new Gauge({
      name: 'exec_server_draining',
      help: '1 while the agent drains (after SIGTERM: no new sessions, processes or streams; running processes may finish), else 0.',
      registers,
    });
    this.drainTerminatedProcesses = new Counter({
      name: 'exec_server_drain_terminated_processes_total',
      help: 'Processes still running at the drain timeout, which the drain terminated (SIGTERM, then SIGKILL).',
      registers,
    });
    for (const transport of TRANSPORT_LABELS) {
      this.connectionsActive.set({ transport }, 0);
      this.connectionsTotal.inc({ transport }, 0);
    }
    this.processesActive.set(0);
    this.draining.set(0);
    this.drainTerminatedProcesses.inc(0);
    for (const result of PROCESS_RESULTS) this.processesFinished.inc({ result }, 0);
    for (const result of REGISTRATION_RESULTS) this.registrationTotal.inc({ result }, 0);
    for (const result of RENDEZVOUS_CONNECT_RESULTS) this.rendezvousConnectTotal.inc({ result }, 0);
    for (const reason of RECONNECT_REASONS) this.reconnectsTotal.inc({ reason }, 0);
    for (const result of HANDSHAKE_RESULTS) this.handshakesTotal.inc({ result }, 0);
  }

  connectionOpened(transport: TransportLabel): void {
    this.connectionsActive.inc({ transport });
    this.connectionsTotal.inc({ transport });
  }

  connectionClosed(transport: TransportLabel): void {
    this.connectionsActive.dec({ transport });
  }

  requestFinished(method: string, result: RequestResult, seconds: number): void {
    this.requestsTotal.inc({ method, result });
    this.requestDuration.observe({ method, result }, seconds);
  }

  processStarted(): void {
    this.processesActive.inc();
  }

  /** `wasActive`: the process was counted in `processes_active` (via `processStarted`). */
  processFinished(result: ProcessResult, seconds: number, wasActive: boolean): void {
    if (wasActive) this.processesActive.dec();
    this.processesFinished.inc({ result });
    this.processDuration.observe({ result }, seconds);
  }

  registration(result: RegistrationResult, seconds?: number): void {
    this.registrationTotal.inc({ result });
    if (seconds !== undefined) this.registrationDuration.observe(seconds);
  }

  rendezvousConnect(result: RendezvousConnectResult, seconds?: number): void {
    this.rendezvousConnectTotal.inc({ result });
    if (seconds !== undefined) this.rendezvousConnectDuration.observe(seconds);
  }

  reconnect(reason: ReconnectReason): void {
    this.reconnectsTotal.inc({ reason });
  }

  handshake(result: HandshakeResult, seconds: number): void {
    this.handshakesTotal.inc({ result });
    this.handshakeDuration.observe({ result }, seconds);
  }

  drainStarted(): void {
    this.draining.set(1);
  }

  drainTerminating(count: number): void {
    this.drainTerminatedProcesses.inc(count);
  }

  /** The Prometheus text exposition. */
  expose(): Promise<string> {
    return this.registry.metrics();
  }
}
