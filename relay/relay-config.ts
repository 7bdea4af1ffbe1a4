import { MAX_CODEX_RELAY_FRAME_BYTES } from '../src/codex-relay-frame/codex-relay-frame.js';

/** Every limit the relay enforces, each with its default (the codex relay's reference values or tighter). */
export interface RelayLimits {
  /** Largest WebSocket message (one relay frame). */
  maxFrameBytes: number;
  /** Streams routed to one environment at once. */
  maxStreamsPerExecutor: number;
  /** Streams one client socket may hold. */
  maxStreamsPerClient: number;
  /** Streams opened but not yet accepted by the executor, per environment. */
  maxPendingOpensPerExecutor: number;
  /**
   * Streams one client socket may have opened (or resumed) that the executor has not accepted
   * (confirmed) yet; the open past it is reset `too_many_pending_opens`.
   */
  maxPendingOpensPerClient: number;
  /**
   * A client socket whose streams failed their handshake this many times since its last accepted
   * one is closed (`RelayCloseCode.TooManyFailedHandshakes`). The executor's link is never closed
   * for failed handshakes: they are the client's doing.
   */
  maxFailedHandshakesPerClient: number;
  /**
   * One token's share of an environment (when more than one token may connect clients): it may
   * hold at most this fraction of `maxStreamsPerExecutor` streams and of
   * `maxPendingOpensPerExecutor` pending opens there, so another tenant always has room.
   */
  tokenShareOfEnvironment: number;
  /**
   * Failed handshakes of one token towards one environment within `failedHandshakeWindowMs`
   * (when more than one token may connect clients): past it, the token's new streams there are
   * refused (`too_many_failed_handshakes`) for `failedHandshakeCooldownMs`.
   */
  maxFailedHandshakesPerToken: number;
  failedHandshakeWindowMs: number;
  failedHandshakeCooldownMs: number;
  /**
   * One token's share of the relay (when more than one token may act in that role): at most this
   * fraction of `maxClients` client sockets and of `maxExecutors` executors.
   */
  tokenShareOfRelay: number;
  /** Stream ids remembered after they end, and refused if opened again. */
  retiredStreamIds: number;
  /** A stream the executor has not accepted within this is reset (`handshake_timeout`). */
  handshakeTimeoutMs: number;
  /** A stream with no frame either way for this long is reset (`idle_timeout`). */
  idleTimeoutMs: number;
  /** Bytes queued towards one socket before the relay stops reading the client that feeds it. */
  maxQueuedBytesPerSocket: number;
  /**
   * How long an environment's streams wait for its executor to reconnect before
   * `executor_unavailable`. Longer than the agent's reconnect backoff ceiling (30 s) with room for
   * a second attempt, so an agent that lost its link for a while still finds its streams.
   */
  executorGraceMs: number;
  /**
   * How long a client's streams wait for the client to reconnect and resume them. Matches the
   * client's reconnect give-up window (2 min): a client still retrying must not find its stream gone.
   */
  clientGraceMs: number;
  /** WebSocket ping interval; a socket with no pong within `pongTimeoutMs` is dropped. */
  pingIntervalMs: number;
  pongTimeoutMs: number;
  /** Executors registered at once. */
  maxExecutors: number;
  /** Client sockets at once. */
  maxClients: number;
  /**
   * Environments bound to an agent key (`EnvironmentBindings`): a registration of a new
   * environment past this is refused (`too_many_environments`) until the operator unbinds some.
   * Checked by the bindings store, not the router (it is state, not routing).
   */
  maxBindings: number;
  /**
   * Registration proofs remembered to refuse a replay (each for at most 10 minutes, the proof's
   * validity): past this, the oldest is forgotten (refusing instead would let one executor token
   * stop every registration). Checked by `RecentProofs`.
   */
  maxRecentProofs: number;
  /**
   * codex rendezvous (`relay/codex-rendezvous-router.ts` checks them all): the largest WebSocket
   * message of a codex socket (codex's own limit, 256 KiB: a larger one is dropped).
   */
  codexMaxMessageBytes: number;
  /** Streams routed to one codex executor at once (codex's own limit: 128 per executor socket). */
  codexMaxStreamsPerExecutor: number;
  /** Handshakes forwarded to one codex executor and not answered yet (codex's own limit: 32 pending validations). */
  codexMaxPendingHandshakesPerExecutor: number;
  /** Streams one harness (client) rendezvous socket may hold. */
  codexMaxStreamsPerHarnessSocket: number;
  /** Handshakes one harness socket may have pending at the executor. */
  codexMaxPendingHandshakesPerHarnessSocket: number;
  /** A harness socket whose handshakes failed this often gets no further handshake forwarded. */
  codexMaxFailedHandshakesPerHarnessSocket: number;
  /**
   * Failed handshakes of one token towards one codex executor within `codexFailedHandshakeWindowMs`:
   * past it the token's new handshakes there are refused for `codexFailedHandshakeCooldownMs`.
   */
  codexMaxFailedHandshakesPerToken: number;
  /**
   * Failed handshakes at one codex executor, from anyone, within `codexFailedHandshakeWindowMs`:
   * past it no new handshake is forwarded until the window has room. A codex executor pauses every
   * handshake for ≈ 10 s after 8 failures; this keeps the relay below that.
   */
  codexMaxFailedHandshakesPerExecutor: number;
  codexFailedHandshakeWindowMs: number;
  codexFailedHandshakeCooldownMs: number;
  /** A handshake the executor has answered neither way within this is reset (`handshake_timeout`). Above codex's 10 s validation timeout. */
  codexHandshakeTimeoutMs: number;
  /** Validity of an executor's signed rendezvous URL (checked at each upgrade; an expired one makes codex register again). */
  codexExecutorUrlTtlMs: number;
  /** Validity of a harness's signed rendezvous URL (dialled right after `connect`). */
  codexHarnessUrlTtlMs: number;
  /** Validity of a `harness_key_authorization` (used once, in the handshake right after `connect`). */
  codexAuthorizationTtlMs: number;
  /** A registration whose executor socket never connected (or left) stops holding its environment id after this. */
  codexRegistrationTtlMs: number;
}

export const DEFAULT_RELAY_LIMITS: RelayLimits = {
  maxFrameBytes: 256 * 1024,
  maxStreamsPerExecutor: 128,
  maxStreamsPerClient: 64,
  maxPendingOpensPerExecutor: 32,
  maxPendingOpensPerClient: 8,
  maxFailedHandshakesPerClient: 8,
  tokenShareOfEnvironment: 0.5,
  maxFailedHandshakesPerToken: 32,
  failedHandshakeWindowMs: 60_000,
  failedHandshakeCooldownMs: 30_000,
  tokenShareOfRelay: 0.25,
  retiredStreamIds: 1024,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 10 * 60_000,
  maxQueuedBytesPerSocket: 8 * 1024 * 1024,
  executorGraceMs: 90_000,
  clientGraceMs: 120_000,
  pingIntervalMs: 30_000,
  pongTimeoutMs: 60_000,
  maxExecutors: 10_000,
  maxClients: 10_000,
  maxBindings: 100_000,
  maxRecentProofs: 100_000,
  codexMaxMessageBytes: MAX_CODEX_RELAY_FRAME_BYTES,
  codexMaxStreamsPerExecutor: 128,
  codexMaxPendingHandshakesPerExecutor: 32,
  codexMaxStreamsPerHarnessSocket: 64,
  codexMaxPendingHandshakesPerHarnessSocket: 4,
  codexMaxFailedHandshakesPerHarnessSocket: 2,
  codexMaxFailedHandshakesPerToken: 3,
  codexMaxFailedHandshakesPerExecutor: 6,
  codexFailedHandshakeWindowMs: 60_000,
  codexFailedHandshakeCooldownMs: 60_000,
  codexHandshakeTimeoutMs: 15_000,
  codexExecutorUrlTtlMs: 10 * 60_000,
  codexHarnessUrlTtlMs: 60_000,
  codexAuthorizationTtlMs: 60_000,
  codexRegistrationTtlMs: 2 * 60_000,
};

