import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { PACKAGE_VERSION } from '../../src/package-version.js';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../../src/client/exec-client.js';
import { startInstrumentedAgent, startInstrumentedRelay, TELEMETRY_TEST_TOKEN, type InstrumentedAgentFixture, type InstrumentedRelay } from '../support/prometheus-fixtures.js';
import { fleetToolsInstalled, relayMetric, spawnFleetRelay, startNats, type FleetRelay, type NatsServer } from '../support/fleet-harness.js';
import { findBinary, promtool, startPrometheus, type PromVectorSample, type RunningPrometheus } from '../support/prometheus-server.js';
import { parseExposition, runWorkloadRound, scrape, sumOf } from '../support/prometheus-workload.js';
import { connectObservedClient, cwd, env, numberedLinesCommand, startObservedAgent, type ObservedAgent, type ObservedClient } from '../support/resilience-helpers.js';

const DASHBOARDS_DIR = fileURLToPath(new URL('../../dashboards/', import.meta.url));
const DASHBOARD_FILES = ['relay-overview.json', 'executor-fleet.json'];
const INSTALL_HINT = 'apt-get update && apt-get install -y prometheus';

interface Target {
  refId: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; allValue?: string }> };
}

async function loadDashboard(file: string): Promise<Dashboard> {
  return JSON.parse(await readFile(path.join(DASHBOARDS_DIR, file), 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included; rows themselves hold no query. */
function queryPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]).filter((panel) => panel.type !== 'row');
}

/** The query panels of the row titled `title` (the panels after it, up to the next row). */
function rowPanels(dashboard: Dashboard, title: string): Panel[] {
  const start = dashboard.panels.findIndex((panel) => panel.type === 'row' && panel.title === title);
  if (start === -1) throw new Error(`no row ${title}`);
  const end = dashboard.panels.findIndex((panel, i) => i > start && panel.type === 'row');
  return dashboard.panels.slice(start + 1, end === -1 ? undefined : end);
}

/** What Grafana would substitute: the rate interval and the "All" instance selection. */
function toPromQL(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$instance', '.*');
}

const prometheusBinary = findBinary('prometheus');
const promtoolBinary = findBinary('promtool');
const binariesMissing = !prometheusBinary || !promtoolBinary;
/** Skipped only off CI: in CI a missing Prometheus is a failure (the CI script installs it). */
const skipRealPrometheus = binariesMissing && !process.env.CI;
const realPrometheusTitle = skipRealPrometheus
  ? `dashboards on a real Prometheus — SKIPPED: prometheus/promtool not found on PATH (install: ${INSTALL_HINT})`
  : 'dashboards on a real Prometheus';

describe('dashboards: structure', () => {
  it.each(DASHBOARD_FILES)('%s has a Prometheus data source variable that every panel and query uses', async (file) => {
    const dashboard = await loadDashboard(file);
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const panels = queryPanels(dashboard);
    expect(panels.length).toBeGreaterThan(8);
    const ids = new Set<number>();
    for (const panel of panels) {
      expect(ids.has(panel.id), `duplicate panel id ${panel.id}`).toBe(false);
      ids.add(panel.id);
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length ?? 0, `${panel.title} has no query`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.expr, `${panel.title} ${target.refId}`).toMatch(/\S/);
        expect(target.datasource?.uid ?? '${datasource}', `${panel.title} ${target.refId}`).toBe('${datasource}');
      }
    }
  });
});

/** A provisioning file as Grafana reads it: YAML, with `$VAR` / `${VAR}` in its values expanded from the environment. */
function readProvisioning(text: string, env: Record<string, string>): unknown {
  const expand = (value: unknown): unknown => {
    if (typeof value === 'string') {
      return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_all, braced: string | undefined, bare: string | undefined) => {
        const name = (braced ?? bare)!;
        if (!(name in env)) throw new Error(`provisioning uses $${name}, which the docs do not tell the operator to set`);
        return env[name]!;
      });
    }
    if (Array.isArray(value)) return value.map(expand);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]));
    return value;
  };
  return expand(parseYaml(text));
}

describe('dashboards: alerts have runbooks, Grafana provisioning covers the dashboards', () => {
  it('every alert has a runbook_url to its own section of docs/runbooks.md, which says what it means, what to check and how to fix it', async () => {
    const rules = parseYaml(await readFile(path.join(DASHBOARDS_DIR, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; annotations: Record<string, string> }> }> };
    const runbooks = await readFile(path.join(DASHBOARDS_DIR, '..', 'docs', 'runbooks.md'), 'utf8');
    const sections = new Map(
      runbooks
        .split(/^## /m)
        .slice(1)
        .map((section) => [section.slice(0, section.indexOf('\n')).trim(), section] as const),
    );
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts.length).toBeGreaterThanOrEqual(13);
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      expect(rule.annotations.runbook_url, rule.alert).toBe(`docs/runbooks.md#${rule.alert.toLowerCase()}`);
      const section = sections.get(rule.alert);
      expect(section, `docs/runbooks.md has no section ## ${rule.alert}`).toBeDefined();
      for (const part of ['**Means:**', '**First checks:**', '**Fixes:**']) expect(section, `${rule.alert} ${part}`).toContain(part);
    }
    // No runbook for an alert that does not exist.
    expect([...sections.keys()].sort()).toEqual([...alerts].sort());
  });

  it('the provisioned dashboards folder holds exactly the dashboards, and the provisioned data source is the Prometheus one they select', async () => {
    const env = { EXECRELAY_DASHBOARDS_DIR: DASHBOARDS_DIR, PROMETHEUS_URL: 'http://127.0.0.1:9090' };
    const provisioning = path.join(DASHBOARDS_DIR, 'provisioning');
    const providers = readProvisioning(await readFile(path.join(provisioning, 'dashboards', 'execrelay.yaml'), 'utf8'), env) as {
      apiVersion: number;
      providers: Array<{ name: string; type: string; options: { path: string } }>;
    };
    expect(providers.apiVersion).toBe(1);
    expect(providers.providers).toHaveLength(1);
    const provider = providers.providers[0]!;
    expect(provider.type).toBe('file');
    // Grafana loads every .json under the path: exactly the dashboards, none missing, nothing else.
    const listed = (await readdir(provider.options.path, { recursive: true })).filter((name) => name.endsWith('.json')).sort();
    expect(listed).toEqual([...DASHBOARD_FILES].sort());

    const datasources = readProvisioning(await readFile(path.join(provisioning, 'datasources', 'execrelay-prometheus.yaml'), 'utf8'), env) as {
      apiVersion: number;
      datasources: Array<{ uid: string; type: string; url: string; isDefault?: boolean }>;
    };
    expect(datasources.apiVersion).toBe(1);
    expect(datasources.datasources).toHaveLength(1);
    const datasource = datasources.datasources[0]!;
    expect(datasource).toMatchObject({ type: 'prometheus', url: env.PROMETHEUS_URL, isDefault: true });
    expect(datasource.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);

    const uids = new Set<string>();
    for (const file of listed) {
      const dashboard = await loadDashboard(file);
      expect(dashboard.uid, file).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
      expect(uids.has(dashboard.uid!), `duplicate dashboard uid ${dashboard.uid}`).toBe(false);
      uids.add(dashboard.uid!);
      // The dashboards pick their data source through the `datasource` variable (every panel uses it,
      // checked above): a variable of the provisioned source's type, which resolves to the default one.
      const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
      expect(variable, file).toMatchObject({ type: 'datasource', query: datasource.type });
      // Any data source a dashboard names outright is the variable or the provisioned uid.
      for (const uid of JSON.stringify(dashboard).matchAll(/"uid":\s*"([^"]*)"/g)) {
        if (uid[1] === dashboard.uid) continue;
        expect(['${datasource}', datasource.uid], `${file} names data source ${uid[1]}`).toContain(uid[1]);
      }
    }
  });
});

describe.skipIf(skipRealPrometheus)(realPrometheusTitle, () => {
  let relay: InstrumentedRelay;
  let agent: InstrumentedAgentFixture;
  let prometheus: RunningPrometheus;
  let scratch: string;

  beforeAll(async () => {
    if (binariesMissing) throw new Error(`CI is set but prometheus/promtool are not installed; install with: ${INSTALL_HINT}`);
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-dashboards-'));
    relay = await startInstrumentedRelay();
    agent = await startInstrumentedAgent(relay.url, 'dashboards-env');
    prometheus = await startPrometheus({
      jobs: [
        { jobName: 'execrelay-relay', target: new URL(relay.metricsUrl).host },
        { jobName: 'execrelay-agent', target: new URL(agent.metricsUrl).host },
      ],
      ruleFiles: [path.join(DASHBOARDS_DIR, 'alerts.yml')],
      scrapeIntervalSeconds: 1,
    });
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    await agent?.stop();
    await relay?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('promtool accepts prometheus.yml and alerts.yml, and the alert unit tests pass', () => {
    const config = promtool(['check', 'config', 'prometheus.yml'], DASHBOARDS_DIR);
    expect(config.status, config.output).toBe(0);
    const rules = promtool(['check', 'rules', 'alerts.yml'], DASHBOARDS_DIR);
    expect(rules.status, rules.output).toBe(0);
    const unit = promtool(['test', 'rules', 'alerts.test.yml'], DASHBOARDS_DIR);
    expect(unit.status, unit.output).toBe(0);
  });

  it('every panel query of both dashboards returns data from Prometheus scraping a running relay and agent', async () => {
    // Both targets up before the work starts, so every counter's increase lands between scrapes.
    await waitFor(async () => (await prometheus.query('up == 1')).length === 2, async () => JSON.stringify(await prometheus.targets()));

    const runFor = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const clients = await Promise.all([
          ExecClient.connect({ relay: relay.url, environmentId: agent.environmentId, agentKey: agent.identity.publicIdentity, token: TELEMETRY_TEST_TOKEN }),
          ExecClient.connect(agent.listener.url),
        ]);
        try {
          await Promise.all(clients.map((client) => runWorkloadRound(client, scratch)));
        } finally {
          for (const client of clients) client.close();
        }
      }
    };
    await runFor(2500);
    // The relay link drops and comes back (reconnect, registration, rendezvous metrics), and a
    // client presents a bad token (auth failure).
    const registrations = async () => sumOf(parseExposition(await scrape(agent.metricsUrl)), 'exec_server_remote_registration_total', { result: 'success' });
    const before = await registrations();
    agent.registration.dropLink();
    await waitFor(async () => (await registrations()) > before, async () => 'agent did not re-register');
    await expect(
      ExecClient.connect({ relay: relay.url, environmentId: agent.environmentId, agentKey: agent.identity.publicIdentity, token: 'wrong-token-000000000000' }),
    ).rejects.toThrow();
    await runFor(2500);
    // Two more scrapes after the last of the work.
    await new Promise((resolve) => setTimeout(resolve, 2500));

    const failures: string[] = [];
    let queries = 0;
    for (const file of DASHBOARD_FILES) {
      const dashboard = await loadDashboard(file);
      for (const panel of queryPanels(dashboard)) {
        for (const target of panel.targets ?? []) {
          const expr = toPromQL(target.expr!);
          queries += 1;
          const result = await prometheus.query(expr);
          if (result.length === 0) failures.push(`${file} / ${panel.title} / ${target.refId}: no data for ${expr}`);
          else if (!result.some((sample) => Number.isFinite(Number(sample.value[1])))) {
            failures.push(`${file} / ${panel.title} / ${target.refId}: only NaN/Inf for ${expr}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
    expect(queries).toBeGreaterThan(30);

    // The alert rules loaded in the real server too, and evaluate without errors.
    const groups = await ruleGroups(prometheus);
    expect(groups.map((g) => g.name).sort()).toEqual(['execrelay-executors', 'execrelay-fleet', 'execrelay-relay']);
    for (const rule of groups.flatMap((g) => g.rules)) expect(rule.health, `${rule.name}: ${rule.lastError ?? ''}`).toBe('ok');
    // A single relay exports every fleet metric at 0: no fleet alert is pending or firing for it.
    expect(await prometheus.query('ALERTS{alertname=~"ExecrelayFleet.*"}')).toEqual([]);
    for (const rule of groups.find((g) => g.name === 'execrelay-fleet')!.rules) expect(rule.state, rule.name).toBe('inactive');
  }, 60_000);

  it('scrapes build info and the runtime metrics of both apps', async () => {
    await waitFor(async () => (await prometheus.query('execrelay_build_info')).length === 2, async () => JSON.stringify(await prometheus.query('execrelay_build_info')));
    const buildInfo = await prometheus.query('execrelay_build_info');
    expect(buildInfo.map((s) => ({ job: s.metric.job, component: s.metric.component, version: s.metric.version, node: s.metric.node_version, value: s.value[1] })).sort((a, b) => a.job!.localeCompare(b.job!))).toEqual([
      { job: 'execrelay-agent', component: 'agent', version: PACKAGE_VERSION, node: process.version, value: '1' },
      { job: 'execrelay-relay', component: 'relay', version: PACKAGE_VERSION, node: process.version, value: '1' },
    ]);
    for (const [job, prefix] of [['execrelay-relay', 'execrelay_relay_'], ['execrelay-agent', 'exec_server_']] as const) {
      for (const expr of [
        `${prefix}process_resident_memory_bytes{job="${job}"} > 0`,
        `${prefix}nodejs_heap_size_used_bytes{job="${job}"} > 0`,
        `${prefix}process_start_time_seconds{job="${job}"} > 0`,
        `${prefix}nodejs_eventloop_lag_p99_seconds{job="${job}"} >= 0`,
        `sum(${prefix}nodejs_gc_duration_seconds_count{job="${job}"}) >= 0`,
        `rate(${prefix}process_cpu_seconds_total{job="${job}"}[1m]) >= 0`,
        // Joined on build info, as the docs suggest.
        `${prefix}process_resident_memory_bytes{job="${job}"} * on (job, instance) group_left (version) execrelay_build_info`,
      ]) {
        expect((await prometheus.query(expr)).length, expr).toBeGreaterThan(0);
      }
    }
  }, 30_000);
});

const FLEET_ROW = 'Fleet (per instance)';
const fleetToolsMissing = !fleetToolsInstalled();
/** Skipped only off CI, like the fleet suite: CI installs nats-server and haproxy. */
const skipRealFleet = (binariesMissing || fleetToolsMissing) && !process.env.CI;
const realFleetTitle = skipRealFleet
  ? `fleet dashboard row on a real Prometheus scraping two relay instances — SKIPPED: needs prometheus and nats-server (install: ${INSTALL_HINT} nats-server haproxy)`
  : 'fleet dashboard row on a real Prometheus scraping two relay instances';

describe.skipIf(skipRealFleet)(realFleetTitle, () => {
  let nats: NatsServer | undefined;
  let relays: FleetRelay[] = [];
  let agent: ObservedAgent | undefined;
  let observed: ObservedClient | undefined;
  let prometheus: RunningPrometheus | undefined;
  const fastLink = { backoff: { initialMs: 100, maxMs: 1000 }, pingIntervalMs: 500, pongTimeoutMs: 3000 };

  beforeAll(async () => {
    if (binariesMissing || fleetToolsMissing) throw new Error(`CI is set but prometheus or nats-server is not installed; install with: ${INSTALL_HINT} nats-server haproxy`);
    nats = await startNats();
    relays = [await spawnFleetRelay(nats, 'relay-a'), await spawnFleetRelay(nats, 'relay-b')];
    prometheus = await startPrometheus({
      jobs: relays.map((relay) => ({ jobName: 'execrelay-relay', target: `127.0.0.1:${relay.port}` })),
      ruleFiles: [path.join(DASHBOARDS_DIR, 'alerts.yml')],
      scrapeIntervalSeconds: 1,
    });
  }, 60_000);

  afterAll(async () => {
    observed?.client.close();
    await prometheus?.stop();
    await agent?.stop();
    for (const relay of relays) await relay.kill('SIGKILL');
    await nats?.kill();
  });

  it('shows each instance on its own: NATS traffic, a NATS outage, registry and remote clients; the disconnect alert goes pending for both', async () => {
    const [a, b] = relays as [FleetRelay, FleetRelay];
    const instanceA = `127.0.0.1:${a.port}`;
    const instanceB = `127.0.0.1:${b.port}`;
    const prom = prometheus!;
    const natsServer = nats!;
    await waitFor(async () => (await prom.query('up{job="execrelay-relay"} == 1')).length === 2, async () => JSON.stringify(await prom.targets()));

    // The executor on B, its client on A: every frame of the stream crosses NATS.
    agent = await startObservedAgent(b.url, 'dashboards-fleet-env', fastLink);
    // The agent is told `registered` once B's registry entry is written: A finds it at once.
    observed = await connectObservedClient(a.url, agent, fastLink);
    const client = observed.client;
    const lines = async (count: number) => {
      const done = await (await client.exec(numberedLinesCommand(count, 0.001), { cwd, env })).completion;
      expect(done.stdout.toString().split('\n').filter(Boolean)).toHaveLength(count);
    };
    await lines(100);

    // NATS goes away: both instances see it, the client's frames for B are dropped on A, and
    // ExecrelayFleetNatsDisconnected goes pending for both instances (it fires after 2 minutes).
    await natsServer.kill();
    const connected = (relay: FleetRelay) => relayMetric(relay, 'execrelay_relay_fleet_connected');
    await waitFor(async () => (await connected(a)) === 0 && (await connected(b)) === 0, async () => 'the relays did not notice NATS stopping');
    const duringOutage = client.exec(['echo', 'after the outage'], { cwd, env });
    await waitFor(
      async () => (await relayMetric(a, 'execrelay_relay_frames_dropped_total', { reason: 'fleet_unavailable' })) > 0,
      async () => 'no frame dropped as fleet_unavailable on A',
    );
    const pending = 'ALERTS{alertname="ExecrelayFleetNatsDisconnected", alertstate="pending"}';
    await waitFor(
      async () => instancesOf(await prom.query(pending)).join() === [instanceA, instanceB].sort().join(),
      async () => `pending: ${JSON.stringify(await prom.query(pending))}`,
    );
    await natsServer.restart();
    expect((await (await duringOutage).completion).stdout.toString()).toBe('after the outage\n');
    await waitFor(
      async () => (await connected(a)) === 1 && (await connected(b)) === 1 && (await relayMetric(b, 'execrelay_relay_registry_environments')) === 1,
      async () => 'the relays did not rejoin NATS and re-register the environment',
    );
    await lines(100);
    // Two more scrapes after the last of the work.
    await new Promise((resolve) => setTimeout(resolve, 2500));

    const dashboard = await loadDashboard('relay-overview.json');
    const panels = rowPanels(dashboard, FLEET_ROW);
    expect(panels.length).toBeGreaterThanOrEqual(8);
    const results = new Map<string, PromVectorSample[]>();
    const failures: string[] = [];
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        const expr = toPromQL(target.expr!);
        const result = await prom.query(expr);
        results.set(`${panel.title}/${target.refId}`, result);
        if (result.length === 0) failures.push(`${panel.title} / ${target.refId}: no data for ${expr}`);
        // A per-instance query shows both instances, each with its own series.
        else if (/by \([^)]*\binstance\b/.test(expr) && !instancesOf(result).includes(instanceA)) failures.push(`${panel.title} / ${target.refId}: no series for ${instanceA}`);
        else if (/by \([^)]*\binstance\b/.test(expr) && !instancesOf(result).includes(instanceB)) failures.push(`${panel.title} / ${target.refId}: no series for ${instanceB}`);
      }
    }
    expect(failures).toEqual([]);

    /** The value of the series of panel `title` (query `refId`) whose labels include `labels`. */
    const value = (title: string, labels: Record<string, string> = {}, refId = 'A'): number => {
      const result = results.get(`${title}/${refId}`);
      if (!result) throw new Error(`no panel query ${title}/${refId}`);
      const matching = result.filter((sample) => Object.entries(labels).every(([k, v]) => sample.metric[k] === v));
      if (matching.length !== 1) throw new Error(`${title}/${refId} ${JSON.stringify(labels)}: ${JSON.stringify(result)}`);
      return Number(matching[0]!.value[1]);
    };
    // Client frames published by A and received by B; executor frames the other way.
    expect(value('Frames via NATS per instance', { instance: instanceA, direction: 'published' })).toBeGreaterThan(0);
    expect(value('Frames via NATS per instance', { instance: instanceB, direction: 'received' })).toBeGreaterThan(0);
    expect(value('Frames via NATS per instance', { instance: instanceB, direction: 'published' })).toBeGreaterThan(0);
    expect(value('Frames via NATS per instance', { instance: instanceA, direction: 'received' })).toBeGreaterThan(0);
    expect(value('Bytes via NATS per instance', { instance: instanceA, direction: 'published' })).toBeGreaterThan(0);
    expect(value('Frames routed per instance', { instance: instanceA })).toBeGreaterThan(0);
    expect(value('Frames routed per instance', { instance: instanceB })).toBeGreaterThan(0);
    expect(value('Frames dropped: fleet unavailable, per instance', { instance: instanceA })).toBeGreaterThan(0);
    expect(value('NATS errors by kind and reconnects per instance', { instance: instanceA, kind: 'connection' })).toBeGreaterThan(0);
    expect(value('NATS errors by kind and reconnects per instance', { instance: instanceB }, 'B')).toBeGreaterThan(0);
    expect(value('NATS reconnects (1h)')).toBeGreaterThanOrEqual(2);
    expect(value('NATS connected per instance', { instance: instanceA })).toBe(1);
    expect(value('NATS connected per instance', { instance: instanceB })).toBe(1);
    expect(value('Instances connected to NATS')).toBe(2);
    // The environment is B's; its one registry entry is the whole fleet's.
    expect(value('Registry environments per instance and fleet total', { instance: instanceA })).toBe(0);
    expect(value('Registry environments per instance and fleet total', { instance: instanceB })).toBe(1);
    expect(value('Registry environments per instance and fleet total', {}, 'B')).toBe(1);
    expect(value('Environments in the fleet registry')).toBe(1);
    // B routes streams for A's client socket; A holds the client, B the executor.
    expect(value('Remote clients per instance', { instance: instanceA })).toBe(0);
    expect(value('Remote clients per instance', { instance: instanceB })).toBe(1);
    expect(value('Remote clients routed')).toBe(1);
    expect(value('Executors and client sessions per instance', { instance: instanceA })).toBe(0);
    expect(value('Executors and client sessions per instance', { instance: instanceB })).toBe(1);
    expect(value('Executors and client sessions per instance', { instance: instanceA }, 'B')).toBe(1);
    expect(value('Executors and client sessions per instance', { instance: instanceB }, 'B')).toBe(0);

    // Connected again: nothing fires (the outage was far shorter than the rule's 2 minutes).
    expect(await prom.query('ALERTS{alertname="ExecrelayFleetNatsDisconnected"}')).toEqual([]);
    for (const rule of (await ruleGroups(prom)).flatMap((g) => g.rules)) expect(rule.health, `${rule.name}: ${rule.lastError ?? ''}`).toBe('ok');
  }, 90_000);
});

function instancesOf(samples: PromVectorSample[]): string[] {
  return [...new Set(samples.map((sample) => sample.metric.instance ?? ''))].sort();
}

interface RuleGroup {
  name: string;
  rules: Array<{ name: string; health: string; state?: string; lastError?: string }>;
}

async function ruleGroups(prometheus: RunningPrometheus): Promise<RuleGroup[]> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as { data: { groups: RuleGroup[] } };
  return body.data.groups;
}

async function waitFor(check: () => Promise<boolean>, describe: () => Promise<string>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${await describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
