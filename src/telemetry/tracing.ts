import { trace, type Tracer } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-node';
import { TRACER_NAME, type ServiceName } from './labels.js';

export { TRACER_NAME };

export interface TracingOptions {
  serviceName: ServiceName;
  /**
   * Where OTEL_EXPORTER_OTLP_* and OTEL_SDK_DISABLED are read from (default `process.env`). The
   * resource's OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by OpenTelemetry's
   * `envDetector`, from `process.env` always.
   */
  env?: NodeJS.ProcessEnv;
  /**
   * Make this the global tracer provider, context manager and propagator (default true; a process
   * has one). Tests that run several services in one process register one and pass the others'
   * `tracer` explicitly.
   */
  register?: boolean;
  /** Export here instead of OTLP/HTTP (tests); tracing is then on whatever the environment says. */
  exporter?: SpanExporter;
  /** Batch delay before export (default 1000 ms). */
  scheduledDelayMillis?: number;
  /** `service.version` (default: the package's version). */
  serviceVersion?: string;
}

export interface Tracing {
  /** True when spans are recorded and exported. */
  readonly enabled: boolean;
  /** A tracer that records when enabled; the no-op (or global) tracer otherwise. */
  readonly tracer: Tracer;
  /** Exports every ended span now. */
  forceFlush(): Promise<void>;
  /** Flushes and stops exporting; call on shutdown. Never rejects. */
  shutdown(): Promise<void>;
}

/**
 * The OTLP/HTTP traces URL from the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as
 * given, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; undefined when neither is set.
 */
export function otlpTracesUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return `${base.replace(/\/+$/, '')}/v1/traces`;
  return undefined;
}

/**
 * Starts tracing for one service: OTLP/HTTP (JSON to `/v1/traces`) when an endpoint is configured,
 * otherwise a disabled handle whose tracer is the API's (no-op unless something else registered one).
 * The SDK and exporter are loaded only when tracing is on (they cost ~0.3 s of startup).
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const env = options.env ?? process.env;
  const url = otlpTracesUrl(env);
  const sdkDisabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';
  if ((!url && !options.exporter) || sdkDisabled) {
    return {
      enabled: false,
      tracer: trace.getTracer(TRACER_NAME),
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
  }
  const [{ W3CTraceContextPropagator }, { detectServiceResource }, { BatchSpanProcessor, NodeTracerProvider }] = await Promise.all([
    import('@opentelemetry/core'),
    import('./service-resource.js'),
    import('@opentelemetry/sdk-trace-node'),
  ]);
  const exporter = options.exporter ?? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({ url: url! });
  const provider = new NodeTracerProvider({
    resource: await detectServiceResource(options.serviceName, options.serviceVersion),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: options.scheduledDelayMillis ?? 1000 })],
  });
  if (options.register ?? true) provider.register({ propagator: new W3CTraceContextPropagator() });
  let stopped: Promise<void> | undefined;
  return {
    enabled: true,
    tracer: provider.getTracer(TRACER_NAME),
    forceFlush: () => provider.forceFlush().catch(() => undefined),
    shutdown: () => (stopped ??= provider.shutdown().catch(() => undefined)),
  };
}
