import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExecClient } from '../../src/client/exec-client.js';
import { ACCEPT_RELAY_KEY, type CodexRendezvousTarget } from '../../src/client/codex-rendezvous-target.js';
import { loadHybridKeyFile } from '../../src/noise-hybrid/hybrid-key-file.js';
import { ensureCodexInstalled } from '../support/codex-exec-server.js';
import { RENDEZVOUS_CONNECTED_LOG, startCodexRemoteExecutor, type CodexRemoteExecutor } from '../support/codex-remote-executor.js';
import { runCli, type CliResult } from '../support/cli.js';
import { startCodexWireAgent, type CodexWireAgent } from '../support/codex-wire-agent.js';
import { spawnRelay, type RelayProcess } from '../support/resilience-helpers.js';
import { TEST_TOKEN } from '../support/relay-harness.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { CallInterruptedError } from '../../src/client/resend-after-stream-loss.js';
import { eventually } from '../support/resilience-helpers.js';

/**
 * Recovery of an execrelay client on the codex wire (issue #15): the real `codex exec-server
 * --remote` 0.169.0 behind a real `execrelay relay` process. When the client's stream ends under a
 * running command — its link dropped, or the relay restarted (the executor then registers again by
 * itself, the relay's bindings file keeping its key) — the client opens a new stream with a new
 * handshake, resumes the session, and reads what it missed by seq: every numbered line exactly
 * once, and the exit status. The same relay restart against a second target, `execrelay agent
 * --wire codex` (the agent registers again by itself with its persistent key). Fails (does not
 * skip) when the binary cannot be installed.
 */

const ENV = 'codex-recovery';
const AGENT_ENV = 'codex-recovery-agent';
const AGENT_REGISTERED_LOG = 'registered with the relay (codex wire)';
const LINES = 300;
const COMMAND = `for i in $(seq 1 ${LINES}); do echo $i; sleep 0.01; done; exit 7`;
const EXPECTED = Array.from({ length: LINES }, (_, i) => `${i + 1}\n`).join('');

describe('a codex client recovers its command across a lost stream', () => {
  let stateEnv: NodeJS.ProcessEnv;
  let relay: RelayProcess;
  let executor: CodexRemoteExecutor;
  let agent: CodexWireAgent;
  let proxy: TcpProxy;
  let tokenFile: string;
  let keyFile: string;

  beforeAll(async () => {
    await ensureCodexInstalled();
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-recovery-'));
    stateEnv = { XDG_STATE_HOME: path.join(scratch, 'state') };
    tokenFile = path.join(scratch, 'client.token');
    writeFileSync(tokenFile, `${TEST_TOKEN}\n`, { mode: 0o600 });
    keyFile = path.join(scratch, 'client-hybrid.key');
    const keygen = await runCli(['keygen', '--hybrid', '--out', keyFile]);
    expect(keygen.code, keygen.stderr).toBe(0);
    relay = await spawnRelay(0, [], stateEnv);
    executor = await startCodexRemoteExecutor({ registry: relay.url.replace('ws:', 'http:'), environmentId: ENV, bearer: TEST_TOKEN });
    await executor.waitForLog(RENDEZVOUS_CONNECTED_LOG);
    proxy = await startTcpProxy(relay.port);
    agent = await startCodexWireAgent(relay.url, AGENT_ENV);
  }, 600_000);
  afterAll(async () => {
    await agent?.stop();
    await proxy?.close();
    await executor?.stop();
    await relay?.kill('SIGTERM');
  });

  /** Where `exec` goes: the codex executor (`--accept-relay-key`), or `target` (its own flags). */
  const codexExecutor = () => ['--env', ENV, '--token-file', tokenFile, '--key', keyFile, '--accept-relay-key'];

  /** Runs the numbered command through `relayUrl`; `midway` runs once line 40 has been printed. */
  async function runNumbered(relayUrl: string, midway: () => Promise<void>, target: string[] = codexExecutor()): Promise<CliResult & { midwayDone: boolean }> {
    let child: ChildProcessWithoutNullStreams | undefined;
    let midwayDone = false;
    let midwayRun: Promise<void> | undefined;
    const result = await runCli(['exec', '--relay', relayUrl, ...target, '--', 'sh', '-c', COMMAND], {
      timeoutMs: 90_000,
      onSpawn: (spawned) => {
        child = spawned;
        let seen = '';
        const onData = (d: Buffer) => {
          seen += d.toString();
          if (!/(^|\n)40\n/.test(seen)) return;
          child!.stdout.off('data', onData);
          midwayRun = midway().then(() => void (midwayDone = true));
        };
        spawned.stdout.on('data', onData);
      },
    });
    await midwayRun;
    return { ...result, midwayDone };
  }

  it('a dropped link (the client\'s connection cut between it and the relay): every line once, exit 7', async () => {
    const result = await runNumbered(proxy.url, async () => proxy.cutAll());
    expect(result.midwayDone).toBe(true);
    expect(result.stdout, result.stderr).toBe(EXPECTED);
    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toMatch(/execrelay exec: the stream to the executor ended \(.*\): resumed the session on a new stream \(\d+ attempts?\)/);
  }, 120_000);

  it('a relay restart (same port, same bindings file; the executor registers again by itself): every line once, exit 7', async () => {
    const registrations = () => (executor.log().match(/Noise executor registration completed/g) ?? []).length;
    const before = registrations();
    const result = await runNumbered(relay.url, async () => {
      const port = relay.port;
      await relay.kill('SIGTERM');
      relay = await spawnRelay(port, [], stateEnv);
    });
    expect(result.midwayDone).toBe(true);
    expect(result.stdout, result.stderr).toBe(EXPECTED);
    expect(result.code, result.stderr).toBe(7);
    expect(registrations()).toBeGreaterThan(before);
    expect(result.stderr).toMatch(/execrelay exec: the stream to the executor ended \(.*\): resumed the session on a new stream \(\d+ attempts\)/);
  }, 120_000);

  it('a relay restart against `execrelay agent --wire codex` (it registers again by itself, same key): every line once, exit 7', async () => {
    const registrations = () => agent.stderr().split(AGENT_REGISTERED_LOG).length - 1;
    const before = registrations();
    const executorConnected = (executor.log().match(new RegExp(RENDEZVOUS_CONNECTED_LOG, 'g')) ?? []).length;
    const pinned = ['--env', AGENT_ENV, '--token-file', path.join(agent.dir, 'token'), '--key', path.join(agent.dir, 'client.hkey'), '--agent-key', agent.fingerprint];
    const result = await runNumbered(
      relay.url,
      async () => {
        const port = relay.port;
        await relay.kill('SIGTERM');
        relay = await spawnRelay(port, [], stateEnv);
        await agent.waitForLog(AGENT_REGISTERED_LOG, before + 1);
        // The codex executor registers and connects again too (the next test needs it).
        await executor.waitForLog(new RegExp(`(?:${RENDEZVOUS_CONNECTED_LOG.source}[\\s\\S]*){${executorConnected + 1}}`));
      },
      pinned,
    );
    expect(result.midwayDone).toBe(true);
    expect(result.stdout, result.stderr).toBe(EXPECTED);
    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toMatch(/execrelay exec: the stream to the executor ended \(.*\): resumed the session on a new stream \(\d+ attempts?\)/);
  }, 120_000);

  /**
   * The executor gets a call but its answer never reaches the client (the link back is stalled),
   * then the link drops: the call is sent again on the resumed stream, or fails as interrupted.
   */
  it.each([
    ['the codex executor', (): { environmentId: string; keyFile: string; executorKey: CodexRendezvousTarget['executorKey'] } => ({ environmentId: ENV, keyFile, executorKey: ACCEPT_RELAY_KEY })],
    ['`execrelay agent --wire codex`', () => ({ environmentId: AGENT_ENV, keyFile: path.join(agent.dir, 'client.hkey'), executorKey: agent.fingerprint })],
  ])('calls the executor got whose answers a dropped link lost (%s): a start runs once, terminate is sent again, a signal fails as interrupted', async (_name, target) => {
    const { environmentId, keyFile: clientKey, executorKey } = target();
    const faults = await startFaultProxy(relay.port);
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-inflight-'));
    const childEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const client = await ExecClient.connect({ relay: faults.url, environmentId, token: TEST_TOKEN, hybridKey: await loadHybridKeyFile(clientKey), executorKey });
    /** Runs `call` with the link back to the client stalled, waits for `arrived`, drops the link, and settles as the call does. */
    const lostAnswer = async <T,>(call: () => Promise<T>, arrived: () => boolean): Promise<T> => {
      faults.stallAll('downstream');
      const pending = call();
      pending.catch(() => undefined);
      await eventually(async () => (arrived() ? true : undefined), 20_000, 'the executor to act on the call', 50);
      faults.cutAll();
      return pending;
    };
    try {
      // process/start: the executor started it; the start sent again is refused as a duplicate, which means "started".
      const ran = path.join(scratch, 'ran');
      const started = await lostAnswer(() => client.exec(['sh', '-c', `echo run >> ${ran}; echo out; echo err >&2; exit 4`], { cwd: '/', env: childEnv }), () => existsSync(ran));
      const completion = await started.completion;
      expect({ stdout: completion.stdout.toString(), stderr: completion.stderr.toString(), exitCode: completion.exitCode }).toEqual({ stdout: 'out\n', stderr: 'err\n', exitCode: 4 });
      expect(readFileSync(ran, 'utf8')).toBe('run\n');
      expect(client.sessionRecoveries).toBe(1);

      // process/terminate: sent again; the process is gone either way.
      const pidFile = path.join(scratch, 'sleeper');
      const sleeper = await client.exec(['sh', '-c', `echo $$ > ${pidFile}; exec sleep 60`], { cwd: '/', env: childEnv });
      await eventually(async () => (existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n') ? true : undefined), 10_000, 'the sleeper pid');
      const pid = Number(readFileSync(pidFile, 'utf8'));
      const alive = () => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      expect(typeof (await lostAnswer(() => sleeper.terminate(), () => !alive()))).toBe('boolean');
      expect((await sleeper.completion).exitCode).not.toBe(0);
      expect(client.sessionRecoveries).toBe(2);

      // process/signal: not sent again (a second interrupt would be a second one): it fails as interrupted, and took effect once.
      const trapped = path.join(scratch, 'trapped');
      const waiter = await client.exec(['sh', '-c', `trap 'echo INT >> ${trapped}; exit 3' INT; echo ready; while :; do sleep 0.05; done`], { cwd: '/', env: childEnv, streamEvents: true });
      expect((await waiter.events[Symbol.asyncIterator]().next()).value).toMatchObject({ type: 'output' });
      const error = (await lostAnswer(() => waiter.signal('interrupt'), () => existsSync(trapped)).then(() => undefined, (e: unknown) => e)) as CallInterruptedError;
      expect(error).toBeInstanceOf(CallInterruptedError);
      expect(error.message).toMatch(/^process\/signal: the stream to the executor ended before its answer \(.*\); it may or may not have taken effect/);
      expect((await waiter.completion).exitCode).toBe(3);
      expect(readFileSync(trapped, 'utf8')).toBe('INT\n');
      // The client goes on.
      expect((await (await client.exec(['echo', 'after'], { cwd: '/', env: childEnv })).completion).stdout.toString()).toBe('after\n');
    } finally {
      client.close();
      await faults.close();
    }
  }, 120_000);

  it('gives up after its recovery window with a clear error when the relay stays out of reach', async () => {
    const doomed = await startTcpProxy(relay.port);
    const hybridKey = await loadHybridKeyFile(keyFile);
    // After the relay restarts above, the codex executor may still be registering again (slowly on a loaded machine).
    const client = await eventually(
      () =>
        ExecClient.connectCodex({
          relay: doomed.url,
          environmentId: ENV,
          token: TEST_TOKEN,
          hybridKey,
          executorKey: ACCEPT_RELAY_KEY,
          recovery: { timeoutMs: 2000, backoff: { initialMs: 100, maxMs: 400 } },
        }).catch(() => null),
      45_000,
      'the codex executor registered again',
      250,
    );
    try {
      const handle = await client.exec(['sh', '-c', 'echo started; sleep 5'], { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, streamEvents: true });
      const events = handle.events[Symbol.asyncIterator]();
      expect((await events.next()).value).toMatchObject({ type: 'output' });
      await doomed.close();
      const failure = /^the stream to the executor ended \(.*\); cannot resume the session within 2 s \(\d+ attempts\); last: cannot reach the relay's registry at http:\/\/127\.0\.0\.1:\d+: .+$/;
      await expect(handle.completion).rejects.toThrow(failure);
      await expect(client.exec(['true'])).rejects.toThrow(failure);
      expect(client.sessionRecoveries).toBe(0);
    } finally {
      client.close();
    }
  }, 90_000);
});
