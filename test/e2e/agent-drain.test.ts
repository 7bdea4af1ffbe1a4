import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { runCli, startCli } from '../support/cli.js';
import { parseExposition, sumOf } from '../support/prometheus-exposition.js';

type Cli = Awaited<ReturnType<typeof startCli>>;

/** Resolves with the exit code of `child` (and how long it took from now). */
function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; afterMs: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode, afterMs: 0 });
    child.once('exit', (code, signal) => resolve({ code, signal, afterMs: performance.now() - started }));
  });
}

async function waitForFile(file: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} never appeared`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The agent's `/metrics` URL, from its "metrics listening" log line. */
async function waitForMetricsUrl(agent: Cli, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)".*"msg":"metrics listening"/.exec(agent.stderr());
    if (match) return match[1]!;
    if (Date.now() > deadline) throw new Error(`no "metrics listening" line: ${agent.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Scrapes until the sum of `name` is `value`. */
async function waitForSample(scrape: () => Promise<ReturnType<typeof parseExposition>>, name: string, value: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = sumOf(await scrape(), name);
    if (got === value) return;
    if (Date.now() > deadline) throw new Error(`${name} is ${got}, never ${value}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The agent's SIGTERM drain, with the real CLI: relay, agent and clients are separate processes. */
describe('agent drain on SIGTERM', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-drain-'));
  const files = { token: path.join(dir, 'token'), agentKey: path.join(dir, 'agent.key'), clientKey: path.join(dir, 'client.key'), authorized: path.join(dir, 'authorized-clients') };
  const env = { EXECRELAY_LOG_LEVEL: 'info', EXECRELAY_CLIENT_KEY: files.clientKey };
  let relay: Cli;
  let agentIdentity = '';
  let environments = 0;
  const started: Cli[] = [];

  beforeAll(async () => {
    writeFileSync(files.token, 'drain-test-token-0123456789\n', { mode: 0o600 });
    agentIdentity = (await runCli(['keygen', '--out', files.agentKey])).stdout.trim();
    const clientIdentity = (await runCli(['keygen', '--out', files.clientKey])).stdout.trim();
    expect(await runCli(['authorize', '--authorized-clients', files.authorized, clientIdentity])).toMatchObject({ code: 0 });
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', files.token], { EXECRELAY_LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    for (const cli of started) await cli.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A relay-mode agent of its own environment. */
  async function startAgent(...flags: string[]): Promise<{ agent: Cli; exec: (command: string) => ReturnType<typeof runCli> }> {
    const environmentId = `drain-${++environments}`;
    const agent = await startCli(
      ['agent', '--relay', relay.firstLine, '--environment-id', environmentId, '--key', files.agentKey, '--token-file', files.token, '--authorized-clients', files.authorized, ...flags],
      env,
    );
    started.push(agent);
    const exec = (command: string) =>
      runCli(['exec', '--relay', relay.firstLine, '--env', environmentId, '--agent-key', agentIdentity, '--token-file', files.token, '--', 'sh', '-c', command], {
        env: { EXECRELAY_CLIENT_KEY: files.clientKey },
      });
    return { agent, exec };
  }

  it('lets a running command finish and deliver its output, refuses a new one clearly, then exits 0', async () => {
    const { agent, exec } = await startAgent();
    const marker = path.join(dir, 'running-1');
    // Runs until released, so the agent is still draining however slowly the second client starts.
    const release = path.join(dir, 'release-1');
    const running = exec(`touch ${marker}; while [ ! -e ${release} ]; do sleep 0.05; done; echo done`);
    await waitForFile(marker);
    const exited = exitOf(agent.child);
    agent.child.kill('SIGTERM');
    const refused = await exec('echo never');
    writeFileSync(release, '');
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain(
      'stream reset by peer: executor_draining (the agent is draining (shutting down) and takes no new connections; retry once it has restarted)',
    );
    expect(refused.stdout).toBe('');
    expect(await running).toMatchObject({ code: 0, stdout: 'done\n' });
    const exit = await exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(agent.stderr()).toMatch(/"runningProcesses":1.*draining: no new sessions/);
    expect(agent.stderr()).toMatch(/"running":1,"terminated":0.*"msg":"drained"/);
  });

  it('terminates a command that outlives --drain-timeout-ms and exits 0', async () => {
    const { agent, exec } = await startAgent('--drain-timeout-ms', '500', '--terminate-grace-ms', '500');
    const marker = path.join(dir, 'running-2');
    const running = exec(`touch ${marker}; sleep 60; echo never`);
    await waitForFile(marker);
    const exited = exitOf(agent.child);
    agent.child.kill('SIGTERM');
    const exit = await exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.afterMs).toBeLessThan(500 + 500 + 2000 + 2000 + 2000);
    const result = await running;
    expect(result.stdout).toBe('');
    expect(result.code).toBe(128 + 15); // the drain's SIGTERM
    expect(agent.stderr()).toContain('drain timeout: terminating the processes still running');
  });

  it('shows the drain in its metrics (exec_server_draining 0 → 1, the processes terminated at the timeout counted before they are gone) and its audit log', async () => {
    const auditFile = path.join(dir, 'drain-audit.jsonl');
    const { agent, exec } = await startAgent('--metrics-listen', '127.0.0.1:0', '--drain-timeout-ms', '800', '--terminate-grace-ms', '4000', '--audit-log', auditFile);
    const metricsUrl = await waitForMetricsUrl(agent);
    const scrape = async () => parseExposition(await (await fetch(metricsUrl)).text());
    const before = await scrape();
    expect(sumOf(before, 'exec_server_draining')).toBe(0);
    expect(sumOf(before, 'exec_server_drain_terminated_processes_total')).toBe(0);
    // A command that ignores SIGTERM: it outlives the drain timeout and the grace, until SIGKILL.
    const marker = path.join(dir, 'running-metrics');
    const running = exec(`trap "" TERM; touch ${marker}; while :; do sleep 0.1; done`);
    await waitForFile(marker);
    const exited = exitOf(agent.child);
    agent.child.kill('SIGTERM');
    await waitForSample(scrape, 'exec_server_draining', 1);
    expect(sumOf(await scrape(), 'exec_server_drain_terminated_processes_total')).toBe(0); // still within the drain timeout
    // Past the timeout the process is being terminated: counted while the agent still serves /metrics.
    await waitForSample(scrape, 'exec_server_drain_terminated_processes_total', 1);
    expect(agent.child.exitCode).toBeNull();
    expect((await running).code).toBe(128 + 9); // SIGKILL after the grace
    expect(await exited).toMatchObject({ code: 0, signal: null });
    const audit = readFileSync(auditFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(audit.filter((line) => line.family === 'agent')).toEqual([
      expect.objectContaining({ event: 'agent.drain', runningProcesses: 1, sessions: 1 }),
      expect.objectContaining({ event: 'agent.drained', running: 1, terminated: 1, durationMs: expect.any(Number) }),
    ]);
  });

  it('stops at once on a second SIGTERM', async () => {
    const { agent, exec } = await startAgent();
    const marker = path.join(dir, 'running-3');
    const running = exec(`touch ${marker}; sleep 60`);
    await waitForFile(marker);
    const exited = exitOf(agent.child);
    agent.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(agent.child.exitCode).toBeNull(); // draining, the command still runs
    agent.child.kill('SIGTERM');
    const exit = await exited;
    expect(exit.code).toBe(0);
    expect(exit.afterMs).toBeLessThan(5000);
    expect(agent.stderr()).toContain('SIGTERM during the drain');
    // The client loses its agent: it fails rather than hanging for the 60 s command.
    const result = await running;
    expect(result.code).not.toBe(0);
  });

  it('drains the direct listener: a new connection is refused 503 agent_draining, the running command completes', async () => {
    const agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0'], env);
    started.push(agent);
    const exec = (command: string) => runCli(['exec', '--url', agent.firstLine, '--', 'sh', '-c', command]);
    const marker = path.join(dir, 'running-4');
    // Runs until released, so the agent is still draining however slowly the second client starts.
    const release = path.join(dir, 'release-4');
    const running = exec(`touch ${marker}; while [ ! -e ${release} ]; do sleep 0.05; done; echo done`);
    await waitForFile(marker);
    const exited = exitOf(agent.child);
    agent.child.kill('SIGTERM');
    const refused = await exec('echo never');
    writeFileSync(release, '');
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain('refused with HTTP 503 agent_draining (the agent is draining (shutting down); retry once it has restarted)');
    expect(await running).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(await exited).toMatchObject({ code: 0, signal: null });
  });
});
