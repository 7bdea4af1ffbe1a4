/**
 * A command that kills the agent's spawner (executor-agent/process-spawner.ts). Commands run as the
 * agent's user, so one can always signal the process that forked it (`kill -9 $PPID`, as it could
 * the agent itself). What must hold: the other commands running at that moment are killed, group
 * and all, and reported (exit 137) to their clients, none left running unseen; the attacker's own
 * start is answered (137, or a failed start that says whether its command was killed — it may win
 * the race against the spawner's report of its pid, as it may leave its group with `setsid`: see
 * ProcessSpawner.lost); and the agent goes on: the next command starts under a new spawner.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../support/process-liveness.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { startCli } from '../support/cli.js';
import { eventually } from '../support/resilience-helpers.js';

describe('a command that kills the agent\'s spawner', () => {
  let agent: Awaited<ReturnType<typeof startCli>>;
  let victim: ExecClient;
  let attacker: ExecClient;

  beforeAll(async () => {
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0']);
    const url = agent.firstLine.trim();
    [victim, attacker] = await Promise.all([ExecClient.connect(url), ExecClient.connect(url)]);
  });
  afterAll(async () => {
    victim?.close();
    attacker?.close();
    await agent?.stop();
  });

  it('ends the commands running then (reported 137, their groups gone), and the agent runs the next one', async () => {
    // The victim's command and a background child of it; it prints both pids, then waits.
    const running = await victim.exec(['sh', '-c', 'sleep 60 & echo "$$ $!"; wait'], { cwd: os.tmpdir(), streamEvents: true });
    let printed = '';
    for await (const event of running.events) {
      if (event.type === 'output') printed += event.chunk.toString();
      if (printed.includes('\n')) break;
    }
    const [shell, background] = printed.trim().split(' ').map(Number) as [number, number];
    expect(pidAlive(shell) && pidAlive(background)).toBe(true);

    // The attacker's command may kill the spawner before its start is answered: then that start
    // fails. If the spawner had reported its pid, it is killed like the victim's; if the command
    // killed the spawner sooner than that (see ProcessSpawner.lost), the start says it may run on.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'spawner-kill-'));
    const pidFile = path.join(dir, 'attacker.pid');
    const attack = attacker.exec(['sh', '-c', `echo $$ > ${pidFile}; kill -9 $PPID; sleep 30`], { cwd: os.tmpdir() });
    const outcome = await attack.then(
      async (handle) => (await handle.completion).exitCode,
      (error: Error) => error.message,
    );
    const KILLED = 'failed to start process: the process spawner was killed (SIGKILL) while handing the process over: the process was killed';
    const UNKNOWN = 'failed to start process: the process spawner was killed (SIGKILL) before it reported the process: the process may be running, unsupervised';
    expect([137, KILLED, UNKNOWN]).toContain(outcome);
    expect((await running.completion).exitCode).toBe(137);
    const attackerPid = Number((await readFile(pidFile, 'utf8')).trim());
    await rm(dir, { recursive: true, force: true });
    await eventually(async () => !pidAlive(shell) && !pidAlive(background), 10_000, 'the victim\'s command and its background child gone');
    if (outcome === UNKNOWN) killGroupQuietly(attackerPid); // the test's own cleanup
    else await eventually(async () => !pidAlive(attackerPid), 10_000, 'the attacker\'s command gone');

    expect(agent.child.exitCode).toBeNull();
    const next = await victim.exec(['sh', '-c', 'echo still here'], { cwd: os.tmpdir() });
    const completion = await next.completion;
    expect(completion.exitCode).toBe(0);
    expect(completion.stdout.toString()).toBe('still here\n');
  });
});

function killGroupQuietly(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* gone already */
  }
}
