import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { REGISTRY_BUCKET } from '../../relay/fleet-wire.js';
import { parseNatsUrl } from '../../relay/fleet-connection.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { generateIdentity } from '../../src/noise/identity.js';
import { runCli } from '../support/cli.js';
import {
  fleetToolsInstalled,
  metricEventually,
  holdersOf,
  relayMetric,
  spawnFleetRelay,
  startLoadBalancer,
  startNats,
  startNatsCluster,
  type FleetRelay,
  type NatsServer,
} from '../support/fleet-harness.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { TEST_TOKEN } from '../support/relay-harness.js';
import {
  connectObservedClient,
  cwd,
  env,
  eventually,
  expectCompleteRun,
  numberedLinesCommand,
  sleep,
  startObservedAgent,
  waitFor,
  watchLines,
  type LineWatcher,
  type ObservedClient,
  type RelayProcess,
} from '../support/resilience-helpers.js';

/**
 * Several relay processes share routing through a real `nats-server` (started with the checked-in
 * `deploy/fleet/nats-server.conf`); `haproxy` with `deploy/fleet/haproxy.cfg` fronts them where
 * the test needs a load balancer. The agent and the clients run here.
 */
/** Skipped only off CI: in CI missing tools are a failure (the CI script installs them). */
const toolsMissing = !fleetToolsInstalled();
describe.skipIf(toolsMissing && !process.env.CI)(toolsMissing ? 'a relay fleet over NATS (skipped: apt-get install nats-server haproxy)' : 'a relay fleet over NATS', () => {
  beforeAll(() => {
    if (toolsMissing) throw new Error('CI is set but nats-server/haproxy are not installed; install with: apt-get install -y nats-server haproxy');
  });
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function nats(): Promise<NatsServer> {
    const server = await startNats();
    cleanup.push(() => server.kill());
    return server;
  }

  async function relay(server: NatsServer, id: string): Promise<FleetRelay> {
    const started = await spawnFleetRelay(server, id);
    cleanup.push(() => started.kill('SIGKILL'));
    return started;
  }

  const fastLink = { backoff: { initialMs: 100, maxMs: 1000 }, pingIntervalMs: 500, pongTimeoutMs: 3000 };

  async function client(url: string, agent: Parameters<typeof connectObservedClient>[1]): Promise<ObservedClient> {
    const observed = await connectObservedClient(url, agent, fastLink);
    cleanup.push(() => observed.client.close());
    return observed;
  }

  /** A stream of `count` numbered lines started on each client, its pushed events watched. */
  async function startLineRuns(clients: readonly ObservedClient[], count: number) {
    return Promise.all(
      clients.map(async (observed) => {
        const handle = await observed.client.exec(numberedLinesCommand(count, 0.005), { cwd, env, streamEvents: true, collectOutput: false });
        return { observed, handle, watcher: watchLines(handle) };
      }),
    );
  }
  type LineRun = Awaited<ReturnType<typeof startLineRuns>>[number];

  /** Each run ended with every line once, in order, one exit and one close, and the right SHA-256. */
  async function expectRunsComplete(runs: readonly Pick<LineRun, 'handle' | 'watcher'>[], count: number): Promise<void> {
    for (const run of runs) {
      await run.handle.completion;
      await run.watcher.done;
      expectCompleteRun(run.watcher, count);
      expect(receivedDigest(run.watcher)).toBe(expectedDigest(count));
    }
  }

  /** Three fleet relays behind haproxy (`deploy/fleet/haproxy.cfg`). */
  async function threeBehindBalancer(server: NatsServer) {
    const relays = [await relay(server, 'relay-1'), await relay(server, 'relay-2'), await relay(server, 'relay-3')];
    const lb = await startLoadBalancer(relays);
    cleanup.push(() => lb.stop());
    return { relays, lb };
  }

  /** Clients through the load balancer until one sits on `target` (all of them are returned). */
  async function balancedClientsUntilOn(target: RelayProcess, lbUrl: string, agent: Parameters<typeof connectObservedClient>[1]): Promise<ObservedClient[]> {
    const clients: ObservedClient[] = [];
    for (let i = 0; i < 4 && (await relayMetric(target, 'execrelay_relay_client_sessions')) === 0; i++) clients.push(await client(lbUrl, agent));
    expect(await relayMetric(target, 'execrelay_relay_client_sessions')).toBeGreaterThan(0);
    return clients;
  }

  /** SHA-256 of what a numbered-lines command prints, for comparison with what arrived. */
  const expectedDigest = (count: number) =>
    createHash('sha256')
      .update(Array.from({ length: count }, (_, i) => `line ${i + 1}\n`).join(''))
      .digest('hex');
  const receivedDigest = (watcher: LineWatcher) =>
    createHash('sha256')
      .update(watcher.lines.map((line) => `${line}\n`).join(''))
      .digest('hex');

  it('a client on instance A drives an executor registered on instance B: process events and fs/walk, zero reads', async () => {
    const server = await nats();
    const [a, b] = [await relay(server, 'relay-a'), await relay(server, 'relay-b')];
    const agent = await startObservedAgent(b.url, 'fleet.env-1', fastLink);
    cleanup.push(() => agent.stop());
    const { client: exec } = await client(a.url, agent);

    const count = 300;
    const handle = await exec.exec(numberedLinesCommand(count, 0.001), { cwd, env, streamEvents: true, collectOutput: false });
    const watcher = watchLines(handle);
    await handle.completion;
    await watcher.done;
    expectCompleteRun(watcher, count);
    expect(exec.readsIssued).toBe(0);

    const root = await mkdtemp(path.join(os.tmpdir(), 'execrelay-fleet-walk-'));
    await mkdir(path.join(root, 'dir/sub'), { recursive: true });
    await writeFile(path.join(root, 'top.txt'), 'x');
    await writeFile(path.join(root, 'dir/sub/deep.txt'), 'y');
    const walk = await exec.fs.walk(pathToFileURL(root).href);
    expect(walk.entries.map((e) => [path.relative(root, new URL(e.path).pathname), e.kind])).toEqual([
      ['dir', 'directory'],
      ['top.txt', 'file'],
      ['dir/sub', 'directory'],
      ['dir/sub/deep.txt', 'file'],
    ]);
    expect(walk.truncated).toBe(false);

    // The frames really crossed NATS, and only B holds the executor.
    expect(await relayMetric(a, 'execrelay_relay_executors_registered')).toBe(0);
    expect(await relayMetric(b, 'execrelay_relay_executors_registered')).toBe(1);
    expect(await relayMetric(b, 'execrelay_relay_registry_environments')).toBe(1);
    expect(await relayMetric(a, 'execrelay_relay_fleet_frames_total', { direction: 'published' })).toBeGreaterThan(count / 10);
    expect(await relayMetric(b, 'execrelay_relay_fleet_frames_total', { direction: 'received' })).toBeGreaterThan(count / 10);
    expect(await relayMetric(b, 'execrelay_relay_fleet_remote_clients')).toBe(1);
  }, 60_000);

  it('an environment bound through instance A refuses another key at instance B (the binding is shared through NATS); `relay unbind --nats` releases it', async () => {
    const server = await nats();
    const [a, b] = [await relay(server, 'relay-a'), await relay(server, 'relay-b')];
    const owner = await startObservedAgent(a.url, 'fleet-bound', fastLink);
    cleanup.push(() => owner.stop());
    const newKey = await generateIdentity();
    await expect(startObservedAgent(b.url, 'fleet-bound', { ...fastLink, identity: newKey })).rejects.toThrow(/HTTP 403 environment_key_mismatch/);
    expect(await relayMetric(b, 'execrelay_relay_registrations_total', { result: 'rejected' })).toBe(1);
    // Nothing changed: the owner is still held by A and reachable through B.
    expect(owner.registrations()).toBe(1);
    const { client: exec } = await client(b.url, owner);
    expect((await (await exec.exec(['echo', 'still mine'], { cwd, env })).completion).stdout.toString()).toBe('still mine\n');
    // The same key at B is the same agent moving: accepted.
    const moved = await startObservedAgent(b.url, 'fleet-bound', { ...fastLink, identity: owner.identity });
    cleanup.push(() => moved.stop());

    const natsEnv = { EXECRELAY_NATS_URL: server.url };
    expect((await runCli(['relay', 'bindings'], { env: natsEnv })).stdout).toBe(`fleet-bound ${owner.identity.publicIdentity}\n`);
    const unbound = await runCli(['relay', 'unbind', 'fleet-bound'], { env: natsEnv });
    expect(unbound.code).toBe(0);
    expect(unbound.stdout).toContain(`unbound fleet-bound from ${owner.identity.publicIdentity}`);
    const rekeyed = await startObservedAgent(a.url, 'fleet-bound', { ...fastLink, identity: newKey });
    cleanup.push(() => rekeyed.stop());
    expect((await runCli(['relay', 'bindings'], { env: natsEnv })).stdout).toBe(`fleet-bound ${newKey.publicIdentity}\n`);
    await expect(startObservedAgent(b.url, 'fleet-bound', { ...fastLink, identity: owner.identity })).rejects.toThrow(/environment_key_mismatch/);
  }, 60_000);

  it('an offline environment is refused at once on any instance: unknown, and just stopped', async () => {
    const server = await nats();
    const [a, b] = [await relay(server, 'relay-a'), await relay(server, 'relay-b')];
    const connectTo = (environmentId: string) =>
      ExecClient.connect({ relay: a.url, environmentId, agentKey: 'unused', token: TEST_TOKEN, reconnectGiveUpMs: 0 });

    const started = Date.now();
    await expect(connectTo('nobody-home')).rejects.toThrow(/404 executor_unavailable/);
    expect(Date.now() - started).toBeLessThan(3000); // no waiting for a handshake timeout (10 s)

    const agent = await startObservedAgent(b.url, 'fleet-env-2', fastLink);
    const { client: exec } = await client(a.url, agent);
    expect((await (await exec.exec(['echo', 'up'], { cwd, env })).completion).stdout.toString()).toBe('up\n');
    await agent.stop();
    // The registry entry goes with the executor's link, long before its TTL.
    await eventually(
      () =>
        connectTo('fleet-env-2').then(
          (c) => (c.close(), false),
          (error: Error) => /404 executor_unavailable/.test(error.message),
        ),
      6000,
      'a refusal once the executor left',
    );
  }, 60_000);

  it('killing the instance holding the executor mid-stream: it re-registers on another, streams resume, output complete and not duplicated', async () => {
    const server = await nats();
    const { relays, lb } = await threeBehindBalancer(server);
    const agent = await startObservedAgent(lb.url, 'fleet-env-3', fastLink);
    cleanup.push(() => agent.stop());
    await waitFor(() => agent.registrations() >= 1, 10_000, 'the agent registered through the load balancer');
    const [holder] = await holdersOf(relays);
    expect(holder).toBeDefined();
    const b = holder!;
    const others = relays.filter((r) => r !== b);

    // One client directly on another instance (its socket survives), and clients through the load
    // balancer until one sits on B (its socket dies with B and reconnects through the balancer).
    const direct = await client(others[0]!.url, agent);
    const balanced = await balancedClientsUntilOn(b, lb.url, agent);

    const count = 600;
    const runs = await startLineRuns([direct, ...balanced], count);
    await waitFor(() => runs.every((r) => r.watcher.lines.length >= 50), 20_000, 'the first lines on every stream');
    await b.kill('SIGKILL');
    const linesAtKill = runs.map((r) => r.watcher.lines.length);

    await expectRunsComplete(runs, count);
    expect(linesAtKill.every((n) => n < count)).toBe(true);
    expect(agent.registrations()).toBeGreaterThanOrEqual(2);
    const [newHolder] = await holdersOf(relays);
    expect(newHolder).toBeDefined();
    expect(newHolder).not.toBe(b);
    // The direct client never lost its socket: the same stream went on without a catch-up read.
    expect(direct.reconnects()).toBe(0);
    expect(direct.client.readsIssued).toBe(0);
    expect(balanced.some((c) => c.reconnects() >= 1)).toBe(true);
    const after = await direct.client.exec(['echo', 'after'], { cwd, env });
    expect((await after.completion).stdout.toString()).toBe('after\n');
  }, 120_000);

  it('a rolling restart: SIGTERM on the instance holding the executor sends everyone elsewhere at once; streams go on, output complete', async () => {
    const server = await nats();
    const { relays, lb } = await threeBehindBalancer(server);
    const agent = await startObservedAgent(lb.url, 'fleet-env-6', fastLink);
    cleanup.push(() => agent.stop());
    const [b] = await holdersOf(relays);
    const elsewhere = await client(relays.find((r) => r !== b)!.url, agent);
    const balanced = await balancedClientsUntilOn(b!, lb.url, agent);
    const count = 400;
    const runs = await startLineRuns([elsewhere, ...balanced], count);
    await waitFor(() => runs.every((r) => r.watcher.lines.length >= 50), 20_000, 'the first lines');
    const stoppedAt = Date.now();
    await b!.kill('SIGTERM');
    await waitFor(() => agent.registrations() >= 2, 10_000, 'the agent re-registered elsewhere');
    // The "restarting" notice: no backoff, no ping timeout.
    expect(agent.events.find((e) => e.type === 'registered' && e.at > stoppedAt)!.at - stoppedAt).toBeLessThan(3000);
    await expectRunsComplete(runs, count);
    expect(elsewhere.reconnects()).toBe(0);
    expect(elsewhere.client.readsIssued).toBe(0);
  }, 120_000);

  it('an executor link moving to another live instance (the old socket half-open): the old instance lets go at once, streams on both sides go on', async () => {
    const server = await nats();
    const { relays, lb } = await threeBehindBalancer(server);
    // The agent reaches the balancer through a proxy that can make its link half-open: bytes
    // vanish, nothing closes, so the old instance would believe in the link for its 60 s pong timeout.
    const agentLink = await startFaultProxy(lb.port);
    cleanup.push(() => agentLink.close());
    const agent = await startObservedAgent(agentLink.url, 'fleet-env-5', fastLink);
    cleanup.push(() => agent.stop());
    const [x] = await holdersOf(relays);
    expect(x).toBeDefined();
    const z = relays.find((r) => r !== x)!;
    // Clients connect to instances directly: one where the executor is now (its routes are local
    // until the executor leaves), one elsewhere.
    const onX = await client(x!.url, agent);
    const onZ = await client(z.url, agent);
    const count = 500;
    const runs = await startLineRuns([onX, onZ], count);
    await waitFor(() => runs.every((r) => r.watcher.lines.length >= 50), 20_000, 'the first lines');
    agentLink.halfOpenAll();
    await waitFor(() => agent.registrations() >= 2, 15_000, 'the agent re-registered');
    // The balancer sent it to a less loaded instance; the old one closed its half-open link on the
    // new holder's takeover, long before its own ping timeout.
    await metricEventually(x!, 'execrelay_relay_executors_registered', (v) => v === 0);
    expect(await relayMetric(x!, 'execrelay_relay_registrations_total', { result: 'replaced' })).toBe(1);
    const [y] = await holdersOf(relays);
    expect(y).toBeDefined();
    expect(y).not.toBe(x);
    await expectRunsComplete(runs, count);
    for (const run of runs) {
      expect(run.observed.reconnects()).toBe(0);
      expect(run.observed.client.readsIssued).toBe(0);
    }
  }, 120_000);

  it('a NATS cluster of three with --registry-replicas 3: losing the server that leads the registry, streams go on and clients still find environments', async () => {
    const cluster = await startNatsCluster();
    cleanup.push(() => Promise.all(cluster.nodes.map((node) => node.kill())));
    const replicated = ['--registry-replicas', '3'];
    const a = await spawnFleetRelay(cluster, 'relay-a', replicated);
    cleanup.push(() => a.kill('SIGKILL'));
    const b = await spawnFleetRelay(cluster, 'relay-b', replicated);
    cleanup.push(() => b.kill('SIGKILL'));
    const agent = await startObservedAgent(b.url, 'fleet-env-7', fastLink);
    cleanup.push(() => agent.stop());
    const observed = await client(a.url, agent);
    const count = 400;
    const [{ handle, watcher }] = (await startLineRuns([observed], count)) as [LineRun];
    await waitFor(() => watcher.lines.length >= 50, 20_000, 'the first lines');

    // Kill the server leading the registry's stream: with one replica the registry would be gone.
    const { servers, user, pass } = parseNatsUrl(cluster.url);
    const observer = await connect({ servers, user: user!, pass: pass! });
    const info = JSON.parse(new TextDecoder().decode((await observer.request(`$JS.API.STREAM.INFO.KV_${REGISTRY_BUCKET}`, '', { timeout: 5000 })).data)) as {
      config: { num_replicas: number };
      cluster: { leader: string };
    };
    await observer.close();
    expect(info.config.num_replicas).toBe(3);
    await cluster.nodes.find((node) => node.name === info.cluster.leader)!.kill();

    await expectRunsComplete([{ handle, watcher }], count);
    // The registry still answers: a new client through A finds the environment on B.
    const fresh = await eventually(
      () => ExecClient.connect({ relay: a.url, environmentId: agent.environmentId, agentKey: agent.identity.publicIdentity, token: TEST_TOKEN, reconnectGiveUpMs: 0 }).catch(() => null),
      15_000,
      'a new client through A',
      200,
    );
    cleanup.push(() => fresh.close());
    expect((await (await fresh.exec(['echo', 'still here'], { cwd, env })).completion).stdout.toString()).toBe('still here\n');
  }, 120_000);

  it('NATS restarted mid-stream: the cross-instance stream stalls, then resumes; nothing lost, duplicated or corrupt', async () => {
    const server = await nats();
    const [a, b] = [await relay(server, 'relay-a'), await relay(server, 'relay-b')];
    const agent = await startObservedAgent(b.url, 'fleet-env-4', fastLink);
    cleanup.push(() => agent.stop());
    const observed = await client(a.url, agent);
    const count = 500;
    const [{ handle, watcher }] = (await startLineRuns([observed], count)) as [LineRun];
    await waitFor(() => watcher.lines.length >= 50, 20_000, 'the first lines');

    await server.kill();
    await sleep(500);
    const stalledAt = watcher.lines.length;
    await sleep(1500);
    expect(watcher.lines.length).toBe(stalledAt); // nothing crosses while NATS is down
    expect(stalledAt).toBeLessThan(count);
    await server.restart();

    await expectRunsComplete([{ handle, watcher }], count);
    expect(observed.client.readsIssued).toBe(0);
    expect(observed.reconnects()).toBe(0); // the endpoints' sockets never dropped
    expect(await relayMetric(a, 'execrelay_relay_fleet_reconnects_total')).toBeGreaterThanOrEqual(1);
    expect(await relayMetric(b, 'execrelay_relay_fleet_reconnects_total')).toBeGreaterThanOrEqual(1);
    // New clients reach the environment again once its holder re-registered it in the new registry.
    const fresh = await client(a.url, agent);
    expect((await (await fresh.client.exec(['echo', 'again'], { cwd, env })).completion).stdout.toString()).toBe('again\n');
  }, 120_000);
});
