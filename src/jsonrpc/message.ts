import type { RpcErrorObject } from '../protocol/error-codes.js';

/** W3C trace context carried as a top-level `trace` member of a request. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

export type RequestId = string | number;

/** Wire envelopes. There is no `"jsonrpc"` member (codex app-server style). */
export interface RequestMessage {
  id: RequestId;
  method: string;
  params?: unknown;
  trace?: TraceCarrier;
}
export interface NotificationMessage {
  method: string;
  params?: unknown;
}
export interface SuccessResponse {
  id: RequestId;
  result: unknown;
}
export interface ErrorResponse {
  id: RequestId;
  error: RpcErrorObject;
}

export type IncomingMessage =
  | { kind: 'request'; message: RequestMessage }
  | { kind: 'notification'; message: NotificationMessage }
  | { kind: 'response'; id: RequestId; result: unknown }
  | { kind: 'error-response'; id: RequestId; error: RpcErrorObject }
  | { kind: 'invalid'; reason: string; id?: RequestId };

/** The id used to answer a message whose own id could not be read (codex convention). */
export const UNKNOWN_REQUEST_ID = -1;

function isRequestId(value: unknown): value is RequestId {
  return typeof value === 'string' || (typeof value === 'number' && Number.isSafeInteger(value));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseTrace(value: unknown): TraceCarrier | undefined {
  // An invalid carrier is ignored, never an error: tracing must not break a request.
  if (!isObject(value) || typeof value.traceparent !== 'string') return undefined;
  return typeof value.tracestate === 'string'
    ? { traceparent: value.traceparent, tracestate: value.tracestate }
    : { traceparent: value.traceparent };
}

/** Classifies one raw message. Never throws. */
export function parseMessage(raw: string): IncomingMessage {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { kind: 'invalid', reason: 'malformed JSON' };
  }
  if (!isObject(value)) return { kind: 'invalid', reason: 'message must be a JSON object' };
  const hasId = 'id' in value && value.id !== null && value.id !== undefined;
  if (hasId && !isRequestId(value.id)) {
    return { kind: 'invalid', reason: 'id must be a string or an integer' };
  }
  const id = hasId ? (value.id as RequestId) : undefined;
  if ('method' in value) {
    if (typeof value.method !== 'string' || value.method.length === 0) {
      return id === undefined
        ? { kind: 'invalid', reason: 'method must be a non-empty string' }
        : { kind: 'invalid', reason: 'method must be a non-empty string', id };
    }
    if (id === undefined) {
      return { kind: 'notification', message: { method: value.method, params: value.params } };
    }
    const request: RequestMessage = { id, method: value.method, params: value.params };
    const trace = parseTrace(value.trace);
    if (trace) request.trace = trace;
    return { kind: 'request', message: request };
  }
  if (id !== undefined && 'result' in value) return { kind: 'response', id, result: value.result };
  if (id !== undefined && isObject(value.error)) {
    const err = value.error;
    if (typeof err.code === 'number' && typeof err.message === 'string') {
      const error: RpcErrorObject = { code: err.code, message: err.message };
      if ('data' in err) error.data = err.data;
      return { kind: 'error-response', id, error };
    }
  }
  return id === undefined
    ? { kind: 'invalid', reason: 'not a request, notification or response' }
    : { kind: 'invalid', reason: 'not a request, notification or response', id };
}
