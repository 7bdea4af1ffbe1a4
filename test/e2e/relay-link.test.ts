import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { startRelay } from '../support/relay-harness.js';
import { sleep, startObservedAgent, waitFor } from '../support/resilience-helpers.js';
import { ExecutorAgent } from '../../executor-agent/executor-agent.js';
import { RelayRegistration, type RelayRegistrationEvent } from '../../executor-agent/relay-registration.js';
import { generateIdentity } from '../../src/noise/identity.js';
import { createLogger } from '../../src/logging/logger.js';

/** The agent's re-dial decisions that the link-fault suites do not reach. */
describe("the agent's relay link: when it stops and when it re-dials", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function bareRegistration(relayUrl: string, token: string, extra: { connectTimeoutMs?: number } = {}) {
    const agent = new ExecutorAgent({}, createLogger('test-agent', 'silent'), []);
    const events: RelayRegistrationEvent[] = [];
    const registration = new RelayRegistration(agent, {
      relayUrl,
      environmentId: 'env-bare',
      token,
      identity: await generateIdentity(),
      authorizedClients: 'any',
      logger: createLogger('test-registration', 'silent'),
      backoff: { initialMs: 50, maxMs: 100 },
      ...extra,
      onEvent: (event) => events.push(event),
    });
    cleanup.push(() => {
      registration.stop();
      agent.shutdown();
    });
    return { registration, events };
  }

  it('an agent replaced by a newer registration of its environment with its key (4001) does not re-dial', async () => {
    const relay = await startRelay();
    cleanup.push(() => relay.stop());
    const first = await startObservedAgent(relay.url, 'env-replaced');
    cleanup.push(() => first.stop());
    // The same key (another process of the same agent): another key would be refused.
    const second = await startObservedAgent(relay.url, 'env-replaced', { identity: first.identity });
    cleanup.push(() => second.stop());
    await waitFor(() => first.events.some((e) => e.type === 'disconnected' && e.reason === 'replaced'), 5000, 'the first agent to be replaced');
    await sleep(600); // several backoff delays (100 ms initial)
    expect(first.registrations()).toBe(1);
    expect(first.events.some((e) => e.type === 'connect-failed')).toBe(false);
    expect(first.registration.connected).toBe(false);
    expect(second.registration.connected).toBe(true);
  }, 20_000);

  it('an agent refused for good (bad token) rejects start() and does not re-dial', async () => {
    const relay = await startRelay();
    cleanup.push(() => relay.stop());
    const { registration, events } = await bareRegistration(relay.url, 'not-the-test-token-at-all');
    await expect(registration.start()).rejects.toThrow(/HTTP 401 unauthorized/);
    await sleep(400);
    expect(events).toEqual([{ type: 'connect-failed', reason: 'refused' }]);
  }, 20_000);

  it('an agent whose relay never answers `registered` drops the socket after connectTimeoutMs and re-dials', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => server.once('listening', resolve));
    cleanup.push(() => new Promise((resolve) => server.close(resolve)));
    let connections = 0;
    server.on('connection', () => (connections += 1));
    const { registration, events } = await bareRegistration(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, 'any-token-will-do-here', {
      connectTimeoutMs: 200,
    });
    void registration.start().catch(() => undefined);
    await waitFor(() => connections >= 3, 5000, 'three dials');
    expect(events.filter((e) => e.type === 'disconnected').every((e) => e.type === 'disconnected' && e.reason === 'link_lost')).toBe(true);
    expect(events.some((e) => e.type === 'registered')).toBe(false);
    expect(registration.connected).toBe(false);
  }, 20_000);
});
