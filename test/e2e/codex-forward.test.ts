/**
 * `codex exec-server forward --remote http://RELAY --environment-id ID --registration-bearer-stdin
 * --connect ws://<execrelay agent --listen>`: the real codex 0.169.0 binary registers an execrelay
 * agent (a real process, its direct WebSocket listener) with an execrelay relay, and the execrelay
 * CLI client runs commands on that agent through the relay (hybrid Noise to codex's forwarder,
 * which bridges each stream to the agent). Fails, not skips, when the binary cannot be installed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeHybridKeyFile } from '../../src/noise-hybrid/hybrid-key-file.js';
import { generateHybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { runCli, startCli } from '../support/cli.js';
import { RENDEZVOUS_CONNECTED_LOG, startCodexRemoteExecutor, type CodexRemoteExecutor } from '../support/codex-remote-executor.js';
import { startRelay, TEST_TOKEN, type RelayFixture } from '../support/relay-harness.js';

const ENV = 'codex-forward';

describe('codex exec-server forward in front of execrelay agent --listen', () => {
  let relay: RelayFixture;
  let agent: Awaited<ReturnType<typeof startCli>>;
  let forwarder: CodexRemoteExecutor;
  let dir: string;

  const client = (args: string[]) =>
    runCli([args[0]!, '--relay', relay.url, '--env', ENV, '--token-file', path.join(dir, 'token'), '--key', path.join(dir, 'client.hkey'), '--accept-relay-key', ...args.slice(1)], {
      timeoutMs: 60_000,
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-codex-forward-'));
    await writeFile(path.join(dir, 'token'), `${TEST_TOKEN}\n`, { mode: 0o600 });
    await writeHybridKeyFile(path.join(dir, 'client.hkey'), generateHybridKeyPair());
    relay = await startRelay();
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0'], { EXECRELAY_LOG_LEVEL: 'warn' });
    forwarder = await startCodexRemoteExecutor({ registry: relay.url.replace(/^ws:/, 'http:'), environmentId: ENV, bearer: TEST_TOKEN, forwardTo: agent.firstLine.trim() });
    await forwarder.waitForLog(RENDEZVOUS_CONNECTED_LOG);
  });
  afterAll(async () => {
    await forwarder?.stop();
    await agent?.stop();
    await relay?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('execrelay exec runs on the execrelay agent behind the forwarder: both streams, the exit code', async () => {
    // The command's parent is the process that forked it, the execrelay agent's spawner, whose
    // parent is the execrelay agent (not codex).
    const result = await client(['exec', '--', 'sh', '-c', 'ps -o ppid= -p $PPID | tr -d " "; echo err >&2; exit 3']);
    expect(result.stdout).toBe(`${agent.child.pid}\n`);
    expect(result.stderr).toContain('err\n');
    expect(result.stderr).toMatch(/is a codex executor with key hyb1:/);
    expect(result.code).toBe(3);
  });

  it('cat and walk work through the forwarder', async () => {
    await writeFile(path.join(dir, 'hello.txt'), 'through codex forward\n');
    expect(await client(['cat', path.join(dir, 'hello.txt')])).toMatchObject({ code: 0, stdout: 'through codex forward\n' });
    const walk = await client(['walk', dir]);
    expect(walk.code).toBe(0);
    expect(walk.stdout.split('\n')).toContain(path.join(dir, 'hello.txt'));
  });
});
