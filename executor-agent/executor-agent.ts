import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { JsonRpcConnection } from '../src/jsonrpc/connection.js';
import type { MessageTransport } from '../src/transport/message-transport.js';
import type { SecureChannel } from '../src/noise/noise-message-channel.js';
import { WebSocketTransport } from '../src/transport/websocket-transport.js';
import { StdioTransport } from '../src/transport/stdio-transport.js';
import type { Logger } from '../src/logging/logger.js';
import { DEFAULT_AGENT_CONFIG, type AgentConfig } from './agent-config.js';
import { ExecConnection } from './exec-connection.js';
import { fsHandlers } from './fs-handlers.js';
import { httpHandlers } from './http-handlers.js';
import type { HandlerTable } from './handler-table.js';
import { processHandlers } from './process-handlers.js';
import { confinementFor } from './root-confinement.js';
import { LOCAL_CLIENT, SessionRegistry } from './session-registry.js';
import { ByteBudget } from './response-budget.js';
import type { ExecServerTelemetry } from './agent-events.js';

/** Slack above the JSON-RPC cap at the WebSocket layer, so a slightly oversized message still gets a -32600 answer. */
const WEBSOCKET_PAYLOAD_SLACK_BYTES = 1024 * 1024;

export interface WebSocketListener {
  /** The bound URL, e.g. `ws://127.0.0.1:43123`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Parses `ws://HOST:PORT` (port 0 allowed) for the agent's local listener. */
export function parseListenUrl(listen: string): { host: string; port: number } {
  let url: URL;
  try {
    url = new URL(listen);
  } catch {
    throw new Error(`invalid --listen URL: ${listen} (expected ws://HOST:PORT)`);
  }
  if (url.protocol !== 'ws:') throw new Error(`invalid --listen URL: ${listen} (only ws:// is supported for the local listener)`);
  if (url.port === '' && !/:0\/?$/.test(listen)) throw new Error(`invalid --listen URL: ${listen} (a port is required; use 0 for any free port)`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: url.port === '' ? 0 : Number(url.port) };
}

/**
 * The executor agent: a session registry and the exec protocol served on any number of transports
 * (local WebSocket listener, stdio, and — through the relay — Noise channels).
 */
export class ExecutorAgent {
  readonly config: AgentConfig;
  readonly registry: SessionRegistry;
  private readonly handlerTables: HandlerTable[];
  private readonly connections = new Set<ExecConnection>();
  /** In-flight large responses across every connection (`maxInflightResponseBytes`). */
  private readonly responseBudget: ByteBudget;

  constructor(
    config: Partial<AgentConfig>,
    private readonly logger: Logger,
    extraHandlerTables: readonly HandlerTable[] = [],
    private readonly telemetry?: ExecServerTelemetry,
  ) {
    this.config = { ...DEFAULT_AGENT_CONFIG, ...config };
    this.registry = new SessionRegistry({
      retentionMs: this.config.sessionRetentionMs,
      maxSessions: this.config.maxSessions,
      maxSessionsPerClient: this.config.maxSessionsPerClient,
    });
    this.responseBudget = new ByteBudget(this.config.maxInflightResponseBytes);
    this.handlerTables = [processHandlers, fsHandlers, httpHandlers, ...extraHandlerTables];
    // Resolves the roots now, so a missing root fails at startup, and says what is reachable.
    const confinement = confinementFor(this.config);
    this.logger.info({ roots: confinement.roots.map((r) => `${r.real}:${r.access}`) }, confinement.describe());
  }

  /**
   * Serves the exec protocol on one transport until it closes. Its sessions count against the
   * quota of the client's identity: the Noise identity a relay client proved in the handshake, or
   * `local` for every client of the WebSocket listener and stdio. Those have no identity, and one
   * per connection would bound nothing (the attack opens a connection per session); they reach the
   * agent without the relay, so they are one party, as trusted as the host's loopback.
   */
  serve(transport: MessageTransport): ExecConnection {
    const rpc = new JsonRpcConnection(transport, {
      maxMessageBytes: this.config.maxMessageBytes,
      maxConcurrentRequests: this.config.maxConcurrentRequests,
      maxQueuedRequests: this.config.maxQueuedRequests,
    });
    const remoteIdentity = (transport as Partial<SecureChannel>).remoteIdentity;
    const owner = transport.kind === 'relay' && remoteIdentity ? `relay:${remoteIdentity}` : LOCAL_CLIENT;
    const connection = new ExecConnection(rpc, this.registry, this.config, this.handlerTables, this.logger, this.telemetry, {
      owner,
      agentBudget: this.responseBudget,
    });
    this.connections.add(connection);
    rpc.onClose(() => this.connections.delete(connection));
    return connection;
  }

  async listenWebSocket(listen: string): Promise<WebSocketListener> {
    const { host, port } = parseListenUrl(listen);
    const server = new WebSocketServer({
      host,
      port,
      maxPayload: this.config.maxMessageBytes + WEBSOCKET_PAYLOAD_SLACK_BYTES,
      perMessageDeflate: false,
    });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    server.on('error', (error) => this.logger.error({ err: error }, 'websocket listener error'));
    server.on('connection', (socket) => {
      socket.on('error', (error) => this.logger.debug({ err: error.message }, 'websocket connection error'));
      this.serve(new WebSocketTransport(socket));
    });
    const address = server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return {
      url: `ws://${shownHost}:${address.port}`,
      close: () =>
        new Promise<void>((resolve) => {
          for (const client of server.clients) client.terminate();
          server.close(() => resolve());
        }),
    };
  }

  /** Serves one connection on stdin/stdout (one JSON object per line); resolves when stdin ends. */
  serveStdio(input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stdout): Promise<void> {
    const transport = new StdioTransport(input as never, output as never, this.config.maxMessageBytes);
    this.serve(transport);
    return new Promise((resolve) => transport.onClose(() => resolve()));
  }

  /** Ends every session (killing its processes). */
  shutdown(): void {
    this.registry.endAll();
  }
}
