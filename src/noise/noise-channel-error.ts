/** Fixed reasons a Noise channel fails; usable as a metric label. */
export type NoiseChannelErrorCode =
  | 'handshake-timeout'
  | 'handshake-aborted'
  | 'handshake-failed'
  | 'agent-identity-mismatch'
  | 'client-not-authorized'
  | 'authentication-failed'
  | 'message-too-large'
  | 'protocol-error'
  | 'peer-aborted'
  | 'stream-failed'
  | 'invalid-options';

/** Every failure of a Noise channel, in the handshake or afterwards. */
export class NoiseChannelError extends Error {
  override readonly name = 'NoiseChannelError';
  constructor(
    readonly code: NoiseChannelErrorCode,
    message: string,
    options?: { cause?: unknown; remoteIdentity?: string },
  ) {
    super(message, options);
    this.remoteIdentity = options?.remoteIdentity;
  }

  /** The peer's proven identity, where the handshake got that far (a refused client's). */
  readonly remoteIdentity: string | undefined;
}
