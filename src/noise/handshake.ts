/**
 * The Noise handshake (`@chainsafe/libp2p-noise` 16.x, XX, X25519 + ChaChaPoly + SHA256, static keys
 * signed by Ed25519 identities) over a guarded duplex, bounded by a timeout and the caller's signal.
 * It ends with the transport taken over (see secure-connection-hook.ts) and the peer's proven identity.
 */
import { noise } from '@chainsafe/libp2p-noise';
import type { ComponentLogger, Logger, PeerId, Upgrader } from '@libp2p/interface';
import type { NoiseChannelOptions } from './channel-options.js';
import type { DuplexGuard } from './duplex-guard.js';
import { classifyHandshakeError } from './error-classification.js';
import { NoiseChannelError } from './noise-channel-error.js';
import { authenticationTaggingCrypto } from './record-authentication.js';
import { takeOverTransport, type SecureTransport } from './secure-connection-hook.js';

/** A completed handshake: the transport to run the channel on, and who proved to be at the other end. */
export interface SecuredStream {
  transport: SecureTransport;
  remotePeer: PeerId;
}

/**
 * Runs the handshake as `role`; the initiator pins `remotePeer`. On any failure it stops the guard
 * and rejects with a {@link NoiseChannelError}: `handshake-timeout`, `handshake-aborted`, what
 * `classifyPinning` makes of the error, or else `handshake-failed`.
 */
export async function runHandshake(
  guard: DuplexGuard,
  options: NoiseChannelOptions,
  role: 'initiator' | 'responder',
  remotePeer: PeerId | undefined,
  classifyPinning: (error: unknown) => NoiseChannelError | undefined,
): Promise<SecuredStream> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new NoiseChannelError('handshake-timeout', 'Noise handshake timed out'));
  }, options.handshakeTimeoutMs);
  const onCallerAbort = (): void => controller.abort(new NoiseChannelError('handshake-aborted', 'Noise handshake aborted'));
  options.signal?.addEventListener('abort', onCallerAbort, { once: true });
  if (options.signal?.aborted === true) onCallerAbort();

  const encrypter = noise({
    crypto: authenticationTaggingCrypto,
    ...(options.prologue === undefined ? {} : { prologueBytes: options.prologue }),
  })({
    peerId: options.identity.peerId,
    privateKey: options.identity.privateKey,
    logger: silentComponentLogger,
    upgrader: noMuxerUpgrader,
  });
  const takenTransport = takeOverTransport(encrypter);
  const secureOptions = { signal: controller.signal, skipStreamMuxerNegotiation: true, ...(remotePeer ? { remotePeer } : {}) };
  try {
    const secured =
      role === 'initiator'
        ? await encrypter.secureOutbound(guard.noiseStream, secureOptions)
        : await encrypter.secureInbound(guard.noiseStream, secureOptions);
    const transport = takenTransport();
    if (transport === undefined) {
      throw new Error('libp2p-noise did not hand over its transport cipher states (an unsupported @chainsafe/libp2p-noise version?)');
    }
    return { transport, remotePeer: secured.remotePeer };
  } catch (error) {
    const failure = timedOut
      ? new NoiseChannelError(
          'handshake-timeout',
          `Noise handshake timed out after ${options.handshakeTimeoutMs} ms (as ${role}); the peer did not complete it`,
          { cause: error },
        )
      : controller.signal.aborted
        ? new NoiseChannelError('handshake-aborted', `Noise handshake aborted (as ${role})`, { cause: error })
        : (classifyPinning(error) ?? classifyHandshakeError(error, role));
    guard.stop(failure);
    throw failure;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCallerAbort);
  }
}

const silentLogger: Logger = Object.assign(() => undefined, {
  error: () => undefined,
  trace: () => undefined,
  enabled: false,
  newScope: (): Logger => silentLogger,
});

const silentComponentLogger: ComponentLogger = { forComponent: () => silentLogger };

/** libp2p-noise only asks the upgrader for stream muxers, and not at all with skipStreamMuxerNegotiation. */
const noMuxerUpgrader = { getStreamMuxers: () => new Map() } as Pick<Upgrader, 'getStreamMuxers'> as Upgrader;
