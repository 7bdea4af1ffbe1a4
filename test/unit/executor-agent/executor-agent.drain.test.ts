import { afterEach, describe, expect, it } from 'vitest';
import { pidAlive } from '../../support/process-liveness.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExecClient } from '../../../src/client/exec-client.js';
import { ErrorCode } from '../../../src/protocol/error-codes.js';
import { processSpawner } from '../../../executor-agent/process-spawner.js';
import { eventually } from '../../support/resilience-helpers.js';
import { connectThroughRelay, startRelay, startRemoteAgent, type RelayFixture, type RemoteAgentFixture } from '../../support/relay-harness.js';

const cwd = os.tmpdir();
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/**
 * Stops this process's spawner, so that the next start waits for a new one (a node process
 * starting): a window of ~100 ms in which the command may already run but is not registered yet.
 */
async function stopSpawner(): Promise<void> {
  const spawner = processSpawner();
  const previous = spawner.spawnerPid;
  if (previous === undefined) return;
  process.kill(previous, 'SIGKILL');
  await eventually(async () => spawner.spawnerPid === undefined, 10_000, 'the spawner gone', 5);
}

/** ExecutorAgent.drain with a real relay, real agent registration and real processes. */
describe('ExecutorAgent.drain', () => {
  let relay: RelayFixture | undefined;
  let remote: RemoteAgentFixture | undefined;
  const clients: ExecClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    remote?.stop();
    await relay?.stop();
    relay = undefined;
    remote = undefined;
  });

  async function setUp(config: { drainTimeoutMs?: number; terminateGraceMs?: number } = {}) {
    relay = await startRelay();
    remote = await startRemoteAgent(relay.url, 'drain-env', { config });
    const client = await connectThroughRelay(relay.url, remote);
    clients.push(client);
    return { relay, remote, client };
  }

  it('lets a running process finish, refuses new processes on an existing session with ErrorCode.Draining, and new streams with executor_draining', async () => {
    const { relay, remote, client } = await setUp();
    const running = await client.exec(['sh', '-c', 'sleep 1; echo finished'], { cwd, env });
    const drained = remote.agent.drain();
    expect(remote.agent.draining).toBe(true);
    // The same session may still read and query, but starts nothing new.
    const refused = await client.exec(['true'], { cwd, env }).then(
      () => undefined,
      (error: unknown) => error as { code?: number; message: string },
    );
    expect(refused?.code).toBe(ErrorCode.Draining);
    expect(refused?.message).toMatch(/^the agent is draining \(shutting down\): it starts no new processes; running processes finish/);
    // A new client stream is reset before its handshake.
    await expect(connectThroughRelay(relay.url, remote)).rejects.toThrow(/executor_draining/);
    const completion = await running.completion;
    expect(completion.exitCode).toBe(0);
    expect(Buffer.from(completion.stdout).toString()).toBe('finished\n');
    client.close();
    const outcome = await drained;
    expect(outcome).toMatchObject({ running: 1, terminated: 0 });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(500);
    expect(outcome.durationMs).toBeLessThan(1000 + 2000 + 1000);
  });

  it('terminates what outlives the drain timeout: SIGTERM, then SIGKILL after the grace', async () => {
    const { remote, client } = await setUp({ drainTimeoutMs: 300, terminateGraceMs: 300 });
    const polite = await client.exec(['sleep', '30'], { cwd, env });
    // Ignores SIGTERM (and so does its sleep, which inherits the ignored signal): only SIGKILL ends it.
    const stubborn = await client.exec(['sh', '-c', 'trap "" TERM; sleep 30'], { cwd, env });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    const outcome = await remote.agent.drain();
    expect(outcome).toMatchObject({ running: 2, terminated: 2 });
    expect(performance.now() - started).toBeLessThan(300 + 300 + 2000 + 2000);
    expect(remote.agent.registry.runningProcesses()).toHaveLength(0);
    const [politeEnd, stubbornEnd] = await Promise.all([polite.completion, stubborn.completion]);
    expect(politeEnd.exitCode).toBe(128 + 15);
    expect(stubbornEnd.exitCode).toBe(128 + 9);
  });

  it('waits for a process whose start is still being answered when the drain begins', async () => {
    const { remote, client } = await setUp();
    await stopSpawner();
    const starting = client.exec(['sh', '-c', 'sleep 0.3; echo started late'], { cwd, env });
    await eventually(async () => remote.agent.registry.processesStarting() > 0, 10_000, 'the start in progress', 1);
    expect(remote.agent.registry.runningProcesses()).toHaveLength(0);
    const drained = remote.agent.drain();
    const completion = await (await starting).completion;
    expect(completion.exitCode).toBe(0);
    expect(Buffer.from(completion.stdout).toString()).toBe('started late\n');
    client.close();
    expect(await drained).toMatchObject({ running: 1, terminated: 0 });
  });

  it('kills a process whose start completes after its session ended (agent shutdown)', async () => {
    const { remote, client } = await setUp();
    await stopSpawner();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'drain-'));
    const pidFile = path.join(dir, 'pid');
    const starting = client.exec(['sh', '-c', `echo $$ > ${pidFile}; exec sleep 30`], { cwd, env }).catch(() => undefined);
    await eventually(async () => remote.agent.registry.processesStarting() > 0, 10_000, 'the start in progress', 1);
    remote.agent.shutdown();
    await starting;
    const pid = Number((await eventually(async () => readFile(pidFile, 'utf8').catch(() => ''), 10_000, 'the command\'s pid')).trim());
    await eventually(async () => !pidAlive(pid), 10_000, 'the command killed');
    expect(remote.agent.registry.runningProcesses()).toHaveLength(0);
    await rm(dir, { recursive: true, force: true });
  });

  it('ends at once with nothing running', async () => {
    const { remote } = await setUp();
    const outcome = await remote.agent.drain();
    expect(outcome).toMatchObject({ running: 0, terminated: 0 });
    expect(outcome.durationMs).toBeLessThan(200);
  });
});
