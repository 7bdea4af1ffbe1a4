import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { decodeRelayFrame, encodeRelayFrame, streamIdToBytes, HEARTBEAT_BODY } from '../relay-frame/relay-frame.js';
import { NO_ACK } from '../relay-frame/limits.js';
import { ReliableStream } from '../reliable-stream/reliable-stream.js';
import { openClientChannel, type SecureChannel } from '../noise/noise-channel.js';
import { generateIdentity, type Identity } from '../noise/identity.js';
import { clientConnectPath, parseRelayControlMessage, ResetReason } from '../relay-control/relay-endpoints.js';
import { Backoff, CLIENT_BACKOFF } from '../relay-link/backoff.js';
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
  /** Give up reconnecting a dropped relay link after this long (the stream is then reset). */
  reconnectGiveUpMs?: number;
}

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
  private readonly backoff = new Backoff(CLIENT_BACKOFF.initialMs, CLIENT_BACKOFF.maxMs);
  private disposed = false;
  private lostAt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(private readonly target: RelayTarget) {
    this.stream = new ReliableStream({ streamId: this.streamId, role: 'initiator', maxMessageBytes: 1024 * 1024 });
    this.stream.onClose(() => this.dispose());
  }

  private get url(): string {
    return `${this.target.relay.replace(/\/+$/, '')}${clientConnectPath(this.target.environmentId)}`;
  }

  async connectFirst(): Promise<void> {
    const socket = await connectRelaySocket(this.url, this.target.token, this.target.connectTimeoutMs ?? 10_000);
    this.adopt(socket);
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

  private adopt(socket: WebSocket): void {
    this.socket = socket;
    this.lostAt = 0;
    let restarting = false;
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
      if (restarting) this.backoff.reset();
      this.scheduleReconnect(restarting ? 0 : this.backoff.next());
    });
    this.stream.attach((frame) => {
      if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > 8 * 1024 * 1024) return false;
      socket.send(frame);
      return true;
    });
    socket.resume();
    this.heartbeatTimer = setInterval(() => {
      if (socket.readyState === WebSocket.OPEN) socket.send(encodeRelayFrame({ streamId: this.streamId, ack: NO_ACK, ackBits: 0, body: HEARTBEAT_BODY }));
    }, 60_000);
    this.heartbeatTimer.unref();
  }

  private scheduleReconnect(delayMs: number): void {
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delayMs);
  }

  private async reconnect(): Promise<void> {
    if (this.disposed) return;
    try {
      const socket = await connectRelaySocket(this.url, this.target.token, this.target.connectTimeoutMs ?? 10_000);
      if (this.disposed) return socket.close();
      this.backoff.reset();
      this.adopt(socket);
    } catch (error) {
      const giveUpMs = this.target.reconnectGiveUpMs ?? 120_000;
      if ((error instanceof RelayRefusedError && error.permanent) || Date.now() - this.lostAt > giveUpMs) {
        this.dispose(ResetReason.ClientGone);
        return;
      }
      this.scheduleReconnect(this.backoff.next());
    }
  }
}
