import type http from 'node:http';
import type { AuditLog } from '../src/audit/audit-log.js';
import { AGENT_IDENTITY_HEADER } from '../src/relay-control/executor-proof.js';
import { UpgradeRefusal, validateEnvironmentId, type UpgradeRefusalReason } from '../src/relay-control/relay-endpoints.js';

/** Which endpoint an upgrade asked for. */
export type AuditedEndpoint = 'executor' | 'client';

/** What the relay knew about an upgrade when it decided. */
export interface UpgradeAuditContext {
  endpoint: AuditedEndpoint;
  /** As asked for; recorded only when it is a valid environment id. */
  environmentId?: string | null;
  /** The token's line in the token file, once the token was recognised (never the token, nor its hash). */
  tokenLine?: number;
}

/** An identity as the agent claims it (checked by the admission afterwards): base58, bounded. */
const CLAIMED_IDENTITY_PATTERN = /^[1-9A-HJ-NP-Za-km-z]{1,128}$/;

/**
 * Refusals that are the caller's credentials failing: its token (missing or unknown, the other role,
 * out of scope) or, for an executor, its key (no proof, a bad one, or not the key the environment is
 * bound to). The rest are capacity or routing.
 */
const AUTH_FAILURES: ReadonlySet<string> = new Set([
  UpgradeRefusal.Unauthorized.reason,
  UpgradeRefusal.ForbiddenRole.reason,
  UpgradeRefusal.EnvironmentNotInScope.reason,
  UpgradeRefusal.AgentProofRequired.reason,
  UpgradeRefusal.InvalidAgentProof.reason,
  UpgradeRefusal.EnvironmentKeyMismatch.reason,
]);

/**
 * The relay's audit lines (`--audit-log`): executor registrations, and every refused executor or
 * client upgrade with its reason (`authFailure: true` for a token that was missing, unknown, for
 * the other role or out of scope, and for an executor key that was not proven or not the one the
 * environment is bound to). Each line names the remote address, the environment id, the
 * token's id in the token file (never the token) and, for executors, the agent identity. Upgrades
 * to no endpoint at all (`not_found`: scanners) are not recorded. Metrics stay content-free; this is
 * the operator's record.
 */
export class RelayAudit {
  constructor(private readonly log: AuditLog) {}

  refused(req: http.IncomingMessage, context: UpgradeAuditContext, refusal: UpgradeRefusalReason): void {
    this.log.record({
      event: `${context.endpoint}.refused`,
      ...this.common(req, context),
      reason: refusal.reason,
      authFailure: AUTH_FAILURES.has(refusal.reason),
    });
  }

  registered(req: http.IncomingMessage, context: UpgradeAuditContext): void {
    this.log.record({ event: 'executor.registered', ...this.common(req, context) });
  }

  /** A codex executor registered (`relay/codex-registry.ts`): its key's `hyb1:` fingerprint. */
  codexRegistered(req: http.IncomingMessage, environmentId: string, tokenLine: number | undefined, executorKey: string | null): void {
    this.log.record({ event: 'codex.registered', ...this.codexCommon(req, environmentId, tokenLine), executorKey });
  }

  /**
   * A codex registry call refused (`register`, `connect`: the registry's error code) or a harness
   * key validation answered `{"valid":false}` (`validate`: why, from AUTHORIZATION_REFUSALS).
   */
  codexRefused(req: http.IncomingMessage, action: 'register' | 'connect' | 'validate', environmentId: string, tokenLine: number | undefined, reason: string): void {
    this.log.record({
      event: 'codex.refused',
      action,
      ...this.codexCommon(req, environmentId, tokenLine),
      reason,
      authFailure: AUTH_FAILURES.has(reason),
    });
  }

  private codexCommon(req: http.IncomingMessage, environmentId: string, tokenLine: number | undefined): Record<string, unknown> {
    return {
      remoteAddress: req.socket.remoteAddress ?? null,
      environmentId: validateEnvironmentId(environmentId) ? null : environmentId,
      tokenLine: tokenLine ?? null,
    };
  }

  private common(req: http.IncomingMessage, context: UpgradeAuditContext): Record<string, unknown> {
    const environmentId = context.environmentId && !validateEnvironmentId(context.environmentId) ? context.environmentId : null;
    const claimed = context.endpoint === 'executor' ? req.headers[AGENT_IDENTITY_HEADER.toLowerCase()] : undefined;
    return {
      remoteAddress: req.socket.remoteAddress ?? null,
      environmentId,
      tokenLine: context.tokenLine ?? null,
      ...(context.endpoint === 'executor' ? { agentIdentity: typeof claimed === 'string' && CLAIMED_IDENTITY_PATTERN.test(claimed) ? claimed : null } : {}),
    };
  }
}
