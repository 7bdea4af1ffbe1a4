import WebSocket from 'ws';
import { decodeCodexRelayFrame, encodeCodexRelayFrame } from '../src/codex-relay-frame/codex-relay-frame.js';
import { RendezvousRejection, type RendezvousRejectionReason } from '../src/codex-registry/registry-endpoints.js';
import { RelayCloseCode, ResetReason, type ResetReasonValue } from '../src/relay-control/relay-endpoints.js';
import type { Logger } from '../src/logging/logger.js';
import type { RelayLimits } from './relay-config.js';
import type { RelayRole } from './relay-credentials.js';
import type { SecurityProfile } from '../src/telemetry/labels.js';
import { NO_RELAY_EVENTS, type FrameDirection, type RelayEvents } from './relay-events.js';
import type { FrameSocket } from './stream-router.js';
import type { HybridPublicKey } from '../src/noise-hybrid/hybrid-keys.js';

/** The `security_profile` of every stream routed here: codex's hybrid IK (X25519 + ML-KEM-768). */
const SECURITY_PROFILE: SecurityProfile = 'pq_hybrid';

/**
 * The codex rendezvous: routes codex relay frames (`codex.exec_server.relay.v1.RelayMessageFrame`)
 * between a codex executor's one WebSocket and harness (client) WebSockets, by `stream_id`, and is
 * the only place that checks the codex rendezvous limits (`codex*` in `relay-config.ts`). It reads
 * of a frame only its stream id and body type; payloads (Noise handshake messages and records) pass
 * through as the bytes received.
 *
 * A stream starts with a harness's Handshake frame (message 1) on a new stream id and is pending
 * until the executor answers with its Handshake (message 2, the stream is accepted) or a Reset (the
 * handshake failed). A codex executor answers every handshake with a Reset for ≈ 10 s after 8 failed
 * ones, so failures are bounded here before they reach it: per harness socket, per token and
 * environment (a cool-down), and per executor (a window). Resume, Ack and Heartbeat frames of
 * harnesses are not forwarded (0.169.0 ignores them); Data on a stream that is not accepted, or of
 * another socket, is refused with a Reset and not forwarded.
 *
 * In a relay fleet ([fleet.md](../docs/fleet.md)) a harness socket here may reach an executor held
 * by another instance: its frames are published there (`CodexExecutorElsewhere`) and that
 * instance's router takes them from a remote harness link (`remoteHarness`, whose socket publishes
 * back) and checks every executor limit, as for its own harness sockets. Here only the harness
 * socket's own limits apply.
 */

/**
 * What the router needs of a socket: a WebSocket, or (in a fleet) a harness socket of another
 * instance reached through NATS (`RemoteClientSocket`).
 */
export type RendezvousSocket = FrameSocket;

/**
 * In a relay fleet, how a harness socket here reaches its environment's codex executor while
 * another instance holds it (`RemoteExecutorSocket`): a frame sent is published to that instance.
 */
export interface CodexExecutorElsewhere {
  /** `false`: the frame could not be passed on (NATS is down). */
  send(data: Uint8Array): boolean;
  /**
   * A handshake on a new stream went out: the fleet makes sure some instance still holds the
   * environment, and calls the router's `executorUnavailable` if none does.
   */
  streamOpened(link: CodexHarnessLink, streamId: string): void;
  /** The harness socket closed; `detach`: some of its streams went through the fleet. */
  clientClosed(detach: boolean): void;
}

/** What a relay fleet (`NatsFleet`) hears from the codex router about the executors it holds. */
export interface CodexExecutorWatcher {
  /** A codex executor's socket is open here for its registration (first time, again, or replacing one). */
  codexLinkUp(link: CodexExecutorLink): void;
  /** The environment's codex executor socket here is gone (closed, revoked or replaced elsewhere). */
  codexLinkDown(environmentId: string): void;
}

/** A codex executor's rendezvous socket. */
export class CodexExecutorLink {
  readonly routes = new Map<string, CodexRoute>();
  pendingHandshakes = 0;
  /** When recent handshakes failed here (within `codexFailedHandshakeWindowMs`), oldest first. */
  readonly failures: number[] = [];
  constructor(
    readonly socket: RendezvousSocket,
    readonly environmentId: string,
    readonly registrationId: string,
    readonly credentialId: string,
    /** The executor's registered hybrid key (what a relay fleet names at `connect` on other instances). */
    readonly executorKey: HybridPublicKey | null = null,
  ) {}
}

/** A harness's rendezvous socket (one per `connect`; it may carry several streams). */
export class CodexHarnessLink {
  readonly streams = new Set<string>();
  /** Streams through the fleet (`elsewhere`) whose handshake the executor has not answered yet. */
  readonly handshaking = new Set<string>();
  pendingHandshakes = 0;
  failedHandshakes = 0;
  /** In a fleet: the way to the executor while another instance holds it (a harness socket here). */
  readonly elsewhere: CodexExecutorElsewhere | null;
  /** A harness socket of another instance (its socket publishes there). */
  readonly remote: boolean;
  constructor(
    readonly socket: RendezvousSocket,
    readonly environmentId: string,
    readonly registrationId: string,
    readonly credentialId: string,
    options: { elsewhere?: CodexExecutorElsewhere; remote?: boolean } = {},
  ) {
    this.elsewhere = options.elsewhere ?? null;
    this.remote = options.remote ?? false;
  }
}

interface CodexRoute {
  readonly streamId: string;
  readonly harness: CodexHarnessLink;
  readonly executor: CodexExecutorLink;
  accepted: boolean;
  timer: NodeJS.Timeout | undefined;
  lastFrameAt: number;
  readonly openedAt: number;
}

/** One token's failed handshakes towards one environment. */
interface TokenFailures {
  failures: number[];
  coolDownUntil: number;
}

export class CodexRendezvousRouter {
  private readonly executors = new Map<string, CodexExecutorLink>();
  private readonly harnesses = new Set<CodexHarnessLink>();
  /** Harness sockets of other fleet instances with streams to executors here (not counted in `maxClients`: their instance counts them). */
  private readonly remoteHarnesses = new Set<CodexHarnessLink>();
  /** In a relay fleet: told when executor sockets come and go here. */
  watcher: CodexExecutorWatcher | null = null;
  private readonly tokenFailures = new Map<string, TokenFailures>();
  private readonly pausedSources = new Map<RendezvousSocket, NodeJS.Timeout>();
  private stopped = false;
  private readonly idleSweep: NodeJS.Timeout;

  constructor(
    private readonly limits: RelayLimits,
    private readonly logger: Logger,
    /** Tokens that may connect clients now: a token's share of an environment applies when there is more than one. */
    private readonly clientTokenCount: () => number,
    /** The relay's metrics (the same series as execrelay's own streams). */
    private readonly events: RelayEvents = NO_RELAY_EVENTS,
  ) {
    this.idleSweep = setInterval(() => this.resetIdleStreams(), Math.max(10, Math.min(30_000, limits.idleTimeoutMs / 4)));
    this.idleSweep.unref();
  }

  /** The executor connected for `environmentId` now, if any. */
  executor(environmentId: string): CodexExecutorLink | undefined {
    return this.executors.get(environmentId);
  }

  hasLiveExecutor(environmentId: string): boolean {
    return this.executors.has(environmentId);
  }

  /** Why a new executor socket is refused now (a replacement of the environment's own socket never is). */
  executorRefusal(environmentId: string): RendezvousRejectionReason | null {
    if (!this.executors.has(environmentId) && this.executors.size >= this.limits.maxExecutors) return RendezvousRejection.RouteUnavailable;
    return null;
  }

  /**
   * Why a new harness socket for this registration, of this token, is refused now.
   * `heldElsewhere`: the fleet found the registration held by another instance.
   */
  harnessRefusal(environmentId: string, registrationId: string, credentialId: string, heldElsewhere = false): RendezvousRejectionReason | null {
    const executor = this.executors.get(environmentId);
    if (!executor && !heldElsewhere) return RendezvousRejection.UnknownRoute;
    if (executor && executor.registrationId !== registrationId) return RendezvousRejection.UnexpectedRegistrationId;
    if (this.harnesses.size >= this.limits.maxClients) return RendezvousRejection.RouteUnavailable;
    if (this.clientTokenCount() > 1) {
      let held = 0;
      for (const link of this.harnesses) if (link.credentialId === credentialId) held++;
      if (held >= Math.max(1, Math.floor(this.limits.maxClients * this.limits.tokenShareOfRelay))) return RendezvousRejection.RouteUnavailable;
    }
    return null;
  }

  /** A codex executor's socket is open: it replaces the environment's previous one (whose streams are reset). */
  executorConnected(socket: RendezvousSocket, environmentId: string, registrationId: string, credentialId: string, executorKey?: HybridPublicKey): CodexExecutorLink {
    const previous = this.executors.get(environmentId);
    if (previous) {
      this.dropExecutor(previous, ResetReason.ExecutorReplaced);
      previous.socket.close(RelayCloseCode.Replaced, 'replaced by a newer registration');
    }
    const link = new CodexExecutorLink(socket, environmentId, registrationId, credentialId, executorKey ?? null);
    this.executors.set(environmentId, link);
    this.watcher?.codexLinkUp(link);
    return link;
  }

  /** A harness socket here; `elsewhere`: its executor is held by another fleet instance. */
  harnessConnected(socket: RendezvousSocket, environmentId: string, registrationId: string, credentialId: string, elsewhere?: CodexExecutorElsewhere): CodexHarnessLink {
    const link = new CodexHarnessLink(socket, environmentId, registrationId, credentialId, elsewhere ? { elsewhere } : {});
    this.harnesses.add(link);
    return link;
  }

  /**
   * A harness socket of another fleet instance (`socket` publishes to it) that sent a frame to the
   * executor held here; null when no codex executor is held here. Its streams count against every
   * executor limit here; the socket itself is its own instance's to count.
   */
  remoteHarness(socket: RendezvousSocket, environmentId: string, credentialId: string): CodexHarnessLink | null {
    const executor = this.executors.get(environmentId);
    if (!executor) return null;
    const link = new CodexHarnessLink(socket, environmentId, executor.registrationId, credentialId, { remote: true });
    this.remoteHarnesses.add(link);
    return link;
  }

  /**
   * Another fleet instance holds a newer registration of this environment: the executor socket
   * here is closed (4001) and its streams reset (codex streams do not move between sockets).
   */
  releaseEnvironment(environmentId: string): void {
    const link = this.executors.get(environmentId);
    if (!link) return;
    this.dropExecutor(link, ResetReason.ExecutorReplaced);
    this.events.registration('replaced');
    link.socket.close(RelayCloseCode.Replaced, 'replaced by a newer registration');
  }

  executorClosed(link: CodexExecutorLink): void {
    this.dropExecutor(link, ResetReason.ExecutorUnavailable);
  }

  harnessClosed(link: CodexHarnessLink): void {
    if (!this.harnesses.delete(link) && !this.remoteHarnesses.delete(link)) return;
    if (link.elsewhere) {
      const detach = link.streams.size > 0;
      link.streams.clear();
      link.handshaking.clear();
      link.elsewhere.clientClosed(detach);
      this.stopWatching(link.socket);
      return;
    }
    const executor = this.executors.get(link.environmentId);
    for (const streamId of link.streams) {
      const route = executor?.routes.get(streamId);
      if (route && route.harness === link) {
        this.endRoute(route);
        this.sendReset(executor!.socket, streamId, ResetReason.ClientGone);
      }
    }
    link.streams.clear();
    this.stopWatching(link.socket);
  }

  /** A binary message from an executor. */
  fromExecutor(link: CodexExecutorLink, data: Buffer): void {
    if (this.executors.get(link.environmentId) !== link) return;
    const decoded = data.length > this.limits.codexMaxMessageBytes ? null : decodeCodexRelayFrame(data);
    if (!decoded?.ok) return this.events.frameDropped('invalid'); // as codex drops what it cannot read
    const { streamId, body } = decoded.frame;
    const route = link.routes.get(streamId);
    if (!route) return this.events.frameDropped('no_route');
    route.lastFrameAt = Date.now();
    if (body.type === 'handshake' && !route.accepted) this.accept(route);
    if (body.type === 'reset') {
      if (!route.accepted) this.handshakeFailed(route);
      this.endRoute(route, 'reset');
    }
    this.forward(route.harness.socket, data, link.socket, 'executor_to_client');
  }

  /** A binary message from a harness (a socket here, or one of another fleet instance). */
  fromHarness(link: CodexHarnessLink, data: Buffer): void {
    if (!this.harnesses.has(link) && !this.remoteHarnesses.has(link)) return;
    const decoded = data.length > this.limits.codexMaxMessageBytes ? null : decodeCodexRelayFrame(data);
    if (!decoded?.ok) return this.events.frameDropped('invalid');
    const { streamId, body } = decoded.frame;
    const executor = this.executors.get(link.environmentId);
    if (!executor && link.elsewhere) return this.toExecutorElsewhere(link, link.elsewhere, streamId, body.type, data);
    if (!executor || executor.registrationId !== link.registrationId) {
      if (body.type !== 'reset') this.sendReset(link.socket, streamId, ResetReason.ExecutorUnavailable);
      return;
    }
    const route = executor.routes.get(streamId);
    switch (body.type) {
      case 'handshake': {
        if (route) return this.sendReset(link.socket, streamId, ResetReason.StreamIdInUse);
        const refusal = this.handshakeRefusal(link, executor);
        if (refusal) return this.sendReset(link.socket, streamId, refusal);
        this.open(link, executor, streamId);
        this.forward(executor.socket, data, link.socket, 'client_to_executor');
        return;
      }
      case 'data':
        if (!route || route.harness !== link || !route.accepted) return this.sendReset(link.socket, streamId, ResetReason.UnknownStream);
        route.lastFrameAt = Date.now();
        this.forward(executor.socket, data, link.socket, 'client_to_executor');
        return;
      case 'reset':
        if (!route || route.harness !== link) return;
        this.endRoute(route, 'closed');
        this.forward(executor.socket, data, link.socket, 'client_to_executor');
        return;
      default:
        return; // resume, ack, heartbeat: 0.169.0 ignores them
    }
  }

  /**
   * A harness frame for an executor another fleet instance holds: it goes there, whose router
   * checks the executor's limits. Here the harness socket's own limits apply, and a stream starts
   * with a handshake.
   */
  private toExecutorElsewhere(link: CodexHarnessLink, executor: CodexExecutorElsewhere, streamId: string, type: string, data: Buffer): void {
    const limits = this.limits;
    switch (type) {
      case 'handshake': {
        if (link.streams.has(streamId)) return this.sendReset(link.socket, streamId, ResetReason.StreamIdInUse);
        if (link.streams.size >= limits.codexMaxStreamsPerHarnessSocket) return this.sendReset(link.socket, streamId, ResetReason.TooManyStreams);
        if (link.handshaking.size >= limits.codexMaxPendingHandshakesPerHarnessSocket) return this.sendReset(link.socket, streamId, ResetReason.TooManyPendingOpens);
        if (link.failedHandshakes >= limits.codexMaxFailedHandshakesPerHarnessSocket) return this.sendReset(link.socket, streamId, ResetReason.TooManyFailedHandshakes);
        link.streams.add(streamId);
        link.handshaking.add(streamId);
        this.forwardElsewhere(executor, data);
        executor.streamOpened(link, streamId);
        return;
      }
      case 'data':
        if (!link.streams.has(streamId) || link.handshaking.has(streamId)) return this.sendReset(link.socket, streamId, ResetReason.UnknownStream);
        return this.forwardElsewhere(executor, data);
      case 'reset':
        if (!link.streams.delete(streamId)) return;
        link.handshaking.delete(streamId);
        return this.forwardElsewhere(executor, data);
      default:
        return; // resume, ack, heartbeat: 0.169.0 ignores them
    }
  }

  private forwardElsewhere(executor: CodexExecutorElsewhere, data: Buffer): void {
    if (executor.send(data)) this.events.frameRouted('client_to_executor', data.length, SECURITY_PROFILE);
    else this.events.frameDropped('fleet_unavailable');
  }

  /**
   * A frame from the executor of a harness socket here, passed on by the instance holding it.
   * Returns false when it is not a codex relay frame (dropped as `invalid`).
   */
  fromExecutorElsewhere(link: CodexHarnessLink, data: Buffer): boolean {
    if (!this.harnesses.has(link)) return true;
    const decoded = data.length > this.limits.codexMaxMessageBytes ? null : decodeCodexRelayFrame(data);
    if (!decoded?.ok) {
      this.events.frameDropped('invalid');
      return false;
    }
    const { streamId, body } = decoded.frame;
    if (!link.streams.has(streamId)) {
      this.events.frameDropped('no_route');
      return true;
    }
    if (body.type === 'handshake') link.handshaking.delete(streamId);
    if (body.type === 'reset') {
      if (link.handshaking.delete(streamId)) link.failedHandshakes++;
      link.streams.delete(streamId);
    }
    if (link.socket.readyState !== WebSocket.OPEN) {
      this.events.frameDropped('endpoint_detached');
      return true;
    }
    link.socket.send(data, { binary: true });
    this.events.frameRouted('executor_to_client', data.length, SECURITY_PROFILE);
    return true;
  }

  /**
   * The fleet found no instance holding the environment of a stream opened through it: the
   * stream is refused (`executor_unavailable`) at once rather than left to time out.
   */
  executorUnavailable(link: CodexHarnessLink, streamId: string): void {
    if (!link.streams.delete(streamId)) return;
    link.handshaking.delete(streamId);
    this.sendReset(link.socket, streamId, ResetReason.ExecutorUnavailable);
  }

  /**
   * Closes every socket whose credential `stillPermits` no longer lets in (the token file changed),
   * after resetting its streams. Returns how many were closed.
   */
  revoke(stillPermits: (credentialId: string, role: RelayRole, environmentId: string) => boolean): number {
    let closed = 0;
    for (const link of [...this.executors.values()]) {
      if (stillPermits(link.credentialId, 'executor', link.environmentId)) continue;
      this.dropExecutor(link, ResetReason.CredentialRevoked);
      link.socket.close(RelayCloseCode.CredentialRevoked, 'token revoked');
      closed++;
    }
    for (const link of [...this.harnesses]) {
      if (stillPermits(link.credentialId, 'client', link.environmentId)) continue;
      const executor = this.executors.get(link.environmentId);
      for (const streamId of link.streams) {
        const route = executor?.routes.get(streamId);
        if (route && route.harness === link) {
          this.endRoute(route);
          this.sendReset(executor!.socket, streamId, ResetReason.CredentialRevoked);
        }
        // Through the fleet: the executor's instance ends the stream on the reset.
        link.elsewhere?.send(encodeCodexRelayFrame({ streamId, body: { type: 'reset', reason: ResetReason.CredentialRevoked } }));
        this.sendReset(link.socket, streamId, ResetReason.CredentialRevoked);
      }
      link.streams.clear();
      link.handshaking.clear();
      link.elsewhere?.clientClosed(false);
      this.harnesses.delete(link);
      link.socket.close(RelayCloseCode.CredentialRevoked, 'token revoked');
      closed++;
    }
    return closed;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.idleSweep);
    for (const link of this.executors.values()) for (const route of link.routes.values()) clearTimeout(route.timer);
    for (const timer of this.pausedSources.values()) clearInterval(timer);
    this.pausedSources.clear();
  }

  /** Resets (both ways) every accepted stream with no frame either way for `idleTimeoutMs`. */
  private resetIdleStreams(): void {
    const before = Date.now() - this.limits.idleTimeoutMs;
    for (const executor of this.executors.values()) {
      for (const route of [...executor.routes.values()]) {
        if (!route.accepted || route.lastFrameAt > before) continue;
        this.endRoute(route);
        this.sendReset(executor.socket, route.streamId, ResetReason.IdleTimeout);
        this.sendReset(route.harness.socket, route.streamId, ResetReason.IdleTimeout);
      }
    }
  }

  /** Why a new handshake of `link` is not forwarded to `executor`, or null. One check each. */
  private handshakeRefusal(link: CodexHarnessLink, executor: CodexExecutorLink): ResetReasonValue | null {
    const limits = this.limits;
    const now = Date.now();
    if (link.streams.size >= limits.codexMaxStreamsPerHarnessSocket) return ResetReason.TooManyStreams;
    if (executor.routes.size >= limits.codexMaxStreamsPerExecutor) return ResetReason.TooManyStreams;
    if (link.pendingHandshakes >= limits.codexMaxPendingHandshakesPerHarnessSocket) return ResetReason.TooManyPendingOpens;
    if (executor.pendingHandshakes >= limits.codexMaxPendingHandshakesPerExecutor) return ResetReason.TooManyPendingOpens;
    if (this.clientTokenCount() > 1) {
      let streams = 0;
      let pending = 0;
      for (const route of executor.routes.values()) {
        if (route.harness.credentialId !== link.credentialId) continue;
        streams++;
        if (!route.accepted) pending++;
      }
      if (streams >= Math.max(1, Math.floor(limits.codexMaxStreamsPerExecutor * limits.tokenShareOfEnvironment))) return ResetReason.TooManyStreams;
      if (pending >= Math.max(1, Math.floor(limits.codexMaxPendingHandshakesPerExecutor * limits.tokenShareOfEnvironment))) return ResetReason.TooManyPendingOpens;
    }
    if (link.failedHandshakes >= limits.codexMaxFailedHandshakesPerHarnessSocket) return ResetReason.TooManyFailedHandshakes;
    const token = this.tokenFailures.get(tokenKey(link.credentialId, executor.environmentId));
    if (token && token.coolDownUntil > now) return ResetReason.TooManyFailedHandshakes;
    prune(executor.failures, now - limits.codexFailedHandshakeWindowMs);
    if (executor.failures.length >= limits.codexMaxFailedHandshakesPerExecutor) return ResetReason.TooManyFailedHandshakes;
    return null;
  }

  private open(link: CodexHarnessLink, executor: CodexExecutorLink, streamId: string): void {
    const now = Date.now();
    const route: CodexRoute = { streamId, harness: link, executor, accepted: false, timer: undefined, lastFrameAt: now, openedAt: now };
    this.events.streamOpened(SECURITY_PROFILE);
    executor.routes.set(streamId, route);
    link.streams.add(streamId);
    executor.pendingHandshakes++;
    link.pendingHandshakes++;
    route.timer = setTimeout(() => {
      if (route.accepted || executor.routes.get(streamId) !== route) return;
      this.endRoute(route);
      this.sendReset(executor.socket, streamId, ResetReason.HandshakeTimeout);
      this.sendReset(link.socket, streamId, ResetReason.HandshakeTimeout);
    }, this.limits.codexHandshakeTimeoutMs);
    route.timer.unref();
  }

  private accept(route: CodexRoute): void {
    route.accepted = true;
    this.events.streamAccepted(Date.now() - route.openedAt, SECURITY_PROFILE);
    clearTimeout(route.timer);
    route.timer = undefined;
    route.executor.pendingHandshakes--;
    route.harness.pendingHandshakes--;
  }

  private handshakeFailed(route: CodexRoute): void {
    const now = Date.now();
    const limits = this.limits;
    route.harness.failedHandshakes++;
    route.executor.failures.push(now);
    prune(route.executor.failures, now - limits.codexFailedHandshakeWindowMs);
    const key = tokenKey(route.harness.credentialId, route.executor.environmentId);
    const token = this.tokenFailures.get(key) ?? { failures: [], coolDownUntil: 0 };
    token.failures.push(now);
    prune(token.failures, now - limits.codexFailedHandshakeWindowMs);
    if (token.failures.length >= limits.codexMaxFailedHandshakesPerToken) {
      token.coolDownUntil = now + limits.codexFailedHandshakeCooldownMs;
      token.failures.length = 0;
      this.logger.warn({ environmentId: route.executor.environmentId }, 'codex handshakes of one token keep failing: its new handshakes there wait out a cool-down');
    }
    this.tokenFailures.set(key, token);
    // Bounded: forget tokens with nothing to remember (checked when one fails, which is what adds).
    if (this.tokenFailures.size > this.limits.maxClients) {
      for (const [k, v] of this.tokenFailures) if (v.failures.length === 0 && v.coolDownUntil <= now) this.tokenFailures.delete(k);
    }
  }

  /** Forgets a route (its timers and counts); sends nothing. */
  private endRoute(route: CodexRoute, result: 'closed' | 'reset' = 'reset'): void {
    const { executor, harness, streamId } = route;
    if (executor.routes.get(streamId) !== route) return;
    this.events.streamEnded(result, SECURITY_PROFILE);
    executor.routes.delete(streamId);
    harness.streams.delete(streamId);
    clearTimeout(route.timer);
    if (!route.accepted) {
      executor.pendingHandshakes--;
      harness.pendingHandshakes--;
    }
  }

  private dropExecutor(link: CodexExecutorLink, reason: ResetReasonValue): void {
    const current = this.executors.get(link.environmentId) === link;
    if (current) this.executors.delete(link.environmentId);
    for (const route of [...link.routes.values()]) {
      this.endRoute(route);
      this.sendReset(route.harness.socket, route.streamId, reason);
    }
    this.stopWatching(link.socket);
    if (current) this.watcher?.codexLinkDown(link.environmentId);
  }

  private sendReset(socket: RendezvousSocket, streamId: string, reason: ResetReasonValue): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    this.events.reset(reason);
    socket.send(encodeCodexRelayFrame({ streamId, body: { type: 'reset', reason } }), { binary: true });
  }

  /**
   * Sends `data` on `to`; while `to` holds more than `maxQueuedBytesPerSocket` unsent, `from` is
   * not read (its sender's TCP window closes) until `to` has sent half of it.
   */
  private forward(to: RendezvousSocket, data: Buffer, from: RendezvousSocket, direction: FrameDirection): void {
    if (to.readyState !== WebSocket.OPEN) return this.events.frameDropped('endpoint_detached');
    to.send(data, { binary: true });
    this.events.frameRouted(direction, data.length, SECURITY_PROFILE);
    if (this.stopped || to.bufferedAmount <= this.limits.maxQueuedBytesPerSocket || this.pausedSources.has(from)) return;
    this.events.socketPaused();
    from.pause();
    const timer = setInterval(() => {
      if (to.readyState === WebSocket.OPEN && to.bufferedAmount > this.limits.maxQueuedBytesPerSocket / 2) return;
      this.stopWatching(from);
      from.resume();
    }, 20);
    timer.unref();
    this.pausedSources.set(from, timer);
  }

  private stopWatching(socket: RendezvousSocket): void {
    const timer = this.pausedSources.get(socket);
    if (timer) clearInterval(timer);
    this.pausedSources.delete(socket);
  }
}

function tokenKey(credentialId: string, environmentId: string): string {
  return `${credentialId}\0${environmentId}`;
}

/** Drops the timestamps before `since` (oldest first). */
function prune(times: number[], since: number): void {
  let drop = 0;
  while (drop < times.length && times[drop]! < since) drop++;
  if (drop > 0) times.splice(0, drop);
}
