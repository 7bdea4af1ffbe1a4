import { NoiseChannelError } from '../noise/noise-channel-error.js';
import { StreamResetError } from '../reliable-stream/stream-errors.js';
import { CLIENT_NOT_AUTHORIZED_RESET_REASON } from '../relay-control/relay-endpoints.js';

/**
 * The agent refused this client: its public identity is not in the agent's authorized clients. The
 * message names the client's own identity (never anything the peer or the relay said) and the
 * command the agent's operator runs to let it in.
 */
export class ClientNotAuthorizedError extends Error {
  override readonly name = 'ClientNotAuthorizedError';
  constructor(
    /** This client's public identity (`12D3KooW…`, or `hyb1:…` on the codex wire), the one the agent's operator authorizes. */
    readonly clientIdentity: string,
  ) {
    // No `cause`: the message says all there is (the transport failure under it is only how it arrived).
    super(
      `the agent refused this client (${clientIdentity}): not in its authorized clients; ` +
        `on the agent's host run: execrelay authorize --authorized-clients FILE ${clientIdentity}`,
    );
  }
}

/**
 * The agent's refusal of `clientIdentity` when `error` (or an error in its cause chain) is one: the
 * channel's `client-not-authorized` abort notice, or the agent's reset of the stream with
 * CLIENT_NOT_AUTHORIZED_RESET_REASON (whichever reached the client first); undefined otherwise.
 */
export function clientRefusalIn(error: unknown, clientIdentity: string): ClientNotAuthorizedError | undefined {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    const refused =
      (current instanceof NoiseChannelError && current.code === 'client-not-authorized') ||
      (current instanceof StreamResetError && current.origin === 'peer' && current.reason === CLIENT_NOT_AUTHORIZED_RESET_REASON);
    if (refused) return new ClientNotAuthorizedError(clientIdentity);
  }
  return undefined;
}
