/** What the caller configures on either end of a Noise channel, its defaults and their validation. */
import type { PeerId } from '@libp2p/interface';
import { parsePublicIdentity, type Identity } from './identity.js';
import { NoiseChannelError } from './noise-channel-error.js';
import { ABORT_MARKER } from './plaintext-framing.js';

/** Default bound on plaintext accepted by `send` but not yet taken by the encrypting pipeline. */
export const DEFAULT_SEND_BUFFER_BYTES = 1024 * 1024;

/** Options common to both ends of a channel. */
export interface NoiseChannelOptions {
  /** This endpoint's static identity (see `identity.ts`). */
  identity: Identity;
  /** The handshake fails with `handshake-timeout` when it has not completed within this time. */
  handshakeTimeoutMs: number;
  /** Bytes both ends must agree on (e.g. an encoding of the stream id); mixed into the handshake hash. */
  prologue?: Uint8Array;
  /** Largest message accepted from the peer and by `send`. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Bound on plaintext buffered by `send` before it awaits the sink. Default 1 MiB. */
  sendBufferBytes?: number;
  /** Aborts the handshake (not the established channel). */
  signal?: AbortSignal;
}

/**
 * In place of a pinned agent identity: accept whichever identity the agent proves in the handshake,
 * to learn it on first contact (trust on first use, as ssh's `accept-new`). The caller must record
 * the identity it got (`SecureChannel.remoteIdentity`) and pin it from then on.
 */
export const TRUST_ON_FIRST_USE: unique symbol = Symbol('execrelay.trust-on-first-use');

/** Options of `openClientChannel`. */
export interface ClientChannelOptions extends NoiseChannelOptions {
  /** The agent's pinned public identity (the handshake fails on any other key), or TRUST_ON_FIRST_USE. */
  expectedAgent: PeerId | string | typeof TRUST_ON_FIRST_USE;
}

/**
 * Which client identities an agent lets in, asked once per handshake (after the client proved its
 * identity), so a list that is reloaded while the agent runs takes effect on the next handshake. A
 * `ReadonlySet<string>` of canonical public identities is one.
 */
export interface AuthorizedClientSet {
  has(identity: string): boolean;
}

/** Options of `acceptAgentChannel`. */
export interface AgentChannelOptions extends NoiseChannelOptions {
  /** The clients allowed in (canonical public identities); absent = any client. */
  authorizedClients?: AuthorizedClientSet;
}

/** Throws an `invalid-options` {@link NoiseChannelError} for a bound that is not a usable number. */
export function validateOptions(options: NoiseChannelOptions): void {
  const positive = (value: number | undefined): boolean => value === undefined || (Number.isFinite(value) && value > 0);
  if (!Number.isFinite(options.handshakeTimeoutMs) || options.handshakeTimeoutMs <= 0) {
    throw new NoiseChannelError('invalid-options', `handshakeTimeoutMs must be a positive number, got ${options.handshakeTimeoutMs}`);
  }
  if (!positive(options.maxMessageBytes) || (options.maxMessageBytes ?? 0) >= ABORT_MARKER) {
    throw new NoiseChannelError('invalid-options', `maxMessageBytes must be between 1 and ${ABORT_MARKER - 1}, got ${options.maxMessageBytes}`);
  }
  if (!positive(options.sendBufferBytes)) {
    throw new NoiseChannelError('invalid-options', `sendBufferBytes must be a positive number, got ${options.sendBufferBytes}`);
  }
}

/** The agent identity a client pins, as a PeerId with its public key; `invalid-options` otherwise. */
export function toPinnedPeer(expected: PeerId | string): PeerId {
  let peer: PeerId;
  try {
    peer = typeof expected === 'string' ? parsePublicIdentity(expected) : expected;
  } catch (error) {
    throw new NoiseChannelError('invalid-options', `expected agent identity is invalid: ${(error as Error).message}`, { cause: error });
  }
  if (peer.publicKey === undefined) {
    // libp2p-noise silently skips pinning when the PeerId carries no public key (e.g. an RSA id).
    throw new NoiseChannelError('invalid-options', `expected agent identity ${peer.toString()} carries no public key and cannot be pinned`);
  }
  return peer;
}
