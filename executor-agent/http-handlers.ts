import type { IncomingMessage } from 'node:http';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { HTTP_LIMITS, HttpAckParams, HttpCancelParams, HttpRequestParams } from '../src/protocol/http.js';
import { HttpMethod, HttpNotification } from '../src/protocol/methods.js';
import { parseOrThrow } from '../src/protocol/validation.js';
import type { AgentConfig } from './agent-config.js';
import type { HandlerContext, HandlerTable } from './handler-table.js';
import { HttpDestinationPolicy, type HttpAllowRule } from './http-destination-policy.js';
import { redactUrl, sendUpstream, UpstreamError, type HostResolver } from './http-upstream.js';
import type { Session } from './session.js';

export interface HttpHandlerOptions {
  /**
   * Destination rules; default `config.httpAllow` (and, without it, any destination whose
   * addresses are not in a denied class: see `HttpDestinationPolicy`).
   */
  allow?: readonly HttpAllowRule[];
  /** Allow addresses in the denied classes (loopback, private, ...); default `config.httpAllowPrivate`. */
  allowPrivate?: boolean;
  /** Resolves host names (default: the OS resolver). Tests inject one to make names resolve where they need. */
  resolve?: HostResolver;
  /** Source address for outgoing connections (default: the OS picks). */
  localAddress?: string;
  /** Active requests per session (default `HTTP_LIMITS.maxConcurrentRequestsPerSession`). */
  maxConcurrentRequestsPerSession?: number;
  /** Called for every request the agent sends upstream, each redirect hop included. */
  onUpstreamRequest?: (info: { method: string; url: string }) => void;
}

/** Why an active request was aborted; its message becomes the error the client sees. */
class RequestAborted extends Error {
  override readonly name = 'RequestAborted';
}

interface ActiveRequest {
  readonly requestId: string;
  readonly controller: AbortController;
  /** Flow-control window (`responseWindowBytes`), null without flow control. */
  window: number | null;
  /** Body bytes pushed in deltas so far. */
  sent: number;
  /** Body bytes the client said it consumed (`http/request/ack`). */
  acked: number;
  creditWaiter: (() => void) | undefined;
}

/** Active requests per session, by requestId (duplicates and the concurrency bound are per session). */
const activeBySession = new WeakMap<Session, Map<string, ActiveRequest>>();

function activeRequests(session: Session): Map<string, ActiveRequest> {
  let active = activeBySession.get(session);
  if (!active) {
    active = new Map();
    activeBySession.set(session, active);
  }
  return active;
}

/** Largest body a buffered (non-streamed) answer may carry: base64 of it must fit one JSON-RPC message. */
function bufferedBodyCap(config: AgentConfig): number {
  return Math.max(0, Math.floor((config.maxMessageBytes * 3) / 4) - 64 * 1024);
}

function parseTargetUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RpcError(ErrorCode.InvalidParams, `invalid params: url: not a valid absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RpcError(ErrorCode.InvalidParams, `http/request only supports http and https URLs, got ${url.protocol.replace(/:$/, '')}`);
  }
  return url;
}

/** The -32603 error for a request that failed after it was accepted. */
function failure(entry: ActiveRequest, error: unknown, url: URL): RpcError {
  if (error instanceof RpcError) return error;
  return new RpcError(ErrorCode.Internal, `http/request failed: ${failureReason(entry, error, url)}`);
}

function failureReason(entry: ActiveRequest, error: unknown, url: URL): string {
  const reason: unknown = entry.controller.signal.reason;
  if (entry.controller.signal.aborted && reason instanceof RequestAborted) return reason.message;
  if (error instanceof UpstreamError || error instanceof RequestAborted) return error.message;
  return `error sending request for url (${redactUrl(url)}): ${(error as Error)?.message ?? String(error)}`;
}

async function readAll(body: IncomingMessage, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > cap) {
      body.destroy();
      throw new UpstreamError(`response body exceeds ${cap} bytes; use streamResponse for larger bodies`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Resolves when the window has room for `bytes` more (always at least one delta in flight). */
async function waitForCredit(entry: ActiveRequest, bytes: number): Promise<void> {
  const window = entry.window;
  if (window === null) return;
  while (entry.sent > entry.acked && entry.sent - entry.acked + bytes > window) {
    entry.controller.signal.throwIfAborted();
    await new Promise<void>((resolve) => {
      entry.creditWaiter = resolve;
    });
    entry.creditWaiter = undefined;
  }
  entry.controller.signal.throwIfAborted();
}

/**
 * Pushes the body as `http/request/bodyDelta` notifications (seq from 1, each ≤ 1 MiB and ≤ a
 * quarter of the window, so credit always comes back in time), then the terminal `done: true`
 * with `error` set on failure. Each push is awaited, and with a window the pump also waits for
 * credit, so a slow client stops the reads from the upstream socket (TCP backpressure).
 */
async function pumpBody(entry: ActiveRequest, body: IncomingMessage, url: URL, context: HandlerContext): Promise<void> {
  const maxPiece = entry.window === null ? HTTP_LIMITS.maxDeltaBytes : Math.min(HTTP_LIMITS.maxDeltaBytes, Math.floor(entry.window / 4));
  let seq = 0;
  let error: string | null = null;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      for (let offset = 0; offset < chunk.length; offset += maxPiece) {
        const piece = chunk.subarray(offset, offset + maxPiece);
        await waitForCredit(entry, piece.length);
        entry.sent += piece.length;
        await context.notify(HttpNotification.BodyDelta, {
          requestId: entry.requestId,
          seq: ++seq,
          deltaBase64: piece.toString('base64'),
          done: false,
          error: null,
        });
      }
    }
    entry.controller.signal.throwIfAborted();
  } catch (caught) {
    body.destroy();
    error = `response body failed: ${failureReason(entry, caught, url)}`;
  }
  await context
    .notify(HttpNotification.BodyDelta, { requestId: entry.requestId, seq: ++seq, deltaBase64: '', done: true, error })
    .catch(() => undefined); // the connection is gone: nobody to tell
}

/**
 * The `http/*` family: `http/request` performed from the agent's network, plus the execrelay
 * extensions `http/request/ack` (flow-control credit) and `http/request/cancel`.
 */
export function createHttpHandlers(options: HttpHandlerOptions = {}): HandlerTable {
  const maxConcurrent = options.maxConcurrentRequestsPerSession ?? HTTP_LIMITS.maxConcurrentRequestsPerSession;

  async function request(rawParams: unknown, context: HandlerContext): Promise<unknown> {
    const params = parseOrThrow(HttpRequestParams, rawParams);
    const url = parseTargetUrl(params.url);
    if (params.method.toUpperCase() === 'CONNECT') {
      throw new RpcError(ErrorCode.InvalidParams, 'invalid params: method: CONNECT is not supported');
    }
    const config: AgentConfig = context.config;
    const policy = new HttpDestinationPolicy(options.allow ?? config.httpAllow, options.allowPrivate ?? config.httpAllowPrivate);
    const active = activeRequests(context.session);
    if (active.has(params.requestId)) {
      throw new RpcError(ErrorCode.InvalidParams, `invalid params: requestId: duplicate active requestId: ${params.requestId}`);
    }
    if (active.size >= maxConcurrent) {
      throw new RpcError(ErrorCode.InvalidRequest, `too many concurrent http requests in this session (limit ${maxConcurrent})`);
    }
    const stream = params.streamResponse === true;
    const entry: ActiveRequest = {
      requestId: params.requestId,
      controller: new AbortController(),
      window: stream ? (params.responseWindowBytes ?? null) : null,
      sent: 0,
      acked: 0,
      creditWaiter: undefined,
    };
    active.set(params.requestId, entry);
    const signal = entry.controller.signal;
    signal.addEventListener('abort', () => entry.creditWaiter?.(), { once: true });
    const onDetach = () => entry.controller.abort(new RequestAborted('connection closed'));
    context.detachSignal.addEventListener('abort', onDetach, { once: true });
    if (context.detachSignal.aborted) onDetach();
    const timeoutMs = params.timeoutMs ?? null;
    const timer =
      timeoutMs === null ? undefined : setTimeout(() => entry.controller.abort(new RequestAborted(`timed out after ${timeoutMs} ms (${redactUrl(url)})`)), timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      context.detachSignal.removeEventListener('abort', onDetach);
      if (active.get(params.requestId) === entry) active.delete(params.requestId);
    };
    let handedOff = false;
    try {
      const response = await sendUpstream({
        method: params.method,
        url,
        headers: params.headers ?? [],
        body: params.bodyBase64 ?? Buffer.alloc(0),
        redirectPolicy: params.redirectPolicy ?? 'follow',
        signal,
        policy,
        resolve: options.resolve,
        localAddress: options.localAddress,
        onHop: options.onUpstreamRequest ? (method, hop) => options.onUpstreamRequest?.({ method, url: hop.href }) : undefined,
      });
      const head = { status: response.status, headers: response.headers, url: redactUrl(response.url) };
      if (!stream) {
        const body = await readAll(response.body, bufferedBodyCap(context.config));
        return { ...head, bodyBase64: body.toString('base64') };
      }
      // The result must reach the wire before the first delta: the connection queues the response
      // in the microtasks that follow this handler's return, and setImmediate runs after them.
      handedOff = true;
      setImmediate(() => {
        void pumpBody(entry, response.body, response.url, context).finally(finish);
      });
      return { ...head, bodyBase64: '' };
    } catch (error) {
      throw failure(entry, error, url);
    } finally {
      if (!handedOff) finish();
    }
  }

  async function ack(rawParams: unknown, context: HandlerContext): Promise<unknown> {
    const params = parseOrThrow(HttpAckParams, rawParams);
    const entry = activeRequests(context.session).get(params.requestId);
    // An ack for a finished request is a harmless race, not an error.
    if (entry && params.consumedBytes > entry.acked) {
      entry.acked = Math.min(params.consumedBytes, entry.sent);
      entry.creditWaiter?.();
    }
    return {};
  }

  async function cancel(rawParams: unknown, context: HandlerContext): Promise<unknown> {
    const params = parseOrThrow(HttpCancelParams, rawParams);
    const entry = activeRequests(context.session).get(params.requestId);
    if (!entry || entry.controller.signal.aborted) return { cancelled: false };
    entry.controller.abort(new RequestAborted('cancelled by the client'));
    return { cancelled: true };
  }

  return {
    [HttpMethod.Request]: request,
    [HttpMethod.Ack]: ack,
    [HttpMethod.Cancel]: cancel,
  };
}

/** The `http/*` family with the agent's own configuration (`config.httpAllow`, `config.httpAllowPrivate`). */
export const httpHandlers: HandlerTable = createHttpHandlers();
