/**
 * A real Prometheus (Debian package `prometheus`) started by a test on a loopback port with a
 * generated config, its HTTP API, and promtool.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** The first executable named `name` on PATH (plus /usr/bin, /usr/local/bin), or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/local/bin'].filter(Boolean);
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Runs promtool; returns its exit status and output. */
export function promtool(args: string[], cwd?: string): { status: number | null; output: string } {
  const binary = findBinary('promtool');
  if (!binary) throw new Error('promtool not found (Debian package prometheus)');
  const result = spawnSync(binary, args, { cwd, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One scrape target; several with the same `jobName` are one job (e.g. the instances of a relay fleet). */
export interface PrometheusJob {
  jobName: string;
  /** `HOST:PORT` */
  target: string;
  metricsPath?: string;
}

export interface PromVectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RunningPrometheus {
  readonly url: string;
  /** Instant query; rejects unless the API answers `success`. */
  query(expr: string): Promise<PromVectorSample[]>;
  /** Health of each scrape target by job. */
  targets(): Promise<Array<{ job: string; health: string; lastError: string }>>;
  stop(): Promise<void>;
}

/** Targets grouped into jobs (Prometheus refuses two scrape configs with one job name). */
function jobsByName(jobs: readonly PrometheusJob[]): Map<string, PrometheusJob[]> {
  const byName = new Map<string, PrometheusJob[]>();
  for (const job of jobs) {
    const group = byName.get(job.jobName) ?? [];
    if (group.length > 0 && (group[0]!.metricsPath ?? '/metrics') !== (job.metricsPath ?? '/metrics')) {
      throw new Error(`job ${job.jobName}: targets with different metrics paths`);
    }
    group.push(job);
    byName.set(job.jobName, group);
  }
  return byName;
}

/** Starts Prometheus scraping `jobs` every `scrapeIntervalSeconds`, with `ruleFiles` loaded. */
export async function startPrometheus(options: { jobs: PrometheusJob[]; ruleFiles?: string[]; scrapeIntervalSeconds?: number }): Promise<RunningPrometheus> {
  const binary = findBinary('prometheus');
  if (!binary) throw new Error('prometheus not found (Debian package prometheus)');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-prometheus-'));
  const interval = `${options.scrapeIntervalSeconds ?? 1}s`;
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(options.ruleFiles?.length ? ['rule_files:', ...options.ruleFiles.map((file) => `  - ${JSON.stringify(file)}`)] : []),
    'scrape_configs:',
    ...[...jobsByName(options.jobs)].flatMap(([jobName, jobs]) => [
      `  - job_name: ${JSON.stringify(jobName)}`,
      `    metrics_path: ${JSON.stringify(jobs[0]!.metricsPath ?? '/metrics')}`,
      '    static_configs:',
      `      - targets: [${jobs.map((job) => JSON.stringify(job.target)).join(', ')}]`,
    ]),
    '',
  ].join('\n');
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, config);
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8192)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8192)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited (${child.exitCode}): ${output}`);
    }
    try {
      if ((await fetch(`${url}/-/ready`)).status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const response = await fetch(`${url}${pathAndQuery}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus API ${pathAndQuery}: ${body.error ?? response.status}`);
    return body.data;
  };
  return {
    url,
    async query(expr) {
      const data = await api<{ resultType: string; result: PromVectorSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      if (data.resultType !== 'vector') throw new Error(`expected a vector from ${expr}, got ${data.resultType}`);
      return data.result;
    },
    async targets() {
      const data = await api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> }>('/api/v1/targets');
      return data.activeTargets.map((t) => ({ job: t.labels.job ?? '', health: t.health, lastError: t.lastError }));
    },
    stop,
  };
}
