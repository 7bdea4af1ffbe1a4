import type { IncomingMessage } from 'node:http';
import type { Logger } from '../src/logging/logger.js';
import { verifyExecutorProof } from '../src/relay-control/executor-proof.js';
import { UpgradeRefusal, type UpgradeRefusalReason } from '../src/relay-control/relay-endpoints.js';
import type { EnvironmentBindings } from './environment-bindings.js';
import { RecentProofs } from './recent-proofs.js';

/**
 * Who may register an environment: an executor upgrade carrying a valid, fresh, unused proof of
 * its agent identity (`src/relay-control/executor-proof.ts`) for that environment and this relay,
 * by the key the environment is bound to — or, for an environment not bound yet, by any key, which
 * it is then bound to. Everything else is refused before the upgrade, and changes nothing.
 */
export class ExecutorAdmission {
  private readonly recentProofs: RecentProofs;

  constructor(
    private readonly bindings: EnvironmentBindings,
    maxRecentProofs: number,
    private readonly logger: Logger,
  ) {
    this.recentProofs = new RecentProofs(maxRecentProofs);
  }

  /** The refusal for this executor upgrade, or null to accept it. Never rejects. */
  async admit(req: IncomingMessage, environmentId: string): Promise<UpgradeRefusalReason | null> {
    const proof = await verifyExecutorProof(req.headers, environmentId, req.headers.host);
    if (!proof.ok) {
      this.logger.warn({ environmentId, problem: proof.problem }, 'executor registration refused: no valid proof of the agent identity');
      return proof.problem === 'missing' ? UpgradeRefusal.AgentProofRequired : UpgradeRefusal.InvalidAgentProof;
    }
    if (this.recentProofs.remember(proof.replayKey, proof.expiresAt) === 'replayed') {
      this.logger.warn({ environmentId, problem: 'replayed' }, 'executor registration refused: its proof was used before');
      return UpgradeRefusal.InvalidAgentProof;
    }
    let result;
    try {
      result = await this.bindings.bind(environmentId, proof.identity);
    } catch (error) {
      this.logger.error({ err: (error as Error).message }, 'executor registration refused: the environment bindings cannot be read');
      return UpgradeRefusal.BindingsUnavailable;
    }
    switch (result) {
      case 'bound':
        this.logger.info({ environmentId, agentIdentity: proof.identity }, 'environment bound to its first agent identity');
        return null;
      case 'matches':
        return null;
      case 'mismatch':
        this.logger.warn({ environmentId, agentIdentity: proof.identity }, 'executor registration refused: the environment is bound to another agent identity');
        return UpgradeRefusal.EnvironmentKeyMismatch;
      case 'full':
        this.logger.warn('executor registration refused: the environment bindings are full');
        return UpgradeRefusal.TooManyEnvironments;
    }
  }
}
