/**
 * Layer 4: a Noise channel (`@chainsafe/libp2p-noise` 16.x, XX handshake, X25519 + ChaChaPoly +
 * SHA256, static keys signed by Ed25519 identities) over a {@link ByteDuplex}, exposed as a
 * {@link MessageTransport} of whole UTF-8 JSON messages. This module is the entry point the rest of
 * the code imports.
 *
 * The client is the Noise initiator and pins the agent's identity (`secureOutbound` with
 * `remotePeer`), so the handshake fails, before the client reveals its own identity, on any other key.
 * The agent is the responder and may restrict clients to an allowlist, checked after the handshake.
 *
 * The parts, in `src/noise/`: the handshake (handshake.ts) over a guarded duplex (duplex-guard.ts),
 * after which the channel takes libp2p-noise's cipher states over (secure-connection-hook.ts) and
 * moves the Noise transport messages itself (transport-message.ts) instead of libp2p-noise's
 * pipeline, without its per-record generators and copies; the established channel (noise-message-channel.ts) with its
 * plaintext framing in records of ≤ 65,518 bytes (plaintext-framing.ts) and its bounded outbound buffer
 * (record-queue.ts); options (channel-options.ts) and errors (noise-channel-error.ts,
 * error-classification.ts, record-authentication.ts). Outbound messages are sealed into buffers
 * the duplex can send without another copy (`ByteDuplex.allocateChunk`). See docs/performance.md.
 */
import type { PeerId } from '@libp2p/interface';
import type { ByteDuplex } from '../transport/byte-duplex.js';
import type { MessageTransport } from '../transport/message-transport.js';
import { toPinnedPeer, TRUST_ON_FIRST_USE, validateOptions, type AgentChannelOptions, type ClientChannelOptions } from './channel-options.js';
import { DuplexGuard } from './duplex-guard.js';
import { presentedKeyOf } from './error-classification.js';
import { runHandshake } from './handshake.js';
import { NoiseChannelError } from './noise-channel-error.js';
import { NoiseMessageChannel, type SecureChannel } from './noise-message-channel.js';
import { CLIENT_NOT_AUTHORIZED_ABORT_REASON } from './plaintext-framing.js';

export {
  DEFAULT_SEND_BUFFER_BYTES,
  type AgentChannelOptions,
  type AuthorizedClientSet,
  type ClientChannelOptions,
  type NoiseChannelOptions,
  TRUST_ON_FIRST_USE,
} from './channel-options.js';
export { NoiseChannelError, type NoiseChannelErrorCode } from './noise-channel-error.js';
export { CLOSE_FLUSH_TIMEOUT_MS, type SecureChannel } from './noise-message-channel.js';
export { MAX_RECORD_PLAINTEXT_BYTES } from './plaintext-framing.js';

/**
 * Runs the Noise handshake as initiator (client) over `duplex`, pinning the agent's identity (or, with
 * `expectedAgent: TRUST_ON_FIRST_USE`, accepting the identity the agent proves, which the channel's
 * `remoteIdentity` then tells). On any failure the promise rejects with a {@link NoiseChannelError}
 * and the duplex is released (sink ended, source stopped). It always settles within `handshakeTimeoutMs`.
 */
export async function openClientChannel(duplex: ByteDuplex, options: ClientChannelOptions): Promise<SecureChannel> {
  const guard = new DuplexGuard(duplex);
  let expected: PeerId;
  try {
    validateOptions(options);
    if (options.expectedAgent === TRUST_ON_FIRST_USE) {
      const secured = await runHandshake(guard, options, 'initiator', undefined, () => undefined);
      // Any proven identity is accepted, but only an Ed25519 one can be pinned next time.
      toPinnedPeer(secured.remotePeer);
      return new NoiseMessageChannel(secured.transport, guard, options, secured.remotePeer.toString());
    }
    expected = toPinnedPeer(options.expectedAgent);
  } catch (error) {
    guard.stop(error as Error);
    throw error;
  }
  const expectedText = expected.toString();
  const secured = await runHandshake(guard, options, 'initiator', expected, (error) => {
    const presented = presentedKeyOf(error);
    if (presented === undefined) return undefined;
    return new NoiseChannelError(
      'agent-identity-mismatch',
      `agent identity did not match: expected ${expectedText}, the agent presented ${presented}`,
      { cause: error },
    );
  });
  const remoteIdentity = secured.remotePeer.toString();
  if (!secured.remotePeer.equals(expected)) {
    // Unreachable with libp2p-noise pinning in place; kept as a second lock on the same door.
    const error = new NoiseChannelError(
      'agent-identity-mismatch',
      `agent identity did not match: expected ${expectedText}, the agent presented ${remoteIdentity}`,
    );
    guard.stop(error);
    throw error;
  }
  return new NoiseMessageChannel(secured.transport, guard, options, remoteIdentity);
}

/**
 * Runs the Noise handshake as responder (agent) over `duplex`. When `authorizedClients` is given and
 * does not have the client's proven identity (asked now, so a reloaded list counts), the client is
 * told so in an abort frame (CLIENT_NOT_AUTHORIZED_ABORT_REASON, which its channel turns into
 * `client-not-authorized`), the channel is closed and the promise rejects with `client-not-authorized`. On any failure the duplex is released.
 * It always settles within `handshakeTimeoutMs`.
 */
export async function acceptAgentChannel(duplex: ByteDuplex, options: AgentChannelOptions): Promise<SecureChannel> {
  const guard = new DuplexGuard(duplex);
  try {
    validateOptions(options);
  } catch (error) {
    guard.stop(error as Error);
    throw error;
  }
  const secured = await runHandshake(guard, options, 'responder', undefined, () => undefined);
  const remoteIdentity = secured.remotePeer.toString();
  const channel = new NoiseMessageChannel(secured.transport, guard, options, remoteIdentity);
  if (options.authorizedClients !== undefined && !options.authorizedClients.has(remoteIdentity)) {
    const error = new NoiseChannelError(
      'client-not-authorized',
      `client ${remoteIdentity} is not in this agent's authorized clients; secure channel refused`,
      { remoteIdentity },
    );
    channel.abort(error, CLIENT_NOT_AUTHORIZED_ABORT_REASON);
    throw error;
  }
  return channel;
}
