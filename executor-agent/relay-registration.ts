import WebSocket from 'ws';
import { decodeRelayFrame, encodeRelayFrame, streamIdToBytes, HEARTBEAT_BODY, type RelayFrame } from '../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../src/relay-frame/limits.js';
import { ReliableStream } from '../src/reliable-stream/reliable-stream.js';
import { acceptAgentChannel } from '../src/noise/noise-channel.js';
import type { Identity } from '../src/noise/identity.js';
import { EXECUTOR_CONNECT_PATH, ResetReason, parseRelayControlMessage } from '../src/relay-control/relay-endpoints.js';
import { Backoff, EXECUTOR_BACKOFF, RELAY_RESTART_RETRY, restartRetryDelay } from '../src/relay-link/backoff.js';
import { DEFAULT_LIVENESS, watchLinkLiveness } from '../src/relay-link/link-liveness.js';
import { connectRelaySocket, RelayRefusedError } from '../src/relay-link/relay-socket.js';
import type { Logger } from '../src/logging/logger.js';
import type { ExecutorAgent } from './executor-agent.js';

export interface RelayRegistrationOptions {
  /** Relay base URL, `ws://HOST:PORT` or `wss://HOST:PORT`. */
  relayUrl: string;
  environmentId: string;
  token: string;
  identity: Identity;
  /** Client public identities allowed to open channels; all clients when absent. */
  authorizedClients?: ReadonlySet<string>;
  handshakeTimeoutMs?: number;
  /** Streams this agent serves at once through the relay. */
  maxStreams?: number;
  /** Bytes queued on the relay socket before frames are refused (the streams retransmit them). */
  maxQueuedBytes?: number;
  /** Per-stream `heartbeat` frames (keep the relay's idle timer and the client's silence timer fed). Default 60 s. */
  heartbeatIntervalMs?: number;
  /** Reconnect backoff (jittered). Default 1 s doubling to 30 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** WebSocket ping interval on the relay link. Default 30 s. */
  pingIntervalMs?: number;
  /** The relay link is dropped (and re-dialled) when nothing arrived on it for this long. Default 60 s. */
  pongTimeoutMs?: number;
  /** Bound on dialling the relay and on its `registered` answer. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * A stream whose client has not been heard from (no frame at all, heartbeats included) for this
   * long is reset: its client is gone for good (it gave up reconnecting, or the relay forgot the
   * stream while this agent was away). Default 5 min (clients heartbeat every 60 s and give up
   * reconnecting after 2 min).
   */
  streamSilenceTimeoutMs?: number;
  logger: Logger;
  /** Called for each registration outcome and reconnect (metrics hook on it). */
  onEvent?: (event: RelayRegistrationEvent) => void;
}

export type RelayRegistrationEvent =
  | { type: 'registered'; durationMs: number }
  | { type: 'connect-failed'; reason: 'refused' | 'unreachable' }
  | { type: 'disconnected'; reason: 'relay_restarting' | 'link_lost' | 'replaced' }
  | { type: 'handshake'; result: 'success' | 'failure'; durationMs: number };

/** How long a finished stream stays routable to re-acknowledge a retransmitted `close`. */
const CLOSED_STREAM_LINGER_MS = 20_000;
/** Default streams served at once through the relay (the codex relay's 128 per executor). */
export const DEFAULT_AGENT_RELAY_STREAMS = 128;
/** Default bytes queued on the relay socket before frames are refused (and later retransmitted). */
export const DEFAULT_AGENT_RELAY_QUEUED_BYTES = 8 * 1024 * 1024;
/** Default silence after which a stream's client is considered gone (see `streamSilenceTimeoutMs`). */
export const DEFAULT_STREAM_SILENCE_TIMEOUT_MS = 5 * 60_000;

interface AgentStream {
  stream: ReliableStream;
  /** The Noise handshake completed and the relay was told so. */
  accepted: boolean;
  lingerTimer?: NodeJS.Timeout;
  /** Last frame received from the client for this stream. */
  lastHeardAt: number;
}

/**
 * The agent's remote mode: dials out to the relay, registers the environment, and serves one
 * exec-protocol session per stream over a Noise channel (the agent is the responder). Reconnects
 * with exponential backoff and jitter; streams survive the reconnect and resume.
 */
export class RelayRegistration {
  private socket: WebSocket | null = null;
  private readonly streams = new Map<string, AgentStream>();
  /** Entries of `streams` that ended and only linger (they do not count against maxStreams). */
  private lingering = 0;
  private readonly backoff: Backoff;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly silenceTimer: NodeJS.Timeout;
  /** Until then, re-dial quickly: the relay announced a restart. */
  private restartRetryUntil = 0;
  private firstRegistration: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(
    private readonly agent: ExecutorAgent,
    private readonly options: RelayRegistrationOptions,
  ) {
    const backoff = options.backoff ?? EXECUTOR_BACKOFF;
    this.backoff = new Backoff(backoff.initialMs, backoff.maxMs);
    const silence = this.silenceTimeoutMs;
    this.silenceTimer = setInterval(() => this.resetSilentStreams(), Math.max(50, Math.min(30_000, Math.floor(silence / 4))));
    this.silenceTimer.unref();
  }

  private get silenceTimeoutMs(): number {
    return this.options.streamSilenceTimeoutMs ?? DEFAULT_STREAM_SILENCE_TIMEOUT_MS;
  }

  /** True while a relay socket is open and registered. */
  get connected(): boolean {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.registeredSocket === this.socket;
  }

  private registeredSocket: WebSocket | null = null;

  get activeStreams(): number {
    return this.streams.size;
  }

  /** Resolves once registered the first time; rejects on a permanent refusal (bad token or id). */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstRegistration = { resolve, reject };
      void this.connect();
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    clearInterval(this.silenceTimer);
    for (const { stream, lingerTimer } of this.streams.values()) {
      clearTimeout(lingerTimer);
      stream.reset(ResetReason.ExecutorUnavailable);
    }
    this.streams.clear();
    this.lingering = 0;
    this.socket?.close(1000, 'agent stopping');
  }

  /** Drops the relay socket without stopping (tests use it to cut the link). */
  dropLink(): void {
    this.socket?.terminate();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const url = `${this.options.relayUrl.replace(/\/+$/, '')}${EXECUTOR_CONNECT_PATH}?environmentId=${encodeURIComponent(this.options.environmentId)}`;
    const started = Date.now();
    let socket: WebSocket;
    try {
      socket = await connectRelaySocket(url, this.options.token, this.options.connectTimeoutMs ?? 10_000);
    } catch (error) {
      const refused = error instanceof RelayRefusedError;
      this.options.onEvent?.({ type: 'connect-failed', reason: refused ? 'refused' : 'unreachable' });
      if (refused && error.permanent) {
        this.options.logger.error({ status: error.status }, (error as Error).message);
        this.firstRegistration?.reject(error as Error);
        this.firstRegistration = undefined;
        this.stopped = true;
        return;
      }
      this.scheduleReconnect((error as Error).message);
      return;
    }
    if (this.stopped) {
      socket.close();
      return;
    }
    this.socket = socket;
    let registered = false;
    let restarting = false;
    // A half-open link (nothing arrives, not even pongs) is closed here and re-dialled.
    watchLinkLiveness(
      socket,
      {
        pingIntervalMs: this.options.pingIntervalMs ?? DEFAULT_LIVENESS.pingIntervalMs,
        pongTimeoutMs: this.options.pongTimeoutMs ?? DEFAULT_LIVENESS.pongTimeoutMs,
      },
      () => this.options.logger.warn('relay link silent past the pong timeout; reconnecting'),
    );
    const registrationTimer = setTimeout(() => {
      if (!registered) {
        this.options.logger.warn('relay did not confirm the registration in time; reconnecting');
        socket.terminate();
      }
    }, this.options.connectTimeoutMs ?? 10_000);
    registrationTimer.unref();
    socket.on('message', (data, isBinary) => {
      if (!isBinary) {
        const control = parseRelayControlMessage(data.toString());
        if (control?.type === 'registered' && !registered) {
          registered = true;
          clearTimeout(registrationTimer);
          this.onRegistered(socket, Date.now() - started);
        } else if (control?.type === 'restarting') {
          restarting = true;
        }
        return;
      }
      if (registered) this.onFrame(data as Buffer);
    });
    socket.on('close', (code) => {
      clearTimeout(registrationTimer);
      // A stale socket (one this agent already gave up on and replaced) has no say: its close
      // (even a 4001 "replaced", which the relay sends to the link a newer registration of this
      // same agent superseded) must neither detach the current link's streams nor stop the agent.
      if (this.socket !== socket) return;
      this.socket = null;
      this.registeredSocket = null;
      clearInterval(this.heartbeatTimer);
      for (const { stream } of this.streams.values()) stream.detach();
      const reason = restarting ? 'relay_restarting' : code === 4001 ? 'replaced' : 'link_lost';
      this.options.onEvent?.({ type: 'disconnected', reason });
      if (code === 4001) {
        this.options.logger.warn('another agent registered this environment; not reconnecting');
        this.stopped = true;
        return;
      }
      if (restarting) {
        this.backoff.reset();
        this.restartRetryUntil = Date.now() + RELAY_RESTART_RETRY.windowMs;
      }
      this.scheduleReconnect(restarting ? 'relay restarting' : `relay link closed (${code})`, restarting ? 0 : undefined);
    });
    socket.resume();
  }

  private onRegistered(socket: WebSocket, durationMs: number): void {
    this.backoff.reset();
    this.restartRetryUntil = 0;
    this.registeredSocket = socket;
    this.options.onEvent?.({ type: 'registered', durationMs });
    this.options.logger.info({ environmentId: this.options.environmentId, streams: this.streams.size }, 'registered with relay');
    const send = this.frameSink(socket);
    for (const [streamId, entry] of this.streams) {
      entry.stream.attach(send);
      // A relay that restarted knows nothing of this stream: say again that it is accepted.
      if (entry.accepted) this.sendAccept(streamId);
    }
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.sendHeartbeats(socket), this.options.heartbeatIntervalMs ?? 60_000);
    this.heartbeatTimer.unref();
    this.firstRegistration?.resolve();
    this.firstRegistration = undefined;
  }

  private frameSink(socket: WebSocket): (frame: Uint8Array) => boolean {
    const maxQueued = this.options.maxQueuedBytes ?? DEFAULT_AGENT_RELAY_QUEUED_BYTES;
    return (frame) => {
      if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > maxQueued) return false;
      socket.send(frame);
      return true;
    };
  }

  private scheduleReconnect(why: string, delayMs?: number): void {
    if (this.stopped) return;
    const delay = delayMs ?? (Date.now() < this.restartRetryUntil ? restartRetryDelay() : this.backoff.next());
    this.options.logger.info({ delayMs: delay, why }, 'reconnecting to relay');
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  private sendHeartbeats(socket: WebSocket): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    for (const streamId of this.streams.keys()) {
      socket.send(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: HEARTBEAT_BODY }));
    }
  }

  private onFrame(data: Buffer): void {
    const decoded = decodeRelayFrame(data);
    if (!decoded.ok) {
      this.options.logger.debug({ error: decoded.error.code }, 'dropping undecodable relay frame');
      return;
    }
    const frame = decoded.frame;
    const known = this.streams.get(frame.streamId);
    if (known) {
      known.lastHeardAt = Date.now();
      known.stream.receiveFrame(frame);
      return;
    }
    if (frame.body.type === 'open') this.acceptStream(frame);
    else if (frame.body.type === 'resume') this.sendReset(frame.streamId, ResetReason.UnknownStream);
    // Other frames for an unknown stream are dropped: a lost `open` is repeated by the client.
  }

  private acceptStream(open: RelayFrame): void {
    const socket = this.socket;
    if (!socket) return;
    if (this.streams.size - this.lingering >= (this.options.maxStreams ?? DEFAULT_AGENT_RELAY_STREAMS)) {
      this.sendReset(open.streamId, ResetReason.TooManyStreams);
      return;
    }
    const stream = new ReliableStream({ streamId: open.streamId, role: 'responder', maxMessageBytes: 1024 * 1024 });
    const entry: AgentStream = { stream, accepted: false, lastHeardAt: Date.now() };
    this.streams.set(open.streamId, entry);
    stream.attach(this.frameSink(socket));
    stream.onClose((error) => {
      if (error?.origin === 'peer') {
        // Reset by the client or the relay (e.g. its handshake timeout): nothing is left to
        // acknowledge, so the stream is forgotten at once.
        if (this.streams.get(open.streamId) === entry) this.streams.delete(open.streamId);
        return;
      }
      this.lingering += 1;
      entry.lingerTimer = setTimeout(() => {
        if (this.streams.get(open.streamId) !== entry) return; // forgotten by stop()
        this.streams.delete(open.streamId);
        this.lingering -= 1;
      }, CLOSED_STREAM_LINGER_MS);
      entry.lingerTimer.unref();
    });
    stream.receiveFrame(open);
    const started = Date.now();
    const options = {
      identity: this.options.identity,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs ?? 10_000,
      prologue: streamIdToBytes(open.streamId),
      ...(this.options.authorizedClients ? { authorizedClients: this.options.authorizedClients } : {}),
    };
    acceptAgentChannel(stream.toDuplex(), options).then(
      (channel) => {
        this.options.onEvent?.({ type: 'handshake', result: 'success', durationMs: Date.now() - started });
        entry.accepted = true;
        this.sendAccept(open.streamId);
        this.agent.serve(channel);
      },
      (error: Error) => {
        this.options.onEvent?.({ type: 'handshake', result: 'failure', durationMs: Date.now() - started });
        this.options.logger.warn({ err: error.message }, 'secure channel refused');
        // The reason reaches the client: it names what failed (never anything the client does not know).
        stream.reset(`${ResetReason.HandshakeFailed}: ${error.message}`);
      },
    );
  }

  /** Resets streams whose client has been silent past `streamSilenceTimeoutMs` (see the option). */
  private resetSilentStreams(): void {
    const now = Date.now();
    const limit = this.silenceTimeoutMs;
    for (const [streamId, entry] of this.streams) {
      if (entry.lingerTimer || now - entry.lastHeardAt < limit) continue;
      this.options.logger.info({ silentMs: now - entry.lastHeardAt }, 'resetting a stream whose client is gone');
      entry.stream.reset(ResetReason.ClientGone);
      // Nobody will acknowledge the reset: forget the stream now.
      clearTimeout(entry.lingerTimer);
      this.streams.delete(streamId);
    }
  }

  /** Tells the relay a stream is accepted (it counts pending opens until then): an `open` back. */
  private sendAccept(streamId: string): void {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'open', payload: new Uint8Array(0) } }));
    }
  }

  private sendReset(streamId: string, reason: string): void {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'reset', reason } }));
    }
  }
}
