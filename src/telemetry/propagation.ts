import { context as otelContext, trace, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { TraceCarrier } from '../jsonrpc/message.js';

/**
 * W3C trace context on the JSON-RPC `trace: {traceparent, tracestate}` member. A fixed W3C
 * propagator, independent of whatever global propagator is (or is not) registered.
 */
const propagator = new W3CTraceContextPropagator();

type Carrier = Record<string, string>;
const setter: TextMapSetter<Carrier> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};
const getter: TextMapGetter<Carrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** The carrier for `ctx` (default: the active context), or undefined when it holds no valid span. */
export function injectTraceCarrier(ctx: Context = otelContext.active()): TraceCarrier | undefined {
  const carrier: Carrier = {};
  propagator.inject(ctx, carrier, setter);
  const traceparent = carrier.traceparent;
  if (!traceparent) return undefined;
  return carrier.tracestate ? { traceparent, tracestate: carrier.tracestate } : { traceparent };
}

/**
 * The context a request's carrier names, on top of `base`. An absent or invalid carrier (bad
 * version, ids, flags or shape) yields `base` unchanged: tracing never fails a request.
 */
export function extractTraceContext(carrier: TraceCarrier | undefined, base: Context = otelContext.active()): Context {
  if (!carrier || typeof carrier.traceparent !== 'string') return base;
  try {
    const input: Carrier = { traceparent: carrier.traceparent };
    if (typeof carrier.tracestate === 'string') input.tracestate = carrier.tracestate;
    const extracted = propagator.extract(base, input, getter);
    return trace.getSpanContext(extracted) ? extracted : base;
  } catch {
    return base;
  }
}
