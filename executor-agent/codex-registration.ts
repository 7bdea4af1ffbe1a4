import type WebSocket from 'ws';
import { decodeCodexRelayFrame, encodeCodexRelayFrame } from '../src/codex-relay-frame/codex-relay-frame.js';
import {
  CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES,
  CODEX_EXECUTOR_MAX_STREAMS,
  CODEX_PROTOCOL_ERROR_RESET_REASON,
  CODEX_VALIDATION_TIMEOUT_MS,
} from '../src/codex-channel/codex-channel-limits.js';
import { socketFramePort } from '../src/codex-channel/codex-noise-channel.js';
import type { CodexFramePort } from '../src/codex-channel/codex-record-channel.js';
import { CodexResponderChannel } from '../src/codex-channel/codex-responder-channel.js';
import { requestCodexRegister, requestCodexValidate } from '../src/codex-registry/registry-client.js';
import { hybridFingerprint } from '../src/noise-hybrid/hybrid-fingerprint.js';
import { HybridIkResponder, type Message1Contents } from '../src/noise-hybrid/hybrid-ik-handshake.js';
import type { HybridKeyPair } from '../src/noise-hybrid/hybrid-keys.js';
import { hybridPrologue } from '../src/noise-hybrid/prologue.js';
import type { AuthorizedClientSet } from '../src/noise/noise-channel.js';
import { CLIENT_NOT_AUTHORIZED_RESET_REASON, ResetReason } from '../src/relay-control/relay-endpoints.js';
import { EXECUTOR_BACKOFF } from '../src/relay-link/backoff.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, RelayLink, type LinkLoss, type RelayLinkTuning } from '../src/relay-link/relay-link.js';
import { connectRelaySocket, RelayRefusedError } from '../src/relay-link/relay-socket.js';
import type { Logger } from '../src/logging/logger.js';
import type { ExecutorAgent } from './executor-agent.js';
import { RegistrationLifecycle, type RegistrationEndedError, type RelayRegistrationEvent } from './registration-lifecycle.js';

/** `agent --relay URL --wire codex`: the codex executor's registration (see {@link CodexRelayRegistration}). */
export interface CodexRegistrationOptions extends Omit<RelayLinkTuning, 'heartbeatIntervalMs' | 'maxQueuedBytes'> {
  /** Relay base URL, `ws://HOST:PORT` or `wss://HOST:PORT` (its registry is `http(s)://` on the same listener). */
  relayUrl: string;
  environmentId: string;
  /** A relay token with the executor role for the environment (the registration bearer). */
  token: string;
  /** This executor's persistent hybrid key: the relay binds the environment to it, clients pin its `hyb1:` fingerprint. */
  hybridKey: HybridKeyPair;
  /**
   * The clients this executor serves (their `hyb1:` fingerprints), asked at each handshake on top
   * of the relay's validation; or `'any'`: every client the relay validates.
   */
  authorizedClients: AuthorizedClientSet | 'any';
  /** Streams served at once. Default {@link CODEX_EXECUTOR_MAX_STREAMS} (codex's 128). */
  maxStreams?: number;
  /** Bound on the `/validate` call. Default 10 s (codex's). */
  validationTimeoutMs?: number;
  logger: Logger;
  onEvent?: (event: RelayRegistrationEvent) => void;
  /** As `RegistrationLifecycleOptions.onFatal`: the registration ended for good after it was first registered. */
  onFatal?: (error: RegistrationEndedError) => void;
}

/** A stream of the executor socket: its handshake waits for the relay's validation, or it is served. */
interface ServedStream {
  channel?: CodexResponderChannel;
}

/** The socket a dial produced, with the registration it belongs to. */
interface RendezvousLink {
  readonly socket: WebSocket;
  readonly registrationId: string;
  readonly port: CodexFramePort;
}

/**
 * The agent as a codex-protocol executor (`execrelay agent --relay URL --wire codex`), speaking what
 * `codex exec-server --remote` 0.169.0 speaks (protocol notes §1-§8):
 *
 * - every dial registers (`POST /cloud/environment/{id}/register`, executor-role bearer, the
 *   persistent hybrid key) and opens the rendezvous URL the relay answered (no token on it: the
 *   URL is signed). A refused token or request is final; everything else is re-dialled by the
 *   agent's one reconnect loop (`RelayLink`), which re-registers — so a restarted relay (whose
 *   signing secret is new) is registered with again by itself, with the same key;
 * - a Handshake on a new stream: message 1 of the hybrid IK (as the responder, with the prologue
 *   of this registration and stream), then this agent's own authorized-clients check of the key
 *   it proved, then the relay's `/validate` of its authorization, and only then message 2; any
 *   failure is a Reset. At most {@link CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES} handshakes wait for
 *   validation and {@link CODEX_EXECUTOR_MAX_STREAMS} streams are served at once;
 * - a served stream is a `CodexResponderChannel` (records of §8, seq ordering) given to
 *   `ExecutorAgent.serve`, the same handlers as every other transport; Data on a stream that is
 *   not served, or a second Handshake on one, is answered with a Reset; Resume, Ack and Heartbeat
 *   frames are ignored (codex has no resume: the socket's streams end with it).
 */
export class CodexRelayRegistration {
  private readonly link: RelayLink;
  private readonly streams = new Map<string, ServedStream>();
  private pendingHandshakes = 0;
  private dialled: RendezvousLink | undefined;
  private current: RendezvousLink | undefined;
  private dialStartedAt = 0;
  private readonly lifecycle: RegistrationLifecycle;
  /** `hyb1:` fingerprint of this executor's key. */
  readonly fingerprint: string;

  constructor(
    private readonly agent: ExecutorAgent,
    private readonly options: CodexRegistrationOptions,
  ) {
    this.fingerprint = hybridFingerprint(options.hybridKey.publicKey);
    const logger = options.logger;
    this.lifecycle = new RegistrationLifecycle({ ...options, replacedBy: 'executor' }, () => this.stop());
    this.link = new RelayLink(
      { relayUrl: options.relayUrl, path: '', token: options.token, dial: () => this.dial(), defaultBackoff: EXECUTOR_BACKOFF, tuning: options },
      {
        socketAdopted: ({ dialStartedAt }) => this.onAdopted(dialStartedAt),
        frameReceived: () => undefined,
        rawFrameReceived: (data) => this.onFrame(data),
        linkSilent: () => logger.warn('rendezvous link silent past the pong timeout; reconnecting'),
        linkLost: (loss) => this.onLinkLost(loss),
        dialFailed: (error, final) => this.onDialFailed(error, final),
        redialScheduled: (delayMs, why) => logger.info({ delayMs, why }, 'registering with the relay again'),
        // The codex wire has no per-stream heartbeats (WebSocket pings only).
        heartbeatStreamIds: () => [],
      },
    );
  }

  /** True while a rendezvous socket is open. */
  get connected(): boolean {
    return this.link.ready;
  }

  /** Streams served now (validated handshakes). */
  get activeStreams(): number {
    let served = 0;
    for (const stream of this.streams.values()) if (stream.channel) served += 1;
    return served;
  }

  /** Resolves once registered the first time; rejects on a permanent refusal (bad token, scope, key binding). */
  start(): Promise<void> {
    return this.lifecycle.start(() => this.link.start());
  }

  stop(): void {
    for (const stream of [...this.streams.values()]) stream.channel?.close();
    this.streams.clear();
    this.link.stop({ reason: 'agent stopping' });
  }

  /** Drops the rendezvous socket without stopping (tests use it to cut the link). */
  dropLink(): void {
    this.link.dropSocket();
  }

  /** One dial: register, then open the rendezvous URL of that registration. */
  private async dial(): Promise<WebSocket> {
    const timeoutMs = this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.dialStartedAt = Date.now();
    const { environmentId, token, relayUrl, proxy } = this.options;
    // Both the registry call and the rendezvous socket go through the proxy when there is one.
    const answer = await requestCodexRegister({ relay: relayUrl, environmentId, token, executorKey: this.options.hybridKey.publicKey, timeoutMs, ...(proxy ? { proxy } : {}) });
    let socket: WebSocket;
    try {
      socket = await connectRelaySocket(answer.url, '', timeoutMs, {}, proxy);
    } catch (error) {
      // As codex: a refused rendezvous upgrade means registering again (the next dial does), never giving up.
      if (error instanceof RelayRefusedError) throw new Error(`the relay refused the rendezvous socket (HTTP ${error.status} ${error.reason}); registering again`);
      throw error;
    }
    this.dialled = { socket, registrationId: answer.registrationId, port: socketFramePort(socket) };
    return socket;
  }

  private onAdopted(dialStartedAt: number): void {
    this.current = this.dialled;
    this.dialled = undefined;
    // No `registered` answer on the codex wire: the registry already answered, the socket is ready.
    if (!this.link.markReady()) return;
    this.lifecycle.registered(Date.now() - Math.min(dialStartedAt, this.dialStartedAt || dialStartedAt));
    this.options.logger.info({ environmentId: this.options.environmentId, executorKey: this.fingerprint }, 'registered with the relay (codex wire)');
  }

  private onLinkLost(loss: LinkLoss): boolean {
    this.current = undefined;
    for (const stream of [...this.streams.values()]) stream.channel?.socketLost();
    this.streams.clear();
    return this.lifecycle.linkLost(loss);
  }

  private onDialFailed(error: Error, final: boolean): void {
    this.lifecycle.dialFailed(error, final, (error as Error & { permanent?: boolean }).permanent === true);
    if (!final) this.options.logger.warn({ err: error.message }, 'registration with the relay failed; retrying');
  }

  private onFrame(data: Buffer): void {
    const link = this.current;
    if (!link) return;
    const decoded = decodeCodexRelayFrame(data);
    if (!decoded.ok) {
      this.options.logger.debug({ fault: decoded.fault }, 'dropping an undecodable codex relay frame');
      return;
    }
    const { streamId, body } = decoded.frame;
    const known = this.streams.get(streamId);
    switch (body.type) {
      case 'handshake':
        if (known) {
          // A second handshake on a stream: the stream is reset (codex does the same).
          this.forget(streamId, known);
          known.channel?.close();
          if (!known.channel) this.sendReset(link, streamId, CODEX_PROTOCOL_ERROR_RESET_REASON);
          return;
        }
        void this.acceptHandshake(link, streamId, body.payload);
        return;
      case 'data':
        if (known?.channel) known.channel.receiveBody(body);
        else {
          if (known) this.forget(streamId, known);
          this.sendReset(link, streamId, CODEX_PROTOCOL_ERROR_RESET_REASON);
        }
        return;
      case 'reset':
        if (!known) return;
        this.forget(streamId, known);
        known.channel?.receiveBody(body);
        return;
      default:
        // Resume, Ack, Heartbeat: accepted and ignored, as codex 0.169.0 does.
        return;
    }
  }

  private async acceptHandshake(link: RendezvousLink, streamId: string, message1: Uint8Array): Promise<void> {
    const started = Date.now();
    const refuse = (reason: string, why: string, refusal: { client: string | null; reason: 'client_not_authorized' | 'handshake_failed' }) => {
      this.options.onEvent?.({ type: 'handshake', result: 'failure', durationMs: Date.now() - started });
      this.options.logger.warn({ err: why }, 'codex handshake refused');
      this.agent.clientRefused(refusal);
      this.sendReset(link, streamId, reason);
    };
    if (this.agent.draining) return this.sendReset(link, streamId, ResetReason.ExecutorDraining);
    if (this.pendingHandshakes >= CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES) return this.sendReset(link, streamId, ResetReason.TooManyPendingOpens);
    if (this.streams.size - this.pendingHandshakes >= (this.options.maxStreams ?? CODEX_EXECUTOR_MAX_STREAMS)) return this.sendReset(link, streamId, ResetReason.TooManyStreams);
    const responder = new HybridIkResponder({
      staticKeyPair: this.options.hybridKey,
      prologue: hybridPrologue({ environmentId: this.options.environmentId, executorRegistrationId: link.registrationId, streamId }),
    });
    let contents: Message1Contents;
    let authorization: string;
    try {
      contents = responder.readMessage1(message1);
      authorization = new TextDecoder('utf-8', { fatal: true }).decode(contents.payload);
    } catch (error) {
      return refuse(CODEX_PROTOCOL_ERROR_RESET_REASON, `message 1: ${(error as Error).message}`, { client: null, reason: 'handshake_failed' });
    }
    const client = hybridFingerprint(contents.initiatorStaticKey);
    // This agent's own list first: an unlisted client is refused without asking the relay.
    if (this.options.authorizedClients !== 'any' && !this.options.authorizedClients.has(client)) {
      return refuse(CLIENT_NOT_AUTHORIZED_RESET_REASON, 'client not in the authorized clients file', { client, reason: 'client_not_authorized' });
    }
    const entry: ServedStream = {};
    this.streams.set(streamId, entry);
    this.pendingHandshakes += 1;
    let valid: boolean;
    try {
      valid = await requestCodexValidate({
        relay: this.options.relayUrl,
        environmentId: this.options.environmentId,
        token: this.options.token,
        streamId,
        registrationId: link.registrationId,
        harnessKey: contents.initiatorStaticKey,
        authorization,
        timeoutMs: this.options.validationTimeoutMs ?? CODEX_VALIDATION_TIMEOUT_MS,
        // Every registry call goes through the proxy the registration uses.
        ...(this.options.proxy ? { proxy: this.options.proxy } : {}),
      });
    } finally {
      this.pendingHandshakes -= 1;
    }
    // Reset by the client, or the socket went, while the relay was asked.
    if (this.streams.get(streamId) !== entry || this.current !== link) return;
    if (!valid) {
      this.streams.delete(streamId);
      return refuse(CODEX_PROTOCOL_ERROR_RESET_REASON, 'the relay did not validate the client\'s authorization', { client, reason: 'handshake_failed' });
    }
    const { message, transport } = responder.writeMessage2();
    link.port.send(encodeCodexRelayFrame({ streamId, body: { type: 'handshake', payload: message } })).catch(() => undefined);
    entry.channel = new CodexResponderChannel(link.port, streamId, transport, this.agent.config.maxMessageBytes, client, () => this.forget(streamId, entry));
    this.options.onEvent?.({ type: 'handshake', result: 'success', durationMs: Date.now() - started });
    this.agent.serve(entry.channel);
  }

  private forget(streamId: string, entry: ServedStream): void {
    if (this.streams.get(streamId) === entry) this.streams.delete(streamId);
  }

  private sendReset(link: RendezvousLink, streamId: string, reason: string): void {
    if (link.port.open) link.port.send(encodeCodexRelayFrame({ streamId, body: { type: 'reset', reason } })).catch(() => undefined);
  }
}
