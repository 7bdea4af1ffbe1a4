import { randomUUID } from 'node:crypto';
import type { JsonRpcConnection } from '../jsonrpc/connection.js';
import { ErrorCode, RpcError } from '../protocol/error-codes.js';
import { HTTP_LIMITS, HttpBodyDeltaNotification, HttpRequestResult, type HttpRequestWire } from '../protocol/http.js';
import { HttpMethod } from '../protocol/methods.js';
import { parseOrThrow } from '../protocol/validation.js';

/** A WHATWG `fetch` whose requests are performed by the agent, from the executor's network. */
export type ExecutorFetch = typeof globalThis.fetch;

export interface ExecutorFetchOptions {
  /**
   * Bound on one response's body bytes received from the agent and not yet read by the consumer.
   * It is also the flow-control window asked of the agent, which then stops reading from the
   * upstream server until the consumer catches up. Default 8 MiB.
   */
  maxQueuedBodyBytes?: number;
  /**
   * Ask the agent for flow control (`responseWindowBytes`, an execrelay extension; default true).
   * A server that ignores it (codex) and outruns the consumer fails the body with
   * `BodyQueueOverflowError` rather than growing the queue.
   */
  flowControl?: boolean;
  /** `timeoutMs` for every request (the whole exchange, body included). Default: none. */
  timeoutMs?: number | null;
}

export const DEFAULT_MAX_QUEUED_BODY_BYTES = 8 * 1024 * 1024;

/** Statuses whose responses have no body (WHATWG "null body status"), plus 101/103. */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** The response body outran the client's queue bound (the agent did not apply flow control). */
export class BodyQueueOverflowError extends Error {
  constructor(readonly limitBytes: number) {
    super(`response body exceeded the client queue bound of ${limitBytes} bytes (the agent did not apply flow control)`);
    this.name = 'BodyQueueOverflowError';
  }
}

/**
 * One streamed response body: the deltas the agent pushed and the consumer has not read yet,
 * at most `limit` bytes. Read through `stream` (pull-based: nothing is buffered beyond this queue).
 */
class RemoteBody {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private consumed = 0;
  private lastAcked = 0;
  private nextSeq = 1;
  private finished = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private settledListeners: Array<() => void> = [];
  readonly stream: ReadableStream<Uint8Array>;

  constructor(
    readonly requestId: string,
    private readonly limit: number,
    private readonly flowControl: boolean,
    private readonly owner: ExecutorHttp,
  ) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        pull: (controller) => this.pull(controller),
        cancel: () => this.abandon(),
      },
      { highWaterMark: 0 },
    );
  }

  get settled(): boolean {
    return this.finished || this.failure !== undefined;
  }

  /** Runs `listener` once the body has ended (at once if it already has). */
  onSettled(listener: () => void): void {
    if (this.settled) listener();
    else this.settledListeners.push(listener);
  }

  private settle(): void {
    this.owner.forget(this);
    for (const listener of this.settledListeners.splice(0)) listener();
    this.wake?.();
  }

  /** Applies one `http/request/bodyDelta`. */
  push(delta: HttpBodyDeltaNotification): void {
    if (this.settled) return;
    if (delta.seq !== this.nextSeq) {
      this.fail(new Error(`response body delta out of order (expected seq ${this.nextSeq}, got ${delta.seq})`), true);
      return;
    }
    this.nextSeq++;
    if (delta.deltaBase64.length > 0) {
      this.queue.push(delta.deltaBase64);
      this.queuedBytes += delta.deltaBase64.length;
      this.owner.noteQueued(this.queuedBytes);
      if (this.queuedBytes > this.limit) {
        this.fail(new BodyQueueOverflowError(this.limit), true);
        return;
      }
    }
    if (delta.done) {
      if (delta.error) {
        this.fail(new Error(delta.error), false);
        return;
      }
      this.finished = true;
      this.settle();
      return;
    }
    this.wake?.();
  }

  /** Ends the body with `error`; `cancelRemote` also asks the agent to stop the upstream exchange. */
  fail(error: Error, cancelRemote: boolean): void {
    if (this.settled) return;
    this.failure = error;
    this.queue.length = 0;
    this.queuedBytes = 0;
    if (cancelRemote) this.owner.cancelRemote(this.requestId);
    this.settle();
  }

  /** The consumer cancelled the body: the agent stops the upstream exchange. */
  abandon(): void {
    this.fail(new Error('response body cancelled'), true);
  }

  /** A response without a body (HEAD, 204, 304...): the agent's (empty) body stream is ignored. */
  discard(): void {
    if (this.settled) return;
    this.finished = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.settle();
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.queue.length === 0 && !this.settled) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    const chunk = this.queue.shift();
    if (chunk) {
      this.queuedBytes -= chunk.length;
      this.consumed += chunk.length;
      controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      // Credit back in quarters of the window: the agent sends pieces of at most a quarter, so
      // it always gets credit before it could stall.
      if (this.flowControl && !this.settled && this.consumed - this.lastAcked >= this.limit / 4) {
        this.lastAcked = this.consumed;
        this.owner.ack(this.requestId, this.consumed);
      }
      return;
    }
    if (this.failure) controller.error(this.failure);
    else controller.close();
  }
}

function fetchFailed(error: unknown): TypeError {
  const message = error instanceof Error ? error.message : String(error);
  return new TypeError(`fetch failed: ${message}`, { cause: error });
}

async function readRequestBody(request: Request): Promise<Buffer> {
  if (!request.body) return Buffer.alloc(0);
  const reader = request.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > HTTP_LIMITS.maxRequestBodyBytes) {
      await reader.cancel();
      throw new TypeError(`fetch failed: request body exceeds ${HTTP_LIMITS.maxRequestBodyBytes} bytes`);
    }
    chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
  return Buffer.concat(chunks, total);
}

/**
 * HTTP through the executor on one ExecClient connection: `fetch` (WHATWG) backed by
 * `http/request {streamResponse: true}`, with the streamed bodies' deltas routed here by requestId.
 */
export class ExecutorHttp {
  private readonly bodies = new Map<string, RemoteBody>();
  private peakQueued = 0;
  /** `fetch` with the default options. */
  readonly fetch: ExecutorFetch;

  constructor(private readonly rpc: JsonRpcConnection) {
    this.fetch = this.fetchWith();
    rpc.onClose((error) => {
      const failure = new Error(`connection to the agent closed${error ? `: ${error.message}` : ''}`);
      for (const body of [...this.bodies.values()]) body.fail(failure, false);
    });
  }

  /** Largest queue of unread body bytes any response has had (for tests and diagnostics). */
  get peakQueuedBodyBytes(): number {
    return this.peakQueued;
  }

  /** Streamed responses still receiving deltas. */
  get activeBodies(): number {
    return this.bodies.size;
  }

  /** A `fetch` with its own options (queue bound, flow control, timeout). */
  fetchWith(options: ExecutorFetchOptions = {}): ExecutorFetch {
    const limit = options.maxQueuedBodyBytes ?? DEFAULT_MAX_QUEUED_BODY_BYTES;
    if (!Number.isInteger(limit) || limit < HTTP_LIMITS.minResponseWindowBytes || limit > HTTP_LIMITS.maxResponseWindowBytes) {
      throw new RangeError(`maxQueuedBodyBytes must be an integer from ${HTTP_LIMITS.minResponseWindowBytes} to ${HTTP_LIMITS.maxResponseWindowBytes}`);
    }
    const resolved = { limit, flowControl: options.flowControl ?? true, timeoutMs: options.timeoutMs ?? null };
    return (input, init) => this.perform(input, init, resolved);
  }

  /** Routes one `http/request/bodyDelta` notification. */
  handleBodyDelta(params: unknown): void {
    const parsed = HttpBodyDeltaNotification.safeParse(params);
    if (!parsed.success) {
      const requestId = (params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof requestId === 'string') this.bodies.get(requestId)?.fail(new Error('malformed response body delta from the agent'), true);
      return;
    }
    this.bodies.get(parsed.data.requestId)?.push(parsed.data);
  }

  /** @internal */
  noteQueued(bytes: number): void {
    if (bytes > this.peakQueued) this.peakQueued = bytes;
  }

  /** @internal */
  forget(body: RemoteBody): void {
    if (this.bodies.get(body.requestId) === body) this.bodies.delete(body.requestId);
  }

  /** @internal Asks the agent to abort the request (execrelay extension; ignored where unsupported). */
  cancelRemote(requestId: string): void {
    if (this.rpc.closed) return;
    this.rpc.request(HttpMethod.Cancel, { requestId }).catch(() => undefined);
  }

  /** @internal Grants flow-control credit. */
  ack(requestId: string, consumedBytes: number): void {
    if (this.rpc.closed) return;
    this.rpc.request(HttpMethod.Ack, { requestId, consumedBytes }).catch(() => undefined);
  }

  private async perform(
    input: string | URL | Request,
    init: RequestInit | undefined,
    options: { limit: number; flowControl: boolean; timeoutMs: number | null },
  ): Promise<Response> {
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    signal?.throwIfAborted();
    const request = new Request(input, init);
    const bodyBytes = await readRequestBody(request);
    signal?.throwIfAborted();
    const headers: Array<{ name: string; value: string }> = [];
    for (const [name, value] of request.headers) headers.push({ name, value });
    const requestId = randomUUID();
    const params: HttpRequestWire = {
      requestId,
      method: request.method,
      url: request.url,
      headers,
      bodyBase64: bodyBytes.toString('base64'),
      timeoutMs: options.timeoutMs,
      redirectPolicy: request.redirect === 'follow' ? 'follow' : 'stop',
      streamResponse: true,
    };
    if (options.flowControl) params.responseWindowBytes = options.limit;
    // Registered before the request: deltas may be handled before the result is.
    const body = new RemoteBody(requestId, options.limit, options.flowControl, this);
    this.bodies.set(requestId, body);
    const onAbort = () => body.fail(signal?.reason instanceof Error ? signal.reason : new DOMException('This operation was aborted', 'AbortError'), true);
    signal?.addEventListener('abort', onAbort, { once: true });
    let response: Response;
    // Whether the agent may still hold the request (and should be told to cancel it on failure).
    let remoteActive = true;
    try {
      let raw: unknown;
      try {
        raw = await this.rpc.request(HttpMethod.Request, params, signal ? { signal } : {});
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (error instanceof RpcError) remoteActive = false;
        throw fetchFailed(error);
      }
      const result = parseOrThrow(HttpRequestResult, raw, ErrorCode.Internal, 'invalid http/request result');
      if (result.status < 200 || result.status > 599) {
        throw fetchFailed(new RpcError(ErrorCode.Internal, `unsupported response status ${result.status}`));
      }
      const responseHeaders = new Headers();
      for (const { name, value } of result.headers) {
        try {
          responseHeaders.append(name, value);
        } catch {
          // A header the WHATWG Headers class refuses is left out rather than failing the response.
        }
      }
      if (request.redirect === 'error' && REDIRECT_STATUSES.has(result.status) && responseHeaders.has('location')) {
        throw new TypeError(`fetch failed: redirect to ${responseHeaders.get('location')} with redirect mode "error"`);
      }
      const nullBody = request.method === 'HEAD' || NULL_BODY_STATUSES.has(result.status);
      if (nullBody) body.discard();
      response = new Response(nullBody ? null : body.stream, { status: result.status, headers: responseHeaders });
      const finalUrl = result.url ?? request.url;
      Object.defineProperty(response, 'url', { value: finalUrl, enumerable: true });
      if (finalUrl !== request.url) Object.defineProperty(response, 'redirected', { value: true, enumerable: true });
    } catch (error) {
      signal?.removeEventListener('abort', onAbort);
      body.fail(error instanceof Error ? error : new Error(String(error)), remoteActive);
      throw error;
    }
    // Until the body settles, an abort cancels the remote request and errors the body.
    body.onSettled(() => signal?.removeEventListener('abort', onAbort));
    return response;
  }
}
