import { performance } from 'node:perf_hooks';
import { context as otelContext, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import type { Registry } from 'prom-client';
import type { ExecServerTelemetry, ProcessObservation, ProcessTelemetry, RequestObservation } from '../agent-events.js';
import type { TraceCarrier } from '../../src/jsonrpc/message.js';
import type { RelayRegistrationEvent } from '../relay-registration.js';
import { AgentMetrics } from './agent-metrics.js';
import { methodLabel, requestResult, SpanAttribute, transportLabel, UNKNOWN_METHOD } from '../../src/telemetry/labels.js';
import { startMetricsServer, type MetricsServer, type MetricsServerOptions } from '../../src/telemetry/metrics-server.js';
import { extractTraceContext } from '../../src/telemetry/propagation.js';

export interface AgentTelemetryOptions {
  /** Records server spans when given a recording tracer (from `startTracing`). */
  tracer?: Tracer;
  /** Defaults to a new Registry (one per process). */
  registry?: Registry;
}

export interface AgentTelemetry extends ExecServerTelemetry {
  readonly metrics: AgentMetrics;
  /** `RelayRegistrationOptions.onEvent`. */
  readonly onRegistrationEvent: (event: RelayRegistrationEvent) => void;
  /** Serves `/metrics` (plus `/livez`, `/readyz`) on `HOST:PORT`. */
  startMetricsServer(hostPort: string, options?: Omit<MetricsServerOptions, 'metrics'>): Promise<MetricsServer>;
}

const NO_SPAN_OBSERVATION_RUN = <T>(fn: () => T): T => fn();

/**
 * The agent's metrics and server spans, and the hooks that feed them. Creating it costs a
 * Registry; wiring it in costs a few counter updates per request.
 */
export function createAgentTelemetry(options: AgentTelemetryOptions = {}): AgentTelemetry {
  const metrics = new AgentMetrics(options.registry);
  const tracer = options.tracer;

  const processStarting = (): ProcessObservation => {
    let active = false;
    let finished = false;
    return {
      started() {
        if (active || finished) return;
        active = true;
        metrics.processStarted();
      },
      onFinished(result, durationMs) {
        if (finished) return;
        finished = true;
        metrics.processFinished(result, durationMs / 1000, active);
        active = false;
      },
    };
  };

  const requestStarted = (method: string, routed: boolean, carrier: TraceCarrier | undefined): RequestObservation => {
    const label = routed ? methodLabel(method) : UNKNOWN_METHOD;
    const startedAt = performance.now();
    let span: Span | undefined;
    if (tracer) {
      // A server request's parent is what its carrier says and nothing else (never the ambient context).
      const parent = extractTraceContext(carrier, ROOT_CONTEXT);
      span = tracer.startSpan(label, { kind: SpanKind.SERVER, attributes: { [SpanAttribute.RpcMethod]: label, [SpanAttribute.RpcSystem]: 'jsonrpc' } }, parent);
      if (!span.isRecording()) span = undefined;
    }
    let done = false;
    const spanned = span;
    return {
      run: spanned ? <T>(fn: () => T): T => otelContext.with(trace.setSpan(ROOT_CONTEXT, spanned), fn) : NO_SPAN_OBSERVATION_RUN,
      finish(outcome) {
        if (done) return;
        done = true;
        const result = requestResult(outcome);
        metrics.requestFinished(label, result, (performance.now() - startedAt) / 1000);
        if (spanned) {
          spanned.setAttribute(SpanAttribute.Result, result);
          if (outcome.errorCode !== undefined) spanned.setAttribute(SpanAttribute.JsonRpcErrorCode, outcome.errorCode);
          if (result !== 'ok') spanned.setStatus({ code: SpanStatusCode.ERROR, message: result });
          spanned.end();
        }
      },
    };
  };

  const onRegistrationEvent = (event: RelayRegistrationEvent): void => {
    switch (event.type) {
      case 'registered':
        metrics.rendezvousConnect('success', event.durationMs / 1000);
        metrics.registration('success', event.durationMs / 1000);
        return;
      case 'connect-failed':
        metrics.rendezvousConnect(event.reason === 'refused' ? 'refused' : 'unreachable');
        if (event.reason === 'refused') metrics.registration('refused');
        return;
      case 'disconnected':
        metrics.reconnect(event.reason);
        return;
      case 'handshake':
        metrics.handshake(event.result, event.durationMs / 1000);
        return;
    }
  };

  const processTelemetry: ProcessTelemetry = { processStarting };
  return {
    metrics,
    process: processTelemetry,
    drain: {
      started: () => metrics.drainStarted(),
      terminating: (count) => metrics.drainTerminating(count),
    },
    connectionOpened(transportKind) {
      const transport = transportLabel(transportKind);
      metrics.connectionOpened(transport);
      let closed = false;
      return () => {
        if (closed) return;
        closed = true;
        metrics.connectionClosed(transport);
      };
    },
    requestStarted,
    onRegistrationEvent,
    startMetricsServer: (hostPort, serverOptions = {}) => startMetricsServer(hostPort, { ...serverOptions, metrics: () => metrics.expose() }),
  };
}
