import type { AuditLog } from '../../src/audit/audit-log.js';
import { RelayServer } from '../../relay/relay-server.js';
import type { RelayLimits } from '../../relay/relay-config.js';
import { RelayCredentials } from '../../relay/relay-credentials.js';
import { generateIdentity, type Identity } from '../../src/noise/identity.js';
import type { AuthorizedClientSet } from '../../src/noise/noise-channel.js';
import { createLogger } from '../../src/logging/logger.js';
import { ExecutorAgent } from '../../executor-agent/executor-agent.js';
import type { AgentConfig } from '../../executor-agent/agent-config.js';
import { RelayRegistration, type RelayRegistrationOptions } from '../../executor-agent/relay-registration.js';
import type { HandlerTable } from '../../executor-agent/handler-table.js';
import { ExecClient } from '../../src/client/exec-client.js';
import type { RelayTarget } from '../../src/client/relay-channel.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';

export interface RelayFixture {
  relay: RelayServer;
  url: string;
  stop(): Promise<void>;
}

/** A real relay on a loopback port, in this process. */
export async function startRelay(limits: Partial<RelayLimits> = {}, port = 0): Promise<RelayFixture> {
  const relay = new RelayServer({ credentials: RelayCredentials.fromBareTokens([TEST_TOKEN]), logger: createLogger('test-relay', 'silent'), limits });
  const url = await relay.listen('127.0.0.1', port);
  return { relay, url, stop: () => relay.close() };
}

export interface RemoteAgentFixture {
  agent: ExecutorAgent;
  registration: RelayRegistration;
  identity: Identity;
  environmentId: string;
  stop(): void;
}

/** Registration options a test may set (the harness supplies URL, id, token, identity and logger). */
export type TestRegistrationOptions = Partial<Omit<RelayRegistrationOptions, 'relayUrl' | 'environmentId' | 'token' | 'identity' | 'logger'>>;

/** A real agent registered with the relay under `environmentId`. */
export async function startRemoteAgent(
  relayUrl: string,
  environmentId: string,
  options: {
    config?: Partial<AgentConfig>;
    identity?: Identity;
    /** The relay token it registers with (default TEST_TOKEN). */
    token?: string;
    /** The clients the agent serves. Tests that are not about client authorization say `'any'` (the default here, explicitly; the library has none). */
    authorizedClients?: AuthorizedClientSet | 'any';
    /** Handler tables added to (and overriding) the agent's own. */
    handlerTables?: HandlerTable[];
    registration?: TestRegistrationOptions;
    /** The agent's audit log (`--audit-log`). */
    auditLog?: AuditLog;
  } = {},
): Promise<RemoteAgentFixture> {
  const identity = options.identity ?? (await generateIdentity());
  const agent = new ExecutorAgent(options.config ?? {}, createLogger('test-agent', 'silent'), options.handlerTables ?? [], undefined, options.auditLog);
  const registration = new RelayRegistration(agent, {
    relayUrl,
    environmentId,
    token: options.token ?? TEST_TOKEN,
    identity,
    logger: createLogger('test-registration', 'silent'),
    backoff: { initialMs: 50, maxMs: 500 },
    ...options.registration,
    authorizedClients: options.authorizedClients ?? options.registration?.authorizedClients ?? 'any',
  });
  await registration.start();
  return {
    agent,
    registration,
    identity,
    environmentId,
    stop() {
      registration.stop();
      agent.shutdown();
    },
  };
}

export function relayTarget(relayUrl: string, remote: RemoteAgentFixture, extra: Partial<RelayTarget> = {}): RelayTarget {
  return { relay: relayUrl, environmentId: remote.environmentId, agentKey: remote.identity.publicIdentity, token: TEST_TOKEN, ...extra };
}

export function connectThroughRelay(relayUrl: string, remote: RemoteAgentFixture, extra: Partial<RelayTarget> = {}): Promise<ExecClient> {
  return ExecClient.connect(relayTarget(relayUrl, remote, extra));
}
