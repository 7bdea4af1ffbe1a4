import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../../src/client/exec-client.js';
import { createAgentTelemetry } from '../../executor-agent/telemetry/agent-telemetry.js';
import { PACKAGE_VERSION } from '../../src/package-version.js';
import { BUILD_INFO_METRIC, GC_KINDS } from '../../src/telemetry/runtime-metrics.js';
import { DROP_REASONS, FLEET_DIRECTIONS, FLEET_ERROR_KINDS, LABEL_VALUES, methodLabel, requestResult } from '../../src/telemetry/labels.js';
import { createRelayMetrics, type RelayGaugeSource } from '../../relay/telemetry/relay-metrics.js';
import { parseMetricsListen } from '../../src/telemetry/metrics-server.js';
import {
  startInstrumentedAgent,
  startInstrumentedRelay,
  TELEMETRY_TEST_TOKEN,
  type InstrumentedAgentFixture,
  type InstrumentedRelay,
} from '../support/prometheus-fixtures.js';
import { marker, parseExposition, runWorkloadRound, scrape, sumOf, type Sample } from '../support/prometheus-workload.js';
import { fleetToolsInstalled, spawnFleetRelay, startNats, type FleetRelay, type NatsServer } from '../support/fleet-harness.js';
import { connectObservedClient, startObservedAgent, type ObservedAgent } from '../support/resilience-helpers.js';
import { TEST_TOKEN } from '../support/relay-harness.js';

const AGENT_METRICS = [
  'exec_server_connections_active',
  'exec_server_connections_total',
  'exec_server_requests_total',
  'exec_server_request_duration_seconds',
  'exec_server_processes_active',
  'exec_server_processes_finished_total',
  'exec_server_process_duration_seconds',
  'exec_server_remote_registration_total',
  'exec_server_remote_registration_duration_seconds',
  'exec_server_remote_rendezvous_connect_total',
  'exec_server_remote_rendezvous_connect_duration_seconds',
  'exec_server_remote_reconnects_total',
  'exec_server_noise_handshakes_total',
  'exec_server_noise_handshake_duration_seconds',
  'exec_server_draining',
  'exec_server_drain_terminated_processes_total',
];

/** The relay-fleet metrics: exported by every relay, a single relay included (at 0). */
const RELAY_FLEET_METRICS: Record<string, { type: string; labels: Record<string, readonly string[]> }> = {
  execrelay_relay_fleet_frames_total: { type: 'counter', labels: { direction: FLEET_DIRECTIONS } },
  execrelay_relay_fleet_bytes_total: { type: 'counter', labels: { direction: FLEET_DIRECTIONS } },
  execrelay_relay_fleet_errors_total: { type: 'counter', labels: { kind: FLEET_ERROR_KINDS } },
  execrelay_relay_fleet_reconnects_total: { type: 'counter', labels: {} },
  execrelay_relay_fleet_member: { type: 'gauge', labels: {} },
  execrelay_relay_fleet_connected: { type: 'gauge', labels: {} },
  execrelay_relay_registry_environments: { type: 'gauge', labels: {} },
  execrelay_relay_fleet_remote_clients: { type: 'gauge', labels: {} },
};

/** Each fleet metric's series: exactly one per value of its label (one unlabelled series otherwise). */
function fleetSeries(samples: Sample[]): Record<string, Record<string, number>> {
  const series: Record<string, Record<string, number>> = {};
  for (const name of Object.keys(RELAY_FLEET_METRICS)) series[name] = {};
  for (const sample of samples) {
    const bucket = series[sample.name];
    if (!bucket) continue;
    const key = Object.entries(sample.labels).map(([k, v]) => `${k}=${v}`).join(',');
    expect(bucket[key], `${sample.name}{${key}} exported twice`).toBeUndefined();
    bucket[key] = sample.value;
  }
  return series;
}

/** `fleetSeries` of a relay whose every fleet series is `value(name, key)`. */
function expectedFleetSeries(value: (name: string, key: string) => number): Record<string, Record<string, number>> {
  const expected: Record<string, Record<string, number>> = {};
  for (const [name, { labels }] of Object.entries(RELAY_FLEET_METRICS)) {
    const [label, values] = Object.entries(labels)[0] ?? [];
    const keys = label ? values!.map((v) => `${label}=${v}`) : [''];
    expected[name] = Object.fromEntries(keys.map((key) => [key, value(name, key)]));
  }
  return expected;
}

/** Metric families declared in an exposition (`# TYPE name type`). */
function families(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!);
}

/** Every label value is from its fixed set (`le` is a bucket bound). */
function expectBoundedLabels(samples: Sample[]): void {
  for (const sample of samples) {
    for (const [name, value] of Object.entries(sample.labels)) {
      if (name === 'le') {
        expect(value === '+Inf' || Number.isFinite(Number(value)), `${sample.name} le="${value}"`).toBe(true);
        continue;
      }
      const allowed = LABEL_VALUES[name];
      expect(allowed, `label ${name} on ${sample.name} has no fixed set`).toBeDefined();
      expect(allowed, `${sample.name}{${name}="${value}"}`).toContain(value);
    }
  }
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('metrics: bounded, label values from fixed sets, no user content', () => {
  let relay: InstrumentedRelay;
  let agent: InstrumentedAgentFixture;
  let scratch: string;
  const environmentId = marker('env');
  const secrets: string[] = [TELEMETRY_TEST_TOKEN, environmentId];
  let processesStarted = 0;
  let relayClients = 0;
  let unknownCalls = 0;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'mkscratch-'));
    secrets.push(scratch, path.basename(scratch));
    relay = await startInstrumentedRelay();
    agent = await startInstrumentedAgent(relay.url, environmentId);
    secrets.push(agent.identity.publicIdentity, agent.listener.url, relay.url);
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  /** `viaRelay` clients through the relay (Noise over a relay stream) and `direct` on the agent's WebSocket. */
  async function round(viaRelay: number, direct: number): Promise<void> {
    const clients = await Promise.all([
      ...Array.from({ length: viaRelay }, () =>
        ExecClient.connect({ relay: relay.url, environmentId, agentKey: agent.identity.publicIdentity, token: TELEMETRY_TEST_TOKEN }),
      ),
      ...Array.from({ length: direct }, () => ExecClient.connect(agent.listener.url, { clientName: marker('client') })),
    ]);
    relayClients += viaRelay;
    try {
      const results = await Promise.all(clients.map((client) => runWorkloadRound(client, scratch)));
      for (const result of results) {
        secrets.push(...result.markers);
        processesStarted += result.processes;
        unknownCalls += 1;
      }
      secrets.push(...clients.map((c) => c.sessionId));
    } finally {
      for (const client of clients) client.close();
    }
  }

  it('keeps the series count flat from a small run to a large one, and never exports ids, commands, paths, env or tokens', async () => {
    await round(1, 1);
    const agentSmall = parseExposition(await scrape(agent.metricsUrl));
    const relaySmall = parseExposition(await scrape(relay.metricsUrl));

    for (let i = 0; i < 3; i++) await round(3, 2);
    const agentText = await scrape(agent.metricsUrl);
    const relayText = await scrape(relay.metricsUrl);
    const agentLarge = parseExposition(agentText);
    const relayLarge = parseExposition(relayText);

    // Cardinality: 1+1 clients and 3 rounds of 3+2 clients with fresh ids export the same series.
    const seriesKeys = (samples: Sample[]) => samples.map((s) => `${s.name}${JSON.stringify(s.labels)}`).sort();
    expect(seriesKeys(agentLarge)).toEqual(seriesKeys(agentSmall));
    expect(seriesKeys(relayLarge)).toEqual(seriesKeys(relaySmall));

    // No user content anywhere in either exposition.
    for (const secret of secrets) {
      expect(agentText.includes(secret), `agent /metrics contains ${secret}`).toBe(false);
      expect(relayText.includes(secret), `relay /metrics contains ${secret}`).toBe(false);
    }
    expectBoundedLabels(agentLarge);
    expectBoundedLabels(relayLarge);

    // The names the issue asks for, and the relay's prefix.
    expect(families(agentText)).toEqual(expect.arrayContaining(AGENT_METRICS));
    for (const name of families(relayText)) expect(name === BUILD_INFO_METRIC || name.startsWith('execrelay_relay_'), name).toBe(true);
    for (const name of families(agentText)) expect(name === BUILD_INFO_METRIC || name.startsWith('exec_server_'), name).toBe(true);

    // Build info (value 1, this build's versions) and prom-client's runtime metrics under each prefix.
    for (const [samples, component, prefix] of [[agentLarge, 'agent', 'exec_server_'], [relayLarge, 'relay', 'execrelay_relay_']] as const) {
      const buildInfo = samples.filter((s) => s.name === BUILD_INFO_METRIC);
      expect(buildInfo).toEqual([{ name: BUILD_INFO_METRIC, labels: { version: PACKAGE_VERSION, node_version: process.version, component }, value: 1 }]);
      expect(sumOf(samples, `${prefix}process_cpu_seconds_total`)).toBeGreaterThan(0);
      expect(sumOf(samples, `${prefix}process_resident_memory_bytes`)).toBeGreaterThan(0);
      expect(sumOf(samples, `${prefix}nodejs_heap_size_used_bytes`)).toBeGreaterThan(0);
      expect(samples.some((s) => s.name === `${prefix}nodejs_eventloop_lag_p99_seconds`)).toBe(true);
      for (const kind of GC_KINDS) expect(samples.some((s) => s.name === `${prefix}nodejs_gc_duration_seconds_count` && s.labels.kind === kind), kind).toBe(true);
      expect(samples.some((s) => s.name === `${prefix}nodejs_active_handles`), 'per-type handle gauge').toBe(false);
      expect(sumOf(samples, `${prefix}nodejs_active_handles_total`)).toBeGreaterThan(0);
    }

    // The work is counted: requests by method and result, `unknown` for the unrouted method.
    const requests = (labels: Record<string, string>) => sumOf(agentLarge, 'exec_server_requests_total', labels);
    expect(requests({ method: 'unknown', result: 'method_not_found' })).toBe(unknownCalls);
    expect(requests({ method: 'process/start', result: 'ok' })).toBe(processesStarted);
    expect(requests({ method: 'process/start', result: 'invalid_params' })).toBe(unknownCalls);
    expect(requests({ method: 'fs/readFile', result: 'not_found' })).toBe(unknownCalls);
    expect(requests({ method: 'process/read', result: 'not_found' })).toBe(unknownCalls);
    expect(requests({ method: 'initialize', result: 'ok' })).toBe(unknownCalls);
    expect(sumOf(agentLarge, 'exec_server_request_duration_seconds_count', { method: 'process/start', result: 'ok' })).toBe(processesStarted);
    expect(sumOf(agentLarge, 'exec_server_connections_total', { transport: 'relay' })).toBe(relayClients);
    expect(sumOf(agentLarge, 'exec_server_connections_total', { transport: 'websocket' })).toBe(unknownCalls - relayClients);
    expect(sumOf(agentLarge, 'exec_server_noise_handshakes_total', { result: 'success' })).toBe(relayClients);
    expect(sumOf(agentLarge, 'exec_server_remote_registration_total', { result: 'success' })).toBe(1);
    expect(sumOf(relayLarge, 'execrelay_relay_registrations_total', { result: 'registered' })).toBe(1);
    expect(sumOf(relayLarge, 'execrelay_relay_stream_opens_total')).toBe(relayClients);
    expect(sumOf(relayLarge, 'execrelay_relay_streams_accepted_total')).toBe(relayClients);
    expect(sumOf(relayLarge, 'execrelay_relay_frames_routed_total', { direction: 'client_to_executor' })).toBeGreaterThan(0);
    expect(sumOf(relayLarge, 'execrelay_relay_bytes_routed_total', { direction: 'executor_to_client' })).toBeGreaterThan(0);
    expect(sumOf(relayLarge, 'execrelay_relay_executors_registered')).toBe(1);
    // Execrelay's own streams are `classical` (Noise XX); the `pq_hybrid` series of codex streams
    // exist from the start, at 0, so the series count does not change when the first codex executor comes.
    expect(sumOf(relayLarge, 'execrelay_relay_stream_opens_total', { security_profile: 'classical' })).toBe(relayClients);
    expect(sumOf(relayLarge, 'execrelay_relay_stream_handshake_duration_seconds_count', { security_profile: 'classical' })).toBe(relayClients);
    for (const name of ['execrelay_relay_stream_opens_total', 'execrelay_relay_streams_accepted_total', 'execrelay_relay_stream_closes_total', 'execrelay_relay_frames_routed_total', 'execrelay_relay_bytes_routed_total', 'execrelay_relay_stream_handshake_duration_seconds_count']) {
      expect(relayLarge.some((s) => s.name === name && s.labels.security_profile === 'pq_hybrid'), name).toBe(true);
      expect(sumOf(relayLarge, name, { security_profile: 'pq_hybrid' }), name).toBe(0);
    }

    // A single relay exports every fleet series, at 0, so fleet panels and alerts see data; the
    // `fleet_unavailable` drop reason is there too, and nothing was dropped for it.
    for (const [name, { type }] of Object.entries(RELAY_FLEET_METRICS)) expect(relayText, name).toContain(`# TYPE ${name} ${type}\n`);
    expect(fleetSeries(relayLarge)).toEqual(expectedFleetSeries(() => 0));
    expect(relayLarge.filter((s) => s.name === 'execrelay_relay_frames_dropped_total').map((s) => s.labels.reason).sort()).toEqual([...DROP_REASONS].sort());
    expect(sumOf(relayLarge, 'execrelay_relay_frames_dropped_total', { reason: 'fleet_unavailable' })).toBe(0);

    // Each process counts its completion exactly once: success, failure and signaled per round.
    const finished = (result: string) => sumOf(agentLarge, 'exec_server_processes_finished_total', { result });
    expect(finished('success')).toBe(unknownCalls);
    expect(finished('failure')).toBe(unknownCalls);
    expect(finished('signaled')).toBe(unknownCalls);
    expect(sumOf(agentLarge, 'exec_server_process_duration_seconds_count')).toBe(processesStarted);
    expect(sumOf(agentLarge, 'exec_server_processes_active')).toBe(0);

    // Closed clients leave no active connections behind (the close reaches the agent asynchronously).
    await waitFor(async () => sumOf(parseExposition(await scrape(agent.metricsUrl)), 'exec_server_connections_active') === 0, 'connections_active 0');
  });

  it('serves /metrics on the relay\'s own port and on the agent\'s --metrics-listen, with /livez and /readyz', async () => {
    const relayBase = relay.url.replace(/^ws/, 'http');
    expect((await fetch(`${relayBase}/livez`)).status).toBe(200);
    expect((await fetch(`${relayBase}/readyz`)).status).toBe(200);
    const agentBase = agent.metricsServer.url;
    expect((await fetch(`${agentBase}/livez`)).status).toBe(200);
    expect((await fetch(`${agentBase}/readyz`)).status).toBe(200);
    expect((await fetch(`${agentBase}/nope`)).status).toBe(404);
    expect((await fetch(`${agentBase}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});

const fleetToolsMissing = !fleetToolsInstalled();
/** Skipped only off CI, like the fleet suite: CI installs nats-server and haproxy. */
describe.skipIf(fleetToolsMissing && !process.env.CI)(
  fleetToolsMissing ? 'metrics of relay fleet members (skipped: apt-get install nats-server haproxy)' : 'metrics of relay fleet members',
  () => {
    let nats: NatsServer | undefined;
    const relays: FleetRelay[] = [];
    let agent: ObservedAgent | undefined;
    let single: InstrumentedRelay | undefined;
    let scratch: string | undefined;

    afterAll(async () => {
      await agent?.stop();
      for (const relay of relays) await relay.kill('SIGKILL');
      await nats?.kill();
      await single?.stop();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    it('export the same series as a single relay, label values from the fixed sets, and no instance ids, environment ids or NATS credentials', async () => {
      if (fleetToolsMissing) throw new Error('CI is set but nats-server/haproxy are not installed; install with: apt-get install -y nats-server haproxy');
      scratch = await mkdtemp(path.join(os.tmpdir(), 'mkscratch-'));
      nats = await startNats();
      const instanceIds = [marker('instance'), marker('instance')];
      for (const id of instanceIds) relays.push(await spawnFleetRelay(nats, id));
      const [a, b] = relays as [FleetRelay, FleetRelay];
      const environmentId = marker('env');
      agent = await startObservedAgent(b.url, environmentId);
      const natsUrl = new URL(nats.url);
      const secrets = [...instanceIds, environmentId, TEST_TOKEN, nats.url, decodeURIComponent(natsUrl.password), agent.identity.publicIdentity, scratch, path.basename(scratch)];

      // Two clients on A, whose streams cross NATS to the executor on B.
      const observed = await Promise.all([connectObservedClient(a.url, agent), connectObservedClient(a.url, agent)]);
      try {
        const results = await Promise.all(observed.map(({ client }) => runWorkloadRound(client, scratch!)));
        for (const result of results) secrets.push(...result.markers);
        secrets.push(...observed.map(({ client }) => client.sessionId));
      } finally {
        for (const { client } of observed) client.close();
      }

      single = await startInstrumentedRelay();
      const singleSamples = parseExposition(await scrape(single.metricsUrl));
      const seriesKeys = (samples: Sample[]) => samples.map((s) => `${s.name}${JSON.stringify(s.labels)}`).sort();
      for (const relay of relays) {
        const text = await scrape(`http://127.0.0.1:${relay.port}/metrics`);
        for (const secret of secrets) expect(text.includes(secret), `fleet member /metrics contains ${secret}`).toBe(false);
        const samples = parseExposition(text);
        expectBoundedLabels(samples);
        // Joining a fleet adds no series (the fleet ones exist on every relay) and no label values.
        expect(seriesKeys(samples)).toEqual(seriesKeys(singleSamples));
      }
      // The work really went through NATS, and each instance's gauges tell its part.
      const [onA, onB] = [parseExposition(await scrape(`http://127.0.0.1:${a.port}/metrics`)), parseExposition(await scrape(`http://127.0.0.1:${b.port}/metrics`))];
      expect(sumOf(onA, 'execrelay_relay_fleet_frames_total', { direction: 'published' })).toBeGreaterThan(0);
      expect(sumOf(onB, 'execrelay_relay_fleet_frames_total', { direction: 'received' })).toBeGreaterThan(0);
      expect(sumOf(onA, 'execrelay_relay_fleet_connected')).toBe(1);
      expect(sumOf(onA, 'execrelay_relay_fleet_member')).toBe(1);
      expect(sumOf(singleSamples, 'execrelay_relay_fleet_member')).toBe(0);
      expect(sumOf(onB, 'execrelay_relay_fleet_connected')).toBe(1);
      expect(sumOf(onA, 'execrelay_relay_registry_environments')).toBe(0);
      expect(sumOf(onB, 'execrelay_relay_registry_environments')).toBe(1);
      expect(sumOf(onB, 'execrelay_relay_executors_registered')).toBe(1);
    }, 60_000);
  },
);

describe('metrics: label helpers and hooks', () => {
  it('labels known methods by name and everything else `unknown`', () => {
    expect(methodLabel('process/start')).toBe('process/start');
    expect(methodLabel('fs/walk')).toBe('fs/walk');
    expect(methodLabel('http/request')).toBe('http/request');
    expect(methodLabel('/etc/passwd')).toBe('unknown');
    expect(methodLabel('process/start/../x')).toBe('unknown');
  });

  it('maps response outcomes to the fixed result set', () => {
    expect(requestResult({ queued: true })).toBe('ok');
    expect(requestResult({ queued: true, errorCode: -32601 })).toBe('method_not_found');
    expect(requestResult({ queued: true, errorCode: -32004 })).toBe('not_found');
    expect(requestResult({ queued: true, errorCode: 12345 })).toBe('other_error');
    expect(requestResult({ queued: false })).toBe('not_sent');
  });

  it('counts a process completion once, however often the hook fires', async () => {
    const telemetry = createAgentTelemetry();
    const observation = telemetry.process.processStarting();
    observation.started();
    observation.onFinished('success', 20);
    observation.onFinished('failure', 30);
    observation.started();
    const unstarted = telemetry.process.processStarting();
    unstarted.onFinished('signaled', 5);
    unstarted.started();
    const samples = parseExposition(await telemetry.metrics.expose());
    expect(sumOf(samples, 'exec_server_processes_finished_total', { result: 'success' })).toBe(1);
    expect(sumOf(samples, 'exec_server_processes_finished_total', { result: 'failure' })).toBe(0);
    expect(sumOf(samples, 'exec_server_processes_finished_total', { result: 'signaled' })).toBe(1);
    expect(sumOf(samples, 'exec_server_processes_active')).toBe(0);
  });

  it('maps registration events onto the remote metrics', async () => {
    const telemetry = createAgentTelemetry();
    telemetry.onRegistrationEvent({ type: 'connect-failed', reason: 'unreachable' });
    telemetry.onRegistrationEvent({ type: 'connect-failed', reason: 'refused' });
    telemetry.onRegistrationEvent({ type: 'registered', durationMs: 12 });
    telemetry.onRegistrationEvent({ type: 'disconnected', reason: 'link_lost' });
    telemetry.onRegistrationEvent({ type: 'handshake', result: 'failure', durationMs: 3 });
    const samples = parseExposition(await telemetry.metrics.expose());
    expect(sumOf(samples, 'exec_server_remote_rendezvous_connect_total', { result: 'unreachable' })).toBe(1);
    expect(sumOf(samples, 'exec_server_remote_rendezvous_connect_total', { result: 'refused' })).toBe(1);
    expect(sumOf(samples, 'exec_server_remote_rendezvous_connect_total', { result: 'success' })).toBe(1);
    expect(sumOf(samples, 'exec_server_remote_registration_total', { result: 'refused' })).toBe(1);
    expect(sumOf(samples, 'exec_server_remote_registration_total', { result: 'success' })).toBe(1);
    expect(sumOf(samples, 'exec_server_remote_registration_duration_seconds_count')).toBe(1);
    expect(sumOf(samples, 'exec_server_remote_reconnects_total', { reason: 'link_lost' })).toBe(1);
    expect(sumOf(samples, 'exec_server_noise_handshakes_total', { result: 'failure' })).toBe(1);
    expectBoundedLabels(samples);
  });

  it('maps fleet events and a fleet member\'s state onto the fleet metrics, with label values from their fixed sets', async () => {
    let fleetState: RelayGaugeSource['fleetState'];
    const metrics = createRelayMetrics(() => ({ router: { executorCount: 2, streamCount: 0 }, fleetState }));
    const read = async () => parseExposition(await metrics.expose());
    // No fleet (a single relay): every fleet series at 0.
    expect(fleetSeries(await read())).toEqual(expectedFleetSeries(() => 0));

    fleetState = { member: true, connected: true, registeredEnvironments: 2, remoteClients: 3 };
    metrics.events.fleetFrame('published', 100);
    metrics.events.fleetFrame('published', 50);
    metrics.events.fleetFrame('received', 7);
    for (const kind of FLEET_ERROR_KINDS) metrics.events.fleetError(kind);
    metrics.events.fleetError('registry');
    metrics.events.fleetReconnected();
    metrics.events.frameDropped('fleet_unavailable');
    const connected = await read();
    expect(fleetSeries(connected)).toEqual({
      execrelay_relay_fleet_frames_total: { 'direction=published': 2, 'direction=received': 1 },
      execrelay_relay_fleet_bytes_total: { 'direction=published': 150, 'direction=received': 7 },
      execrelay_relay_fleet_errors_total: { 'kind=connection': 1, 'kind=publish': 1, 'kind=registry': 2, 'kind=control': 1 },
      execrelay_relay_fleet_reconnects_total: { '': 1 },
      execrelay_relay_fleet_member: { '': 1 },
      execrelay_relay_fleet_connected: { '': 1 },
      execrelay_relay_registry_environments: { '': 2 },
      execrelay_relay_fleet_remote_clients: { '': 3 },
    });
    expect(sumOf(connected, 'execrelay_relay_frames_dropped_total', { reason: 'fleet_unavailable' })).toBe(1);
    expectBoundedLabels(connected);

    // Disconnected from NATS: the connected gauge reads 0, the counters stay.
    fleetState = { member: true, connected: false, registeredEnvironments: 2, remoteClients: 0 };
    const disconnected = fleetSeries(await read());
    expect(disconnected.execrelay_relay_fleet_connected).toEqual({ '': 0 });
    expect(disconnected.execrelay_relay_fleet_member).toEqual({ '': 1 });
    expect(disconnected.execrelay_relay_fleet_remote_clients).toEqual({ '': 0 });
    expect(disconnected.execrelay_relay_fleet_reconnects_total).toEqual({ '': 1 });
  });

  it('parses --metrics-listen HOST:PORT', () => {
    expect(parseMetricsListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseMetricsListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(() => parseMetricsListen('http://127.0.0.1:9464')).toThrow(/HOST:PORT/);
    expect(() => parseMetricsListen('127.0.0.1:70000')).toThrow(/HOST:PORT/);
  });
});
