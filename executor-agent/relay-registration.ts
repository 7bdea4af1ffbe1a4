import WebSocket from 'ws';
import { decodeRelayFrame, encodeRelayFrame, streamIdToBytes, HEARTBEAT_BODY, type RelayFrame } from '../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../src/relay-frame/limits.js';
import { ReliableStream } from '../src/reliable-stream/reliable-stream.js';
import { acceptAgentChannel } from '../src/noise/noise-channel.js';
import type { Identity } from '../src/noise/identity.js';
import { EXECUTOR_CONNECT_PATH, ResetReason, parseRelayControlMessage } from '../src/relay-control/relay-endpoints.js';
import { Backoff, EXECUTOR_BACKOFF } from '../src/relay-link/backoff.js';
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
  heartbeatIntervalMs?: number;
  backoff?: { initialMs: number; maxMs: number };
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

interface AgentStream {
  stream: ReliableStream;
  /** The Noise handshake completed and the relay was told so. */
  accepted: boolean;
  lingerTimer?: NodeJS.Timeout;
}

/**
 * The agent's remote mode: dials out to the relay, registers the environment, and serves one
 * exec-protocol session per stream over a Noise channel (the agent is the responder). Reconnects
 * with exponential backoff and jitter; streams survive the reconnect and resume.
 */
export class RelayRegistration {
  private socket: WebSocket | null = null;
  private readonly streams = new Map<string, AgentStream>();
  private readonly backoff: Backoff;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private firstRegistration: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(
    private readonly agent: ExecutorAgent,
    private readonly options: RelayRegistrationOptions,
  ) {
    const backoff = options.backoff ?? EXECUTOR_BACKOFF;
    this.backoff = new Backoff(backoff.initialMs, backoff.maxMs);
  }

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
    for (const { stream } of this.streams.values()) stream.reset(ResetReason.ExecutorUnavailable);
    this.streams.clear();
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
      socket = await connectRelaySocket(url, this.options.token, 10_000);
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
    socket.on('message', (data, isBinary) => {
      if (!isBinary) {
        const control = parseRelayControlMessage(data.toString());
        if (control?.type === 'registered' && !registered) {
          registered = true;
          this.onRegistered(socket, Date.now() - started);
        } else if (control?.type === 'restarting') {
          restarting = true;
        }
        return;
      }
      if (registered) this.onFrame(data as Buffer);
    });
    socket.on('close', (code) => {
      if (this.socket === socket) this.socket = null;
      for (const { stream } of this.streams.values()) stream.detach();
      const reason = restarting ? 'relay_restarting' : code === 4001 ? 'replaced' : 'link_lost';
      this.options.onEvent?.({ type: 'disconnected', reason });
      if (code === 4001) {
        this.options.logger.warn('another agent registered this environment; not reconnecting');
        this.stopped = true;
        return;
      }
      if (restarting) this.backoff.reset();
      this.scheduleReconnect(restarting ? 'relay restarting' : `relay link closed (${code})`, restarting ? 0 : undefined);
    });
    socket.resume();
  }

  private onRegistered(socket: WebSocket, durationMs: number): void {
    this.backoff.reset();
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
    const maxQueued = this.options.maxQueuedBytes ?? 8 * 1024 * 1024;
    return (frame) => {
      if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > maxQueued) return false;
      socket.send(frame);
      return true;
    };
  }

  private scheduleReconnect(why: string, delayMs?: number): void {
    if (this.stopped) return;
    const delay = delayMs ?? this.backoff.next();
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
    if (this.streams.size >= (this.options.maxStreams ?? 128)) {
      this.sendReset(open.streamId, ResetReason.TooManyStreams);
      return;
    }
    const stream = new ReliableStream({ streamId: open.streamId, role: 'responder', maxMessageBytes: 1024 * 1024 });
    const entry: AgentStream = { stream, accepted: false };
    this.streams.set(open.streamId, entry);
    stream.attach(this.frameSink(socket));
    stream.onClose(() => {
      entry.lingerTimer = setTimeout(() => {
        if (this.streams.get(open.streamId) === entry) this.streams.delete(open.streamId);
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
