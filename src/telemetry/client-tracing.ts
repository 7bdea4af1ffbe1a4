import { context as otelContext, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { RequestTrace, RequestTraceProvider } from '../jsonrpc/connection.js';
import { methodLabel, SpanAttribute, TRACER_NAME } from './labels.js';
import { injectTraceCarrier } from './propagation.js';

/**
 * The client's per-request tracing (a `JsonRpcConnection` `traceProvider`): a CLIENT span named
 * after the method (`unknown` for a method the protocol does not define), child of the active
 * context, injected as the request's `trace` and ended when the answer (or failure) arrives. With
 * no tracer provider registered the span is non-recording and only an active context from
 * elsewhere is propagated; with no active context nothing is sent.
 */
export function clientRequestTraceProvider(tracer?: Tracer): RequestTraceProvider {
  // Without an explicit tracer: the global one (a proxy that follows a provider registered later).
  const requestTracer = tracer ?? trace.getTracer(TRACER_NAME);
  return (method: string): RequestTrace | undefined => {
    const active = otelContext.active();
    const name = methodLabel(method);
    const span = requestTracer.startSpan(
      name,
      { kind: SpanKind.CLIENT, attributes: { [SpanAttribute.RpcMethod]: name, [SpanAttribute.RpcSystem]: 'jsonrpc' } },
      active,
    );
    const carrier = injectTraceCarrier(trace.setSpan(active, span));
    if (!carrier && !span.isRecording()) return undefined;
    return {
      ...(carrier ? { trace: carrier } : {}),
      end(error?: Error) {
        if (error) {
          // The error's name and JSON-RPC code only: messages can name paths or commands.
          span.setStatus({ code: SpanStatusCode.ERROR, message: error.name });
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'number') span.setAttribute(SpanAttribute.JsonRpcErrorCode, code);
        }
        span.end();
      },
    };
  };
}
