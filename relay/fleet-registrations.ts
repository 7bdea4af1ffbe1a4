import type { Logger } from '../src/logging/logger.js';
import type { FleetConnection } from './fleet-connection.js';
import type { AuthorizationMinter } from './fleet-authorizations.js';
import { FleetSubject, RegistrationClaimAnswer, RegistrationClaimRequest } from './fleet-wire.js';

/** How long the instance holding an executor's new socket waits for the minter's answer (codex waits 10 s for the upgrade). */
const CLAIM_ANSWER_TIMEOUT_MS = 2_000;

/** The outcome of claiming a registration from its minter: `unavailable` when it cannot be asked (refused: fail closed). */
export type RegistrationClaim = RegistrationClaimAnswer | { readonly result: 'unavailable' };

/**
 * Codex executor registrations across a relay fleet: a registration lives in the memory of the
 * relay process that minted it (named in its id, `fleetRegistrationId`) until the executor's
 * rendezvous socket opens. When that socket lands on another instance (behind a balancer), that
 * instance claims the registration from the minter over NATS (`execrelay.instance.I.B.reg`); the
 * minter hands it over once and forgets it, so a registration opens executor sockets on one
 * instance only, and a replay of its URL elsewhere is refused. When the minter cannot be asked —
 * it died or restarted (another boot), NATS is down, no answer in time — the claim is refused: the
 * executor registers again (codex does so by itself on a 4xx).
 */
export class FleetRegistrations {
  /** Answers a claim of a registration this process minted (set by the codex registry). */
  handOver: ((request: RegistrationClaimRequest) => RegistrationClaimAnswer) | null = null;

  constructor(
    private readonly self: AuthorizationMinter,
    /** The NATS connection, once there is one. */
    private readonly connection: () => FleetConnection | null,
    private readonly logger: Logger,
  ) {}

  /** Joined the fleet: answer other instances' claims of this process's registrations. */
  subscribe(): void {
    this.connection()!.serveJson(
      FleetSubject.registrationsOf(this.self.instance, this.self.boot),
      RegistrationClaimRequest,
      (request): RegistrationClaimAnswer => this.handOver?.(request) ?? { result: 'refused' },
    );
  }

  /** Claims the registration `registrationId` of `environmentId` from the process that minted it. */
  async claim(minter: AuthorizationMinter, environmentId: string, registrationId: string): Promise<RegistrationClaim> {
    const link = this.connection();
    if (!link) return { result: 'unavailable' };
    const request: RegistrationClaimRequest = { environmentId, registrationId };
    const answer = await link.requestJson(FleetSubject.registrationsOf(minter.instance, minter.boot), request, RegistrationClaimAnswer, CLAIM_ANSWER_TIMEOUT_MS);
    if (!answer) {
      this.logger.warn({ minter: minter.instance }, 'cannot ask the relay instance that minted a codex executor registration; its socket is refused');
      return { result: 'unavailable' };
    }
    return answer;
  }
}
