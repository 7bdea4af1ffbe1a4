import { streamIdToBytes, type RelayFrame } from '../src/relay-frame/relay-frame.js';
import { ReliableStream } from '../src/reliable-stream/reliable-stream.js';
import { acceptAgentChannel, NoiseChannelError, type AuthorizedClientSet } from '../src/noise/noise-channel.js';
import type { Identity } from '../src/noise/identity.js';
import {
  CLIENT_NOT_AUTHORIZED_RESET_REASON,
  EXECUTOR_CONNECT_PATH,
  ResetReason,
  type RelayControlMessage,
} from '../src/relay-control/relay-endpoints.js';
import { executorProofHeaders } from '../src/relay-control/executor-proof.js';
import { EXECUTOR_BACKOFF, type BackoffSettings } from '../src/relay-link/backoff.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, RelayLink, type LinkLoss, type RelayLinkTuning } from '../src/relay-link/relay-link.js';
import { RelayRefusedError } from '../src/relay-link/relay-socket.js';
import type { Logger } from '../src/logging/logger.js';
import type { ExecutorAgent } from './executor-agent.js';
import { RegistrationLifecycle, type RegistrationEndedError, type RelayRegistrationEvent } from './registration-lifecycle.js';

export { RegistrationEndedError, type RelayRegistrationEvent } from './registration-lifecycle.js';

/** The agent's relay registration; the relay-link settings are {@link RelayLinkTuning}'s. */
export interface RelayRegistrationOptions extends RelayLinkTuning {
  /** Relay base URL, `ws://HOST:PORT` or `wss://HOST:PORT`. */
  relayUrl: string;
  environmentId: string;
  token: string;
  identity: Identity;
  /**
   * The client identities this agent serves, asked at each handshake (an `AuthorizedClients` file
   * that reloads itself, or a fixed set; an empty one refuses everyone), or `'any'`: every client
   * that holds a relay token for the environment (an explicit opt-out; there is no default).
   */
  authorizedClients: AuthorizedClientSet | 'any';
  handshakeTimeoutMs?: number;
  /** Streams this agent serves at once through the relay. */
  maxStreams?: number;
  /** Reconnect backoff (jittered). Default 1 s doubling to 30 s. */
  backoff?: BackoffSettings;
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
  /** The registration ended for good after it was first registered (see `RegistrationLifecycleOptions.onFatal`). */
  onFatal?: (error: RegistrationEndedError) => void;
}

/** How long a finished stream stays routable to re-acknowledge a retransmitted `close`. */
const CLOSED_STREAM_LINGER_MS = 20_000;
/** Default streams served at once through the relay (the codex relay's 128 per executor). */
export const DEFAULT_AGENT_RELAY_STREAMS = 128;
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
 * exec-protocol session per stream over a Noise channel (the agent is the responder). The link
 * itself (liveness, re-dials with backoff and jitter, the relay-restart window, heartbeats, the
 * bounded frame sink) is the shared `RelayLink`; this class adds the registration handshake and
 * the many streams, which survive a reconnect and resume.
 */
export class RelayRegistration {
  private readonly link: RelayLink;
  private readonly streams = new Map<string, AgentStream>();
  /** Entries of `streams` that ended and only linger (they do not count against maxStreams). */
  private lingering = 0;
  private readonly silenceTimer: NodeJS.Timeout;
  /** Bounds the wait for the relay's `registered` answer on the current socket. */
  private registrationTimer: NodeJS.Timeout | undefined;
  private dialStartedAt = 0;
  private readonly lifecycle: RegistrationLifecycle;

  constructor(
    private readonly agent: ExecutorAgent,
    private readonly options: RelayRegistrationOptions,
  ) {
    const logger = options.logger;
    this.lifecycle = new RegistrationLifecycle({ ...options, replacedBy: 'agent process' }, () => this.stop());
    this.link = new RelayLink(
      {
        relayUrl: options.relayUrl,
        path: `${EXECUTOR_CONNECT_PATH}?environmentId=${encodeURIComponent(options.environmentId)}`,
        token: options.token,
        // A fresh proof of this agent's identity on every dial: the relay binds the environment to it.
        dialHeaders: () => executorProofHeaders(options.identity, options.environmentId, options.relayUrl),
        defaultBackoff: EXECUTOR_BACKOFF,
        tuning: options,
      },
      {
        socketAdopted: ({ dialStartedAt }) => this.awaitRegistration(dialStartedAt),
        controlMessage: (message) => this.onControlMessage(message),
        frameReceived: (frame) => this.onFrame(frame),
        undecodableFrame: (error) => logger.debug({ error: error.code }, 'dropping undecodable relay frame'),
        linkSilent: () => logger.warn('relay link silent past the pong timeout; reconnecting'),
        linkLost: (loss) => this.onLinkLost(loss),
        dialFailed: (error, final) => this.lifecycle.dialFailed(error, final, error instanceof RelayRefusedError),
        redialScheduled: (delayMs, why) => logger.info({ delayMs, why }, 'reconnecting to relay'),
        heartbeatStreamIds: () => this.streams.keys(),
      },
    );
    const silence = this.silenceTimeoutMs;
    this.silenceTimer = setInterval(() => this.resetSilentStreams(), Math.max(50, Math.min(30_000, Math.floor(silence / 4))));
    this.silenceTimer.unref();
  }

  private get silenceTimeoutMs(): number {
    return this.options.streamSilenceTimeoutMs ?? DEFAULT_STREAM_SILENCE_TIMEOUT_MS;
  }

  /** True while a relay socket is open and registered. */
  get connected(): boolean {
    return this.link.ready;
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  /** Resolves once registered the first time; rejects on a permanent refusal (bad token or id). */
  start(): Promise<void> {
    return this.lifecycle.start(() => this.link.start());
  }

  stop(): void {
    clearInterval(this.silenceTimer);
    for (const { stream, lingerTimer } of this.streams.values()) {
      clearTimeout(lingerTimer);
      stream.reset(ResetReason.ExecutorUnavailable);
    }
    this.streams.clear();
    this.lingering = 0;
    // After the resets above went out.
    this.link.stop({ reason: 'agent stopping' });
  }

  /** Drops the relay socket without stopping (tests use it to cut the link). */
  dropLink(): void {
    this.link.dropSocket();
  }

  /** A new socket: the relay answers `registered` on it, or it is dropped and re-dialled. */
  private awaitRegistration(dialStartedAt: number): void {
    this.dialStartedAt = dialStartedAt;
    clearTimeout(this.registrationTimer);
    this.registrationTimer = setTimeout(() => {
      this.options.logger.warn('relay did not confirm the registration in time; reconnecting');
      this.link.dropSocket();
    }, this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    this.registrationTimer.unref();
  }

  private onControlMessage(message: RelayControlMessage): void {
    if (message.type === 'registered' && this.link.markReady()) this.onRegistered(Date.now() - this.dialStartedAt);
  }

  private onRegistered(durationMs: number): void {
    clearTimeout(this.registrationTimer);
    this.lifecycle.registered(durationMs);
    this.options.logger.info({ environmentId: this.options.environmentId, streams: this.streams.size }, 'registered with relay');
    const send = this.link.frameSink();
    for (const [streamId, entry] of this.streams) {
      entry.stream.attach(send);
      // A relay that restarted knows nothing of this stream: say again that it is accepted.
      if (entry.accepted) this.sendAccept(streamId);
    }
  }

  private onLinkLost(loss: LinkLoss): boolean {
    clearTimeout(this.registrationTimer);
    for (const { stream } of this.streams.values()) stream.detach();
    return this.lifecycle.linkLost(loss);
  }

  private onFrame(frame: RelayFrame): void {
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
    if (this.agent.draining) {
      this.sendReset(open.streamId, ResetReason.ExecutorDraining);
      return;
    }
    if (this.streams.size - this.lingering >= (this.options.maxStreams ?? DEFAULT_AGENT_RELAY_STREAMS)) {
      this.sendReset(open.streamId, ResetReason.TooManyStreams);
      return;
    }
    const stream = new ReliableStream({ streamId: open.streamId, role: 'responder', maxMessageBytes: 1024 * 1024 });
    const entry: AgentStream = { stream, accepted: false, lastHeardAt: Date.now() };
    this.streams.set(open.streamId, entry);
    stream.attach(this.link.frameSink());
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
      ...(this.options.authorizedClients === 'any' ? {} : { authorizedClients: this.options.authorizedClients }),
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
        // The reason reaches the client: it names what failed (never anything the client does not
        // know); a refused identity with the one reason the client recognises.
        const notAuthorized = error instanceof NoiseChannelError && error.code === 'client-not-authorized';
        this.agent.clientRefused(
          notAuthorized ? { client: error.remoteIdentity ?? null, reason: 'client_not_authorized' } : { client: null, reason: 'handshake_failed' },
        );
        stream.reset(notAuthorized ? CLIENT_NOT_AUTHORIZED_RESET_REASON : `${ResetReason.HandshakeFailed}: ${error.message}`);
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
    this.link.sendBareFrame(streamId, { type: 'open', payload: new Uint8Array(0) });
  }

  private sendReset(streamId: string, reason: string): void {
    this.link.sendBareFrame(streamId, { type: 'reset', reason });
  }
}
