import { afterEach, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import {
  connectObservedClient,
  cwd,
  env,
  expectCompleteRun,
  numberedLinesCommand,
  sleep,
  spawnRelay,
  startObservedAgent,
  waitFor,
  watchLines,
  type ObservedAgent,
  type RelayProcess,
} from '../support/resilience-helpers.js';

/**
 * The relay runs as its own process (the built CLI, `npm test` builds first); the agent and the
 * client run here. A remote command printing numbered lines keeps running while the relay is
 * killed and started again on the same port, and the client ends with every line exactly once.
 */
describe('a relay process restart', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function setup(options: { backoffMs?: number } = {}) {
    const relay = await spawnRelay();
    const state: { relay: RelayProcess } = { relay };
    cleanup.push(() => state.relay.kill('SIGKILL'));
    // The agent dials through a proxy so the test can hold it back after the restart.
    const agentLink: FaultProxy = await startFaultProxy(relay.port);
    cleanup.push(() => agentLink.close());
    const backoff = { initialMs: options.backoffMs ?? 100, maxMs: Math.max(1000, options.backoffMs ?? 0) };
    const agent: ObservedAgent = await startObservedAgent(agentLink.url, 'restart-env', { backoff, pingIntervalMs: 500, pongTimeoutMs: 3000 });
    cleanup.push(() => agent.stop());
    const observed = await connectObservedClient(relay.url, agent, { backoff, pingIntervalMs: 500, pongTimeoutMs: 3000 });
    cleanup.push(() => observed.client.close());
    return { state, agentLink, agent, observed };
  }

  it('SIGKILL and restart on the same port: every line once, in order, exit once; the client retries through 404 until the agent is back', async () => {
    const { state, agentLink, agent, observed } = await setup();
    const count = 400;
    const handle = await observed.client.exec(numberedLinesCommand(count), { cwd, env, streamEvents: true, collectOutput: false });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 40, 20_000, 'the first lines');
    const port = state.relay.port;
    await state.relay.kill('SIGKILL');
    const linesAtKill = watcher.lines.length;
    // Keep the agent away from the new relay for a while: the client reconnects first and is told
    // 404 executor_unavailable, which it must keep retrying.
    agentLink.configure({ refuseNew: true });
    await sleep(300);
    state.relay = await spawnRelay(port);
    await waitFor(
      () => observed.linkEvents.some((e) => e.type === 'reconnect-failed' && /404 executor_unavailable/.test(e.error)),
      15_000,
      'a client reconnect refused with 404 executor_unavailable',
    );
    expect(agent.registration.connected).toBe(false);
    agentLink.configure({ refuseNew: false });
    await handle.completion;
    await watcher.done;
    expectCompleteRun(watcher, count);
    expect(linesAtKill).toBeLessThan(count); // the command was still running when the relay died
    expect(agent.registrations()).toBeGreaterThanOrEqual(2);
    expect(observed.reconnects()).toBeGreaterThanOrEqual(1);
    // The same stream resumed: the pushed events were complete, no catch-up read was needed.
    expect(observed.client.readsIssued).toBe(0);
    // The JSON-RPC session is still usable afterwards.
    const after = await observed.client.exec(['echo', 'after the restart'], { cwd, env });
    expect((await after.completion).stdout.toString()).toBe('after the restart\n');
  }, 90_000);

  it('a process that exits while the relay is down is reported once, with its full output, when it is back', async () => {
    const { state, observed } = await setup();
    const count = 150;
    const handle = await observed.client.exec(numberedLinesCommand(count, 0.002), { cwd, env, streamEvents: true, collectOutput: true });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 5, 20_000, 'the first lines');
    const port = state.relay.port;
    await state.relay.kill('SIGKILL');
    // Well past the command's own run time (about 150 × (2 ms + a fork)).
    await sleep(2500);
    expect(watcher.events.some((e) => e.type === 'exited')).toBe(false);
    state.relay = await spawnRelay(port);
    const result = await handle.completion;
    await watcher.done;
    expectCompleteRun(watcher, count);
    expect(result.exitCode).toBe(0);
    expect(result.stdout.toString()).toBe(Array.from({ length: count }, (_, i) => `line ${i + 1}\n`).join(''));
  }, 60_000);

  it('graceful stop (SIGTERM): the "restarting" notice makes both endpoints re-dial at once, well under their backoff', async () => {
    // A 10 s backoff: its first delay is at least 5 s. The notice makes the endpoints re-dial
    // every few hundred ms instead, so both are back within a fraction of that.
    const backoffMs = 10_000;
    const { state, agent, observed } = await setup({ backoffMs });
    const count = 300;
    const handle = await observed.client.exec(numberedLinesCommand(count), { cwd, env, streamEvents: true, collectOutput: false });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 20, 20_000, 'the first lines');
    const port = state.relay.port;
    const registrationsBefore = agent.registrations();
    const reconnectsBefore = observed.reconnects();
    await state.relay.kill('SIGTERM');
    await waitFor(
      () =>
        agent.events.some((e) => e.type === 'disconnected' && e.reason === 'relay_restarting') &&
        observed.linkEvents.some((e) => e.type === 'disconnected' && e.reason === 'relay_restarting'),
      10_000,
      'both endpoints to see the restarting notice',
    );
    state.relay = await spawnRelay(port);
    const readyAt = Date.now();
    await waitFor(() => agent.registrations() > registrationsBefore && observed.reconnects() > reconnectsBefore, 15_000, 'both endpoints back');
    const agentLatency = agent.events.filter((e) => e.type === 'registered').at(-1)!.at - readyAt;
    const clientLatency = observed.linkEvents.filter((e) => e.type === 'connected').at(-1)!.at - readyAt;
    console.log(`reconnect after a graceful relay restart: agent ${agentLatency} ms, client ${clientLatency} ms after the new relay listened (backoff ${backoffMs} ms)`);
    expect(agentLatency).toBeLessThan(backoffMs / 4);
    expect(clientLatency).toBeLessThan(backoffMs / 4);
    await handle.completion;
    await watcher.done;
    expectCompleteRun(watcher, count);
    expect(observed.client.readsIssued).toBe(0);
  }, 90_000);
});
