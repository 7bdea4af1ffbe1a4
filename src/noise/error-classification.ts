/** Which {@link NoiseChannelError} a failure thrown by libp2p-noise or the underlying stream becomes. */
import { NoiseChannelError } from './noise-channel-error.js';
import { RECORD_AUTHENTICATION_FAILED, RecordAuthenticationError } from './record-authentication.js';

/** A failed handshake (not timed out, not aborted by the caller) as `handshake-failed`, with a readable reason. */
export function classifyHandshakeError(error: unknown, role: 'initiator' | 'responder'): NoiseChannelError {
  const peer = role === 'initiator' ? 'agent' : 'client';
  // libp2p-noise rewraps handshake decryption errors without `cause`; our tag survives in the text.
  if (isRecordAuthenticationFailure(error)) {
    return new NoiseChannelError(
      'handshake-failed',
      `Noise handshake failed: a handshake message did not authenticate (prologue mismatch, or the handshake was tampered with)`,
      { cause: error },
    );
  }
  if (hasInChain(error, (e) => e.name === 'UnexpectedEOFError')) {
    const hint = role === 'responder' ? ' (a client that does not trust this agent\'s identity hangs up here)' : '';
    return new NoiseChannelError(
      'handshake-failed',
      `Noise handshake failed: the ${peer} closed the stream during the handshake${hint}`,
      { cause: error },
    );
  }
  return new NoiseChannelError('handshake-failed', `Noise handshake failed (as ${role}): ${messageOf(error)}`, { cause: error });
}

/** Extracts the key a pinned handshake was offered, from libp2p-noise's UnexpectedPeerError text. */
export function presentedKeyOf(error: unknown): string | undefined {
  if (!(error instanceof Error) || error.name !== 'UnexpectedPeerError') return undefined;
  const match = /Payload identity key (\S+) does not match expected remote identity key/.exec(error.message);
  return match?.[1];
}

/** A failure while reading the established channel: `authentication-failed` for a tampered record, else `stream-failed`. */
export function classifyReadError(error: unknown): NoiseChannelError {
  if (isRecordAuthenticationFailure(error)) {
    return new NoiseChannelError(
      'authentication-failed',
      'Noise authentication failed: a received record did not decrypt (corrupted or tampered ciphertext); secure channel closed',
      { cause: error },
    );
  }
  return new NoiseChannelError('stream-failed', `secure channel failed: ${messageOf(error)}`, { cause: error });
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isRecordAuthenticationFailure(error: unknown): boolean {
  return hasInChain(error, (e) => e instanceof RecordAuthenticationError || e.message.includes(RECORD_AUTHENTICATION_FAILED));
}

function hasInChain(error: unknown, test: (error: Error) => boolean): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    if (test(current)) return true;
  }
  return false;
}
