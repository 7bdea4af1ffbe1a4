import { ExitStatus } from './exit-status.js';

/** The client commands whose run is one operation, traced under one root span `execrelay NAME`. */
export const TRACED_OPERATIONS = ['exec', 'walk', 'cat', 'put', 'cp'] as const;
export type TracedOperation = (typeof TRACED_OPERATIONS)[number];

export function isTracedOperation(name: string | undefined): name is TracedOperation {
  return (TRACED_OPERATIONS as readonly string[]).includes(name ?? '');
}

/**
 * Runs one client command as one trace (when OTEL_EXPORTER_OTLP_* turns tracing on): a root span
 * `execrelay exec` (the command's name, from the fixed set above; never its arguments) is active
 * while `run` runs, so every request the command makes — `initialize`, `process/start`, … — and the
 * agent's server spans under them are its descendants. The span is an error when `run` throws or the
 * command ends with execrelay's own failure status; a remote command's non-zero exit is not.
 * Tracing is flushed and shut down before this returns.
 */
export async function runTracedOperation(name: TracedOperation, run: () => Promise<unknown>): Promise<void> {
  // Loaded here, not at the top: main.ts imports this module for every command to ask isTracedOperation.
  const [{ context: otelContext, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace }, { TRACER_NAME }, { startTracing }] = await Promise.all([
    import('@opentelemetry/api'),
    import('../src/telemetry/labels.js'),
    import('../src/telemetry/tracing.js'),
  ]);
  const tracing = await startTracing({ serviceName: 'execrelay-client' });
  const span = trace.getTracer(TRACER_NAME).startSpan(`execrelay ${name}`, { kind: SpanKind.INTERNAL }, ROOT_CONTEXT);
  try {
    await otelContext.with(trace.setSpan(ROOT_CONTEXT, span), run);
    if (process.exitCode === ExitStatus.ExecrelayFailure) span.setStatus({ code: SpanStatusCode.ERROR, message: 'execrelay_failure' });
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'Error' });
    throw error;
  } finally {
    span.end();
    await tracing.shutdown();
  }
}
