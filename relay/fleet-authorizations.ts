import type { Logger } from '../src/logging/logger.js';
import type { FleetConnection } from './fleet-connection.js';
import { AuthorizationUseAnswer, AuthorizationUseRequest, FleetSubject } from './fleet-wire.js';
import type { RecentProofs } from './recent-proofs.js';

/** How long a validating instance waits for the minting one's answer (codex waits 10 s for `validate`). */
const USE_ANSWER_TIMEOUT_MS = 2_000;

/** The relay process that minted a codex harness key authorization (its claims `i` and `b`). */
export interface AuthorizationMinter {
  readonly instance: string;
  readonly boot: string;
}

/** The outcome of using an authorization's nonce: `unavailable` when its minter cannot be asked (refused: fail closed). */
export type AuthorizationUse = 'fresh' | 'replayed' | 'unavailable';

/**
 * One use per codex harness key authorization, fleet-wide: the relay process that minted an
 * authorization owns its nonce. Validating at that process checks its own memory; validating at
 * another instance asks the minter over NATS (`execrelay.instance.I.B.hka`), which answers
 * `fresh` once and `replayed` after. When the minter cannot be asked — it died or restarted (a new
 * process has another boot and never answers for the old one), NATS is down, no answer in time —
 * the authorization is refused: nothing else knows whether it was used, and a client only has to
 * `connect` again (an authorization lives a minute).
 */
export class FleetAuthorizations {
  constructor(
    private readonly self: AuthorizationMinter,
    /** The NATS connection, once there is one. */
    private readonly connection: () => FleetConnection | null,
    /** The nonces of the authorizations this process minted that were used. */
    private readonly used: RecentProofs,
    private readonly logger: Logger,
  ) {}

  /** Joined the fleet: answer other instances' questions about this process's authorizations. */
  subscribe(): void {
    this.connection()!.serveJson(
      FleetSubject.authorizationsOf(this.self.instance, this.self.boot),
      AuthorizationUseRequest,
      (request): AuthorizationUseAnswer => ({ use: this.used.remember(request.nonce, request.expiresAt) }),
    );
  }

  /** Uses the nonce of an authorization minted by `minter` (null: this process). */
  async use(minter: AuthorizationMinter | null, nonce: string, expiresAt: number): Promise<AuthorizationUse> {
    if (minter === null || (minter.instance === this.self.instance && minter.boot === this.self.boot)) return this.used.remember(nonce, expiresAt);
    const link = this.connection();
    if (!link) return 'unavailable';
    const request: AuthorizationUseRequest = { nonce, expiresAt };
    const answer = await link.requestJson(FleetSubject.authorizationsOf(minter.instance, minter.boot), request, AuthorizationUseAnswer, USE_ANSWER_TIMEOUT_MS);
    if (!answer) {
      this.logger.warn({ minter: minter.instance }, 'cannot ask the relay instance that minted a codex harness key authorization; refused');
      return 'unavailable';
    }
    return answer.use;
  }
}
