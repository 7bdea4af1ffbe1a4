/**
 * A relay and an agent with telemetry wired in, in this process, for the metrics, dashboards and
 * tracing tests. They wire telemetry themselves (the CLI wires it the same way).
 */
import type { Tracer } from '@opentelemetry/api';
import { RelayServer } from '../../relay/relay-server.js';
import { RelayCredentials } from '../../relay/relay-credentials.js';
import { createLogger } from '../../src/logging/logger.js';
import { generateIdentity, type Identity } from '../../src/noise/identity.js';
import { ExecutorAgent, type WebSocketListener } from '../../executor-agent/executor-agent.js';
import type { AgentConfig } from '../../executor-agent/agent-config.js';
import { RelayRegistration } from '../../executor-agent/relay-registration.js';
import { createAgentTelemetry, type AgentTelemetry } from '../../executor-agent/telemetry/agent-telemetry.js';
import { createRelayMetrics, type RelayMetrics } from '../../relay/telemetry/relay-metrics.js';
import type { MetricsServer } from '../../src/telemetry/metrics-server.js';

export const TELEMETRY_TEST_TOKEN = 'telemetry-test-token-5f0c2b9d8e7a6';

export interface InstrumentedRelay {
  relay: RelayServer;
  metrics: RelayMetrics;
  /** `ws://127.0.0.1:PORT` */
  url: string;
  /** `http://127.0.0.1:PORT/metrics` on the relay's own port. */
  metricsUrl: string;
  stop(): Promise<void>;
}

export async function startInstrumentedRelay(options: { tracer?: Tracer } = {}): Promise<InstrumentedRelay> {
  let relay: RelayServer | undefined;
  const metrics = createRelayMetrics(() => relay, options.tracer ? { tracer: options.tracer } : {});
  relay = new RelayServer({
    credentials: RelayCredentials.fromBareTokens([TELEMETRY_TEST_TOKEN]),
    logger: createLogger('telemetry-test-relay', 'silent'),
    events: metrics.events,
    httpRoutes: metrics.httpRoutes,
  });
  const url = await relay.listen('127.0.0.1', 0);
  const server = relay;
  return { relay: server, metrics, url, metricsUrl: `${url.replace(/^ws/, 'http')}/metrics`, stop: () => server.close() };
}

export interface InstrumentedAgentFixture {
  agent: ExecutorAgent;
  telemetry: AgentTelemetry;
  registration: RelayRegistration;
  identity: Identity;
  environmentId: string;
  /** The agent's local WebSocket listener (direct connections, transport `websocket`). */
  listener: WebSocketListener;
  metricsServer: MetricsServer;
  /** `http://127.0.0.1:PORT/metrics` */
  metricsUrl: string;
  stop(): Promise<void>;
}

/** An agent registered with `relayUrl`, listening locally too, with `/metrics` on a loopback port. */
export async function startInstrumentedAgent(
  relayUrl: string,
  environmentId: string,
  options: { tracer?: Tracer; config?: Partial<AgentConfig> } = {},
): Promise<InstrumentedAgentFixture> {
  const telemetry = createAgentTelemetry(options.tracer ? { tracer: options.tracer } : {});
  const logger = createLogger('telemetry-test-agent', 'silent');
  const agent = new ExecutorAgent(options.config ?? {}, logger, [], telemetry);
  const identity = await generateIdentity();
  let registered = false;
  const registration = new RelayRegistration(agent, {
    relayUrl,
    environmentId,
    token: TELEMETRY_TEST_TOKEN,
    identity,
    authorizedClients: 'any',
    logger,
    backoff: { initialMs: 50, maxMs: 500 },
    onEvent: (event) => {
      if (event.type === 'registered') registered = true;
      telemetry.onRegistrationEvent(event);
    },
  });
  await registration.start();
  const listener = await agent.listenWebSocket('ws://127.0.0.1:0');
  const metricsServer = await telemetry.startMetricsServer('127.0.0.1:0', { ready: () => registered });
  return {
    agent,
    telemetry,
    registration,
    identity,
    environmentId,
    listener,
    metricsServer,
    metricsUrl: `${metricsServer.url}/metrics`,
    async stop() {
      registration.stop();
      agent.shutdown();
      await listener.close();
      await metricsServer.close();
    },
  };
}
