/** Errors a reliable stream reports to its local user. */
import { explainResetReason } from '../relay-control/relay-endpoints.js';

/** The stream was reset, by this endpoint (`origin: 'local'`) or by the peer (`'peer'`). */
export class StreamResetError extends Error {
  override readonly name = 'StreamResetError';
  constructor(
    /** The reset reason as carried by the `reset` frame. */
    readonly reason: string,
    readonly origin: 'local' | 'peer',
  ) {
    const explanation = explainResetReason(reason);
    super(`stream reset by ${origin}: ${reason}${explanation ? ` (${explanation})` : ''}`);
  }
}

/** `send` after the stream began closing (locally or because the peer closed). */
export class StreamClosedError extends Error {
  override readonly name = 'StreamClosedError';
  constructor(message = 'stream is closing or closed') {
    super(message);
  }
}
