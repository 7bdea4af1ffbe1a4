import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { decodeRelayFrame, encodeRelayFrame, streamIdToBytes, HEARTBEAT_BODY } from '../relay-frame/relay-frame.js';
import { NO_ACK } from '../relay-frame/limits.js';
import { ReliableStream } from '../reliable-stream/reliable-stream.js';
import { openClientChannel, type SecureChannel } from '../noise/noise-channel.js';
import { generateIdentity, type Identity } from '../noise/identity.js';
import { clientConnectPath, parseRelayControlMessage, ResetReason } from '../relay-control/relay-endpoints.js';
import { Backoff, CLIENT_BACKOFF, RELAY_RESTART_RETRY, restartRetryDelay } from '../relay-link/backoff.js';
import { DEFAULT_LIVENESS, watchLinkLiveness } from '../relay-link/link-liveness.js';
import { connectRelaySocket, RelayRefusedError } from '../relay-link/relay-socket.js';

export interface RelayTarget {
  /** Relay base URL, `ws://HOST:PORT` or `wss://HOST:PORT`. */
  relay: string;
  environmentId: string;
  /** The agent's public identity (from `execrelay keygen` on the executor): the handshake fails on any other. */
  agentKey: string;
  token: string;
  /** This client's identity (for agents with an authorized-clients list); a fresh one otherwise. */
  identity?: Identity;
  handshakeTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Give up reconnecting a dropped relay link after this long (the stream is then reset). Default 2 min. */
  reconnectGiveUpMs?: number;
  /** Reconnect backoff (jittered). Default 500 ms doubling to 5 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** WebSocket ping interval on the relay link. Default 30 s. */
  pingIntervalMs?: number;
  /** The relay link is dropped (and re-dialled) when nothing arrived on it for this long. Default 60 s. */
  pongTimeoutMs?: number;
  /** Per-stream `heartbeat` frames (feed the relay's idle timer and the agent's silence timer). Default 60 s. */
  heartbeatIntervalMs?: number;
  /** Bytes queued on the relay socket before frames are refused (the stream retransmits them). Default 8 MiB. */
  maxQueuedBytes?: number;
  /** Link state changes (for logs, metrics and tests). */
  onLinkEvent?: (event: RelayLinkEvent) => void;
}

export type RelayLinkEvent =
  | { type: 'connected'; reconnect: boolean }
  | { type: 'disconnected'; reason: 'relay_restarting' | 'link_lost' | 'heartbeat_timeout' }
  | { type: 'reconnect-failed'; error: string }
  | { type: 'gave-up'; error: string };

/** Default bound on re-dialling a dropped relay link before the stream is reset. */
export const DEFAULT_RECONNECT_GIVE_UP_MS = 120_000;
/** Bytes queued on the client's relay socket before frames are refused (and later retransmitted). */
export const CLIENT_SOCKET_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * Opens one end-to-end encrypted channel to an agent through the relay: a WebSocket to
 * `/v1/environments/{id}/connect`, one reliable stream on it, and a Noise handshake that pins the
 * agent's identity. A dropped link is re-dialled with backoff and the stream resumes on it.
 */
export async function openRelayChannel(target: RelayTarget): Promise<SecureChannel> {
  const link = new ClientRelayLink(target);
  await link.connectFirst();
  try {
    const channel = await openClientChannel(link.stream.toDuplex(), {
      identity: target.identity ?? (await generateIdentity()),
      expectedAgent: target.agentKey,
      handshakeTimeoutMs: target.handshakeTimeoutMs ?? 10_000,
      prologue: streamIdToBytes(link.streamId),
    });
    channel.onClose(() => link.dispose());
    return channel;
  } catch (error) {
    link.dispose(ResetReason.HandshakeFailed);
    throw error;
  }
}

class ClientRelayLink {
  readonly streamId = randomUUID();
  readonly stream: ReliableStream;
  private socket: WebSocket | null = null;
  private readonly backoff: Backoff;
  private disposed = false;
  private lostAt = 0;
  private restartRetryUntil = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(private readonly target: RelayTarget) {
    const backoff = target.backoff ?? CLIENT_BACKOFF;
    this.backoff = new Backoff(backoff.initialMs, backoff.maxMs);
    this.stream = new ReliableStream({ streamId: this.streamId, role: 'initiator', maxMessageBytes: 1024 * 1024 });
    this.stream.onClose(() => this.dispose());
  }

  private get url(): string {
    return `${this.target.relay.replace(/\/+$/, '')}${clientConnectPath(this.target.environmentId)}`;
  }

  async connectFirst(): Promise<void> {
    const socket = await connectRelaySocket(this.url, this.target.token, this.target.connectTimeoutMs ?? 10_000);
    this.adopt(socket, false);
  }

  dispose(resetReason?: string): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    if (resetReason) this.stream.reset(resetReason);
    const socket = this.socket;
    this.socket = null;
    // Let the final close/ack frames go out before the socket closes.
    if (socket) setTimeout(() => socket.close(1000), 50).unref();
  }

  private adopt(socket: WebSocket, reconnect: boolean): void {
    this.socket = socket;
    this.lostAt = 0;
    this.restartRetryUntil = 0;
    let restarting = false;
    let silent = false;
    watchLinkLiveness(
      socket,
      {
        pingIntervalMs: this.target.pingIntervalMs ?? DEFAULT_LIVENESS.pingIntervalMs,
        pongTimeoutMs: this.target.pongTimeoutMs ?? DEFAULT_LIVENESS.pongTimeoutMs,
      },
      () => (silent = true),
    );
    socket.on('message', (data, isBinary) => {
      if (!isBinary) {
        if (parseRelayControlMessage(data.toString())?.type === 'restarting') restarting = true;
        return;
      }
      const decoded = decodeRelayFrame(data as Buffer);
      if (decoded.ok && decoded.frame.streamId === this.streamId) this.stream.receiveFrame(decoded.frame);
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stream.detach();
      clearInterval(this.heartbeatTimer);
      if (this.disposed) return;
      this.lostAt = Date.now();
      this.target.onLinkEvent?.({ type: 'disconnected', reason: restarting ? 'relay_restarting' : silent ? 'heartbeat_timeout' : 'link_lost' });
      if (restarting) {
        // The relay is restarting: re-dial at once and then every few hundred ms for a while.
        this.backoff.reset();
        this.restartRetryUntil = Date.now() + RELAY_RESTART_RETRY.windowMs;
        this.scheduleReconnect(0);
      } else {
        this.scheduleReconnect(this.backoff.next());
      }
    });
    this.stream.attach((frame) => {
      if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > (this.target.maxQueuedBytes ?? CLIENT_SOCKET_QUEUE_BYTES)) return false;
      socket.send(frame);
      return true;
    });
    socket.resume();
    this.heartbeatTimer = setInterval(() => {
      if (socket.readyState === WebSocket.OPEN) socket.send(encodeRelayFrame({ streamId: this.streamId, ack: NO_ACK, ackBits: 0, body: HEARTBEAT_BODY }));
    }, this.target.heartbeatIntervalMs ?? 60_000);
    this.heartbeatTimer.unref();
    this.target.onLinkEvent?.({ type: 'connected', reconnect });
  }

  private scheduleReconnect(delayMs: number): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delayMs);
  }

  private nextDelay(): number {
    return Date.now() < this.restartRetryUntil ? restartRetryDelay() : this.backoff.next();
  }

  private async reconnect(): Promise<void> {
    if (this.disposed) return;
    try {
      const socket = await connectRelaySocket(this.url, this.target.token, this.target.connectTimeoutMs ?? 10_000);
      if (this.disposed) return socket.close();
      this.backoff.reset();
      this.adopt(socket, true);
    } catch (error) {
      // 404 executor_unavailable (the relay restarted and the agent has not re-registered yet),
      // 503 and network errors are retried until the give-up window ends; 400/401/403 are final.
      const message = error instanceof Error ? error.message : String(error);
      const giveUpMs = this.target.reconnectGiveUpMs ?? DEFAULT_RECONNECT_GIVE_UP_MS;
      if ((error instanceof RelayRefusedError && error.permanent) || Date.now() - this.lostAt > giveUpMs) {
        this.target.onLinkEvent?.({ type: 'gave-up', error: message });
        this.dispose(ResetReason.ClientGone);
        return;
      }
      this.target.onLinkEvent?.({ type: 'reconnect-failed', error: message });
      this.scheduleReconnect(this.nextDelay());
    }
  }
}
