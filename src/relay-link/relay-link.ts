import WebSocket from 'ws';
import { decodeRelayFrame, encodeRelayFrame, HEARTBEAT_BODY, type RelayFrame, type RelayFrameBody, type RelayFrameDecodeError } from '../relay-frame/relay-frame.js';
import { NO_ACK } from '../relay-frame/limits.js';
import { parseRelayControlMessage, type RelayControlMessage } from '../relay-control/relay-endpoints.js';
import { Backoff, RELAY_RESTART_RETRY, restartRetryDelay, type BackoffSettings } from './backoff.js';
import { DEFAULT_LIVENESS, watchLinkLiveness } from './link-liveness.js';
import { connectRelaySocket, RelayRefusedError } from './relay-socket.js';
import { ProxyRefusedError, type RelayProxy } from './relay-proxy.js';
import { corkForThisTurn } from '../transport/burst-cork.js';

/** Default bound on dialling the relay (the WebSocket upgrade). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Default interval of the per-stream `heartbeat` frames. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 60_000;
/** Default bytes queued on the relay socket before frames are refused (the reliable streams retransmit them). */
export const DEFAULT_LINK_QUEUED_BYTES = 8 * 1024 * 1024;

/**
 * The link settings both endpoints expose in their options (`RelayTarget`, `RelayRegistrationOptions`);
 * an endpoint redeclares a setting only to document its own default.
 */
export interface RelayLinkTuning {
  /** Bound on dialling the relay. Default 10 s ({@link DEFAULT_CONNECT_TIMEOUT_MS}). */
  connectTimeoutMs?: number;
  /** Reconnect backoff (jittered); each endpoint has its own default. */
  backoff?: BackoffSettings;
  /** WebSocket ping interval on the relay link. Default 30 s (`DEFAULT_LIVENESS`). */
  pingIntervalMs?: number;
  /** The relay link is dropped (and re-dialled) when no pong came back for this long. Default 60 s (`DEFAULT_LIVENESS`). */
  pongTimeoutMs?: number;
  /** Per-stream `heartbeat` frames (they feed the relay's idle timer and the peer's silence timer). Default 60 s. */
  heartbeatIntervalMs?: number;
  /** Bytes queued on the relay socket before frames are refused (the streams retransmit them). Default 8 MiB. */
  maxQueuedBytes?: number;
  /** Reach the relay through this HTTP CONNECT proxy (see `relayProxyFor`). Default: dial directly. */
  proxy?: RelayProxy;
}

/** Where an endpoint dials and how it keeps the link. */
export interface RelayLinkOptions {
  /** Relay base URL, `ws://HOST:PORT` or `wss://HOST:PORT` (trailing slashes are ignored). */
  relayUrl: string;
  /** Path (and query) of the endpoint's route on the relay. */
  path: string;
  token: string;
  /** Extra headers for each dial, made afresh every time (the agent's proof of identity must be fresh). */
  dialHeaders?: () => Promise<Record<string, string>>;
  /** The endpoint's backoff when `tuning.backoff` is absent. */
  defaultBackoff: BackoffSettings;
  /**
   * Dials the link's socket instead of `relayUrl` + `path` with the token (the codex executor
   * registers over HTTP first, then opens the rendezvous URL the relay answered). Its rejection is a
   * failed dial like any other: final when the error says `permanent`. Internal: left out of the
   * published declarations (`stripInternal`), which must not name `ws`'s types (its `@types` package
   * is a development dependency).
   * @internal
   */
  dial?: () => Promise<WebSocket>;
  /** Re-dials stop (the failure is final) once the link has been down this long. Re-dials go on forever when absent. */
  giveUpMs?: number;
  /** The endpoint's options (only the {@link RelayLinkTuning} settings are read). */
  tuning: RelayLinkTuning;
}

/** How an adopted socket ended. */
export interface LinkLoss {
  /** The WebSocket close code. */
  code: number;
  /** The relay announced its restart (`{"type":"restarting"}`) before the socket closed. */
  restarting: boolean;
  /** The liveness watch closed the socket: no pong came back in time. */
  silent: boolean;
}

/** What the owner of a link (the client's one stream, the agent's registration) adds to it. */
export interface RelayLinkHooks {
  /** A dialled socket became the link; its listeners are in place and it resumes right after. */
  socketAdopted(adopted: { reconnect: boolean; dialStartedAt: number }): void;
  /** A control message other than `restarting` (which the link handles itself). */
  controlMessage?(message: RelayControlMessage): void;
  /** A relay frame that arrived while the link is ready. */
  frameReceived(frame: RelayFrame): void;
  /**
   * When present, every binary message of the ready socket goes here undecoded instead of
   * `frameReceived` (the codex wire: its owner decodes codex relay frames).
   */
  rawFrameReceived?(data: Buffer): void;
  /** A binary message that is not a relay frame (dropped). */
  undecodableFrame?(error: RelayFrameDecodeError): void;
  /** No pong came back within the pong timeout: the socket is being terminated. */
  linkSilent?(): void;
  /** The adopted socket closed. Returns whether to re-dial (false stops the link). */
  linkLost(loss: LinkLoss): boolean;
  /** A (re-)dial failed; `final` when no dial follows (a permanent refusal, or the give-up window passed). */
  dialFailed(error: Error, final: boolean): void;
  /** A re-dial is due in `delayMs`; `why` says what caused it. */
  redialScheduled?(delayMs: number, why: string): void;
  /** The streams that get a `heartbeat` frame every `heartbeatIntervalMs` while the link is ready. */
  heartbeatStreamIds(): Iterable<string>;
}

/**
 * One endpoint's link to the relay and its reconnect logic, shared by the client (one stream) and
 * the agent (many streams): dial, adopt the socket, watch its liveness (ping/pong), and when it
 * closes re-dial — at once and then every few hundred ms within `RELAY_RESTART_RETRY` after the
 * relay's `restarting` notice, otherwise with jittered backoff — until a permanent refusal or the
 * give-up window. The owner says when an adopted socket is ready for frames ({@link markReady}: at
 * once for the client, on the `registered` answer for the agent); readiness resets the backoff and
 * the restart window and starts the per-stream heartbeats. Frames go out through a bounded
 * {@link frameSink}.
 */
export class RelayLink {
  private socket: WebSocket | null = null;
  /** The socket {@link markReady} was called for (frames are delivered from it only). */
  private readySocket: WebSocket | null = null;
  private adoptedBefore = false;
  private stopped = false;
  private readonly backoff: Backoff;
  /** When the link was last lost (or first dialled by {@link start}): the give-up window counts from it. */
  private lostAt = 0;
  /** Until then, re-dial quickly: the relay announced a restart. */
  private restartRetryUntil = 0;
  private redialTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: RelayLinkOptions,
    private readonly hooks: RelayLinkHooks,
  ) {
    const backoff = options.tuning.backoff ?? options.defaultBackoff;
    this.backoff = new Backoff(backoff.initialMs, backoff.maxMs);
  }

  /** True while a socket is open and ready. */
  get ready(): boolean {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.readySocket === this.socket;
  }

  /** Dials once and adopts the socket; rejects when that dial fails (nothing is retried). */
  async open(): Promise<void> {
    const dialStartedAt = Date.now();
    this.adopt(await this.dial(), dialStartedAt);
  }

  /** Dials, and re-dials failures as after a lost link (until a permanent refusal or the give-up window). */
  start(): void {
    this.lostAt = Date.now();
    void this.redial();
  }

  /**
   * The current socket is ready for frames: the backoff and the restart window reset, frames
   * received on it are delivered, heartbeats start. Returns false (and does nothing) when there
   * is no socket or it already is ready.
   */
  markReady(): boolean {
    const socket = this.socket;
    if (!socket || this.readySocket === socket) return false;
    this.readySocket = socket;
    this.backoff.reset();
    this.lostAt = 0;
    this.restartRetryUntil = 0;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN) return;
      for (const streamId of this.hooks.heartbeatStreamIds()) socket.send(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: HEARTBEAT_BODY }));
    }, this.options.tuning.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS);
    this.heartbeatTimer.unref();
    return true;
  }

  /**
   * A frame sink for a reliable stream, bound to the current socket: it refuses frames (the stream
   * retransmits them) while more than `maxQueuedBytes` are queued on the socket, and for good once
   * that socket is no longer open — a stream is attached again to the next socket.
   */
  frameSink(): (frame: Uint8Array) => boolean {
    const socket = this.socket;
    if (!socket) return () => false;
    const maxQueued = this.options.tuning.maxQueuedBytes ?? DEFAULT_LINK_QUEUED_BYTES;
    return (frame) => {
      if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > maxQueued) return false;
      corkForThisTurn(socket);
      socket.send(frame);
      return true;
    };
  }

  /** Sends a frame without ack state (an `open` accepting a stream, a `reset`) on the current socket if it is open; never refused. */
  sendBareFrame(streamId: string, body: RelayFrameBody): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body }));
  }

  /** Drops the current socket without stopping: the link is lost and re-dialled as usual. */
  dropSocket(): void {
    this.socket?.terminate();
  }

  /**
   * Stops re-dialling and closes the current socket (code 1000, with `reason`). With `flushMs` the
   * close waits that long so that final frames still go out. The socket's close is still reported
   * through `linkLost` (whose answer no longer matters).
   */
  stop(close: { reason?: string; flushMs?: number } = {}): void {
    this.stopped = true;
    clearTimeout(this.redialTimer);
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    if (!socket) return;
    if (close.flushMs === undefined) socket.close(1000, close.reason);
    else setTimeout(() => socket.close(1000, close.reason), close.flushMs).unref();
  }

  private async dial(): Promise<WebSocket> {
    if (this.options.dial) return this.options.dial();
    const url = `${this.options.relayUrl.replace(/\/+$/, '')}${this.options.path}`;
    const headers = (await this.options.dialHeaders?.()) ?? {};
    return connectRelaySocket(url, this.options.token, this.options.tuning.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, headers, this.options.tuning.proxy);
  }

  private adopt(socket: WebSocket, dialStartedAt: number): void {
    this.socket = socket;
    const reconnect = this.adoptedBefore;
    this.adoptedBefore = true;
    let restarting = false;
    let silent = false;
    // A half-open link (nothing arrives, not even pongs) is closed here and re-dialled.
    watchLinkLiveness(
      socket,
      {
        pingIntervalMs: this.options.tuning.pingIntervalMs ?? DEFAULT_LIVENESS.pingIntervalMs,
        pongTimeoutMs: this.options.tuning.pongTimeoutMs ?? DEFAULT_LIVENESS.pongTimeoutMs,
      },
      () => {
        silent = true;
        this.hooks.linkSilent?.();
      },
    );
    socket.on('message', (data, isBinary) => {
      if (!isBinary) {
        const control = parseRelayControlMessage(data.toString());
        if (control?.type === 'restarting') restarting = true;
        else if (control) this.hooks.controlMessage?.(control);
        return;
      }
      if (this.readySocket !== socket) return;
      if (this.hooks.rawFrameReceived) return this.hooks.rawFrameReceived(data as Buffer);
      const decoded = decodeRelayFrame(data as Buffer);
      if (decoded.ok) this.hooks.frameReceived(decoded.frame);
      else this.hooks.undecodableFrame?.(decoded.error);
    });
    socket.on('close', (code) => {
      // A stale socket (one already replaced) has no say: its close (even a 4001 "replaced") must
      // neither detach the current link's streams nor stop the link.
      if (this.socket !== socket) return;
      this.socket = null;
      this.readySocket = null;
      clearInterval(this.heartbeatTimer);
      if (!this.hooks.linkLost({ code, restarting, silent })) this.stopped = true;
      if (this.stopped) return;
      this.lostAt = Date.now();
      if (restarting) {
        // The relay is restarting: re-dial at once and then every few hundred ms for a while.
        this.backoff.reset();
        this.restartRetryUntil = Date.now() + RELAY_RESTART_RETRY.windowMs;
        this.scheduleRedial(0, 'relay restarting');
      } else {
        this.scheduleRedial(this.nextDelay(), `relay link closed (${code})`);
      }
    });
    this.hooks.socketAdopted({ reconnect, dialStartedAt });
    socket.resume();
  }

  private nextDelay(): number {
    return Date.now() < this.restartRetryUntil ? restartRetryDelay() : this.backoff.next();
  }

  private scheduleRedial(delayMs: number, why: string): void {
    if (this.stopped) return;
    this.hooks.redialScheduled?.(delayMs, why);
    clearTimeout(this.redialTimer);
    this.redialTimer = setTimeout(() => void this.redial(), delayMs);
  }

  private async redial(): Promise<void> {
    if (this.stopped) return;
    const dialStartedAt = Date.now();
    let socket: WebSocket;
    try {
      socket = await this.dial();
    } catch (error) {
      // Network errors and refusals that may change (404 executor_unavailable while the agent has
      // not re-registered after a relay restart, 503) are retried; 400/401/403 are final, and so is a
      // proxy that forbids the relay (403) or wants credentials (407), and a codex registry's refusal
      // of the token or request (CodexRegistryRefusedError: any error with \`permanent\` says so).
      const failure = error instanceof Error ? error : new Error(String(error));
      const giveUpMs = this.options.giveUpMs;
      const refusedForGood = isPermanentRefusal(failure);
      const final = refusedForGood || (giveUpMs !== undefined && Date.now() - this.lostAt > giveUpMs);
      if (final) this.stopped = true;
      this.hooks.dialFailed(failure, final);
      if (!final) this.scheduleRedial(this.nextDelay(), failure.message);
      return;
    }
    if (this.stopped) {
      socket.close();
      return;
    }
    this.adopt(socket, dialStartedAt);
  }
}

/** A dial failure retrying will not change: a refusal (of the relay, the proxy, the codex registry) that says it is `permanent`. */
function isPermanentRefusal(failure: Error): boolean {
  if (failure instanceof RelayRefusedError || failure instanceof ProxyRefusedError) return failure.permanent;
  return (failure as Error & { permanent?: unknown }).permanent === true;
}
