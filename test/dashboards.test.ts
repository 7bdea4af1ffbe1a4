import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../src/client/exec-client.js';
import { startInstrumentedAgent, startInstrumentedRelay, TELEMETRY_TEST_TOKEN, type InstrumentedAgentFixture, type InstrumentedRelay } from './support/prometheus-fixtures.js';
import { findBinary, promtool, startPrometheus, type RunningPrometheus } from './support/prometheus-server.js';
import { parseExposition, runWorkloadRound, scrape, sumOf } from './support/prometheus-workload.js';

const DASHBOARDS_DIR = fileURLToPath(new URL('../dashboards/', import.meta.url));
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

    // The alert rules loaded in the real server too.
    const rules = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ name: string; rules: unknown[] }> } };
    expect(rules.data.groups.map((g) => g.name).sort()).toEqual(['execrelay-executors', 'execrelay-relay']);
  }, 60_000);
});

async function waitFor(check: () => Promise<boolean>, describe: () => Promise<string>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${await describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
