/**
 * A real `execrelay agent --relay URL --wire codex` process (the built CLI) registered with a relay,
 * with a persistent hybrid key and an authorized clients file listing one client key, and the ways
 * a test reaches it through the relay as that client: a raw JSON-RPC peer or an ExecClient over
 * the codex wire (hybrid IK, codex relay frames).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExecClient } from '../../src/client/exec-client.js';
import { openCodexRendezvousChannel } from '../../src/client/codex-rendezvous-channel.js';
import { hybridFingerprint } from '../../src/noise-hybrid/hybrid-fingerprint.js';
import { writeHybridKeyFile } from '../../src/noise-hybrid/hybrid-key-file.js';
import { generateHybridKeyPair, type HybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { startCli } from './cli.js';
import { RawRpcClient } from './raw-rpc-client.js';
import { startRelay, TEST_TOKEN } from './relay-harness.js';

export interface CodexWireAgent {
  /** `hyb1:` fingerprint the agent printed (its key's). */
  fingerprint: string;
  environmentId: string;
  /** Scratch directory: `agent.hkey`, `client.hkey`, `authorized`, `token`. */
  dir: string;
  /** The authorized client's key (its file: `dir/client.hkey`). */
  clientKey: HybridKeyPair;
  /** The agent process's pid (it changes on restart). */
  readonly pid: number;
  /** The agent process's stderr so far. */
  stderr(): string;
  /** Resolves once the agent's stderr (pino, info level) holds `text` `times` times; rejects after `timeoutMs`. */
  waitForLog(text: string, times?: number, timeoutMs?: number): Promise<void>;
  /** A raw JSON-RPC peer on a new codex stream (not initialized). */
  connectRaw(): Promise<RawRpcClient>;
  /** An initialized ExecClient on a new codex stream, pinning the agent's key. */
  connectClient(key?: HybridKeyPair): Promise<ExecClient>;
  /** Stops the agent process and starts it again with the same key and files. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the agent against `relayUrl` (a relay accepting TEST_TOKEN for both roles); `flags` are extra agent flags. */
export async function startCodexWireAgent(relayUrl: string, environmentId: string, flags: string[] = []): Promise<CodexWireAgent> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-agent-'));
  const agentKeyFile = path.join(dir, 'agent.hkey');
  const clientKey = generateHybridKeyPair();
  await writeHybridKeyFile(agentKeyFile, generateHybridKeyPair());
  await writeHybridKeyFile(path.join(dir, 'client.hkey'), clientKey);
  writeFileSync(path.join(dir, 'authorized'), `${hybridFingerprint(clientKey.publicKey)}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'token'), `${TEST_TOKEN}\n`, { mode: 0o600 });
  const args = [
    'agent',
    '--relay',
    relayUrl,
    '--environment-id',
    environmentId,
    '--wire',
    'codex',
    '--key',
    agentKeyFile,
    '--token-file',
    path.join(dir, 'token'),
    '--authorized-clients',
    path.join(dir, 'authorized'),
    ...flags,
  ];
  const launch = () => startCli(args, { EXECRELAY_LOG_LEVEL: 'info' });
  let process = await launch();
  const fingerprint = process.firstLine.trim();
  const target = (key: HybridKeyPair) => ({ relay: relayUrl, environmentId, token: TEST_TOKEN, hybridKey: key, executorKey: fingerprint, handshakeTimeoutMs: 30_000 });
  return {
    fingerprint,
    environmentId,
    dir,
    clientKey,
    get pid() {
      return process.child.pid ?? -1;
    },
    stderr: () => process.stderr(),
    waitForLog(text, times = 1, timeoutMs = 20_000) {
      const count = () => process.stderr().split(text).length - 1;
      if (count() >= times) return Promise.resolve();
      const { child } = process;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          child.stderr.off('data', onData);
          reject(new Error(`the agent did not log "${text}" ${times} times within ${timeoutMs} ms: ${process.stderr().slice(-2000)}`));
        }, timeoutMs);
        // Registered after startCli's own listener: its text is in process.stderr() by now.
        const onData = () => {
          if (count() < times) return;
          clearTimeout(timer);
          child.stderr.off('data', onData);
          resolve();
        };
        child.stderr.on('data', onData);
      });
    },
    async connectRaw() {
      const { channel } = await openCodexRendezvousChannel(target(clientKey));
      return RawRpcClient.over(channel);
    },
    connectClient: (key = clientKey) => ExecClient.connectCodex(target(key), { clientName: 'codex-wire-test' }),
    async restart() {
      await process.stop();
      process = await launch();
      if (process.firstLine.trim() !== fingerprint) throw new Error(`the restarted agent printed ${process.firstLine}, not ${fingerprint}`);
    },
    stop: () => process.stop(),
  };
}

/**
 * A relay of its own (in this process) and the agent registered with it; `stop` stops both. For
 * suites that run on the codex wire as one more target.
 */
export async function startCodexWireAgentWithRelay(environmentId: string, flags: string[] = []): Promise<CodexWireAgent> {
  const relay = await startRelay();
  try {
    const agent = await startCodexWireAgent(relay.url, environmentId, flags);
    const stopAgent = agent.stop.bind(agent);
    agent.stop = async () => {
      await stopAgent();
      await relay.stop();
    };
    return agent;
  } catch (error) {
    await relay.stop();
    throw error;
  }
}
