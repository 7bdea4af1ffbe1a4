import type { JsonRpcConnection, RequestContext, ResponseOutcome } from '../src/jsonrpc/connection.js';
import { UNKNOWN_REQUEST_ID, type NotificationMessage } from '../src/jsonrpc/message.js';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { ClientNotification, FsMethod, Method, ServerNotification } from '../src/protocol/methods.js';
import { InitializedParams, InitializeParams, type InitializeResult, type SessionCapabilities } from '../src/protocol/session.js';
import { decodeBinaryMessage, encodeBinaryProcessOutput } from '../src/protocol/binary-message.js';
import { parseOrThrow } from '../src/protocol/validation.js';
import { processOutputParamsJson } from '../src/protocol/process.js';
import type { Logger } from '../src/logging/logger.js';
import type { ExecServerTelemetry, ProcessTelemetry, RequestObservation } from './agent-events.js';
import type { AgentConfig } from './agent-config.js';
import type { HandlerContext, HandlerTable, MethodHandler } from './handler-table.js';
import type { ProcessEvent } from './managed-process.js';
import type { Session, SessionAttachment } from './session.js';
import { LOCAL_CLIENT, type SessionRegistry } from './session-registry.js';
import { ByteBudget } from './response-budget.js';
import type { ConnectionAudit } from './session-audit.js';

/** An empty chunk: `encodeBinaryProcessOutput` of it is a binary output message's header and processId alone. */
const EMPTY_CHUNK = new Uint8Array(0);

/** The execrelay extensions this agent offers at `initialize`. */
const AGENT_CAPABILITIES: SessionCapabilities = { ptyResize: true, fileTransfer: true };
/** … and on a transport that carries binary messages (WebSocket, Noise; not stdio), the binary paths (taken up in `initialized`). */
const AGENT_CAPABILITIES_WITH_BINARY: SessionCapabilities = { ...AGENT_CAPABILITIES, binaryOutput: true, binaryFileBlocks: true };

/** Where this connection stands among the agent's clients. */
export interface ConnectionScope {
  /** The client identity its sessions count against (`SessionRegistry`). */
  owner: string;
  /** The agent-wide in-flight response budget, shared by every connection. */
  agentBudget?: ByteBudget;
  /** With `--audit-log`: this connection's audit lines. */
  audit?: ConnectionAudit;
  /** True once the agent drains: new sessions (resumes are fine) and process starts are refused. */
  draining?: () => boolean;
}

/** The answer to new work while the agent drains. */
export function drainingError(what: string): RpcError {
  return new RpcError(
    ErrorCode.Draining,
    `the agent is draining (shutting down): it starts no new ${what}; running processes finish. Retry once the agent has restarted`,
  );
}

/**
 * The exec protocol on one JSON-RPC connection: `initialize` gating, dispatch to the method
 * families' handler tables, and pushing process events of the attached session.
 */
export class ExecConnection implements SessionAttachment {
  private session: Session | null = null;
  private detachController = new AbortController();
  private queuedPushBytes = 0;
  private readonly handlers: Map<string, MethodHandler>;
  /** Requests in flight with their metrics/span, finished when the response is queued. */
  private readonly observations = new WeakMap<RequestContext, RequestObservation>();
  private readonly connectionClosed: (() => void) | undefined;
  /** Response budget reservations of requests in flight, released when their response is queued. */
  private readonly reservations = new WeakMap<RequestContext, Array<() => void>>();
  private readonly responseBudget: ByteBudget;
  private readonly owner: string;
  private readonly agentBudget: ByteBudget | undefined;
  private readonly audit: ConnectionAudit | undefined;
  private readonly draining: () => boolean;
  /** True once the client took `binaryOutput` up (`initialized`; an older client: `initialize {capabilities}`) on a binary transport. */
  private binaryOutput = false;
  /** True once the client took `binaryFileBlocks` up in `initialized` on a binary transport. */
  private binaryFileBlocks = false;

  constructor(
    private readonly rpc: JsonRpcConnection,
    private readonly registry: SessionRegistry,
    private readonly config: AgentConfig,
    handlerTables: readonly HandlerTable[],
    private readonly logger: Logger,
    private readonly telemetry?: ExecServerTelemetry,
    scope: ConnectionScope = { owner: LOCAL_CLIENT },
  ) {
    this.owner = scope.owner;
    this.agentBudget = scope.agentBudget;
    this.audit = scope.audit;
    this.draining = scope.draining ?? (() => false);
    this.responseBudget = new ByteBudget(config.maxInflightResponseBytesPerConnection);
    this.handlers = new Map(handlerTables.flatMap((table) => Object.entries(table)));
    rpc.setRequestHandler((method, params, context) =>
      telemetry ? this.handleObservedRequest(telemetry, method, params, context) : this.handleRequest(method, params, context),
    );
    rpc.setNotificationHandler((notification) => this.handleNotification(notification));
    rpc.setBinaryMessageHandler((bytes) => this.handleBinaryMessage(bytes));
    if (telemetry) this.connectionClosed = telemetry.connectionOpened(rpc.transport.kind);
    rpc.onResponse((context, outcome) => this.responseQueued(context, outcome));
    rpc.onClose(() => this.handleClose());
  }

  get detachSignal(): AbortSignal {
    return this.detachController.signal;
  }

  /** True while pushed events are still being sent: the session's processes coalesce pipe output meanwhile. */
  get outputInFlight(): boolean {
    return this.queuedPushBytes > 0;
  }

  abortAttachment(reason: string): void {
    this.detachController.abort(reason);
    this.session = null;
  }

  pushProcessEvent(processId: string, event: ProcessEvent): void {
    if (this.rpc.closed) return;
    let method: string;
    let params: Record<string, unknown> | undefined;
    let paramsJson: string | undefined;
    let binary: [prefix: Buffer, chunk: Buffer] | undefined;
    switch (event.type) {
      case 'output':
        method = ServerNotification.ProcessOutput;
        if (this.binaryOutput) {
          // The message's header and processId, then the chunk as it came from the pipe: sent as two
          // parts, so the chunk is never copied into a message buffer first.
          const prefix = encodeBinaryProcessOutput(processId, event.seq, event.stream, EMPTY_CHUNK);
          if (prefix !== undefined) binary = [prefix, event.chunk];
        }
        if (binary === undefined) paramsJson = processOutputParamsJson(processId, event.seq, event.stream, event.chunk);
        break;
      case 'exited':
        method = ServerNotification.ProcessExited;
        params = this.config.omitSandboxDenied
          ? { processId, seq: event.seq, exitCode: event.exitCode }
          : { processId, seq: event.seq, exitCode: event.exitCode, sandboxDenied: event.sandboxDenied };
        break;
      case 'closed':
        method = ServerNotification.ProcessClosed;
        params = { processId, seq: event.seq };
        break;
    }
    const cost = event.type !== 'output' ? 128 : binary !== undefined ? binary[0].byteLength + event.chunk.length + 128 : Math.ceil((event.chunk.length * 4) / 3) + 128;
    if (this.session?.isOutputPaused && this.queuedPushBytes + cost > 2 * this.config.maxQueuedPushBytes) {
      // Past the hard bound while output is paused (an event already in flight when reading
      // paused): drop; the client sees the seq gap and reads the retained output instead. While
      // output flows, a chunk is always queued: it is what pauses the output, and dropping it would
      // leave a gap the process may overwrite in its retained window before the client reads it.
      return;
    }
    this.queuedPushBytes += cost;
    if (this.queuedPushBytes > this.config.maxQueuedPushBytes) this.session?.setOutputPaused(true);
    const settled = () => {
      this.queuedPushBytes -= cost;
      if (this.queuedPushBytes * 2 <= this.config.maxQueuedPushBytes && this.session?.isOutputPaused) this.session.setOutputPaused(false);
      // Every send settled: what the processes coalesced behind them goes out now.
      if (this.queuedPushBytes === 0) this.session?.flushCoalescedOutput();
    };
    (binary !== undefined
      ? this.rpc.sendBinary(binary)
      : paramsJson !== undefined
        ? this.rpc.notifySerialized(method, paramsJson)
        : this.rpc.notify(method, params)
    ).then(settled, settled);
  }

  /**
   * Counts and traces one request: a server span named after the method (`unknown` when this
   * connection has no handler for it), parented on the request's `trace`, active while the handler
   * runs and ended when the JSON-RPC connection reports the response queued.
   */
  private handleObservedRequest(telemetry: ExecServerTelemetry, method: string, params: unknown, context: RequestContext): Promise<unknown> {
    const routed = method === Method.Initialize || this.handlers.has(method);
    const observation = telemetry.requestStarted(method, routed, context.trace);
    this.observations.set(context, observation);
    return observation.run(() => this.handleRequest(method, params, context));
  }

  private responseQueued(context: RequestContext, outcome: ResponseOutcome): void {
    const reserved = this.reservations.get(context);
    if (reserved) {
      this.reservations.delete(context);
      for (const release of reserved) release();
    }
    const observation = this.observations.get(context);
    if (!observation) return;
    this.observations.delete(context);
    observation.finish(outcome);
  }

  /**
   * Reserves `bytes` in this connection's budget, then the agent's (always in that order, so no two
   * requests wait on each other crosswise); both are released when the response is queued.
   */
  private async admitResponseBytes(context: RequestContext, bytes: number): Promise<void> {
    let reserved = this.reservations.get(context);
    if (!reserved) this.reservations.set(context, (reserved = []));
    const closed = this.detachController.signal;
    reserved.push(await this.responseBudget.acquire(bytes, closed));
    if (this.agentBudget) reserved.push(await this.agentBudget.acquire(bytes, closed));
  }

  private async handleRequest(method: string, params: unknown, context: RequestContext): Promise<unknown> {
    if (method === Method.Initialize) return this.initialize(params);
    const session = this.session;
    if (!session) {
      if (this.detachController.signal.aborted) {
        throw new RpcError(ErrorCode.InvalidRequest, `session is no longer attached to this connection: ${String(this.detachController.signal.reason)}`);
      }
      throw new RpcError(ErrorCode.InvalidRequest, `not initialized: call initialize before ${method}`);
    }
    const handler = this.handlers.get(method);
    if (!handler) throw new RpcError(ErrorCode.MethodNotFound, `method not found: ${method}`);
    if (method === Method.ProcessStart && this.draining()) throw drainingError('processes');
    // `telemetry` (when on) reaches process/start for ManagedProcess's onFinished hook.
    const handlerContext: HandlerContext & { readonly telemetry?: ProcessTelemetry } = {
      session,
      detachSignal: this.detachController.signal,
      config: this.config,
      notify: (notifyMethod, notifyParams) => this.rpc.notify(notifyMethod, notifyParams),
      admitResponseBytes: (bytes) => this.admitResponseBytes(context, bytes),
      ...(this.binaryFileBlocks ? { binaryFileBlocks: true } : {}),
      ...(this.telemetry ? { telemetry: this.telemetry.process } : {}),
      ...(this.audit ? { auditProcess: this.audit.processStarting.bind(this.audit, session.id) } : {}),
    };
    const audit = this.audit;
    if (!audit?.audits(method)) return handler(params, handlerContext);
    return handler(params, handlerContext).then(
      (result) => {
        audit.requestAnswered(session.id, method, params, { result });
        return result;
      },
      (error: unknown) => {
        audit.requestAnswered(session.id, method, params, { error });
        throw error;
      },
    );
  }

  private initialize(rawParams: unknown): unknown {
    if (this.session || this.detachController.signal.aborted) {
      throw new RpcError(ErrorCode.InvalidRequest, 'initialize may be called once per connection');
    }
    const params = parseOrThrow(InitializeParams, rawParams);
    if (!params.resumeSessionId && this.draining()) throw drainingError('sessions');
    // An older client asks in `initialize {capabilities}` (today's take it up in `initialized`). Set
    // before the session attaches: a resumed session's events may be pushed at once.
    this.binaryOutput = params.capabilities?.binaryOutput === true && this.rpc.carriesBinary;
    this.session = this.registry.open(this, params.resumeSessionId, this.owner);
    this.audit?.sessionOpened(this.session.id, Boolean(params.resumeSessionId));
    this.logger.debug({ resumed: Boolean(params.resumeSessionId) }, 'session attached');
    const capabilities = this.rpc.carriesBinary ? AGENT_CAPABILITIES_WITH_BINARY : AGENT_CAPABILITIES;
    const result: InitializeResult = { sessionId: this.session.id, capabilities };
    return result;
  }

  private handleNotification(notification: NotificationMessage): void {
    if (notification.method === ClientNotification.Initialized) return this.initialized(notification.params);
    throw new RpcError(ErrorCode.InvalidRequest, `unexpected notification: ${notification.method.slice(0, 100)}`);
  }

  /**
   * `initialized`: the binary paths the client takes up (offered only on a binary transport), from
   * this message on (messages are handled in order, so its next request may be binary). Params of
   * another shape, or before `initialize`, take nothing up.
   */
  private initialized(rawParams: unknown): void {
    const params = InitializedParams.safeParse(rawParams ?? {});
    if (!params.success || !this.session || !this.rpc.carriesBinary) return;
    if (params.data.binaryOutput === true) this.binaryOutput = true;
    if (params.data.binaryFileBlocks === true) this.binaryFileBlocks = true;
  }

  /**
   * A binary message from the client: with `binaryFileBlocks` taken up, an `fs/writeBlock` request,
   * handed to the JSON-RPC connection as a request (the same queue, handler and limits as a JSON
   * one, answered in JSON). Anything else is answered -32600: on the request's id once it was read,
   * else on id -1.
   */
  private handleBinaryMessage(bytes: Uint8Array): void {
    const unexpected = { code: ErrorCode.InvalidRequest, message: 'invalid request: unexpected binary message' };
    if (!this.binaryFileBlocks) return this.rpc.rejectRequest(UNKNOWN_REQUEST_ID, unexpected);
    const decoded = decodeBinaryMessage(bytes);
    if (!decoded.ok) {
      return this.rpc.rejectRequest(decoded.requestId ?? UNKNOWN_REQUEST_ID, {
        code: ErrorCode.InvalidRequest,
        message: `invalid request: malformed binary message: ${decoded.reason}`,
      });
    }
    const message = decoded.message;
    if (message.kind !== 'fsWriteBlock') return this.rpc.rejectRequest(UNKNOWN_REQUEST_ID, unexpected);
    this.rpc.receiveDecodedRequest({
      id: message.requestId,
      method: FsMethod.WriteBlock,
      params: { handleId: message.handleId, offset: message.offset, chunk: message.chunk },
    });
  }

  private handleClose(): void {
    this.connectionClosed?.();
    const session = this.session;
    this.session = null;
    if (session) this.registry.detach(session, this);
    this.detachController.abort('connection closed');
  }
}
