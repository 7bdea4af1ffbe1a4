/**
 * An in-process relay with a scoped token file and a real `codex exec-server --remote` 0.169.0
 * registered with it, for the codex rendezvous tests.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RelayServer } from '../../relay/relay-server.js';
import type { RelayLimits } from '../../relay/relay-config.js';
import { RelayCredentials } from '../../relay/relay-credentials.js';
import { createRelayMetrics, type RelayMetrics } from '../../relay/telemetry/relay-metrics.js';
import { createLogger } from '../../src/logging/logger.js';
import { RENDEZVOUS_CONNECTED_LOG, startCodexRemoteExecutor, type CodexRemoteExecutor } from './codex-remote-executor.js';

export interface CodexRendezvousFixture {
  relay: RelayServer;
  /** The relay's Prometheus metrics (its `events`). */
  metrics: RelayMetrics;
  /** `ws://127.0.0.1:P` */
  url: string;
  /** `http://127.0.0.1:P` (what codex registers with) */
  registry: string;
  executor: CodexRemoteExecutor;
  /** A scratch directory (token files, keys). */
  dir: string;
  /** Writes `token` to a new mode-0600 file in `dir` and returns its path. */
  tokenFile(name: string, token: string): string;
  stop(): Promise<void>;
}

/**
 * `tokens` is the relay's token file text; the executor registers `environmentId` with `executorToken`.
 */
export async function startCodexRendezvous(options: { tokens: string; environmentId: string; executorToken: string; limits?: Partial<RelayLimits> }): Promise<CodexRendezvousFixture> {
  const { credentials } = RelayCredentials.parse(options.tokens, 'test token file');
  let relay: RelayServer | undefined;
  const metrics = createRelayMetrics(() => relay);
  relay = new RelayServer({ credentials, logger: createLogger('test-relay', 'silent'), events: metrics.events, ...(options.limits ? { limits: options.limits } : {}) });
  const url = await relay.listen('127.0.0.1', 0);
  const registry = url.replace(/^ws:/, 'http:');
  let executor: CodexRemoteExecutor;
  try {
    executor = await startCodexRemoteExecutor({ registry, environmentId: options.environmentId, bearer: options.executorToken });
    await executor.waitForLog(RENDEZVOUS_CONNECTED_LOG);
  } catch (error) {
    await relay.close();
    throw error;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-rdv-'));
  return {
    relay,
    metrics,
    url,
    registry,
    executor,
    dir,
    tokenFile(name, token) {
      const file = path.join(dir, name);
      writeFileSync(file, `${token}\n`, { mode: 0o600 });
      return file;
    },
    async stop() {
      await executor.stop();
      await relay.close();
    },
  };
}
