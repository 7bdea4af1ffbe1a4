import { generateIdentity, type Identity } from '../../src/noise/identity.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { RelayLimits } from '../../relay/relay-config.js';
import { startFaultProxy, type FaultDirections, type FaultProxy } from '../support/fault-proxy.js';
import { startRelay, TEST_TOKEN, type RelayFixture } from '../support/relay-harness.js';
import { recoverSession } from '../../src/client/session-recovery.js';
import {
  connectObservedClient,
  cwd,
  env,
  expectCompleteRun,
  numberedLinesCommand,
  sleep,
  startObservedAgent,
  waitFor,
  watchLines,
  type ObservedAgent,
  type ObservedClient,
} from '../support/resilience-helpers.js';

/** Fast liveness on the endpoints so a half-open link is noticed within about a second. */
const LIVENESS = { pingIntervalMs: 200, pongTimeoutMs: 1200 };

interface Rig {
  relay: RelayFixture;
  agentLink: FaultProxy;
  clientLink: FaultProxy;
  agent: ObservedAgent;
  observed: ObservedClient;
  identity: Identity;
}

/**
 * A relay in this process with both links through fault proxies:
 * agent ⇄ agentLink ⇄ relay ⇄ clientLink ⇄ client.
 */
describe('link faults between the endpoints and the relay', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function rig(limits: Partial<RelayLimits> = {}, liveness = LIVENESS): Promise<Rig> {
    const relay = await startRelay(limits);
    cleanup.push(() => relay.stop());
    const port = Number(new URL(relay.url).port);
    const agentLink = await startFaultProxy(port);
    const clientLink = await startFaultProxy(port);
    cleanup.push(() => agentLink.close(), () => clientLink.close());
    const agent = await startObservedAgent(agentLink.url, `links-${Math.random().toString(36).slice(2, 10)}`, liveness);
    cleanup.push(() => agent.stop());
    // The client's own identity: only the identity that opened a session may resume it.
    const identity = await generateIdentity();
    const observed = await connectObservedClient(clientLink.url, agent, { ...liveness, identity });
    cleanup.push(() => observed.client.close());
    return { relay, agentLink, clientLink, agent, observed, identity };
  }

  async function runAcross(r: Rig, count: number, fault: () => Promise<void>): Promise<void> {
    const handle = await r.observed.client.exec(numberedLinesCommand(count), { cwd, env, streamEvents: true, collectOutput: false });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 30, 20_000, 'the first lines');
    await fault();
    expect(watcher.lines.length).toBeLessThan(count); // still running when the fault hit
    await handle.completion;
    await watcher.done;
    expectCompleteRun(watcher, count);
    // The stream itself survived: pushed events arrived complete, no catch-up read.
    expect(r.observed.client.readsIssued).toBe(0);
  }

  it('(b) an executor link cut: the agent re-registers and the stream resumes', async () => {
    const r = await rig();
    await runAcross(r, 300, async () => {
      r.agentLink.cutAll();
      await waitFor(() => r.agent.registrations() >= 2, 10_000, 'the agent to re-register');
    });
    expect(r.agent.events.some((e) => e.type === 'disconnected' && e.reason === 'link_lost')).toBe(true);
  }, 60_000);

  it('(c) a client link cut: the client re-dials and resumes its stream', async () => {
    const r = await rig();
    await runAcross(r, 300, async () => {
      r.clientLink.cutAll();
      await waitFor(() => r.observed.reconnects() >= 1, 10_000, 'the client to reconnect');
    });
  }, 60_000);

  it('repeated cuts of both links while the command runs', async () => {
    const r = await rig();
    await runAcross(r, 400, async () => {
      for (let i = 0; i < 4; i++) {
        (i % 2 === 0 ? r.agentLink : r.clientLink).cutAll();
        await sleep(150);
      }
    });
  }, 60_000);

  for (const directions of ['both', 'upstream', 'downstream'] as FaultDirections[]) {
    it(`a half-open executor link (${directions}) is noticed by the agent's ping timeout and replaced`, async () => {
      // The relay's own pong timeout is long: the agent notices first and its new registration
      // replaces the silent one.
      const r = await rig({ pingIntervalMs: 30_000, pongTimeoutMs: 60_000 });
      await runAcross(r, 300, async () => {
        r.agentLink.halfOpenAll(directions);
        await waitFor(() => r.agent.registrations() >= 2, 15_000, 'the agent to re-register');
      });
    }, 60_000);
  }

  it('a half-open client link is noticed by the client; its new socket takes the stream over from the silent one', async () => {
    // The relay does not notice the dead socket for a minute; the stream must move anyway.
    const r = await rig({ pingIntervalMs: 30_000, pongTimeoutMs: 60_000 });
    await runAcross(r, 300, async () => {
      r.clientLink.halfOpenAll('both');
      await waitFor(() => r.observed.reconnects() >= 1, 15_000, 'the client to reconnect');
    });
    expect(r.observed.linkEvents.some((e) => e.type === 'disconnected' && e.reason === 'heartbeat_timeout')).toBe(true);
  }, 60_000);

  it('the relay drops endpoints whose links went half-open (its own ping timeout)', async () => {
    // Endpoints that would not notice by themselves within the test: only the relay's timeout acts.
    const r = await rig({ pingIntervalMs: 200, pongTimeoutMs: 1000 }, { pingIntervalMs: 30_000, pongTimeoutMs: 60_000 });
    expect(r.relay.relay.router.hasLiveExecutor(r.agent.environmentId)).toBe(true);
    expect(r.relay.relay.router.streamCount).toBe(1);
    r.agentLink.halfOpenAll('both');
    r.clientLink.halfOpenAll('both');
    await waitFor(() => !r.relay.relay.router.hasLiveExecutor(r.agent.environmentId), 10_000, 'the relay to drop the silent executor socket');
    // The stream itself is kept for the grace periods, waiting for the endpoints to come back.
    expect(r.relay.relay.router.streamCount).toBe(1);
    expect(r.agent.registration.connected).toBe(true); // the agent itself has not noticed
  }, 30_000);

  it('a process that exits while the executor link is down is reported once with its full output', async () => {
    const r = await rig();
    const count = 100;
    const handle = await r.observed.client.exec(numberedLinesCommand(count, 0.002), { cwd, env, streamEvents: true });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 5, 20_000, 'the first lines');
    r.agentLink.configure({ refuseNew: true });
    r.agentLink.cutAll();
    await sleep(2000);
    expect(watcher.events.some((e) => e.type === 'exited')).toBe(false);
    r.agentLink.configure({ refuseNew: false });
    const result = await handle.completion;
    await watcher.done;
    expectCompleteRun(watcher, count);
    expect(result.stdout.toString()).toBe(Array.from({ length: count }, (_, i) => `line ${i + 1}\n`).join(''));
  }, 60_000);

  it('a process that exits while the client link is down is reported once with its full output', async () => {
    const r = await rig();
    const count = 100;
    const handle = await r.observed.client.exec(numberedLinesCommand(count, 0.002), { cwd, env, streamEvents: true });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 5, 20_000, 'the first lines');
    r.clientLink.configure({ refuseNew: true });
    r.clientLink.cutAll();
    await sleep(2000);
    expect(watcher.events.some((e) => e.type === 'exited')).toBe(false);
    r.clientLink.configure({ refuseNew: false });
    const result = await handle.completion;
    await watcher.done;
    expectCompleteRun(watcher, count);
    expect(result.stdout.toString()).toBe(Array.from({ length: count }, (_, i) => `line ${i + 1}\n`).join(''));
  }, 60_000);

  it('when the stream itself ends (the relay gave up on the client), session recovery resumes the session and reconciles the process', async () => {
    const r = await rig({ clientGraceMs: 300 });
    const count = 300;
    const handle = await r.observed.client.exec(numberedLinesCommand(count), { cwd, env, streamEvents: true, collectOutput: false });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 30, 20_000, 'the first lines');
    r.clientLink.configure({ refuseNew: true });
    r.clientLink.cutAll();
    await sleep(1200); // past the relay's client grace: it resets the stream towards the agent
    r.clientLink.configure({ refuseNew: false });
    await expect(handle.completion).rejects.toThrow(/connection to the agent closed/);
    await watcher.done.catch(() => undefined);
    const seen = watcher.events.filter((e) => e.type === 'output');
    const lastSeq = Math.max(0, ...watcher.events.map((e) => e.seq));
    const { client, processes } = await recoverSession(
      { relay: r.clientLink.url, environmentId: r.agent.environmentId, agentKey: r.agent.identity.publicIdentity, token: TEST_TOKEN, identity: r.identity },
      r.observed.client.sessionId,
      [{ processId: handle.processId, afterSeq: lastSeq }],
    );
    cleanup.push(() => client.close());
    expect(client.sessionId).toBe(r.observed.client.sessionId);
    const reconciled = processes.get(handle.processId);
    if (!reconciled || reconciled instanceof Error) throw reconciled ?? new Error('not reconciled');
    expect(reconciled).toMatchObject({ exited: true, exitCode: 0, sandboxDenied: false, closed: true });
    const text = Buffer.concat([...seen.map((e) => (e.type === 'output' ? e.chunk : Buffer.alloc(0))), ...reconciled.chunks.map((c) => c.chunk)]).toString();
    expect(text).toBe(Array.from({ length: count }, (_, i) => `line ${i + 1}\n`).join(''));
  }, 60_000);

  it('keeps the stream through latency and throttling on both links', async () => {
    const r = await rig();
    r.agentLink.configure({ delayMs: 30, bytesPerSecond: 64 * 1024 });
    r.clientLink.configure({ delayMs: 30, bytesPerSecond: 64 * 1024 });
    const handle = await r.observed.client.exec(['sh', '-c', 'head -c 150000 /dev/zero | tr "\\0" x'], { cwd, env });
    const started = Date.now();
    const result = await handle.completion;
    expect(result.stdout.length).toBe(150_000);
    expect(result.stdout.every((b) => b === 0x78)).toBe(true);
    // 150 kB (plus base64 and framing) at 64 KiB/s takes seconds: the throttle really applied.
    expect(Date.now() - started).toBeGreaterThan(1500);
  }, 60_000);
});
