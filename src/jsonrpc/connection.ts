import { DEFAULT_MAX_MESSAGE_BYTES, type MessageTransport } from '../transport/message-transport.js';
import { ErrorCode, RpcError, type RpcErrorObject } from '../protocol/error-codes.js';
import { isBinaryMessage } from '../protocol/binary-message.js';
import { BinaryResponse } from './binary-response.js';
import {
  parseMessage,
  UNKNOWN_REQUEST_ID,
  type NotificationMessage,
  type RequestId,
  type RequestMessage,
  type TraceCarrier,
} from './message.js';

/** Cap on requests this side has sent and not yet seen answered. */
export const DEFAULT_MAX_PENDING_REQUESTS = 4096;

/**
 * Cap on error answers sent without a handler (a malformed message, a request refused past the
 * queue bound, an unknown method) that the transport has not taken yet. They wait behind the
 * transport's backpressure; a peer that keeps sending such messages without reading the answers
 * would otherwise grow them without bound. At the cap the connection stops reading the peer until
 * they have all gone out.
 */
export const DEFAULT_MAX_UNSENT_ERRORS = 256;

/** Rejects every call pending on a connection that closed before the answer came. */
export class TransportClosedError extends Error {
  /** `cause`: the transport's close error (what ended it), when there was one. */
  constructor(detail?: string, options?: { cause?: unknown }) {
    super(detail ? `transport closed: ${detail}` : 'transport closed', options);
    this.name = 'TransportClosedError';
  }
}

export interface RequestContext {
  readonly method: string;
  readonly id: RequestId;
  readonly trace?: TraceCarrier;
}

export type RequestHandler = (method: string, params: unknown, context: RequestContext) => Promise<unknown> | unknown;
export type NotificationHandler = (notification: NotificationMessage) => void;
/** Handles one binary message (`src/protocol/binary-message.ts`): its bytes, first byte the magic. */
export type BinaryMessageHandler = (message: Uint8Array) => void;
/** Called for inbound messages that were answered with an error without reaching a handler. */
export type RejectedMessageListener = (reason: 'malformed' | 'oversized') => void;

/** What became of the answer to one inbound request. */
export interface ResponseOutcome {
  /** True once the transport accepted the response (`send` resolved); false when it could not. */
  readonly queued: boolean;
  /** The error code when the answer was an error response. */
  readonly errorCode?: number;
}

/** Called once per request that reached the request handler, when its response was queued (or not). */
export type ResponseListener = (context: RequestContext, outcome: ResponseOutcome) => void;

/** Per-request tracing on the calling side: the carrier to send and a hook for when the call settles. */
export interface RequestTrace {
  trace?: TraceCarrier;
  end?(error?: Error): void;
}

/** Supplies a request's trace when the caller gave none in `CallOptions` (telemetry sets this). */
export type RequestTraceProvider = (method: string) => RequestTrace | undefined;

export interface JsonRpcConnectionOptions {
  maxMessageBytes?: number;
  maxPendingRequests?: number;
  /**
   * Inbound requests in the request handler at once (from dispatch until the response is queued on
   * the transport). Further requests wait in arrival order. Default: unlimited.
   */
  maxConcurrentRequests?: number;
  /** Inbound requests waiting for a handler slot; past it: -32600 `too many pending requests`. Default: unlimited. */
  maxQueuedRequests?: number;
  /** See {@link DEFAULT_MAX_UNSENT_ERRORS}. */
  maxUnsentErrors?: number;
  traceProvider?: RequestTraceProvider;
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
  method: string;
}

export interface CallOptions {
  trace?: TraceCarrier;
  signal?: AbortSignal;
}

/**
 * One JSON-RPC peer over a MessageTransport: correlates responses with requests, dispatches
 * inbound requests concurrently (pipelined; at most `maxConcurrentRequests` at once, the rest in a
 * bounded FIFO queue) and notifications in order, bounds message size, and
 * fails every pending call with a TransportClosedError when the transport closes.
 */
export class JsonRpcConnection {
  readonly maxMessageBytes: number;
  private readonly maxPendingRequests: number;
  private readonly pending = new Map<RequestId, PendingCall>();
  private nextId = 1;
  private requestHandler: RequestHandler | undefined;
  private notificationHandler: NotificationHandler | undefined;
  private binaryHandler: BinaryMessageHandler | undefined;
  private rejectedListener: RejectedMessageListener | undefined;
  private responseListener: ResponseListener | undefined;
  private readonly traceProvider: RequestTraceProvider | undefined;
  private readonly closeListeners: Array<(error?: Error) => void> = [];
  private closedWith: Error | undefined;
  private isClosed = false;
  private readonly maxConcurrentRequests: number;
  private readonly maxQueuedRequests: number;
  private activeRequests = 0;
  private readonly queuedRequests: RequestMessage[] = [];
  private readonly maxUnsentErrors: number;
  private unsentErrors = 0;
  /** Reasons the transport is not read now (see {@link pauseReceiving}). */
  private receivePauses = 0;
  /** The unsent error answers reached the cap: a pause is held until they have all been sent. */
  private pausedForUnsentErrors = false;

  constructor(
    readonly transport: MessageTransport,
    options: JsonRpcConnectionOptions = {},
  ) {
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxPendingRequests = options.maxPendingRequests ?? DEFAULT_MAX_PENDING_REQUESTS;
    this.traceProvider = options.traceProvider;
    this.maxConcurrentRequests = options.maxConcurrentRequests ?? Number.POSITIVE_INFINITY;
    this.maxQueuedRequests = options.maxQueuedRequests ?? Number.POSITIVE_INFINITY;
    this.maxUnsentErrors = options.maxUnsentErrors ?? DEFAULT_MAX_UNSENT_ERRORS;
    transport.onMessage((raw) => this.receive(raw));
    transport.onBinaryMessage?.((bytes) => this.receiveBinary(bytes));
    transport.onClose((error) => this.handleClose(error));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  setRequestHandler(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  setNotificationHandler(handler: NotificationHandler): void {
    this.notificationHandler = handler;
  }

  /** Binary messages (those starting with the magic byte); without a handler they are refused as malformed. */
  setBinaryMessageHandler(handler: BinaryMessageHandler): void {
    this.binaryHandler = handler;
  }

  /** Whether the transport carries binary messages (the agent offers `binaryOutput` and `binaryFileBlocks` only then). */
  get carriesBinary(): boolean {
    return typeof this.transport.sendBinary === 'function';
  }

  /** Sends one binary message; rejects where the transport carries none, over the size cap, or closed. */
  sendBinary(message: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.isClosed) return Promise.reject(new TransportClosedError(this.closedWith?.message, { cause: this.closedWith }));
    if (!this.transport.sendBinary) return Promise.reject(new Error(`the ${this.transport.kind} transport carries no binary messages`));
    const byteLength = message instanceof Uint8Array ? message.byteLength : message.reduce((sum, part) => sum + part.byteLength, 0);
    if (byteLength > this.maxMessageBytes) {
      return Promise.reject(new RpcError(ErrorCode.InvalidRequest, `message exceeds ${this.maxMessageBytes} bytes`));
    }
    return this.transport.sendBinary(message);
  }

  onRejectedMessage(listener: RejectedMessageListener): void {
    this.rejectedListener = listener;
  }

  /** Hears, once per handled request, that its response was handed to the transport (or could not be). */
  onResponse(listener: ResponseListener): void {
    this.responseListener = listener;
  }

  onClose(listener: (error?: Error) => void): void {
    if (this.isClosed) queueMicrotask(() => listener(this.closedWith));
    else this.closeListeners.push(listener);
  }

  /** Sends a request and resolves with its `result`, or rejects with an RpcError. */
  request(method: string, params: unknown, options: CallOptions = {}): Promise<unknown> {
    return this.call(method, options, (id, trace) => this.sendRaw(requestMessage(id, method, params, trace)));
  }

  /**
   * Sends a request as one binary message (a negotiated binary path: `fs/writeBlock` of
   * `binaryFileBlocks`) built by `encode` for its id, and resolves with the `result` of the JSON
   * response that answers it. Where `encode` cannot carry it (it returns undefined), the request goes
   * as JSON with `jsonParams()`. Without a binary transport it is a JSON request.
   */
  requestBinary(method: string, encode: (id: number) => Uint8Array | undefined, jsonParams: () => unknown, options: CallOptions = {}): Promise<unknown> {
    return this.call(method, options, (id, trace) => {
      const encoded = this.carriesBinary ? encode(id) : undefined;
      return encoded ? this.sendBinary(encoded) : this.sendRaw(requestMessage(id, method, jsonParams(), trace));
    });
  }

  /**
   * Settles the pending call `id` with a result that came in a binary message (the `fs/readBlock`
   * result of `binaryFileBlocks`), or fails it with `result` when that is an Error (a result that
   * could not be decoded). A call of another method is failed (the peer answered it with the wrong
   * kind of result); an unknown id (a late answer to an aborted call) is ignored. False when no call
   * was pending under `id`.
   */
  resolveBinaryResult(id: number, method: string, result: unknown): boolean {
    const call = this.pending.get(id);
    if (!call) return false;
    this.pending.delete(id);
    if (result instanceof Error) call.reject(result);
    else if (call.method === method) call.resolve(result);
    else call.reject(new RpcError(ErrorCode.Internal, `invalid ${call.method} result: a binary ${method} result`));
    return true;
  }

  /**
   * Admits a request that arrived as a binary message, decoded by the connection's owner (the
   * agent's `fs/writeBlock` of `binaryFileBlocks`): from here on it is handled exactly as a JSON
   * request (the same limits, queue, handler and JSON response).
   */
  receiveDecodedRequest(request: RequestMessage): void {
    if (this.isClosed) return;
    this.admitRequest(request);
  }

  /** Answers a request id with an error without handling it (a binary request that could not be decoded past its id). */
  rejectRequest(id: RequestId, error: RpcErrorObject): void {
    this.rejectedListener?.('malformed');
    this.sendError(id, error);
  }

  /** One call: its id, pending entry, abort and trace; `send` puts the request on the wire. */
  private call(method: string, options: CallOptions, send: (id: number, trace: TraceCarrier | undefined) => Promise<void>): Promise<unknown> {
    if (this.isClosed) return Promise.reject(new TransportClosedError(this.closedWith?.message, { cause: this.closedWith }));
    if (this.pending.size >= this.maxPendingRequests) {
      return Promise.reject(new Error(`too many pending requests (limit ${this.maxPendingRequests})`));
    }
    const id = this.nextId++;
    if (options.signal?.aborted) return Promise.reject(new Error('request aborted'));
    const traced = options.trace ? undefined : this.traceProvider?.(method);
    const trace = options.trace ?? traced?.trace;
    return new Promise<unknown>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = () => {
        if (this.pending.delete(id)) {
          const error = signal?.reason instanceof Error ? signal.reason : new Error('request aborted');
          traced?.end?.(error);
          reject(error);
        }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = <T>(fn: (value: T) => void, failed: boolean) => (value: T) => {
        signal?.removeEventListener('abort', onAbort);
        traced?.end?.(failed ? (value as Error) : undefined);
        fn(value);
      };
      this.pending.set(id, { resolve: settle(resolve, false), reject: settle(reject, true), method });
      send(id, trace).catch((error: unknown) => {
        const call = this.pending.get(id);
        if (call) {
          this.pending.delete(id);
          call.reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
  }

  /** Sends a notification (no answer expected). */
  notify(method: string, params?: unknown): Promise<void> {
    if (this.isClosed) return Promise.reject(new TransportClosedError(this.closedWith?.message, { cause: this.closedWith }));
    return this.sendRaw(params === undefined ? { method } : { method, params });
  }

  close(reason?: string): void {
    this.transport.close(reason);
  }

  /**
   * Sends a notification whose `params` the caller serialized itself. For hot paths only: on Node 20
   * JSON.stringify scans a long string value character by character (3.6 ms per MiB of output for
   * `process/output`), while text built around a base64 value, which never needs escaping, costs a
   * concatenation. `paramsJson` must be exactly what JSON.stringify(params) would give.
   */
  notifySerialized(method: string, paramsJson: string): Promise<void> {
    if (this.isClosed) return Promise.reject(new TransportClosedError(this.closedWith?.message, { cause: this.closedWith }));
    return this.sendText(`{"method":${JSON.stringify(method)},"params":${paramsJson}}`);
  }

  private async sendRaw(message: object): Promise<void> {
    await this.sendText(JSON.stringify(message));
  }

  private async sendText(text: string): Promise<void> {
    if (exceedsBytes(text, this.maxMessageBytes)) {
      throw new RpcError(ErrorCode.InvalidRequest, `message exceeds ${this.maxMessageBytes} bytes`);
    }
    await this.transport.send(text);
  }

  /**
   * A binary message of the transport: the extension's message when it starts with the magic byte,
   * else JSON text that came in a binary frame (a WebSocket peer may send those), handled as before.
   */
  private receiveBinary(bytes: Uint8Array): void {
    if (this.isClosed) return;
    if (!isBinaryMessage(bytes)) {
      this.receive(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
      return;
    }
    if (bytes.byteLength > this.maxMessageBytes || !this.binaryHandler) {
      this.rejectedListener?.(bytes.byteLength > this.maxMessageBytes ? 'oversized' : 'malformed');
      this.sendError(UNKNOWN_REQUEST_ID, { code: ErrorCode.InvalidRequest, message: 'invalid request: unexpected binary message' });
      return;
    }
    try {
      this.binaryHandler(bytes);
    } catch (error) {
      this.sendError(UNKNOWN_REQUEST_ID, toErrorObject(error));
    }
  }

  private receive(raw: string): void {
    if (this.isClosed) return;
    if (exceedsBytes(raw, this.maxMessageBytes)) {
      this.rejectedListener?.('oversized');
      this.sendError(UNKNOWN_REQUEST_ID, {
        code: ErrorCode.InvalidRequest,
        message: `message exceeds the ${this.maxMessageBytes}-byte limit`,
      });
      return;
    }
    const parsed = parseMessage(raw);
    switch (parsed.kind) {
      case 'invalid':
        this.rejectedListener?.('malformed');
        this.sendError(parsed.id ?? UNKNOWN_REQUEST_ID, {
          code: ErrorCode.InvalidRequest,
          message: `invalid request: ${parsed.reason}`,
        });
        return;
      case 'request':
        this.admitRequest(parsed.message);
        return;
      case 'notification':
        this.dispatchNotification(parsed.message);
        return;
      case 'response': {
        const call = this.pending.get(parsed.id);
        if (!call) return; // a late answer to an aborted call
        this.pending.delete(parsed.id);
        call.resolve(parsed.result);
        return;
      }
      case 'error-response': {
        const call = this.pending.get(parsed.id);
        if (!call) return;
        this.pending.delete(parsed.id);
        call.reject(new RpcError(parsed.error.code, parsed.error.message, parsed.error.data));
        return;
      }
    }
  }

  private dispatchNotification(notification: NotificationMessage): void {
    if (!this.notificationHandler) return;
    try {
      this.notificationHandler(notification);
    } catch (error) {
      // A notification has no answer; a throwing handler must not take the connection down.
      this.sendError(UNKNOWN_REQUEST_ID, toErrorObject(error));
    }
  }

  /** Dispatches now when a handler slot is free, else queues (FIFO) or refuses past the queue bound. */
  private admitRequest(request: RequestMessage): void {
    if (this.activeRequests < this.maxConcurrentRequests) {
      this.activeRequests += 1;
      void this.dispatchRequest(request);
      return;
    }
    if (this.queuedRequests.length >= this.maxQueuedRequests) {
      this.sendError(request.id, {
        code: ErrorCode.InvalidRequest,
        message: `too many pending requests (limit ${this.maxConcurrentRequests} in progress and ${this.maxQueuedRequests} queued per connection)`,
      });
      return;
    }
    this.queuedRequests.push(request);
  }

  /** A dispatched request is done (its response queued, or it could not be): the next queued one runs. */
  private releaseRequestSlot(): void {
    const next = this.isClosed ? undefined : this.queuedRequests.shift();
    if (next) void this.dispatchRequest(next);
    else this.activeRequests -= 1;
  }

  private async dispatchRequest(request: RequestMessage): Promise<void> {
    const handler = this.requestHandler;
    if (!handler) {
      this.sendError(request.id, { code: ErrorCode.MethodNotFound, message: `method not found: ${request.method}` });
      this.releaseRequestSlot();
      return;
    }
    const context: RequestContext = request.trace
      ? { method: request.method, id: request.id, trace: request.trace }
      : { method: request.method, id: request.id };
    let result: unknown;
    try {
      result = await handler(request.method, request.params, context);
    } catch (error) {
      this.respond(context, toErrorObject(error));
      return;
    }
    this.respond(context, undefined, result ?? {});
  }

  /** Sends a handled request's answer and tells the response listener once it is queued (or not). */
  private respond(context: RequestContext, error: RpcErrorObject | undefined, result?: unknown): void {
    const responseListener = this.responseListener;
    const listener = (answered: RequestContext, answer: ResponseOutcome) => {
      this.releaseRequestSlot();
      responseListener?.(answered, answer);
    };
    const outcome = (queued: boolean): ResponseOutcome => (error ? { queued, errorCode: error.code } : { queued });
    if (this.isClosed) {
      listener(context, outcome(false));
      return;
    }
    const sent = error
      ? this.sendRaw({ id: context.id, error })
      : result instanceof BinaryResponse
        ? this.sendBinaryResult(context.id, result)
        : this.sendRaw({ id: context.id, result });
    sent.then(
      () => listener(context, outcome(true)),
      (sendError: unknown) => {
        if (!error && sendError instanceof RpcError) {
          this.respond(context, { code: ErrorCode.Internal, message: `response too large: ${sendError.message}` });
          return;
        }
        // The transport is gone; its close handler fails what is pending.
        listener(context, outcome(false));
      },
    );
  }

  /** A BinaryResponse: one binary message where the id and the transport allow, else its JSON. */
  private sendBinaryResult(id: RequestId, result: BinaryResponse): Promise<void> {
    const encoded = typeof id === 'number' && this.carriesBinary ? result.encode(id) : undefined;
    return encoded ? this.sendBinary(encoded) : this.sendRaw({ id, result: result.json() });
  }

  private sendError(id: RequestId, error: RpcErrorObject): void {
    if (this.isClosed) return;
    // At the cap the peer is read no more until these have gone out (it is not reading them).
    if (++this.unsentErrors >= this.maxUnsentErrors && !this.pausedForUnsentErrors) {
      this.pausedForUnsentErrors = true;
      this.pauseReceiving();
    }
    this.sendRaw({ id, error }).then(
      () => {
        if (--this.unsentErrors === 0 && this.pausedForUnsentErrors) {
          this.pausedForUnsentErrors = false;
          this.resumeReceiving();
        }
      },
      () => {
        /* the transport is gone; its close handler fails what is pending */
      },
    );
  }

  /**
   * Receive-side backpressure with reasons counted: the transport is paused while any caller (or
   * this connection's own bound on unsent error answers) holds a pause, and resumed when the last
   * one lets go.
   */
  pauseReceiving(): void {
    if (this.receivePauses++ === 0) this.transport.pauseReceiving();
  }

  resumeReceiving(): void {
    if (this.receivePauses === 0) return;
    if (--this.receivePauses === 0) this.transport.resumeReceiving();
  }

  private handleClose(error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closedWith = error;
    const failure = new TransportClosedError(error?.message, { cause: error });
    for (const call of this.pending.values()) call.reject(failure);
    this.pending.clear();
    this.queuedRequests.length = 0;
    for (const listener of this.closeListeners.splice(0)) listener(error);
  }
}

/** A request as JSON, its members in the order they have always been sent: `id`, `method`, `params`, `trace`. */
function requestMessage(id: number, method: string, params: unknown, trace: TraceCarrier | undefined): RequestMessage {
  const message: RequestMessage = { id, method, params };
  if (trace) message.trace = trace;
  return message;
}

/** Converts anything a handler threw into a wire error: never a stack trace. */
export function toErrorObject(error: unknown): RpcErrorObject {
  if (error instanceof RpcError) return error.toObject();
  const message = error instanceof Error ? error.message : String(error);
  return { code: ErrorCode.Internal, message: message || 'internal error' };
}

/** UTF-8 byte length over `limit`, without encoding short strings. */
export function exceedsBytes(text: string, limit: number): boolean {
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return Buffer.byteLength(text, 'utf8') > limit;
}
