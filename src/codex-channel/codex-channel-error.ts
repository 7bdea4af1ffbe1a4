/** Why a codex Noise stream failed: a fixed set (usable as a label). */
export const CODEX_CHANNEL_FAILURES = [
  'reset',
  'handshake-timeout',
  'handshake-failed',
  'reorder-overflow',
  'frame-lost',
  'decrypt-failed',
  'bad-message-length',
  'socket-closed',
] as const;
export type CodexChannelFailure = (typeof CODEX_CHANNEL_FAILURES)[number];

/** A codex Noise stream failed (the peer or the relay reset it, or it broke the protocol). */
export class CodexChannelError extends Error {
  override readonly name = 'CodexChannelError';
  constructor(
    readonly failure: CodexChannelFailure,
    message: string,
    /** For `reset`: the reset frame's reason. */
    readonly resetReason?: string,
  ) {
    super(message);
  }
}
