import { WebSocketServer } from 'ws';
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { BearerTokenVerifier } from '../src/auth/bearer-tokens.js';
import { DirectListenerRefusal, UpgradeRefusal, upgradeRefusalResponse, type UpgradeRefusalReason } from '../src/relay-control/relay-endpoints.js';
import { JsonRpcConnection } from '../src/jsonrpc/connection.js';
import type { MessageTransport } from '../src/transport/message-transport.js';
import type { SecureChannel } from '../src/noise/noise-message-channel.js';
import { WebSocketTransport } from '../src/transport/websocket-transport.js';
import { StdioTransport } from '../src/transport/stdio-transport.js';
import type { Logger } from '../src/logging/logger.js';
import { DEFAULT_AGENT_CONFIG, type AgentConfig } from './agent-config.js';
import type { AuditLog } from '../src/audit/audit-log.js';
import { ClientRefusalAudit, ConnectionAudit, DrainAudit } from './session-audit.js';
import { ExecConnection } from './exec-connection.js';
import { fsHandlers } from './fs-handlers.js';
import { httpHandlers } from './http-handlers.js';
import { HttpDestinationPolicy } from './http-destination-policy.js';
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

/** Who may connect to the direct WebSocket listener (see {@link ExecutorAgent.listenWebSocket}). */
export interface DirectListenerAccess {
  /** Bearer tokens a client must present (`Authorization: Bearer …`). Required off loopback. */
  tokens?: BearerTokenVerifier;
  /** Browser origins (`Origin` header values, e.g. `http://localhost:3000`) let in; any other Origin is refused. */
  allowedOrigins?: readonly string[];
}

/** Why the direct listener refuses an upgrade, beyond the relay's own reasons (a bad token is `UpgradeRefusal.Unauthorized`). */
const DirectRefusal = {
  OriginNotAllowed: { status: 403, reason: 'origin_not_allowed' },
  HostNotAllowed: { status: 403, reason: 'host_not_allowed' },
  Draining: DirectListenerRefusal.Draining,
} as const satisfies Record<string, UpgradeRefusalReason>;

/** How long a drain waits, once its processes are done, for their clients to read the last output and disconnect. */
export const DRAIN_FLUSH_MS = 2000;
/** Beyond `terminateGraceMs`, how long a drain waits for killed processes to be reaped. */
const DRAIN_REAP_MS = 2000;
const DRAIN_POLL_MS = 50;

/** How a drain ended (see {@link ExecutorAgent.drain}). */
export interface DrainOutcome {
  /** Processes running when the drain began. */
  running: number;
  /** Of those, the ones still running at the drain timeout, which were terminated. */
  terminated: number;
  durationMs: number;
}

/** `Origin` values compare without case and without a trailing slash. */
function normalizeOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/$/, '');
}

/** A loopback host as written in a URL or Host header: localhost, 127.0.0.0/8, ::1 (brackets optional). */
function isLoopbackHost(host: string): boolean {
  const bare = host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (bare === 'localhost' || bare === '::1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice('::ffff:'.length) : bare;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** The host name of a Host header value (`name:port`, `[v6]:port`), lowercased; '' when unparsable. */
function hostOfHeader(header: string | undefined): string {
  try {
    return header ? new URL(`http://${header}`).hostname.toLowerCase() : '';
  } catch {
    return '';
  }
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
  private drainStarted = false;

  constructor(
    config: Partial<AgentConfig>,
    private readonly logger: Logger,
    extraHandlerTables: readonly HandlerTable[] = [],
    private readonly telemetry?: ExecServerTelemetry,
    /** With `--audit-log`: who did what, for the operator (see session-audit.ts). */
    private readonly auditLog?: AuditLog,
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
    const httpPolicy = new HttpDestinationPolicy(this.config.httpAllow, this.config.httpAllowPrivate);
    this.logger.info(httpPolicy.logFields(), httpPolicy.describe());
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
      ...(this.auditLog ? { audit: new ConnectionAudit(this.auditLog, transport.kind === 'relay' && remoteIdentity ? remoteIdentity : LOCAL_CLIENT, transport.kind) } : {}),
      draining: () => this.drainStarted,
    });
    this.connections.add(connection);
    rpc.onClose(() => this.connections.delete(connection));
    return connection;
  }

  /**
   * Serves the exec protocol on a WebSocket listener. Who may connect:
   * - an upgrade carrying an `Origin` header (every browser sends one) is refused 403 unless
   *   `access.allowedOrigins` names it: a web page must not reach the agent;
   * - on a loopback address, a `Host` header that names neither a loopback host nor the listen host
   *   is refused 403 (DNS rebinding: a page whose own name resolves to 127.0.0.1);
   * - with `access.tokens`, a missing or wrong `Authorization: Bearer` is refused 401 (constant-time
   *   comparison). A non-loopback address without tokens is refused at start.
   */
  async listenWebSocket(listen: string, access: DirectListenerAccess = {}): Promise<WebSocketListener> {
    const { host, port } = parseListenUrl(listen);
    const loopback = isLoopbackHost(host);
    if (!loopback && !access.tokens) {
      throw new Error(
        `--listen ${listen} is not a loopback address: anyone who reaches it could run commands as this user. ` +
          'Give --listen-token-file FILE (clients then pass --agent-token-file FILE); create one with: (umask 077; head -c 32 /dev/urandom | base64 > FILE). ' +
          'Or listen on ws://127.0.0.1:PORT',
      );
    }
    const allowedOrigins = new Set((access.allowedOrigins ?? []).map(normalizeOrigin));
    const allowedHosts = new Set([host.toLowerCase(), `[${host.toLowerCase()}]`]);
    const server = http.createServer((_req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('websocket upgrade required\n');
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.on('clientError', (_error, socket) => socket.destroy());
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.config.maxMessageBytes + WEBSOCKET_PAYLOAD_SLACK_BYTES,
      perMessageDeflate: false,
    });
    const refuse = (socket: Duplex, refusal: UpgradeRefusalReason, detail: Record<string, unknown>) => {
      this.logger.warn({ reason: refusal.reason, ...detail }, 'refused a direct connection');
      socket.end(upgradeRefusalResponse(refusal));
    };
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (this.drainStarted) return refuse(socket, DirectRefusal.Draining, {});
      const origin = req.headers.origin;
      if (origin !== undefined && !allowedOrigins.has(normalizeOrigin(origin))) return refuse(socket, DirectRefusal.OriginNotAllowed, { origin });
      const requestHost = hostOfHeader(req.headers.host);
      if (loopback && !isLoopbackHost(requestHost) && !allowedHosts.has(requestHost)) {
        return refuse(socket, DirectRefusal.HostNotAllowed, { host: req.headers.host ?? null });
      }
      if (access.tokens && !access.tokens.verifyHeader(req.headers.authorization)) return refuse(socket, UpgradeRefusal.Unauthorized, {});
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', (error) => this.logger.debug({ err: error.message }, 'websocket connection error'));
        this.serve(new WebSocketTransport(ws));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
      server.listen(port, host);
    });
    server.on('error', (error) => this.logger.error({ err: error }, 'websocket listener error'));
    const address = server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const url = `ws://${shownHost}:${address.port}`;
    this.logger.info(
      { url, auth: access.tokens ? 'bearer token' : 'none (loopback)', allowedOrigins: [...allowedOrigins], hostCheck: loopback },
      `direct listener access: ${access.tokens ? 'clients must present the bearer token' : 'no token (loopback only)'}; ` +
        `browser Origins ${allowedOrigins.size ? 'refused except those allowed' : 'refused'}${loopback ? '; Host must name a loopback address' : ''}`,
    );
    return {
      url,
      close: () =>
        new Promise<void>((resolve) => {
          for (const client of wss.clients) client.terminate();
          wss.close();
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    };
  }

  /** Serves one connection on stdin/stdout (one JSON object per line); resolves when stdin ends. */
  serveStdio(input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stdout): Promise<void> {
    const transport = new StdioTransport(input as never, output as never, this.config.maxMessageBytes);
    this.serve(transport);
    return new Promise((resolve) => transport.onClose(() => resolve()));
  }

  /** True once {@link drain} was called: no new session, process, stream or direct connection is taken. */
  get draining(): boolean {
    return this.drainStarted;
  }

  /**
   * Drains the agent (its SIGTERM): from now on it refuses new sessions and process starts
   * (`ErrorCode.Draining`), relay streams (`executor_draining`) and direct connections (503
   * `agent_draining`); resumes and every other request of existing sessions go on. Running
   * processes get `drainTimeoutMs` to finish; those left are terminated (SIGTERM, SIGKILL after
   * `terminateGraceMs`). When processes ran, their clients then get up to {@link DRAIN_FLUSH_MS} to
   * read the last output and disconnect. Resolves then; the caller shuts down.
   */
  async drain(): Promise<DrainOutcome> {
    this.drainStarted = true;
    this.telemetry?.drain.started();
    const started = performance.now();
    // A start already past the draining check runs too: its process may be running before it is
    // registered (the spawner answers after the fork), so it is waited for like the others.
    const active = () => this.registry.runningProcesses().length + this.registry.processesStarting();
    const running = active();
    this.logger.info(
      { runningProcesses: running, sessions: this.registry.size, drainTimeoutMs: this.config.drainTimeoutMs },
      'draining: no new sessions, processes or connections; running processes may finish',
    );
    if (this.auditLog) DrainAudit.started(this.auditLog, running, this.registry.size);
    const allExited = () => active() === 0;
    let terminated = 0;
    if (!(await waitUntil(allExited, this.config.drainTimeoutMs))) {
      const left = this.registry.runningProcesses();
      terminated = left.length;
      this.telemetry?.drain.terminating(terminated);
      this.logger.warn({ processes: left.length, terminateGraceMs: this.config.terminateGraceMs }, 'drain timeout: terminating the processes still running');
      for (const proc of left) proc.terminate();
      await waitUntil(allExited, this.config.terminateGraceMs + DRAIN_REAP_MS);
    }
    if (running > 0) await waitUntil(() => this.connections.size === 0, DRAIN_FLUSH_MS);
    const outcome = { running, terminated, durationMs: Math.round(performance.now() - started) };
    this.logger.info(outcome, 'drained');
    if (this.auditLog) DrainAudit.ended(this.auditLog, outcome);
    return outcome;
  }

  /** Records a client refused at the secure channel (in the audit log, with `--audit-log`). */
  clientRefused(refusal: { client: string | null; reason: 'client_not_authorized' | 'handshake_failed' }): void {
    if (this.auditLog) ClientRefusalAudit.refused(this.auditLog, refusal);
  }

  /** Ends every session (killing its processes). */
  shutdown(): void {
    this.registry.endAll();
  }
}

/** Resolves true once `done()` holds (checked every few ms), false after `timeoutMs`. */
async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(DRAIN_POLL_MS, Math.max(1, deadline - performance.now()))));
  }
  return true;
}
