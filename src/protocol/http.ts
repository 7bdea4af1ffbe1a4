import { z } from 'zod';
import { base64Bytes, callerId, nonNegativeInt } from './validation.js';

/**
 * The `http/*` method family: HTTP requests performed by the agent on the executor's network.
 * `http/request` and `http/request/bodyDelta` are the codex exec-server 0.169.0 wire (see
 * docs/codex-wire.md); `http/request/ack`, `http/request/cancel`, the `responseWindowBytes` param
 * and the `url` result member are execrelay extensions (docs/http-and-mcp.md). Defined here and
 * nowhere else.
 */

/** Bounds on HTTP requests through the agent. */
export const HTTP_LIMITS = {
  /** Request header entries (-32602 past it). */
  maxHeaders: 256,
  /** Sum of the request's header name and value lengths (-32602 past it). */
  maxHeaderBytes: 64 * 1024,
  maxUrlLength: 16 * 1024,
  /**
   * Decoded request body bytes (-32602 past it): 3/4 of the 64 MiB JSON-RPC message cap, so a
   * request carrying the largest body still fits one message after base64.
   */
  maxRequestBodyBytes: 48 * 1024 * 1024,
  /** Bytes one `http/request/bodyDelta` carries at most (before base64). */
  maxDeltaBytes: 1024 * 1024,
  /** Active `http/request`s one session may hold at once (-32600 past it). */
  maxConcurrentRequestsPerSession: 64,
  /** Redirects followed for `redirectPolicy: "follow"` before the request fails (as WHATWG fetch). */
  maxRedirects: 20,
  /** Largest `timeoutMs` (the Node timer maximum). */
  maxTimeoutMs: 2_147_483_647,
  /** Bounds on the `responseWindowBytes` extension. */
  minResponseWindowBytes: 64 * 1024,
  maxResponseWindowBytes: 64 * 1024 * 1024,
} as const;

/** RFC 9110 `token`: header names and methods. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 field value: visible ASCII, obs-text, space and tab inside; no CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export const HttpHeader = z.object({
  name: z.string().regex(TOKEN, 'not a valid HTTP header name'),
  value: z.string().regex(FIELD_VALUE, 'not a valid HTTP header value (control characters or non-latin1)'),
});
export type HttpHeader = z.output<typeof HttpHeader>;

const requestHeaders = z
  .array(HttpHeader)
  .max(HTTP_LIMITS.maxHeaders, `more than ${HTTP_LIMITS.maxHeaders} headers`)
  .refine(
    (headers) => headers.reduce((sum, h) => sum + h.name.length + h.value.length, 0) <= HTTP_LIMITS.maxHeaderBytes,
    `headers exceed ${HTTP_LIMITS.maxHeaderBytes} bytes`,
  );

export const RedirectPolicy = z.enum(['follow', 'stop']);
export type RedirectPolicy = z.output<typeof RedirectPolicy>;

export const HttpRequestParams = z.object({
  /** Caller-chosen; unique among the session's active requests (a duplicate is -32602). */
  requestId: callerId,
  method: z.string().max(64, 'longer than 64 characters').regex(TOKEN, 'not a valid HTTP method'),
  /** http:// or https:// only (checked by the agent: -32602 naming the scheme). */
  url: z.string().max(HTTP_LIMITS.maxUrlLength, `longer than ${HTTP_LIMITS.maxUrlLength} characters`),
  headers: requestHeaders.nullish(),
  bodyBase64: base64Bytes
    .refine((body) => body.length <= HTTP_LIMITS.maxRequestBodyBytes, `request body exceeds ${HTTP_LIMITS.maxRequestBodyBytes} bytes`)
    .nullish(),
  /** Whole exchange, body included. Omitted or null: no timeout. */
  timeoutMs: nonNegativeInt.max(HTTP_LIMITS.maxTimeoutMs).nullish(),
  /** Default `follow`. `stop` returns a 3xx as it is, `location` untouched. */
  redirectPolicy: RedirectPolicy.nullish(),
  /** The result's `bodyBase64` is then "" and the body follows as `http/request/bodyDelta`. */
  streamResponse: z.boolean().nullish(),
  /**
   * execrelay extension (streamed responses only): the agent keeps at most this many body bytes
   * sent but not yet acknowledged with `http/request/ack`, and stops reading from the upstream
   * server meanwhile. Absent: no flow control (codex behaviour).
   */
  responseWindowBytes: z
    .number()
    .int()
    .min(HTTP_LIMITS.minResponseWindowBytes)
    .max(HTTP_LIMITS.maxResponseWindowBytes)
    .nullish(),
});
export type HttpRequestParams = z.output<typeof HttpRequestParams>;
export type HttpRequestWire = z.input<typeof HttpRequestParams>;

/**
 * Response header names are lower-cased and repeats kept as separate entries (as codex). `url`
 * (execrelay extension) is the URL that produced this response, after any redirects followed.
 */
export const HttpRequestResult = z.object({
  status: z.number().int().min(100).max(999),
  headers: z.array(z.object({ name: z.string(), value: z.string() })),
  bodyBase64: base64Bytes,
  url: z.string().optional(),
});
export type HttpRequestResult = z.output<typeof HttpRequestResult>;

/**
 * One piece of a streamed body. `seq` counts from 1 per request; the last delta has `done: true`
 * (and `error` set when the body failed or the request was cancelled or timed out).
 */
export const HttpBodyDeltaNotification = z.object({
  requestId: z.string(),
  seq: z.number().int().min(1),
  deltaBase64: base64Bytes.refine((d) => d.length <= HTTP_LIMITS.maxDeltaBytes, `delta exceeds ${HTTP_LIMITS.maxDeltaBytes} bytes`),
  done: z.boolean(),
  error: z.string().nullish(),
});
export type HttpBodyDeltaNotification = z.output<typeof HttpBodyDeltaNotification>;

/** `consumedBytes`: total body bytes of this request the client has consumed (monotonic). */
export const HttpAckParams = z.object({ requestId: callerId, consumedBytes: nonNegativeInt });
export type HttpAckParams = z.output<typeof HttpAckParams>;
export const HttpAckResult = z.object({});

export const HttpCancelParams = z.object({ requestId: callerId });
export type HttpCancelParams = z.output<typeof HttpCancelParams>;
/** `cancelled` is false when no such request was active (already finished, or never started). */
export const HttpCancelResult = z.object({ cancelled: z.boolean() });
export type HttpCancelResult = z.output<typeof HttpCancelResult>;
