import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import {
  CLIENT_CONNECT_PATTERN,
  EXECUTOR_CONNECT_PATH,
  RelayCloseCode,
  upgradeRefusalResponse,
  UpgradeRefusal,
  validateEnvironmentId,
  type RestartingMessage,
  type UpgradeRefusalReason,
} from '../src/relay-control/relay-endpoints.js';
import type { Logger } from '../src/logging/logger.js';
import { DEFAULT_RELAY_LIMITS, type RelayLimits } from './relay-config.js';
import { NO_RELAY_EVENTS, type RelayEvents } from './relay-events.js';
import type { AuditLog } from '../src/audit/audit-log.js';
import { RelayAudit, type UpgradeAuditContext } from './relay-audit.js';
import { NatsFleet, type FleetOptions, type FleetState } from './nats-fleet.js';
import { MemoryBindings, type EnvironmentBindings } from './environment-bindings.js';
import { ExecutorAdmission } from './executor-admission.js';
import { FleetBindings, openBindingsBucket } from './fleet-bindings.js';
import { PinnedEnvironmentKeys } from './pinned-environment-keys.js';
import { ClientLink, StreamRouter, type ExecutorLink } from './stream-router.js';
import type { RelayCredentials, RelayRole } from './relay-credentials.js';
import {
  CODEX_REGISTRY_PATH_PATTERN,
  CODEX_RENDEZVOUS_PATH,
  rendezvousRejectionResponse,
  RendezvousRejection,
  type CodexRegistryAction,
  type RendezvousRejectionReason,
} from '../src/codex-registry/registry-endpoints.js';
import type { HybridPublicKey } from '../src/noise-hybrid/hybrid-keys.js';
import { CodexRegistry } from './codex-registry.js';
import { CodexRendezvousRouter } from './codex-rendezvous-router.js';
import { RendezvousSigner, type RendezvousGrant } from './rendezvous-signer.js';

export interface RelayServerOptions {
  /** The accepted tokens, each with its role and scope (`replaceCredentials` swaps them while running). */
  credentials: RelayCredentials;
  logger: Logger;
  limits?: Partial<RelayLimits>;
  events?: RelayEvents;
  /** With `--audit-log`: registrations and refused upgrades, for the operator (relay-audit.ts). */
  auditLog?: AuditLog;
  /** PEM certificate and key: serve wss:// instead of ws://. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Extra HTTP routes (e.g. `/metrics` without `--metrics-listen`), answered before the built-in ones. */
  httpRoutes?: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>>;
  /** Join a fleet of relay instances sharing routing through NATS (default: route in memory, alone). */
  fleet?: FleetOptions;
  /**
   * Environment id → the agent identity it is bound to. Default: in memory for a single relay
   * (lost on restart; the CLI passes its state file), the fleet's NATS KV bucket with `fleet`.
   */
  bindings?: EnvironmentBindings;
  /** Operator-pinned keys (environment id → public identity): those environments accept only that key. */
  environmentKeys?: ReadonlyMap<string, string>;
}

/**
 * The rendezvous relay: executors register an environment over `/v1/executors/connect`, clients
 * reach it over `/v1/environments/{id}/connect`, and relay frames are routed between them by
 * stream id. Endpoints authenticate with bearer tokens; stream content is end-to-end encrypted
 * and never read here.
 */
export class RelayServer {
  readonly limits: RelayLimits;
  readonly router: StreamRouter;
  /** This instance's membership in a relay fleet (null: a single relay). */
  readonly fleet: NatsFleet | null;
  private readonly server: http.Server | https.Server;
  private readonly wss: WebSocketServer;
  private readonly events: RelayEvents;
  private readonly audit: RelayAudit | undefined;
  private readonly logger: Logger;
  private readonly admission: ExecutorAdmission;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly lastPong = new WeakMap<WebSocket, number>();
  /** Every live socket's credential, role and environment (re-checked when the credentials change). */
  private readonly grants = new Map<WebSocket, Grant>();
  private credentials: RelayCredentials;
  private ready = false;
  /** The codex-compatible registry and rendezvous (codex exec-server executors and their clients). */
  readonly codexRouter: CodexRendezvousRouter;
  private readonly codexRegistry: CodexRegistry;

  constructor(private readonly options: RelayServerOptions) {
    this.limits = { ...DEFAULT_RELAY_LIMITS, ...options.limits };
    this.events = options.events ?? NO_RELAY_EVENTS;
    this.audit = options.auditLog ? new RelayAudit(options.auditLog) : undefined;
    this.logger = options.logger;
    this.router = new StreamRouter(this.limits, this.events, this.logger);
    this.credentials = options.credentials;
    this.router.setTokenCounts({ client: this.credentials.countFor('client'), executor: this.credentials.countFor('executor') });
    this.codexRouter = new CodexRendezvousRouter(this.limits, this.logger, () => this.credentials.countFor('client'), this.events);
    this.fleet = options.fleet ? new NatsFleet(options.fleet, this.router, this.limits, this.events, this.logger, this.codexRouter) : null;
    const fleet = this.fleet;
    const bindings =
      options.bindings ??
      (fleet ? new FleetBindings(() => fleet.connection, (nc) => openBindingsBucket(nc, options.fleet?.registryReplicas ?? 1), this.limits.maxBindings) : new MemoryBindings(this.limits.maxBindings));
    const admittedBindings = options.environmentKeys ? new PinnedEnvironmentKeys(options.environmentKeys, bindings) : bindings;
    this.admission = new ExecutorAdmission(admittedBindings, this.limits.maxRecentProofs, this.logger);
    this.codexRegistry = new CodexRegistry({
      credentials: () => this.credentials,
      bindings: admittedBindings,
      signer: options.fleet?.secret ? RendezvousSigner.fromFleetSecret(options.fleet.secret) : new RendezvousSigner(),
      router: this.codexRouter,
      nativeExecutorLive: (environmentId) => this.router.hasLiveExecutor(environmentId),
      limits: this.limits,
      logger: this.logger,
      events: this.events,
      tls: options.tls !== undefined,
      ...(this.audit ? { audit: this.audit } : {}),
      ...(fleet ? { fleet } : {}),
    });
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handleHttp(req, res);
    this.server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler) : http.createServer(handler);
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.limits.maxFrameBytes * 2, perMessageDeflate: false });
    this.server.on('upgrade', (req, socket, head) => this.handleUpgrade(req, socket, head));
    this.server.on('clientError', (_error, socket) => socket.destroy());
    this.pingTimer = setInterval(() => this.pingAll(), this.limits.pingIntervalMs);
    this.pingTimer.unref();
  }

  /** Listening, and (in a fleet) joined: what `/readyz` answers. */
  get isReady(): boolean {
    return this.ready;
  }

  /** Client WebSockets connected now (a metrics gauge reads it at scrape time). */
  get clientCount(): number {
    return this.router.clientCount;
  }

  /** The fleet gauges (read at scrape time); undefined for a single relay. */
  get fleetState(): FleetState | undefined {
    return this.fleet?.state;
  }

  /** Bytes queued on all of the relay's sockets now (queue-depth gauge, read at scrape time). */
  get queuedBytes(): number {
    let total = 0;
    for (const socket of this.wss.clients) total += socket.bufferedAmount;
    return total;
  }

  /**
   * Listens on HOST:PORT (port 0 allowed) and resolves with the relay's base URL. A fleet member
   * first joins the fleet (waiting for NATS if needed); `/readyz` answers 503 until then.
   */
  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    if (this.fleet) {
      try {
        await this.fleet.start();
      } catch (error) {
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
        throw error;
      }
    }
    this.ready = true;
    const address = this.server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${this.options.tls ? 'wss' : 'ws'}://${shownHost}:${address.port}`;
  }

  /**
   * Stops the relay. Graceful: every endpoint is told `restarting` (so it reconnects at once) and
   * streams stay resumable on the next relay; otherwise sockets are dropped.
   */
  async close(options: { graceful?: boolean } = {}): Promise<void> {
    this.ready = false;
    clearInterval(this.pingTimer);
    this.router.stop();
    this.codexRouter.stop();
    // Stop accepting first: endpoints told to reconnect must land on another instance (or on the
    // restarted relay), not on this one while it winds down.
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const notice: RestartingMessage = { type: 'restarting' };
    for (const socket of this.wss.clients) {
      if (options.graceful && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(notice));
        socket.close(1012, 'relay restarting');
      } else {
        socket.terminate();
      }
    }
    await this.fleet?.stop();
    await closed;
  }

  /**
   * New accepted tokens (the token file changed): new upgrades are checked against them at once,
   * and every live socket whose token is gone, or no longer covers its role or environment, is
   * closed (`RelayCloseCode.CredentialRevoked`) after its streams are reset (`credential_revoked`).
   * Returns how many sockets were closed.
   */
  replaceCredentials(credentials: RelayCredentials): number {
    this.credentials = credentials;
    this.router.setTokenCounts({ client: credentials.countFor('client'), executor: credentials.countFor('executor') });
    let closed = 0;
    for (const [socket, grant] of [...this.grants]) {
      if (credentials.permits(grant.credentialId, grant.role, grant.environmentId)) continue;
      this.grants.delete(socket);
      if (grant.executor) this.router.revokeExecutor(grant.executor);
      if (grant.client) this.router.revokeClient(grant.client);
      socket.close(RelayCloseCode.CredentialRevoked, 'token revoked');
      closed++;
    }
    closed += this.codexRouter.revoke((credentialId, role, environmentId) => credentials.permits(credentialId, role, environmentId));
    return closed;
  }

  private async handleHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://relay').pathname;
    const extra = this.options.httpRoutes?.[path];
    try {
      if (extra && req.method === 'GET') return await extra(req, res);
      if (path === '/livez' && req.method === 'GET') return text(res, 200, 'ok\n');
      if (path === '/readyz' && req.method === 'GET') return text(res, this.ready ? 200 : 503, this.ready ? 'ready\n' : 'not ready\n');
      if (path === EXECUTOR_CONNECT_PATH || CLIENT_CONNECT_PATTERN.test(path) || path === CODEX_RENDEZVOUS_PATH) return text(res, 426, 'websocket upgrade required\n');
      const codex = CODEX_REGISTRY_PATH_PATTERN.exec(path);
      if (codex) return await this.codexRegistry.handle(req, res, codex[1]!, codex[2] as CodexRegistryAction);
      text(res, 404, 'not found\n');
    } catch (error) {
      this.logger.error({ err: (error as Error).message }, 'http handler failed');
      if (!res.headersSent) text(res, 500, 'internal error\n');
    }
  }

  private handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://relay');
    // What the audit log names about this upgrade, filled in as it is known.
    let audited: UpgradeAuditContext | undefined;
    const refuse = (refusal: UpgradeRefusalReason) => {
      if (audited) this.audit?.refused(req, audited, refusal);
      socket.end(upgradeRefusalResponse(refusal));
    };
    if (url.pathname === EXECUTOR_CONNECT_PATH) {
      const environmentId = url.searchParams.get('environmentId') ?? '';
      const check = this.credentials.check(req.headers.authorization, 'executor', environmentId);
      audited = { endpoint: 'executor', environmentId, ...(check.ok ? { tokenLine: check.credential.line } : {}) };
      if (!check.ok && check.refusal === UpgradeRefusal.Unauthorized) {
        this.events.authFailure('executor');
        this.events.registration('rejected');
        return refuse(UpgradeRefusal.Unauthorized);
      }
      const invalid = validateEnvironmentId(environmentId);
      if (invalid) {
        this.events.registration('rejected');
        return refuse(UpgradeRefusal.InvalidEnvironmentId);
      }
      if (!check.ok) {
        // A known token, for the other role or another environment.
        this.events.authFailure('executor');
        this.events.registration('rejected');
        return refuse(check.refusal);
      }
      if (this.codexRegistry.isLive(environmentId)) {
        this.events.registration('rejected');
        return refuse(UpgradeRefusal.EnvironmentInUse);
      }
      const credentialId = check.credential.id;
      const full = this.router.executorRefusal(environmentId, credentialId);
      if (full) {
        this.events.registration('rejected');
        return refuse(full);
      }
      // The agent proves its identity, and the environment is bound to it (refused: nothing changes).
      void this.admission.admit(req, environmentId).then((refusal) => {
        if (socket.destroyed) return;
        // Capacity is checked again: it may have changed while the proof and the binding were checked.
        refusal ??= this.router.executorRefusal(environmentId, credentialId);
        if (refusal) {
          this.events.registration('rejected');
          return refuse(refusal);
        }
        this.audit?.registered(req, audited!);
        this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptExecutor(ws, environmentId, credentialId));
      });
      return;
    }
    const match = CLIENT_CONNECT_PATTERN.exec(url.pathname);
    if (match) {
      let environmentId: string | null;
      try {
        environmentId = decodeURIComponent(match[1]!);
      } catch {
        environmentId = null;
      }
      const check = this.credentials.check(req.headers.authorization, 'client', environmentId ?? '');
      audited = { endpoint: 'client', environmentId, ...(check.ok ? { tokenLine: check.credential.line } : {}) };
      if (!check.ok && check.refusal === UpgradeRefusal.Unauthorized) {
        this.events.authFailure('client');
        return refuse(UpgradeRefusal.Unauthorized);
      }
      if (environmentId === null || validateEnvironmentId(environmentId)) return refuse(UpgradeRefusal.InvalidEnvironmentId);
      if (!check.ok) {
        this.events.authFailure('client');
        return refuse(check.refusal);
      }
      const credentialId = check.credential.id;
      const full = this.router.clientRefusal(credentialId);
      if (full) return refuse(full);
      const validId = environmentId;
      if (this.router.hasLiveExecutor(environmentId)) {
        this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptClient(ws, validId, credentialId));
        return;
      }
      if (!this.fleet) return refuse(UpgradeRefusal.ExecutorUnavailable);
      // Held by another instance of the fleet? The registry answers at once.
      this.fleet.environmentAvailable(environmentId).then(
        (available) => {
          if (socket.destroyed) return;
          if (!available) return refuse(UpgradeRefusal.ExecutorUnavailable);
          this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptClient(ws, validId, credentialId));
        },
        () => {
          if (!socket.destroyed) refuse(UpgradeRefusal.FleetUnavailable);
        },
      );
      return;
    }
    if (url.pathname === CODEX_RENDEZVOUS_PATH) return this.handleCodexUpgrade(req, socket, head, url);
    refuse(UpgradeRefusal.NotFound);
  }

  /** A codex rendezvous socket: the signed URL says who it is (executor or harness), for which registration. */
  private handleCodexUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    const verified = this.codexRegistry.verifyRendezvousQuery(url.searchParams);
    if (!verified.ok) return void socket.end(rendezvousRejectionResponse(verified.rejection));
    const { grant } = verified;
    // A codex executor answers a 4xx by registering again, and anything else by reconnecting.
    const reject = (rejection: RendezvousRejectionReason) => void socket.end(rendezvousRejectionResponse(rejection));
    const role: RelayRole = grant.role === 'executor' ? 'executor' : 'client';
    if (!this.credentials.permits(grant.credentialId, role, grant.environmentId)) return reject(RendezvousRejection.InvalidSignature);
    if (grant.role === 'executor') {
      // An executor's socket opens where it registered.
      const registration = this.codexRegistry.registration(grant.environmentId);
      if (!registration) return reject(RendezvousRejection.UnknownRoute);
      if (registration.registrationId !== grant.registrationId) return reject(RendezvousRejection.UnexpectedRegistrationId);
      const refusal = this.codexRouter.executorRefusal(grant.environmentId);
      if (refusal) return reject(refusal);
      return this.acceptCodexSocket(req, socket, head, grant, registration.executorKey, false);
    }
    // A harness's may open on any instance of a fleet: the registration is looked up fleet-wide.
    void this.codexRegistry.findRegistration(grant.environmentId).then(
      (found) => {
        if (socket.destroyed) return;
        if (!found) return reject(RendezvousRejection.UnknownRoute);
        if (found.registration.registrationId !== grant.registrationId) return reject(RendezvousRejection.UnexpectedRegistrationId);
        const refusal = this.codexRouter.harnessRefusal(grant.environmentId, grant.registrationId, grant.credentialId, !found.here);
        if (refusal) return reject(refusal);
        this.acceptCodexSocket(req, socket, head, grant, null, !found.here);
      },
      () => {
        if (!socket.destroyed) reject(RendezvousRejection.RouteUnavailable);
      },
    );
  }

  /** Opens a codex rendezvous socket (executor or harness; `elsewhere`: a harness whose executor another fleet instance holds). */
  private acceptCodexSocket(req: http.IncomingMessage, socket: Duplex, head: Buffer, grant: RendezvousGrant, executorKey: HybridPublicKey | null, elsewhere: boolean): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.watchLiveness(ws);
      if (grant.role === 'executor') {
        const link = this.codexRouter.executorConnected(ws, grant.environmentId, grant.registrationId, grant.credentialId, executorKey ?? undefined);
        this.logger.info('codex executor connected');
        ws.on('message', (data, isBinary) => {
          if (isBinary) this.codexRouter.fromExecutor(link, data as Buffer);
        });
        ws.on('close', () => {
          this.codexRouter.executorClosed(link);
          this.logger.info('codex executor disconnected');
        });
      } else {
        const link =
          elsewhere && this.fleet
            ? this.fleet.harnessLink(ws, grant.environmentId, grant.registrationId, grant.credentialId)
            : this.codexRouter.harnessConnected(ws, grant.environmentId, grant.registrationId, grant.credentialId);
        ws.on('message', (data, isBinary) => {
          if (isBinary) this.codexRouter.fromHarness(link, data as Buffer);
        });
        ws.on('close', () => this.codexRouter.harnessClosed(link));
      }
      ws.on('error', () => undefined);
    });
  }

  private acceptExecutor(socket: WebSocket, environmentId: string, credentialId: string): void {
    this.watchLiveness(socket);
    const link: ExecutorLink = this.router.registerExecutor(socket, environmentId, credentialId);
    this.grants.set(socket, { role: 'executor', environmentId, credentialId, executor: link });
    this.logger.info('executor registered');
    socket.on('message', (data, isBinary) => {
      if (isBinary) this.router.fromExecutor(link, data as Buffer);
    });
    socket.on('close', () => {
      this.grants.delete(socket);
      this.router.executorClosed(link);
      this.logger.info('executor disconnected');
    });
    socket.on('error', () => undefined);
  }

  private acceptClient(socket: WebSocket, environmentId: string, credentialId: string): void {
    this.watchLiveness(socket);
    // In a fleet the link also reaches an executor held by another instance.
    const client = this.fleet?.clientLink(socket, environmentId, credentialId) ?? new ClientLink(socket, environmentId, credentialId);
    this.router.clientConnected(client);
    this.grants.set(socket, { role: 'client', environmentId, credentialId, client });
    socket.on('message', (data, isBinary) => {
      if (isBinary) this.router.fromClient(client, data as Buffer);
    });
    socket.on('close', () => {
      this.grants.delete(socket);
      this.router.clientClosed(client);
    });
    socket.on('error', () => undefined);
  }

  private watchLiveness(socket: WebSocket): void {
    this.lastPong.set(socket, Date.now());
    // Anything received proves the link alive: a pong may queue behind a busy socket's data.
    const heard = () => this.lastPong.set(socket, Date.now());
    socket.on('pong', heard);
    socket.on('ping', heard);
    socket.on('message', heard);
  }

  private pingAll(): void {
    const now = Date.now();
    for (const socket of this.wss.clients) {
      if (now - (this.lastPong.get(socket) ?? now) > this.limits.pongTimeoutMs) {
        this.events.heartbeatMissed();
        socket.terminate();
        continue;
      }
      if (socket.readyState === WebSocket.OPEN) socket.ping();
    }
  }
}

/** What a live socket was let in as. */
interface Grant {
  readonly role: RelayRole;
  readonly environmentId: string;
  readonly credentialId: string;
  readonly executor?: ExecutorLink;
  readonly client?: ClientLink;
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(body);
}
