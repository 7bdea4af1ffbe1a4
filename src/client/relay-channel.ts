import { randomUUID } from 'node:crypto';
import { streamIdToBytes } from '../relay-frame/relay-frame.js';
import { ReliableStream } from '../reliable-stream/reliable-stream.js';
import { openClientChannel, type SecureChannel, type TRUST_ON_FIRST_USE } from '../noise/noise-channel.js';
import { generateIdentity, type Identity } from '../noise/identity.js';
import { clientConnectPath, ResetReason } from '../relay-control/relay-endpoints.js';
import { CLIENT_BACKOFF, type BackoffSettings } from '../relay-link/backoff.js';
import { RelayLink, type RelayLinkTuning } from '../relay-link/relay-link.js';

/** Where and how a client reaches an agent; the relay-link settings are {@link RelayLinkTuning}'s. */
export interface RelayTarget extends RelayLinkTuning {
  /** Relay base URL, `ws://HOST:PORT` or `wss://HOST:PORT`. */
  relay: string;
  environmentId: string;
  /**
   * The agent's public identity (from `execrelay keygen` on the executor): the handshake fails on any
   * other. TRUST_ON_FIRST_USE accepts the identity the agent proves (the client's `agentIdentity`
   * tells it), for a caller that records it and pins it from then on.
   */
  agentKey: string | typeof TRUST_ON_FIRST_USE;
  token: string;
  /** This client's identity (for agents with an authorized-clients list); a fresh one otherwise. */
  identity?: Identity;
  handshakeTimeoutMs?: number;
  /** Give up reconnecting a dropped relay link after this long (the stream is then reset). Default 2 min. */
  reconnectGiveUpMs?: number;
  /** Reconnect backoff (jittered). Default 500 ms doubling to 5 s. */
  backoff?: BackoffSettings;
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

/** The client's side of the relay link: its one reliable stream, reset when re-dialling gives up. */
class ClientRelayLink {
  readonly streamId = randomUUID();
  readonly stream: ReliableStream;
  private readonly link: RelayLink;
  private disposed = false;

  constructor(target: RelayTarget) {
    this.stream = new ReliableStream({ streamId: this.streamId, role: 'initiator', maxMessageBytes: 1024 * 1024 });
    const onLinkEvent = target.onLinkEvent;
    this.link = new RelayLink(
      {
        relayUrl: target.relay,
        path: clientConnectPath(target.environmentId),
        token: target.token,
        defaultBackoff: CLIENT_BACKOFF,
        giveUpMs: target.reconnectGiveUpMs ?? DEFAULT_RECONNECT_GIVE_UP_MS,
        tuning: target,
      },
      {
        // The relay routes the client's socket as soon as it is open: the link is ready at once.
        socketAdopted: ({ reconnect }) => {
          this.link.markReady();
          this.stream.attach(this.link.frameSink());
          onLinkEvent?.({ type: 'connected', reconnect });
        },
        frameReceived: (frame) => {
          if (frame.streamId === this.streamId) this.stream.receiveFrame(frame);
        },
        heartbeatStreamIds: () => [this.streamId],
        linkLost: ({ restarting, silent }) => {
          if (this.disposed) return false;
          this.stream.detach();
          onLinkEvent?.({ type: 'disconnected', reason: restarting ? 'relay_restarting' : silent ? 'heartbeat_timeout' : 'link_lost' });
          return true;
        },
        // Retried until `reconnectGiveUpMs`; a final failure (also a permanent refusal) resets the stream.
        dialFailed: (error, final) => {
          if (!final) {
            onLinkEvent?.({ type: 'reconnect-failed', error: error.message });
            return;
          }
          onLinkEvent?.({ type: 'gave-up', error: error.message });
          this.dispose(ResetReason.ClientGone);
        },
      },
    );
    this.stream.onClose(() => this.dispose());
  }

  /** The first dial: its failure is the caller's (no retry). */
  connectFirst(): Promise<void> {
    return this.link.open();
  }

  dispose(resetReason?: string): void {
    if (this.disposed) return;
    this.disposed = true;
    // Let the final close/ack frames go out before the socket closes.
    this.link.stop({ flushMs: 50 });
    if (resetReason) this.stream.reset(resetReason);
  }
}
