import WebSocket from 'ws';
import { decodeRelayFrame, encodeRelayFrame, peekHeader, type RelayFrameHeader } from '../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../src/relay-frame/limits.js';
import {
  RelayCloseCode,
  ResetReason,
  UpgradeRefusal,
  type RegisteredMessage,
  type ResetReasonValue,
  type UpgradeRefusalReason,
} from '../src/relay-control/relay-endpoints.js';
import type { Logger } from '../src/logging/logger.js';
import { corkForThisTurn } from '../src/transport/burst-cork.js';
import type { RelayLimits } from './relay-config.js';
import type { SecurityProfile } from '../src/telemetry/labels.js';
import type { RelayEvents } from './relay-events.js';
import { RetiredStreamIds } from './retired-stream-ids.js';

/** The `security_profile` of every stream routed here: execrelay's own Noise XX. */
const SECURITY_PROFILE: SecurityProfile = 'classical';

/**
 * What the router needs of a socket it forwards frames to: a WebSocket, or (in a relay fleet) an
 * endpoint held by another instance and reached through NATS: a client socket there
 * (`RemoteClientSocket`), or the executor of a client socket here (`ExecutorElsewhere`).
 */
export interface FrameSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  /** `false`: the frame could not be passed on (NATS is down, for a remote client socket). */
  send(data: Uint8Array | string, options?: { binary?: boolean }): boolean | void;
  pause(): void;
  resume(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

/**
 * In a relay fleet, how one client socket here reaches its environment's executor while another
 * instance holds it (`RemoteExecutorSocket`): a frame sent is published to that instance, whose
 * router routes it on. It never queues here and cannot be paused.
 */
export interface ExecutorElsewhere extends FrameSocket {
  /**
   * A new stream (`open`) starts through it. The fleet makes sure some instance still holds the
   * environment, and calls the router's `executorUnavailable` if none does.
   */
  streamOpened(client: ClientLink, streamId: string): void;
  /**
   * The client socket closed. `detach`: some of its streams went through the fleet, and the
   * executor's instance is to give them the client grace.
   */
  clientClosed(detach: boolean): void;
}

/**
 * What a relay fleet (`NatsFleet`) hears from the router about the environments it holds. The
 * embedded single-instance relay has none.
 */
export interface EnvironmentWatcher {
  /**
   * An executor registered here for the environment (first time, again, or replacing a link).
   * The executor is told `registered` when the returned promise settles.
   */
  linkUp(environmentId: string, registeredAt: number): Promise<void> | void;
  /** The environment's executor link dropped; its streams wait `executorGraceMs` for it. */
  linkDown(environmentId: string): void;
  /** The router forgot the environment (its grace ran out, or another instance took it over). */
  forgotten(environmentId: string): void;
  /**
   * The executor sent a frame for a stream with no route here and no client socket here carries
   * the stream (the executor moved to this instance, or this instance restarted): the fleet passes
   * it to the instance holding the stream's client, which claims the stream (`claimStream`).
   */
  orphanFrame(environmentId: string, data: Buffer): void;
}

/** The relay's side of one executor WebSocket. */
export class ExecutorLink {
  constructor(
    readonly socket: WebSocket,
    readonly environment: Environment,
    /** The credential (token) it registered with (`RelayCredential.id`). */
    readonly credentialId: string,
  ) {}
}

/** The relay's side of one client socket. */
export class ClientLink {
  /**
   * The streams this socket carries: routed here, or (in a fleet) through the instance holding
   * the executor. Kept by the router alone.
   */
  readonly streams = new Set<string>();
  /** A client socket held by another fleet instance (reached through NATS). */
  readonly remote: boolean;
  /** In a fleet: this (local) client socket's way to its executor while another instance holds it. */
  readonly elsewhere: ExecutorElsewhere | null;
  /** Its streams that failed their handshake since the last one accepted (`maxFailedHandshakesPerClient`). */
  failedHandshakes = 0;
  constructor(
    readonly socket: FrameSocket,
    readonly environmentId: string,
    /** The credential (token) the client connected with (`RelayCredential.id`); in a fleet, named in its subject. */
    readonly credentialId: string,
    options: { remote?: boolean; elsewhere?: ExecutorElsewhere } = {},
  ) {
    this.remote = options.remote ?? false;
    this.elsewhere = options.elsewhere ?? null;
  }
}

/** One routed stream: which client socket and which environment it joins. */
interface Route {
  readonly streamId: string;
  readonly environment: Environment;
  /** The credential of the client that opened it: only a socket with the same one may take it over. */
  readonly credentialId: string;
  /**
   * Made by a `resume` for a stream this relay did not know (it restarted, or it is a guess): it
   * counts as pending for its client and token until the executor sends a frame for it.
   */
  readonly resumed: boolean;
  client: ClientLink | null;
  /** The executor accepted the stream (`open` back) or, for a resumed one, confirmed it with any frame. */
  accepted: boolean;
  openedAt: number;
  lastFrameAt: number;
  clientGoneAt: number;
}

/** One token's use of one environment: what `tokenShareOfEnvironment` and the failed-handshake window bound. */
interface TokenShare {
  streams: number;
  pendingOpens: number;
  /** When its recent handshakes failed (within `failedHandshakeWindowMs`), oldest first. */
  failures: number[];
  coolDownUntil: number;
}

/** An environment id, the executor link serving it (null while it reconnects) and its streams. */
export class Environment {
  link: ExecutorLink | null = null;
  readonly routes = new Map<string, Route>();
  /** Opens (not resumes) the executor has not accepted yet. */
  pendingOpens = 0;
  linkLostAt = 0;
  /** When the current executor link registered: a stream's handshake time counts from then at the earliest. */
  linkUpAt = 0;
  /** Per credential id. */
  readonly shares = new Map<string, TokenShare>();
  constructor(readonly id: string) {}
}

/**
 * Routes relay frames by stream id between client sockets and executor sockets, reading nothing
 * but each frame's header. The one place every relay limit is checked: executors and client
 * sockets at once, streams per executor and per client socket, pending opens, failed handshakes,
 * socket queues, the handshake and idle timeouts, and the reconnect grace periods. Each limit has
 * one check below; every refusal of a stream is a `reset` frame with a reason from the fixed set.
 */
export class StreamRouter {
  private readonly environments = new Map<string, Environment>();
  /** Client sockets held here (not those of other fleet instances), by environment. */
  private readonly localClients = new Map<string, Set<ClientLink>>();
  private clients = 0;
  /** Local client sockets and live executor links, per credential id. */
  private readonly clientsByCredential = new Map<string, number>();
  private readonly executorsByCredential = new Map<string, number>();
  /**
   * Whether more than one token may connect clients / register executors: only then are the
   * per-token shares applied (a token alone in its role may use everything).
   */
  private sharedClientTokens = false;
  private sharedExecutorTokens = false;
  /** Every live route by stream id (stream ids are unique across environments). */
  private readonly routesById = new Map<string, Route>();
  private readonly retired: RetiredStreamIds;
  private readonly sweepTimer: NodeJS.Timeout;

  /** Set by a relay fleet (`NatsFleet`) before any executor registers. */
  watcher: EnvironmentWatcher | null = null;

  constructor(
    private readonly limits: RelayLimits,
    private readonly events: RelayEvents,
    private readonly logger: Logger,
  ) {
    this.retired = new RetiredStreamIds(limits.retiredStreamIds);
    const sweepEvery = Math.max(
      50,
      Math.min(1000, limits.handshakeTimeoutMs / 4, limits.idleTimeoutMs / 4, limits.clientGraceMs / 4, limits.executorGraceMs / 4),
    );
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), sweepEvery);
    this.sweepTimer.unref();
  }

  get executorCount(): number {
    let count = 0;
    for (const env of this.environments.values()) if (env.link) count++;
    return count;
  }

  get streamCount(): number {
    return this.routesById.size;
  }

  /** Client sockets connected here now. */
  get clientCount(): number {
    return this.clients;
  }

  /** How many accepted tokens may act in each role (the relay tells, at start and on every re-read of its token file). */
  setTokenCounts(counts: { client: number; executor: number }): void {
    this.sharedClientTokens = counts.client > 1;
    this.sharedExecutorTokens = counts.executor > 1;
  }

  /**
   * `maxClients` and the token's share of it (`tokenShareOfRelay`): why one more client socket of
   * this credential may not connect, or null.
   */
  clientRefusal(credentialId: string): UpgradeRefusalReason | null {
    if (this.clients >= this.limits.maxClients) return UpgradeRefusal.TooManyClients;
    if (this.sharedClientTokens && (this.clientsByCredential.get(credentialId) ?? 0) >= portion(this.limits.maxClients, this.limits.tokenShareOfRelay)) {
      return UpgradeRefusal.TooManyClientsForToken;
    }
    return null;
  }

  /**
   * `maxExecutors` and the token's share of it: why this environment's executor may not register
   * with this credential, or null. One that replaces a live link always may, and within its
   * token's share if the link it replaces has the same token.
   */
  executorRefusal(environmentId: string, credentialId: string): UpgradeRefusalReason | null {
    const live = this.environments.get(environmentId)?.link;
    if (!live && this.executorCount >= this.limits.maxExecutors) return UpgradeRefusal.TooManyExecutors;
    if (
      this.sharedExecutorTokens &&
      live?.credentialId !== credentialId &&
      (this.executorsByCredential.get(credentialId) ?? 0) >= portion(this.limits.maxExecutors, this.limits.tokenShareOfRelay)
    ) {
      return UpgradeRefusal.TooManyExecutorsForToken;
    }
    return null;
  }

  hasLiveExecutor(environmentId: string): boolean {
    return Boolean(this.environments.get(environmentId)?.link);
  }

  /**
   * Attaches a stream to `client` without a frame from it: a fleet instance that holds the
   * stream's client socket claims a stream whose route this instance does not know (its executor
   * just moved here). A claim only binds a route nobody holds (an instance may claim from a
   * half-open socket the client already left); the client's own frames are what move a route
   * between live sockets. Returns whether the route is now the client's.
   */
  claimStream(client: ClientLink, streamId: string): boolean {
    const environment = this.environments.get(client.environmentId);
    if (!environment?.link) return false;
    const route = environment.routes.get(streamId);
    if (route) {
      const unheld = route.client === null || route.client.socket.readyState !== WebSocket.OPEN;
      if (unheld && route.credentialId === client.credentialId) this.takeOver(route, client);
      return route.client === client;
    }
    if (this.retired.has(streamId) || this.routesById.has(streamId)) return false;
    if (!this.clientHasRoom(client, streamId) || !this.executorHasRoom(environment) || !this.tokenHasRoom(environment, client.credentialId)) return false;
    // The executor's own frame for the stream is what asked for the claim: it is confirmed.
    this.addRoute(client, streamId, environment, { resumed: true, accepted: true });
    return true;
  }

  /**
   * Another fleet instance holds a newer registration of this environment: close the executor
   * link here (4001, as for a local replacement) and forget its routes without resetting them —
   * the streams go on through the other instance.
   */
  releaseEnvironment(environmentId: string): void {
    const environment = this.environments.get(environmentId);
    if (!environment) return;
    const link = environment.link;
    this.setLink(environment, null);
    if (link) {
      this.events.registration('replaced');
      link.socket.close(RelayCloseCode.Replaced, 'replaced by a newer registration');
    }
    for (const route of environment.routes.values()) {
      this.routesById.delete(route.streamId);
      // A local client socket keeps counting the stream (it now flows through the fleet); a
      // remote one is no longer this instance's concern.
      if (route.client?.remote) route.client.streams.delete(route.streamId);
      this.events.streamEnded('moved', SECURITY_PROFILE);
    }
    environment.routes.clear();
    environment.shares.clear();
    environment.pendingOpens = 0;
    this.forgetEnvironment(environment);
  }

  /** A newly authenticated executor socket takes over its environment (replacing an older link). */
  registerExecutor(socket: WebSocket, environmentId: string, credentialId: string): ExecutorLink {
    let environment = this.environments.get(environmentId);
    if (!environment) {
      environment = new Environment(environmentId);
      this.environments.set(environmentId, environment);
    }
    const previous = environment.link;
    const link = new ExecutorLink(socket, environment, credentialId);
    this.setLink(environment, link);
    environment.linkLostAt = 0;
    environment.linkUpAt = Date.now();
    if (previous) {
      this.events.registration('replaced');
      previous.socket.close(RelayCloseCode.Replaced, 'replaced by a newer registration');
    } else {
      this.events.registration('registered');
    }
    const registered: RegisteredMessage = { type: 'registered', environmentId, resumableStreams: environment.routes.size };
    const confirm = () => {
      if (environment.link === link && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(registered));
    };
    // In a fleet the agent hears `registered` once other instances can find it too.
    const announced = this.watcher?.linkUp(environmentId, Date.now());
    if (announced) void announced.then(confirm, confirm);
    else confirm();
    return link;
  }

  executorClosed(link: ExecutorLink): void {
    const environment = link.environment;
    if (environment.link !== link) return; // already replaced
    this.setLink(environment, null);
    environment.linkLostAt = Date.now();
    this.watcher?.linkDown(environment.id);
  }

  /**
   * The executor's token was revoked: its streams are reset (`credential_revoked`) and its
   * environment forgotten; the caller closes the socket.
   */
  revokeExecutor(link: ExecutorLink): void {
    const environment = link.environment;
    if (environment.link !== link) return;
    this.executorClosed(link);
    for (const route of [...environment.routes.values()]) this.resetRoute(route, ResetReason.CredentialRevoked, false);
    this.forgetEnvironment(environment);
  }

  /**
   * A client socket's token was revoked: its streams are reset (`credential_revoked`) towards
   * their executor, here or through the fleet; the caller closes the socket.
   */
  revokeClient(client: ClientLink): void {
    for (const streamId of [...client.streams]) {
      const route = this.routesById.get(streamId);
      if (route && route.client === client) this.resetRoute(route, ResetReason.CredentialRevoked);
      else if (!route && client.elsewhere) client.elsewhere.send(resetFrame(streamId, ResetReason.CredentialRevoked), { binary: true });
      client.streams.delete(streamId);
    }
  }

  /** Sets the environment's executor link, keeping the per-credential executor counts. */
  private setLink(environment: Environment, link: ExecutorLink | null): void {
    const previous = environment.link;
    if (previous) bump(this.executorsByCredential, previous.credentialId, -1);
    environment.link = link;
    if (link) bump(this.executorsByCredential, link.credentialId, 1);
  }

  /** A client socket connected here. */
  clientConnected(client: ClientLink): void {
    if (client.remote) return;
    this.clients += 1;
    bump(this.clientsByCredential, client.credentialId, 1);
    let group = this.localClients.get(client.environmentId);
    if (!group) {
      group = new Set();
      this.localClients.set(client.environmentId, group);
    }
    group.add(client);
  }

  /** A client socket closed (or, in a fleet, one of another instance is gone). */
  clientClosed(client: ClientLink): void {
    const group = this.localClients.get(client.environmentId);
    if (group?.delete(client)) {
      this.clients -= 1;
      bump(this.clientsByCredential, client.credentialId, -1);
      if (group.size === 0) this.localClients.delete(client.environmentId);
    }
    const now = Date.now();
    let throughFleet = false;
    for (const streamId of client.streams) {
      const route = this.environments.get(client.environmentId)?.routes.get(streamId);
      if (route && route.client === client) {
        route.client = null;
        route.clientGoneAt = now;
      } else if (!this.routesById.has(streamId)) {
        throughFleet = true;
      }
    }
    client.streams.clear();
    client.elsewhere?.clientClosed(throughFleet);
  }

  /** A binary message from a client socket. */
  fromClient(client: ClientLink, data: Buffer): void {
    // A client that does not read what the relay answers it (refusals of its opens, resets) is
    // not read either until it catches up: a flood of opens costs the relay a bounded queue.
    if (this.congested(client.socket)) this.pauseUntilDrained(client.socket, client.socket);
    const header = this.readHeader(data, client.socket);
    if (!header) return;
    const environment = this.environments.get(client.environmentId);
    if (!environment && client.elsewhere) {
      this.toExecutorElsewhere(client, client.elsewhere, header, data);
      return;
    }
    const route = environment?.routes.get(header.streamId);
    if (!route && header.type === 'reset') return; // nothing to tell anyone
    if (!route && (header.type === 'open' || header.type === 'resume')) {
      // `resume` for a stream this relay does not know: the client outlived a relay restart and
      // continues its stream through this instance.
      this.openStream(client, header.streamId, environment, data, header.type === 'resume');
      return;
    }
    if (!route || !environment) {
      // Dropped, not reset: after a relay restart the endpoints resume their streams here.
      this.events.frameDropped('no_route');
      return;
    }
    if (route.client !== client) {
      // A reconnected client claims its stream with `resume` (or a repeated `open`). The old
      // socket may still look open here: a half-open link is only noticed by the ping timeout,
      // and the client, which noticed first, is already back. The stream id (122 random bits,
      // known to the two endpoints and this relay only) is what entitles the claim, so the new
      // socket takes the stream over. Anything else from another socket is refused.
      // Across a fleet any frame of the client's counts: a route may have been bound by a claim
      // from an instance still holding the client's abandoned socket.
      // Only a socket of the credential that opened the stream may take it over.
      const claim =
        route.credentialId === client.credentialId && (header.type === 'resume' || header.type === 'open' || client.remote || route.client?.remote === true);
      if (!claim) {
        if (header.type !== 'reset') this.resetTo(client.socket, header.streamId, ResetReason.StreamIdInUse);
        this.events.frameDropped('no_route');
        return;
      }
      if (!this.clientHasRoom(client, route.streamId)) {
        this.resetTo(client.socket, header.streamId, ResetReason.TooManyStreams);
        return;
      }
      this.takeOver(route, client);
    }
    route.lastFrameAt = Date.now();
    if (environment.link) this.forward(environment.link.socket, data, 'client_to_executor', client.socket);
    else this.events.frameDropped('endpoint_detached');
    if (header.type === 'reset' || header.type === 'close') this.endRoute(route, header.type === 'reset' ? 'reset' : 'closed');
  }

  /**
   * A client frame for an environment another fleet instance holds: it goes to that instance,
   * whose router routes it on (and applies the executor's limits). Here the client socket's own
   * limit applies, and a new stream must start with `open` or `resume`.
   */
  private toExecutorElsewhere(client: ClientLink, executor: ExecutorElsewhere, header: RelayFrameHeader, data: Buffer): void {
    const streamId = header.streamId;
    if (!client.streams.has(streamId)) {
      if (header.type !== 'open' && header.type !== 'resume') {
        this.events.frameDropped('no_route');
        return;
      }
      if (!this.clientHasRoom(client, streamId)) {
        this.resetTo(client.socket, streamId, ResetReason.TooManyStreams);
        return;
      }
      client.streams.add(streamId);
      if (header.type === 'open') executor.streamOpened(client, streamId);
    }
    this.forward(executor, data, 'client_to_executor', client.socket);
    if (header.type === 'reset' || header.type === 'close') client.streams.delete(streamId);
  }

  /**
   * The fleet found no instance holding the environment of a stream opened through it: the stream
   * is refused (`executor_unavailable`), unless it is routed here by now.
   */
  executorUnavailable(client: ClientLink, streamId: string): void {
    if (!client.streams.has(streamId) || this.routesById.has(streamId)) return;
    client.streams.delete(streamId);
    this.resetTo(client.socket, streamId, ResetReason.ExecutorUnavailable);
  }

  /**
   * A frame from the executor of a client socket here, passed on by the instance holding that
   * executor. Returns false when it is not a relay frame (dropped as `invalid`).
   */
  fromExecutorElsewhere(client: ClientLink, data: Buffer): boolean {
    const peeked = peekHeader(data);
    if (!peeked.ok) {
      this.events.frameDropped('invalid');
      return false;
    }
    this.toClientFromElsewhere(client, peeked.header, data);
    return true;
  }

  /**
   * An executor frame that its environment's holder had no route for (the executor just moved
   * there), passed to every instance with client sockets for the environment. The client socket
   * here that carries the stream gets it, unless it is the executor repeating its acceptance
   * (`open`), which is for the relay. Returns the frame's header and that client socket (which the
   * fleet claims the stream for), or null when it is not a relay frame.
   */
  orphanFromElsewhere(environmentId: string, data: Buffer): { header: RelayFrameHeader; client: ClientLink | undefined } | null {
    const peeked = peekHeader(data);
    if (!peeked.ok) return null;
    const header = peeked.header;
    const client = this.localClientCarrying(environmentId, header.streamId);
    if (client && header.type !== 'open') this.toClientFromElsewhere(client, header, data);
    return { header, client };
  }

  private toClientFromElsewhere(client: ClientLink, header: RelayFrameHeader, data: Buffer): void {
    if (!client.streams.has(header.streamId) && header.type !== 'reset') {
      this.events.frameDropped('no_route');
      return;
    }
    if (header.type === 'reset' || header.type === 'close') client.streams.delete(header.streamId);
    this.forward(client.socket, data, 'executor_to_client', null);
  }

  /** The client socket here (if any) that carries the stream. */
  private localClientCarrying(environmentId: string, streamId: string): ClientLink | undefined {
    for (const client of this.localClients.get(environmentId) ?? []) if (client.streams.has(streamId)) return client;
    return undefined;
  }

  /** A reconnected client (its new socket) takes a stream over from its previous socket. */
  private takeOver(route: Route, client: ClientLink): void {
    const previous = route.client;
    route.client = client;
    route.clientGoneAt = 0;
    client.streams.add(route.streamId);
    if (previous) {
      previous.streams.delete(route.streamId);
      // A superseded socket that carries nothing else is the client's dead link: drop it now
      // rather than at its ping timeout.
      if (previous.streams.size === 0) previous.socket.terminate();
    }
  }

  /** A binary message from an executor socket. */
  fromExecutor(link: ExecutorLink, data: Buffer): void {
    const header = this.readHeader(data, link.socket);
    if (!header) return;
    const environment = link.environment;
    if (environment.link !== link) return; // a replaced link's last words
    let route = environment.routes.get(header.streamId);
    if (!route && !this.retired.has(header.streamId)) route = this.adoptOrphan(environment, header.streamId, data);
    if (!route) {
      this.events.frameDropped('no_route');
      // A stream this relay ended (reset or closed while the agent was away, e.g. its client's
      // grace ran out) is reset towards the agent too, so it does not keep the stream open. A
      // stream merely unknown (this relay restarted) is left alone: its client will resume it.
      if (this.retired.has(header.streamId) && header.type !== 'reset' && header.type !== 'close') {
        this.resetTo(link.socket, header.streamId, ResetReason.StreamIdRetired);
      }
      return;
    }
    route.lastFrameAt = Date.now();
    if (header.type === 'open') {
      if (route.accepted || route.resumed) {
        // The agent repeats its acceptance after re-registering (for a relay that restarted and
        // lost the route): nothing the client needs, but it confirms a resumed stream.
        if (!route.accepted) this.accept(route);
        return;
      }
      // The agent accepts a stream (its Noise handshake completed) by answering `open`.
      this.accept(route);
      this.events.streamAccepted(Date.now() - route.openedAt, SECURITY_PROFILE);
    } else if (!route.accepted && route.resumed && header.type !== 'reset') {
      // The executor knows the resumed stream: it is a real one.
      this.accept(route);
    }
    // A failed handshake: the executor refused a stream it had not accepted, for a reason other
    // than its own capacity. It counts against the client and its token, never the executor.
    if (header.type === 'reset' && !route.accepted && !isCapacityRefusal(data)) this.handshakeFailed(route);
    if (route.client) this.forward(route.client.socket, data, 'executor_to_client', null);
    else this.events.frameDropped('endpoint_detached');
    if (header.type === 'reset' || header.type === 'close') this.endRoute(route, header.type === 'reset' ? 'reset' : 'closed');
  }

  /**
   * An executor frame for a stream with no route here (in a fleet: the executor just moved to this
   * instance). A client socket here that carries the stream gets the route at once; otherwise the
   * fleet passes the frame to the instance holding the stream's client, which claims it.
   */
  private adoptOrphan(environment: Environment, streamId: string, data: Buffer): Route | undefined {
    const client = this.localClientCarrying(environment.id, streamId);
    if (client) return this.claimStream(client, streamId) ? environment.routes.get(streamId) : undefined;
    this.watcher?.orphanFrame(environment.id, data);
    return undefined;
  }

  /** Graceful shutdown: every stream is reset so endpoints know at once. */
  shutdown(): void {
    clearInterval(this.sweepTimer);
    for (const environment of this.environments.values()) {
      for (const route of [...environment.routes.values()]) this.resetRoute(route, ResetReason.RelayShutdown, false);
    }
  }

  /** Stops timers without touching streams (the relay is going away and endpoints will resume elsewhere). */
  stop(): void {
    clearInterval(this.sweepTimer);
  }

  private openStream(client: ClientLink, streamId: string, environment: Environment | undefined, data: Buffer, resumed: boolean): void {
    const refuse = (reason: ResetReasonValue) => {
      this.resetTo(client.socket, streamId, reason);
    };
    // A `resume` may arrive while the executor is reconnecting (within its grace): the route is
    // made and frames wait for the executor (the endpoints retransmit). A new stream needs it now.
    if (!environment || (!environment.link && (!resumed || environment.linkLostAt === 0))) return refuse(ResetReason.ExecutorUnavailable);
    if (this.retired.has(streamId)) return refuse(ResetReason.StreamIdRetired);
    if (this.streamInUseElsewhere(streamId)) return refuse(ResetReason.StreamIdInUse);
    if (!this.clientHasRoom(client, streamId)) return refuse(ResetReason.TooManyStreams);
    if (!this.executorHasRoom(environment)) return refuse(ResetReason.TooManyStreams);
    if (!this.tokenHasRoom(environment, client.credentialId)) return refuse(ResetReason.TooManyStreams);
    if (this.tokenCoolingDown(environment, client.credentialId, Date.now())) return refuse(ResetReason.TooManyFailedHandshakes);
    if (!this.clientPendingHasRoom(client)) return refuse(ResetReason.TooManyPendingOpens);
    if (!this.tokenPendingHasRoom(environment, client.credentialId)) return refuse(ResetReason.TooManyPendingOpens);
    // Resumes do not count towards the executor's total: after a relay restart every stream
    // resumes at once. They do count towards their client's and token's pending opens.
    if (!resumed && !this.pendingOpensHaveRoom(environment)) return refuse(ResetReason.TooManyPendingOpens);
    this.addRoute(client, streamId, environment, { resumed, accepted: false });
    if (environment.link) this.forward(environment.link.socket, data, 'client_to_executor', client.socket);
    else this.events.frameDropped('endpoint_detached');
  }

  private addRoute(client: ClientLink, streamId: string, environment: Environment, kind: { resumed: boolean; accepted: boolean }): void {
    const now = Date.now();
    const route: Route = {
      streamId,
      environment,
      credentialId: client.credentialId,
      resumed: kind.resumed,
      client,
      accepted: kind.accepted,
      openedAt: now,
      lastFrameAt: now,
      clientGoneAt: 0,
    };
    environment.routes.set(streamId, route);
    this.routesById.set(streamId, route);
    const share = this.tokenShare(environment, route.credentialId);
    share.streams += 1;
    if (!route.accepted) {
      share.pendingOpens += 1;
      if (!route.resumed) environment.pendingOpens += 1;
    }
    client.streams.add(streamId);
    this.events.streamOpened(SECURITY_PROFILE);
  }

  /** The executor accepted (or, for a resumed stream, confirmed) the stream. */
  private accept(route: Route): void {
    if (route.accepted) return;
    route.accepted = true;
    this.tokenShare(route.environment, route.credentialId).pendingOpens -= 1;
    if (!route.resumed) route.environment.pendingOpens -= 1;
    if (route.client) route.client.failedHandshakes = 0;
  }

  /**
   * A stream failed its handshake (the executor refused it, or it timed out): counted against its
   * client socket (`maxFailedHandshakesPerClient`: the socket is closed) and its token (the
   * failed-handshake window: its new streams wait out a cool-down).
   */
  private handshakeFailed(route: Route): void {
    const now = Date.now();
    const client = route.client;
    if (client && !client.remote) {
      client.failedHandshakes += 1;
      if (this.tooManyFailedHandshakes(client) && client.socket.readyState === WebSocket.OPEN) {
        this.logger.warn('closing a client socket after repeated failed handshakes');
        client.socket.close(RelayCloseCode.TooManyFailedHandshakes, 'too many failed handshakes');
      }
    }
    const share = this.tokenShare(route.environment, route.credentialId);
    share.failures.push(now);
    this.trimFailures(share, now);
    if (this.tokenFailedTooOften(share) && share.coolDownUntil <= now) {
      this.logger.warn('a token failed too many handshakes towards an environment; its new streams there wait out a cool-down');
      share.coolDownUntil = now + this.limits.failedHandshakeCooldownMs;
      share.failures.length = 0;
    }
  }

  private tokenShare(environment: Environment, credentialId: string): TokenShare {
    let share = environment.shares.get(credentialId);
    if (!share) {
      share = { streams: 0, pendingOpens: 0, failures: [], coolDownUntil: 0 };
      environment.shares.set(credentialId, share);
    }
    return share;
  }

  private trimFailures(share: TokenShare, now: number): void {
    const since = now - this.limits.failedHandshakeWindowMs;
    let stale = 0;
    while (stale < share.failures.length && share.failures[stale]! <= since) stale++;
    if (stale > 0) share.failures.splice(0, stale);
  }

  /** Streams of the client socket that the executor has not accepted (or confirmed) yet. */
  private pendingOf(client: ClientLink): number {
    let pending = 0;
    for (const streamId of client.streams) {
      const route = this.routesById.get(streamId);
      if (route && !route.accepted) pending++;
    }
    return pending;
  }

  private streamInUseElsewhere(streamId: string): boolean {
    return this.routesById.has(streamId);
  }

  // -------------------------------------------------------------------------------------------
  // The limits: each checked here and nowhere else.

  /** `maxStreamsPerClient`: room on the client socket for the stream (one it already carries always fits). */
  private clientHasRoom(client: ClientLink, streamId: string): boolean {
    return client.streams.size < this.limits.maxStreamsPerClient || client.streams.has(streamId);
  }

  /** `maxStreamsPerExecutor`: room for one more stream to the environment. */
  private executorHasRoom(environment: Environment): boolean {
    return environment.routes.size < this.limits.maxStreamsPerExecutor;
  }

  /** `maxPendingOpensPerExecutor`: room for one more stream the executor has not accepted yet. */
  private pendingOpensHaveRoom(environment: Environment): boolean {
    return environment.pendingOpens < this.limits.maxPendingOpensPerExecutor;
  }

  /** `maxPendingOpensPerClient`: room on the client socket for one more stream not accepted yet. */
  private clientPendingHasRoom(client: ClientLink): boolean {
    return this.pendingOf(client) < this.limits.maxPendingOpensPerClient;
  }

  /** `tokenShareOfEnvironment` × `maxStreamsPerExecutor`: room for one more stream of this token to the environment. */
  private tokenHasRoom(environment: Environment, credentialId: string): boolean {
    if (!this.sharedClientTokens) return true;
    return (environment.shares.get(credentialId)?.streams ?? 0) < portion(this.limits.maxStreamsPerExecutor, this.limits.tokenShareOfEnvironment);
  }

  /** `tokenShareOfEnvironment` × `maxPendingOpensPerExecutor`: room for one more pending stream of this token. */
  private tokenPendingHasRoom(environment: Environment, credentialId: string): boolean {
    if (!this.sharedClientTokens) return true;
    return (environment.shares.get(credentialId)?.pendingOpens ?? 0) < portion(this.limits.maxPendingOpensPerExecutor, this.limits.tokenShareOfEnvironment);
  }

  /** `failedHandshakeCooldownMs`: the token failed too many handshakes here lately. */
  private tokenCoolingDown(environment: Environment, credentialId: string, now: number): boolean {
    if (!this.sharedClientTokens) return false;
    return (environment.shares.get(credentialId)?.coolDownUntil ?? 0) > now;
  }

  /** `maxFailedHandshakesPerToken` within `failedHandshakeWindowMs`. */
  private tokenFailedTooOften(share: TokenShare): boolean {
    return this.sharedClientTokens && share.failures.length >= this.limits.maxFailedHandshakesPerToken;
  }

  /** `maxFailedHandshakesPerClient`: the client socket's streams failed their handshake too often. */
  private tooManyFailedHandshakes(client: ClientLink): boolean {
    return client.failedHandshakes >= this.limits.maxFailedHandshakesPerClient;
  }

  /** `maxQueuedBytesPerSocket`: the socket's queue is long; whoever feeds it waits. */
  private congested(socket: FrameSocket): boolean {
    return socket.bufferedAmount > this.limits.maxQueuedBytesPerSocket;
  }

  /**
   * The hard bound on a socket's queue (`HARD_QUEUE_FACTOR` × `maxQueuedBytesPerSocket`): a socket
   * that does not drain (a slow or half-open endpoint) costs at most this much memory; frames past
   * it are dropped, and the reliable stream retransmits them once the endpoint reads again.
   */
  private queueFull(socket: FrameSocket): boolean {
    return socket.bufferedAmount > HARD_QUEUE_FACTOR * this.limits.maxQueuedBytesPerSocket;
  }

  private readHeader(data: Buffer, from: FrameSocket): RelayFrameHeader | null {
    const peeked = peekHeader(data);
    if (peeked.ok) return peeked.header;
    this.events.frameDropped('invalid');
    if (peeked.error.code === 'frame-too-large' && data.length >= 18) {
      // The header is still readable: refuse that stream only, keep the socket.
      const header = peekHeader(data.subarray(0, 18));
      if (header.ok) {
        this.events.reset(ResetReason.FrameTooLarge);
        from.send(resetFrame(header.header.streamId, ResetReason.FrameTooLarge));
        return null;
      }
    }
    this.logger.debug({ error: peeked.error.code }, 'invalid relay frame; closing socket');
    from.close(1002, `invalid relay frame: ${peeked.error.code}`);
    return null;
  }

  private forward(target: FrameSocket, data: Buffer, direction: 'client_to_executor' | 'executor_to_client', source: FrameSocket | null): void {
    if (target.readyState !== WebSocket.OPEN) {
      this.events.frameDropped('endpoint_detached');
      return;
    }
    if (this.queueFull(target)) {
      this.events.frameDropped('backpressure');
      return;
    }
    corkForThisTurn(target);
    if (target.send(data, { binary: true }) === false) {
      this.events.frameDropped('fleet_unavailable');
      return;
    }
    this.events.frameRouted(direction, data.length, SECURITY_PROFILE);
    // Stop reading the client that feeds a congested socket until it drains: bounded memory,
    // and only that client waits.
    if (source && this.congested(target)) this.pauseUntilDrained(source, target);
  }

  /** Stops reading `source` until `target` (`congested`) drains. */
  private pauseUntilDrained(source: FrameSocket, target: FrameSocket): void {
    if (sourcePaused.has(source)) return;
    sourcePaused.add(source);
    source.pause();
    this.events.socketPaused();
    const resume = () => {
      sourcePaused.delete(source);
      if (source.readyState === WebSocket.OPEN) source.resume();
    };
    const underlying = (target as unknown as { _socket?: NodeJS.EventEmitter })._socket;
    if (underlying) {
      underlying.once('drain', resume);
      underlying.once('close', resume);
    } else {
      setTimeout(resume, 10);
    }
  }

  private resetTo(socket: FrameSocket, streamId: string, reason: ResetReasonValue): void {
    this.events.reset(reason);
    if (socket.readyState !== WebSocket.OPEN) return;
    if (this.queueFull(socket)) {
      // The same hard bound as routed frames: refusals towards a socket that reads nothing are dropped.
      this.events.frameDropped('backpressure');
      return;
    }
    socket.send(resetFrame(streamId, reason));
  }

  /** Resets a route towards both ends (where attached) and forgets it. */
  private resetRoute(route: Route, reason: ResetReasonValue, toExecutor = true): void {
    if (route.client) this.resetTo(route.client.socket, route.streamId, reason);
    const link = route.environment.link;
    if (toExecutor && link) this.resetTo(link.socket, route.streamId, reason);
    else if (!toExecutor && link && link.socket.readyState === WebSocket.OPEN) link.socket.send(resetFrame(route.streamId, reason));
    this.endRoute(route, 'reset');
  }

  private endRoute(route: Route, result: 'closed' | 'reset'): void {
    const environment = route.environment;
    if (environment.routes.get(route.streamId) !== route) return;
    environment.routes.delete(route.streamId);
    this.routesById.delete(route.streamId);
    const share = this.tokenShare(environment, route.credentialId);
    share.streams -= 1;
    if (!route.accepted) {
      share.pendingOpens -= 1;
      if (!route.resumed) environment.pendingOpens -= 1;
    }
    route.client?.streams.delete(route.streamId);
    this.retired.add(route.streamId);
    this.events.streamEnded(result, SECURITY_PROFILE);
    if (!environment.link && environment.routes.size === 0 && environment.linkLostAt !== 0) this.forgetEnvironment(environment);
  }

  private forgetEnvironment(environment: Environment): void {
    if (this.environments.get(environment.id) !== environment) return;
    this.environments.delete(environment.id);
    this.watcher?.forgotten(environment.id);
  }

  private sweep(now: number): void {
    for (const environment of [...this.environments.values()]) {
      const executorGone = !environment.link && environment.linkLostAt !== 0 && now - environment.linkLostAt >= this.limits.executorGraceMs;
      // The timeouts and grace periods, one check each.
      // A stream's handshake time counts while its executor is connected: a resumed stream waits
      // for an executor still reconnecting, then has the handshake timeout to be confirmed.
      const handshakeSince = environment.link ? environment.linkUpAt : Infinity;
      for (const route of [...environment.routes.values()]) {
        if (executorGone) this.resetRoute(route, ResetReason.ExecutorUnavailable);
        else if (!route.accepted && now - Math.max(route.openedAt, handshakeSince) >= this.limits.handshakeTimeoutMs) {
          this.resetRoute(route, ResetReason.HandshakeTimeout);
          this.handshakeFailed(route);
        } else if (route.client === null && now - route.clientGoneAt >= this.limits.clientGraceMs) this.resetRoute(route, ResetReason.ClientGone);
        else if (now - route.lastFrameAt >= this.limits.idleTimeoutMs) this.resetRoute(route, ResetReason.IdleTimeout);
      }
      if (executorGone) this.forgetEnvironment(environment);
      for (const [credentialId, share] of environment.shares) {
        this.trimFailures(share, now);
        if (share.streams === 0 && share.pendingOpens === 0 && share.failures.length === 0 && share.coolDownUntil <= now) environment.shares.delete(credentialId);
      }
    }
  }
}

const sourcePaused = new WeakSet<FrameSocket>();
/**
 * Past `maxQueuedBytesPerSocket` the client feeding a socket is paused; past this many times that,
 * frames towards the socket are dropped (executor sockets are shared by many streams and are never
 * paused, so this is what bounds a slow client's queue).
 */
export const HARD_QUEUE_FACTOR = 2;

/**
 * The executor refused a stream for lack of room (`too_many_streams`): load that clients cause,
 * not a failed handshake, so it must not count towards closing the executor's link.
 */
function isCapacityRefusal(data: Buffer): boolean {
  const decoded = decodeRelayFrame(data);
  return decoded.ok && decoded.frame.body.type === 'reset' && decoded.frame.body.reason === ResetReason.TooManyStreams;
}

/** A token's share of a limit (at least 1). */
function portion(limit: number, share: number): number {
  return Math.max(1, Math.floor(limit * share));
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}

function resetFrame(streamId: string, reason: ResetReasonValue): Uint8Array {
  return encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'reset', reason } });
}
