import { RelayCloseCode } from '../src/relay-control/relay-endpoints.js';
import type { LinkLoss } from '../src/relay-link/relay-link.js';
import { RelayRefusedError } from '../src/relay-link/relay-socket.js';
import type { Logger } from '../src/logging/logger.js';

/** Why a registration that was live ended for good (see `RegistrationLifecycleOptions.onFatal`). */
export class RegistrationEndedError extends Error {
  override readonly name = 'RegistrationEndedError';
  constructor(
    readonly reason: 'replaced' | 'refused',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A registration's outcomes and reconnects, as the metrics count them (either wire). */
export type RelayRegistrationEvent =
  | { type: 'registered'; durationMs: number }
  | { type: 'connect-failed'; reason: 'refused' | 'unreachable' }
  | { type: 'disconnected'; reason: 'relay_restarting' | 'link_lost' | 'replaced' }
  | { type: 'handshake'; result: 'success' | 'failure'; durationMs: number };

export interface RegistrationLifecycleOptions {
  environmentId: string;
  /** Who registered the environment again and replaced this registration, as the log says it: `agent process`, `executor`. */
  replacedBy: string;
  logger: Logger;
  onEvent?: (event: RelayRegistrationEvent) => void;
  /**
   * Called once when the registration ends for good after it was first registered: the relay
   * closed the link because another registration of the environment replaced it
   * (RelayCloseCode.Replaced), or a re-dial was refused permanently. The registration has stopped
   * by then; an agent process should exit (non-zero) so that its supervisor sees it. (Before the
   * first registration the same failures reject {@link RegistrationLifecycle.start} instead.)
   */
  onFatal?: (error: RegistrationEndedError) => void;
}

/**
 * The lifecycle every relay registration of the agent shares, whatever its wire: the first
 * registration (which `start()` waits for, and a final refusal rejects), the registration events,
 * and its end for good (replaced by another registration, or refused on a re-dial after it was
 * live: stopped, then `onFatal`). The registration owns the link and its streams; it tells this
 * what happened to the link and it calls back `stop`.
 */
export class RegistrationLifecycle {
  private firstRegistration: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(
    private readonly options: RegistrationLifecycleOptions,
    /** Stops the registration (its link and streams). */
    private readonly stop: () => void,
  ) {}

  /** Runs `startLink`; resolves once registered the first time, rejects on a permanent refusal before that. */
  start(startLink: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstRegistration = { resolve, reject };
      startLink();
    });
  }

  /** The relay took the registration (the first time, `start()` resolves). */
  registered(durationMs: number): void {
    this.options.onEvent?.({ type: 'registered', durationMs });
    this.firstRegistration?.resolve();
    this.firstRegistration = undefined;
  }

  /**
   * A dial failed (`refused`: the relay refused it, rather than could not be reached). A final
   * failure rejects `start()` before the first registration, and ends the registration after it.
   */
  dialFailed(error: Error, final: boolean, refused: boolean): void {
    this.options.onEvent?.({ type: 'connect-failed', reason: refused ? 'refused' : 'unreachable' });
    if (!final) return;
    if (this.firstRegistration === undefined) {
      this.end(
        new RegistrationEndedError('refused', `the relay refused to register environment ${this.options.environmentId} again: ${error.message}`, {
          cause: error,
        }),
      );
      return;
    }
    this.options.logger.error({ status: error instanceof RelayRefusedError ? error.status : undefined }, error.message);
    this.firstRegistration.reject(error);
    this.firstRegistration = undefined;
  }

  /** The link was lost: false (do not re-dial) when another registration replaced this one, which ends it. */
  linkLost(loss: LinkLoss): boolean {
    const reason = loss.restarting ? 'relay_restarting' : loss.code === RelayCloseCode.Replaced ? 'replaced' : 'link_lost';
    this.options.onEvent?.({ type: 'disconnected', reason });
    // RelayCloseCode.Replaced: the relay closed this link because a newer registration of the environment superseded it.
    if (loss.code === RelayCloseCode.Replaced) {
      this.end(
        new RegistrationEndedError(
          'replaced',
          `another ${this.options.replacedBy} with this key registered environment ${this.options.environmentId} with the relay and replaced this one; not reconnecting`,
        ),
      );
      return false;
    }
    return true;
  }

  /** The registration is over for good: stop, then say so (see `onFatal`). */
  private end(error: RegistrationEndedError): void {
    this.options.logger.error({ reason: error.reason }, error.message);
    this.stop();
    this.options.onFatal?.(error);
  }
}
