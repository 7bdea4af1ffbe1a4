import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { ExecClient } from '../../src/client/exec-client.js';
import { loadHybridKeyFile } from '../../src/noise-hybrid/hybrid-key-file.js';
import { CODEX_MISSING_FRAME_TIMEOUT_MS, CODEX_PROTOCOL_ERROR_RESET_REASON } from '../../src/codex-channel/codex-channel-limits.js';
import { ensureCodexInstalled } from '../support/codex-exec-server.js';
import { startCodexFrameDropHop, type CodexFrameDropHop, type DroppedDataFrame } from '../support/codex-frame-drop-hop.js';
import { RENDEZVOUS_CONNECTED_LOG, startCodexRemoteExecutor, type CodexRemoteExecutor } from '../support/codex-remote-executor.js';
import { startCodexWireAgent, type CodexWireAgent } from '../support/codex-wire-agent.js';
import { runCli } from '../support/cli.js';
import { startRelay, TEST_TOKEN, type RelayFixture } from '../support/relay-harness.js';

/**
 * A codex stream that loses one Data frame while its link stays up (issue #15): a hop between the
 * client and the relay drops exactly one. 0.169.0 resends nothing, so the later frames wait behind
 * the hole; after `CODEX_MISSING_FRAME_TIMEOUT_MS` the end that holds them resets the stream and the
 * client recovers as for a dropped link (new stream, handshake, `initialize {resumeSessionId}`,
 * catch-up by seq). Executor → client against the real `codex exec-server --remote` 0.169.0 and
 * `execrelay agent --wire codex`; client → executor against the agent (the agent resets; a real
 * codex executor would only stall). Fails (does not skip) when the binary cannot be installed.
 */

const ENV = 'codex-lost-frame';
const AGENT_ENV = 'codex-lost-frame-agent';
const LINES = 20;
// Few frames after the lost one (well under the 64-frame reorder window), so only the bound on a hole ends the wait.
const COMMAND = `for i in $(seq 1 ${LINES}); do echo $i; sleep 0.02; done; exit 7`;
const EXPECTED = Array.from({ length: LINES }, (_, i) => `${i + 1}\n`).join('');
const RESUMED = /execrelay exec: the stream to the executor ended \(data frame \d+ never arrived: \d+ later frames? waited for it \d+ ms\): resumed the session on a new stream \(1 attempt\)/;

describe('a codex stream that loses one frame while its link stays up', () => {
  let relay: RelayFixture;
  let executor: CodexRemoteExecutor;
  let agent: CodexWireAgent;
  let hop: CodexFrameDropHop;

  beforeAll(async () => {
    await ensureCodexInstalled();
    relay = await startRelay();
    executor = await startCodexRemoteExecutor({ registry: relay.url.replace('ws:', 'http:'), environmentId: ENV, bearer: TEST_TOKEN });
    await executor.waitForLog(RENDEZVOUS_CONNECTED_LOG);
    agent = await startCodexWireAgent(relay.url, AGENT_ENV);
    hop = await startCodexFrameDropHop(Number(new URL(relay.url).port));
  }, 600_000);
  afterAll(async () => {
    await hop?.close();
    await agent?.stop();
    await executor?.stop();
    await relay?.stop();
  });

  const clientFlags = () => ['--token-file', path.join(agent.dir, 'token'), '--key', path.join(agent.dir, 'client.hkey')];

  it.each([
    ['the codex executor', () => ['--env', ENV, ...clientFlags(), '--accept-relay-key']],
    ['`execrelay agent --wire codex`', () => ['--env', AGENT_ENV, ...clientFlags(), '--agent-key', agent.fingerprint]],
  ])('executor → client, mid-command (%s): the client resets after the bound, resumes, every line once, exit 7', async (_name, target) => {
    // Data frames to the client: the initialize result, the start result, then output: the 5th is the 3rd line or so.
    const dropped = hop.dropDataFrame('to-client', 5);
    const socketsBefore = hop.sockets;
    const result = await runCli(['exec', '--relay', hop.url, ...target(), '--', 'sh', '-c', COMMAND], { timeoutMs: 30_000 });
    expect(await Promise.race([dropped, 'not dropped'])).toMatchObject({ seq: 4 });
    expect(result.stdout, result.stderr).toBe(EXPECTED);
    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toMatch(RESUMED);
    expect(hop.sockets - socketsBefore).toBe(2);
  }, 60_000);

  it('client → executor (`execrelay agent --wire codex`): the agent resets after the bound, the client resumes, each write lands once and in order', async () => {
    const resumed: string[] = [];
    const client = await ExecClient.connectCodex(
      { relay: hop.url, environmentId: AGENT_ENV, token: TEST_TOKEN, hybridKey: await loadHybridKeyFile(path.join(agent.dir, 'client.hkey')), executorKey: agent.fingerprint },
      { onSessionResumed: ({ cause }) => resumed.push(cause) },
    );
    try {
      const cat = await client.exec(['cat'], { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, pipeStdin: true });
      // Ten writes at once, one Data frame each; the 3rd is lost, the 7 after it wait at the agent behind the hole.
      const dropped: Promise<DroppedDataFrame> = hop.dropDataFrame('to-executor', 3);
      const started = Date.now();
      const writes = Array.from({ length: 10 }, (_, i) => cat.write(`${i + 1}\n`));
      await Promise.all(writes);
      expect(Date.now() - started).toBeGreaterThanOrEqual(CODEX_MISSING_FRAME_TIMEOUT_MS);
      await cat.write('', { closeStdin: true });
      const completion = await cat.completion;
      expect(await Promise.race([dropped, 'not dropped'])).toMatchObject({ seq: expect.any(Number) });
      expect(completion.stdout.toString()).toBe(Array.from({ length: 10 }, (_, i) => `${i + 1}\n`).join(''));
      expect(completion.exitCode).toBe(0);
      expect(client.sessionRecoveries).toBe(1);
      expect(resumed).toEqual([`the stream to the executor ended (the stream was reset: ${CODEX_PROTOCOL_ERROR_RESET_REASON})`]);
    } finally {
      client.close();
    }
  }, 60_000);
});
