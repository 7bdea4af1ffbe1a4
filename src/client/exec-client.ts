import { randomUUID } from 'node:crypto';
import path from 'node:path';
import WebSocket from 'ws';
import { JsonRpcConnection, TransportClosedError, type CallOptions } from '../jsonrpc/connection.js';
import type { NotificationMessage } from '../jsonrpc/message.js';
import { ClientNotification, FsMethod, Method, ServerNotification } from '../protocol/methods.js';
import { toFileUri } from '../protocol/path-uri.js';
import {
  ProcessClosedNotification,
  ProcessExitedNotification,
  ProcessOutputNotification,
  ProcessReadResult,
  ProcessResizePtyResult,
  ProcessStartResult,
  ProcessTerminateResult,
  ProcessWriteResult,
  type EnvPolicy,
  type ProcessSignalName,
  type ProcessStartRequest,
  type PtySize,
  type WriteStatus,
} from '../protocol/process.js';
import { InitializeResult, type InitializedParams, type InitializeParams, type SessionCapabilities } from '../protocol/session.js';
import { BINARY_MESSAGE_KIND, decodeBinaryMessage } from '../protocol/binary-message.js';
import { parseOrThrow } from '../protocol/validation.js';
import { ErrorCode, RpcError } from '../protocol/error-codes.js';
import { DEFAULT_MAX_MESSAGE_BYTES, type MessageTransport } from '../transport/message-transport.js';
import { WebSocketTransport } from '../transport/websocket-transport.js';
import type { RelayTarget } from './relay-channel.js';
import type { CodexRendezvousTarget } from './codex-rendezvous-target.js';
import { clientRefusalIn, type ClientNotAuthorizedError } from './client-not-authorized-error.js';
import { explainRefusal, REFUSAL_REASON_HEADER } from '../relay-control/relay-endpoints.js';
import { ProcessTracker, READ_BUDGET_BYTES, type PushedProcessEvent, type SlowConsumerPolicy } from './process-tracker.js';
import { FsClient, type ReadBlock } from './fs-client.js';
import { ExecutorHttp, type ExecutorFetch } from './executor-fetch.js';
import { HttpNotification } from '../protocol/methods.js';
import type { ClientProcessEvent, ProcessCompletion } from './process-events.js';
import { clientRequestTraceProvider } from '../telemetry/client-tracing.js';
import { resumeWithRetries, type StreamReopener } from './session-resume-retries.js';
import { CallInterruptedError, isStartedAlready, mayResend } from './resend-after-stream-loss.js';

export interface ExecClientOptions {
  clientName?: string;
  /** Re-attach a detached session (its processes kept running on the agent). */
  resumeSessionId?: string;
  maxMessageBytes?: number;
  /** Bound on connecting and on `initialize`. */
  connectTimeoutMs?: number;
  /**
   * For a WebSocket URL: bearer token sent as `Authorization: Bearer …` (an agent listening on a
   * non-loopback address with `--listen-token-file` requires it). Relay targets carry their own.
   */
  token?: string;
  /**
   * Take the binary output path up where the agent offers it (`capabilities.binaryOutput` in its
   * `initialize` result; default true): output then arrives as raw bytes instead of base64 in JSON.
   * Taken up in `initialized`, which is sent unchanged (`{}`) to a peer that offers nothing (a codex
   * server), so such a peer sees exactly the JSON wire.
   */
  binaryOutput?: boolean;
  /**
   * Likewise for `binaryFileBlocks` (default true): `fs/writeBlock` requests and `fs/readBlock`
   * results as raw bytes.
   */
  binaryFileBlocks?: boolean;
  /**
   * Told each time the session was resumed on a new stream after its stream ended (the codex wire;
   * see CodexRendezvousTarget.recovery): why the stream ended, and the attempts it took.
   */
  onSessionResumed?: (detail: { cause: string; attempts: number }) => void;
}

export interface ExecOptions {
  /** Working directory on the agent: a native absolute path or a `file://` URI. Default `/`. */
  cwd?: string;
  /** Child environment. Without `envPolicy` this is the child's whole environment (codex semantics). */
  env?: Record<string, string>;
  envPolicy?: EnvPolicy;
  tty?: boolean;
  /**
   * The terminal's initial size with `tty` (default 80x24). Sent only to an agent that offers the
   * `ptyResize` capability (see {@link ExecClient.supportsPtyResize}); others ignore it.
   */
  ptySize?: PtySize;
  pipeStdin?: boolean;
  arg0?: string;
  /**
   * Caller-chosen id; default a random UUID. Use a fresh one: on the codex wire a start sent again
   * after a lost stream takes the executor's "already exists" for the proof that the first one
   * started this process.
   */
  processId?: string;
  /** Keep all output for `completion` (default true). */
  collectOutput?: boolean;
  /** Cap on collected output; past it `outputTruncated` is set (default 64 MiB). */
  maxCollectedBytes?: number;
  /** Deliver events through `handle.events` (default: off). */
  streamEvents?: boolean;
  /** Bound in bytes on events received but not yet taken from `handle.events` (default 4 MiB). */
  eventBufferBytes?: number;
  /**
   * What a full event buffer does (default `'pause'`: the client stops reading the connection, so
   * the remote process blocks in `write` until the consumer catches up; nothing is lost). See
   * {@link SlowConsumerPolicy}.
   */
  slowConsumer?: SlowConsumerPolicy;
}

export const DEFAULT_EVENT_BUFFER_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_COLLECTED_BYTES = 64 * 1024 * 1024;

/** A process started through `ExecClient.exec`. */
export class ProcessHandle {
  constructor(
    readonly processId: string,
    private readonly client: ExecClient,
    private readonly tracker: ProcessTracker,
  ) {}

  /** Resolves when the process has exited and its output is complete. */
  get completion(): Promise<ProcessCompletion> {
    return this.tracker.completion;
  }

  /** Output, exit and close events in seq order (needs `streamEvents: true`). */
  get events(): AsyncIterable<ClientProcessEvent> {
    if (!this.tracker.events) throw new Error('events are only available with exec(..., { streamEvents: true })');
    return this.tracker.events;
  }

  write(bytes: Uint8Array | string, options: { closeStdin?: boolean; writeId?: string } = {}): Promise<WriteStatus> {
    return this.client.writeStdin(this.processId, bytes, options);
  }

  signal(signal: ProcessSignalName): Promise<void> {
    return this.client.signal(this.processId, signal);
  }

  terminate(): Promise<boolean> {
    return this.client.terminate(this.processId);
  }

  /** Resizes the process's terminal (`process/resizePty`; only where {@link ExecClient.supportsPtyResize}). */
  resizePty(size: PtySize): Promise<void> {
    return this.client.resizePty(this.processId, size);
  }
}

/**
 * The exec protocol client. Completes one-shot processes from pushed events alone when they are
 * complete and in order; `readsIssued` counts every `process/read` it had to make.
 */
export class ExecClient {
  private rpcValue: JsonRpcConnection;
  private readonly trackers = new Map<string, ProcessTracker>();
  /** Processes whose `process/start` is not answered yet: a resumed session has nothing of them to catch up. */
  private readonly starting = new Set<string>();
  private sessionIdValue = '';
  private reads = 0;
  /** Event buffers that are full: the transport is paused while there is any. */
  private fullEventBuffers = 0;
  private fsClient: FsClient | undefined;
  private httpClient: ExecutorHttp | undefined;
  private agentIdentityValue: string | undefined;
  private capabilities: SessionCapabilities = {};
  private binaryOutputOn = false;
  private binaryFileBlocksOn = false;
  /** From `connectCodex` (or `overTransport`'s caller): the stream is replaced and the session resumed when it ends. */
  private reopener: StreamReopener | undefined;
  /** A session resume in progress (calls wait for it). */
  private recovering: Promise<void> | undefined;
  /** Why the client cannot be used any more (recovery failed). */
  private failure: Error | undefined;
  private closedByCaller = false;
  /** Aborted by `close()`: a recovery stops waiting between attempts. */
  private readonly closing = new AbortController();
  private recoveries = 0;

  private constructor(
    transport: MessageTransport,
    private readonly options: ExecClientOptions,
  ) {
    this.rpcValue = this.attach(transport);
  }

  /** The current JSON-RPC connection (a new one after each session resume). */
  get rpc(): JsonRpcConnection {
    return this.rpcValue;
  }

  /** How many times the session was resumed on a new stream. */
  get sessionRecoveries(): number {
    return this.recoveries;
  }

  private attach(transport: MessageTransport): JsonRpcConnection {
    // Each request carries W3C trace context: a client span under the caller's active context.
    const rpc = new JsonRpcConnection(transport, { maxMessageBytes: this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, traceProvider: clientRequestTraceProvider() });
    rpc.setNotificationHandler((n) => this.handleNotification(n));
    rpc.setBinaryMessageHandler((bytes) => this.handleBinaryMessage(rpc, bytes));
    rpc.onClose((error) => {
      if (rpc !== this.rpcValue) return;
      if (this.reopener && !this.closedByCaller && this.failure === undefined) {
        this.startRecovery(error);
        return;
      }
      this.failProcesses(new Error(`connection to the agent closed${error ? `: ${error.message}` : ''}`));
    });
    return rpc;
  }

  private failProcesses(failure: Error): void {
    for (const tracker of this.trackers.values()) tracker.fail(failure);
  }

  /**
   * The stream ended under a live session: open a new stream (new handshake), resume the session,
   * then let every process catch up from the last seq it saw (its tracker's read), as codex's own
   * harness does. Calls made meanwhile wait; a recovery that fails fails them and every process.
   */
  private startRecovery(cause: Error | undefined): void {
    if (this.recovering || !this.reopener) return;
    const reopener = this.reopener;
    const lost = `the stream to the executor ended${cause ? ` (${cause.message})` : ''}`;
    let attempts = 0;
    this.recovering = resumeWithRetries(
      async (remainingMs) => {
        attempts++;
        if (this.closedByCaller) throw new Error('the client was closed');
        const transport = await reopener.reopen(remainingMs);
        const rpc = this.attach(transport);
        try {
          await this.initialize(rpc, { ...this.options, resumeSessionId: this.sessionIdValue, connectTimeoutMs: Math.min(this.options.connectTimeoutMs ?? 10_000, remainingMs) });
        } catch (error) {
          rpc.close();
          throw error;
        }
        if (this.closedByCaller) {
          rpc.close();
          throw new Error('the client was closed');
        }
        return rpc;
      },
      // Only "the session is still attached to the old stream" (the executor has not noticed yet) is retried among answers.
      (error) => (error instanceof RpcError ? error.code !== ErrorCode.SessionAlreadyAttached : this.closedByCaller || reopener.isPermanent(error)),
      reopener.policy,
      this.closing.signal,
    ).then(
      (rpc) => {
        this.rpcValue = rpc;
        this.recoveries++;
        this.fsClient = undefined;
        this.httpClient = undefined;
        this.recovering = undefined;
        for (const [processId, tracker] of this.trackers) if (!this.starting.has(processId)) tracker.catchUp();
        this.options.onSessionResumed?.({ cause: lost, attempts });
      },
      (error: Error) => {
        this.recovering = undefined;
        this.failure = new Error(`${lost}; ${error.message}`, { cause: error });
        this.failProcesses(this.failure);
      },
    );
  }

  /** The connection to send on: waits for a recovery in progress; rejects once the client cannot recover. */
  private async connection(): Promise<JsonRpcConnection> {
    for (;;) {
      if (this.recovering) await this.recovering;
      if (this.failure) throw this.failure;
      if (!this.rpcValue.closed || !this.reopener || this.closedByCaller) return this.rpcValue;
      this.startRecovery(undefined);
    }
  }

  /** The public identity the agent proved in the Noise handshake (relay connections; undefined for a direct one). */
  get agentIdentity(): string | undefined {
    return this.agentIdentityValue;
  }

  /**
   * Connects and initializes a session: to an agent's (or a codex exec-server's) WebSocket URL, or
   * through a relay to an environment, end-to-end encrypted with the agent's identity pinned — an
   * execrelay agent's (`RelayTarget`: Noise XX) or a codex-protocol executor's (`CodexRendezvousTarget`,
   * with the client's `hybridKey`: hybrid IK over codex relay frames, as {@link connectCodex}). An
   * agent that does not authorize this client's identity makes it reject with
   * {@link ClientNotAuthorizedError}.
   */
  static async connect(target: string | RelayTarget | CodexRendezvousTarget, options: ExecClientOptions = {}): Promise<ExecClient> {
    // A target with a hybrid key is a codex-protocol environment behind the relay's rendezvous.
    if (typeof target !== 'string' && 'hybridKey' in target) return ExecClient.connectCodex(target, options);
    if (typeof target !== 'string') {
      // The relay path (Noise, reliable stream) is loaded only by clients that use it.
      const { openRelayChannel } = await import('./relay-channel.js');
      const channel = await openRelayChannel(target);
      try {
        const client = await ExecClient.overTransport(channel, options);
        client.agentIdentityValue = channel.remoteIdentity;
        return client;
      } catch (error) {
        // An agent checks the client's identity once the handshake is over (the client finishes
        // first), so its refusal arrives here, as the channel's failure.
        throw clientRefusalIn(error, channel.localIdentity) ?? error;
      }
    }
    const url = target;
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const socket = new WebSocket(url, {
      maxPayload: maxMessageBytes + 1024 * 1024,
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
      ...(options.token !== undefined ? { headers: { Authorization: `Bearer ${options.token}` } } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('unexpected-response', (_request, response) => {
        const reason = response.headers[REFUSAL_REASON_HEADER.toLowerCase()];
        response.resume();
        socket.terminate();
        const explanation = reason ? explainRefusal(String(reason)) : '';
        reject(new Error(`cannot connect to ${url}: refused with HTTP ${response.statusCode ?? 0}${reason ? ` ${String(reason)}` : ''}${explanation ? ` (${explanation})` : ''}`));
      });
      socket.once('error', (error) => reject(new Error(`cannot connect to ${url}: ${error.message}`)));
    });
    return ExecClient.overTransport(new WebSocketTransport(socket), options);
  }

  /**
   * Connects through a relay's codex-compatible rendezvous to a codex-protocol environment (a real
   * `codex exec-server --remote`): hybrid Noise IK over codex relay frames. `agentIdentity` is the
   * executor key's `hyb1:` fingerprint.
   */
  static async connectCodex(target: CodexRendezvousTarget, options: ExecClientOptions = {}): Promise<ExecClient> {
    const { openCodexRendezvousChannel, codexStreamReopener } = await import('./codex-rendezvous-channel.js');
    const { channel, executorFingerprint } = await openCodexRendezvousChannel(target);
    const client = await ExecClient.overTransport(channel, { ...options, binaryOutput: false, binaryFileBlocks: false }, codexStreamReopener(target, executorFingerprint));
    client.agentIdentityValue = executorFingerprint;
    return client;
  }

  /**
   * Runs the client over any MessageTransport (a Noise channel, stdio, a test transport). With
   * `reopener`, a transport that closes under the live session is replaced by a new one and the
   * session resumed (as `connectCodex` does).
   */
  static async overTransport(transport: MessageTransport, options: ExecClientOptions = {}, reopener?: StreamReopener): Promise<ExecClient> {
    const client = new ExecClient(transport, options);
    client.reopener = reopener;
    try {
      await client.initialize(client.rpc, options);
    } catch (error) {
      transport.close();
      throw error;
    }
    return client;
  }

  /** `initialize` (resuming `options.resumeSessionId` if given) and `initialized` on `rpc`. */
  private async initialize(rpc: JsonRpcConnection, options: ExecClientOptions): Promise<void> {
    const timeout = AbortSignal.timeout(options.connectTimeoutMs ?? 10_000);
    // Exactly the codex exec-server's params: no extension is asked for here (an agent offers its
    // extensions in the result, and the client takes the binary paths up in `initialized`).
    const params: InitializeParams = {
      clientName: options.clientName ?? 'execrelay',
      ...(options.resumeSessionId ? { resumeSessionId: options.resumeSessionId } : {}),
    };
    const result = parseOrThrow(InitializeResult, await rpc.request(Method.Initialize, params, { signal: timeout }), ErrorCode.Internal, 'invalid initialize result');
    if (options.resumeSessionId && result.sessionId !== options.resumeSessionId) throw new RpcError(ErrorCode.Internal, `the executor resumed session ${result.sessionId}, not ${options.resumeSessionId}`);
    this.sessionIdValue = result.sessionId;
    this.capabilities = result.capabilities ?? {};
    // Taken up only where offered, and only on a transport that carries binary messages; on from
    // this side before `initialized` goes (the agent sends none before it has it).
    const binary = rpc.carriesBinary;
    this.binaryOutputOn = binary && options.binaryOutput !== false && this.capabilities.binaryOutput === true;
    this.binaryFileBlocksOn = binary && options.binaryFileBlocks !== false && this.capabilities.binaryFileBlocks === true;
    const takenUp: InitializedParams = {
      ...(this.binaryOutputOn ? { binaryOutput: true } : {}),
      ...(this.binaryFileBlocksOn ? { binaryFileBlocks: true } : {}),
    };
    await rpc.notify(ClientNotification.Initialized, takenUp);
  }

  get sessionId(): string {
    return this.sessionIdValue;
  }

  /**
   * Whether the agent offered the `fileTransfer` capability: streaming atomic writes
   * (`fs.openWrite`/`writeBlock`/`commitWrite`) and modes (`fs.getAttributes`/`setAttributes`).
   * A codex exec-server does not.
   */
  get supportsFileTransfer(): boolean {
    return this.capabilities.fileTransfer === true;
  }

  /**
   * Whether the agent offered the `ptyResize` capability: a tty's size at `process/start` and
   * `process/resizePty`. A codex exec-server does not (its terminals stay 80x24).
   */
  get supportsPtyResize(): boolean {
    return this.capabilities.ptyResize === true;
  }

  /** Number of `process/read` calls this client has issued. */
  get readsIssued(): number {
    return this.reads;
  }

  async exec(argv: string[], options: ExecOptions = {}): Promise<ProcessHandle> {
    const processId = options.processId ?? randomUUID();
    if (this.trackers.has(processId)) throw new Error(`processId already in use on this client: ${processId}`);
    const cwd = options.cwd ?? '/';
    const tracker = new ProcessTracker({
      read: (afterSeq) => this.trackerRead(processId, afterSeq),
      onReadIssued: () => this.reads++,
      collectOutput: options.collectOutput ?? true,
      maxCollectedBytes: options.maxCollectedBytes ?? DEFAULT_MAX_COLLECTED_BYTES,
      eventBufferBytes: options.streamEvents ? (options.eventBufferBytes ?? DEFAULT_EVENT_BUFFER_BYTES) : null,
      slowConsumer: options.slowConsumer ?? 'pause',
      onBackpressure: (full) => this.eventBufferPressure(full),
    });
    // Registered before the request: events may arrive before the start response.
    this.trackers.set(processId, tracker);
    const params: ProcessStartRequest = {
      processId,
      argv,
      cwd: cwd.startsWith('file://') ? cwd : toFileUri(path.resolve(cwd)),
      env: options.env ?? {},
      tty: options.tty ?? false,
      pipeStdin: options.pipeStdin ?? false,
      arg0: options.arg0 ?? null,
    };
    if (options.envPolicy) params.envPolicy = options.envPolicy;
    if (options.ptySize && params.tty && this.supportsPtyResize) params.ptySize = options.ptySize;
    this.starting.add(processId);
    // Sent again on the resumed stream if its stream ends first; a duplicate-id refusal of the
    // second one then means the first started the process (see resend-after-stream-loss.ts).
    let resent = false;
    try {
      const result = await this.callAcrossStreamLoss(Method.ProcessStart, () => params, async (rpc, again) => {
        resent ||= again;
        try {
          return await rpc.request(Method.ProcessStart, params);
        } catch (error) {
          if (again && isStartedAlready(error, processId)) return { processId };
          throw error;
        }
      });
      parseOrThrow(ProcessStartResult, result, ErrorCode.Internal, 'invalid process/start result');
    } catch (error) {
      this.trackers.delete(processId);
      throw error;
    } finally {
      this.starting.delete(processId);
    }
    // What it pushed on the stream that ended is lost: read it (the session's other processes were caught up at the resume).
    if (resent) tracker.catchUp();
    void tracker.completion.then(
      () => this.trackers.delete(processId),
      () => this.trackers.delete(processId),
    );
    return new ProcessHandle(processId, this, tracker);
  }

  /**
   * A tracker's catch-up read: one that a stream's end interrupts is made again on the resumed
   * session's stream (the tracker then sees no failure, only the answer).
   */
  private async trackerRead(processId: string, afterSeq: number): Promise<ProcessReadResult> {
    const raw = await this.request(Method.ProcessRead, { processId, afterSeq, maxBytes: READ_BUDGET_BYTES, waitMs: 0 });
    return parseOrThrow(ProcessReadResult, raw, ErrorCode.Internal, 'invalid process/read result');
  }

  /** Raw `process/read`. */
  async read(processId: string, afterSeq: number, options: { maxBytes?: number; waitMs?: number } = {}): Promise<ProcessReadResult> {
    const raw = await this.request(Method.ProcessRead, {
      processId,
      afterSeq,
      maxBytes: options.maxBytes ?? null,
      waitMs: options.waitMs ?? 0,
    });
    return parseOrThrow(ProcessReadResult, raw, ErrorCode.Internal, 'invalid process/read result');
  }

  async writeStdin(processId: string, bytes: Uint8Array | string, options: { closeStdin?: boolean; writeId?: string } = {}): Promise<WriteStatus> {
    const chunk = Buffer.from(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes).toString('base64');
    const params: Record<string, unknown> = { processId, chunk, writeId: options.writeId ?? randomUUID() };
    if (options.closeStdin) params.closeStdin = true;
    const result = parseOrThrow(ProcessWriteResult, await this.request(Method.ProcessWrite, params), ErrorCode.Internal, 'invalid process/write result');
    return result.status;
  }

  /**
   * `send` on the current connection. When the stream it went out on ends before the answer and the
   * session is resumed on a new one (a client with a reopener: the codex wire), the call is sent
   * again there if it may be ({@link mayResend} of `params()`, asked only then: reads,
   * `process/write` with its `writeId`, ...;
   * `again` is then true), else it fails with {@link CallInterruptedError}. Without a reopener the
   * stream's end is the call's failure, as always.
   */
  private async callAcrossStreamLoss(method: string, params: () => unknown, send: (rpc: JsonRpcConnection, again: boolean) => Promise<unknown>): Promise<unknown> {
    for (let again = false; ; again = true) {
      const rpc = await this.connection();
      try {
        return await send(rpc, again);
      } catch (error) {
        const streamLost = error instanceof TransportClosedError && this.reopener !== undefined && !this.closedByCaller;
        if (!streamLost) throw error;
        if (!mayResend(method, params())) throw new CallInterruptedError(method, error);
      }
    }
  }

  async signal(processId: string, signal: ProcessSignalName): Promise<void> {
    await this.request(Method.ProcessSignal, { processId, signal });
  }

  /** `process/resizePty`: fails without sending anything when the agent did not offer `ptyResize`. */
  async resizePty(processId: string, size: PtySize): Promise<void> {
    if (!this.supportsPtyResize) throw new Error('the agent does not offer process/resizePty (capability ptyResize)');
    parseOrThrow(ProcessResizePtyResult, await this.request(Method.ProcessResizePty, { processId, cols: size.cols, rows: size.rows }), ErrorCode.Internal, 'invalid process/resizePty result');
  }

  async terminate(processId: string): Promise<boolean> {
    const result = parseOrThrow(ProcessTerminateResult, await this.request(Method.ProcessTerminate, { processId }), ErrorCode.Internal, 'invalid process/terminate result');
    return result.running;
  }

  /** Typed `fs/*` calls on this session (`client.fs.walk(...)`, `client.fs.readFile(...)`, ...). */
  get fs(): FsClient {
    return (this.fsClient ??= new FsClient(this, { binaryFileBlocks: () => this.binaryFileBlocksOn }));
  }

  /** HTTP through the executor: `client.http.fetchWith({...})` for a fetch with its own bounds. */
  get http(): ExecutorHttp {
    return (this.httpClient ??= new ExecutorHttp(this.rpc));
  }

  /** A WHATWG `fetch` whose requests the agent performs from the executor's network (`http/request`). */
  get fetch(): ExecutorFetch {
    return this.http.fetch;
  }

  /**
   * Any request by method name (for methods without a typed wrapper). During a session resume it
   * waits for the new stream; one whose stream ends before its answer is sent again on the resumed
   * stream where that is harmless, else fails with {@link CallInterruptedError} (see
   * resend-after-stream-loss.ts).
   */
  async request(method: string, params: unknown, options?: CallOptions): Promise<unknown> {
    return this.callAcrossStreamLoss(method, () => params, (rpc) => rpc.request(method, params, options));
  }

  /** A request sent as one binary message where it can be (`JsonRpcConnection.requestBinary`); across a session resume as {@link request}. */
  async requestBinary(method: string, encode: (id: number) => Uint8Array | undefined, jsonParams: () => unknown, options?: CallOptions): Promise<unknown> {
    return this.callAcrossStreamLoss(method, jsonParams, (rpc) => rpc.requestBinary(method, encode, jsonParams, options));
  }

  close(): void {
    this.closedByCaller = true;
    this.closing.abort();
    this.rpcValue.close();
  }

  /** Pauses reading the connection while any process's event buffer is full (see SlowConsumerPolicy). */
  private eventBufferPressure(full: boolean): void {
    this.fullEventBuffers += full ? 1 : -1;
    if (full && this.fullEventBuffers === 1) this.rpc.pauseReceiving();
    else if (!full && this.fullEventBuffers === 0) this.rpc.resumeReceiving();
  }

  /** Whether output comes on the binary path (the agent offered `binaryOutput` and this client took it up). */
  get usesBinaryOutput(): boolean {
    return this.binaryOutputOn;
  }

  /** Whether file blocks go on the binary path (the agent offered `binaryFileBlocks` and this client took it up). */
  get usesBinaryFileBlocks(): boolean {
    return this.binaryFileBlocksOn;
  }

  /**
   * One binary message: a `process/output` event (`binaryOutput`) or the result of an `fs/readBlock`
   * (`binaryFileBlocks`), on the connection `rpc` that carried it. A malformed one is lost like a
   * malformed notification (an output gap is read again; a read result malformed past its id fails
   * that call); a kind this client did not take up is answered with an error.
   */
  private handleBinaryMessage(rpc: JsonRpcConnection, bytes: Uint8Array): void {
    const decoded = decodeBinaryMessage(bytes);
    if (!decoded.ok) {
      if (decoded.requestId !== undefined && bytes[1] === BINARY_MESSAGE_KIND.fsReadBlockResult && this.binaryFileBlocksOn) {
        const failure = new RpcError(ErrorCode.Internal, `invalid ${FsMethod.ReadBlock} result: malformed binary message: ${decoded.reason}`);
        rpc.resolveBinaryResult(decoded.requestId, FsMethod.ReadBlock, failure);
      }
      return;
    }
    const message = decoded.message;
    if (message.kind === 'processOutput' && this.binaryOutputOn) {
      const { processId, seq, stream, chunk } = message;
      this.trackers.get(processId)?.push({ type: 'output', processId, seq, stream, chunk });
    } else if (message.kind === 'fsReadBlockResult' && this.binaryFileBlocksOn) {
      const result: ReadBlock = { chunk: message.chunk, eof: message.eof };
      rpc.resolveBinaryResult(message.requestId, FsMethod.ReadBlock, result);
    } else {
      throw new Error(`unexpected binary message (${message.kind})`);
    }
  }

  private handleNotification(notification: NotificationMessage): void {
    if (notification.method === HttpNotification.BodyDelta) return this.httpClient?.handleBodyDelta(notification.params);
    let event: PushedProcessEvent | undefined;
    try {
      event = this.parsePushedEvent(notification);
    } catch {
      // A malformed event is treated as lost: the tracker sees the seq gap and reads instead.
      return;
    }
    if (event) this.trackers.get(event.processId)?.push(event);
  }

  private parsePushedEvent(notification: NotificationMessage): PushedProcessEvent | undefined {
    switch (notification.method) {
      case ServerNotification.ProcessOutput:
        return { type: 'output', ...parseOrThrow(ProcessOutputNotification, notification.params) };
      case ServerNotification.ProcessExited:
        return { type: 'exited', ...parseOrThrow(ProcessExitedNotification, notification.params) };
      case ServerNotification.ProcessClosed:
        return { type: 'closed', ...parseOrThrow(ProcessClosedNotification, notification.params) };
      default:
        return undefined; // notifications of families this client does not track
    }
  }
}
