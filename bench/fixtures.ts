/**
 * The execrelay processes the benchmarks compare: a relay, an agent registered with it (relay+Noise
 * path) and an agent listening directly on a loopback WebSocket, each a separate `node` process
 * running the built CLI, with their pids for RSS and CPU readings.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExecClient } from '../src/client/exec-client.js';
import { keygen, startCli, type RunningProcess } from './cli-process.js';

export interface ExecrelayFixture {
  relayUrl: string;
  directUrl: string;
  relay: RunningProcess;
  remoteAgent: RunningProcess;
  directAgent: RunningProcess;
  /** A new client through the relay (connect, Noise handshake pinning the agent, initialize). */
  connectRelay(): Promise<ExecClient>;
  /** A new client on the direct agent's WebSocket (connect, initialize). */
  connectDirect(): Promise<ExecClient>;
  stop(): Promise<void>;
}

export const ENVIRONMENT_ID = 'bench';

export async function startExecrelay(): Promise<ExecrelayFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-'));
  const token = `bench-token-${Date.now()}-0123456789`;
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const keyFile = path.join(dir, 'agent.key');
  const agentKey = await keygen(keyFile);
  const started: RunningProcess[] = [];
  try {
    const relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--bindings-file', path.join(dir, 'bindings')]);
    started.push(relay);
    const remoteAgent = await startCli(['agent', '--relay', relay.firstLine, '--environment-id', ENVIRONMENT_ID, '--key', keyFile, '--token-file', tokenFile, '--allow-any-client']);
    started.push(remoteAgent);
    const directAgent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0']);
    started.push(directAgent);
    return {
      relayUrl: relay.firstLine,
      directUrl: directAgent.firstLine,
      relay,
      remoteAgent,
      directAgent,
      connectRelay: () => ExecClient.connect({ relay: relay.firstLine, environmentId: ENVIRONMENT_ID, agentKey, token }),
      connectDirect: () => ExecClient.connect(directAgent.firstLine),
      async stop() {
        await Promise.all(started.map((p) => p.stop()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(started.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The environment the benchmarks give remote commands. */
export const COMMAND_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/** Runs `argv` to completion on `client` (output collected); resolves with the completion. */
export async function runOneShot(client: ExecClient, argv: string[]): Promise<void> {
  const handle = await client.exec(argv, { cwd: '/', env: COMMAND_ENV });
  const done = await handle.completion;
  if (done.exitCode !== 0) throw new Error(`${argv.join(' ')} exited with ${done.exitCode}`);
}

/** Streams `head -c bytes /dev/zero` through `client`; resolves with MiB/s. */
export async function execThroughput(client: ExecClient, bytes: number): Promise<number> {
  const start = process.hrtime.bigint();
  const handle = await client.exec(['head', '-c', String(bytes), '/dev/zero'], { cwd: '/', env: COMMAND_ENV, collectOutput: false, streamEvents: true });
  let received = 0;
  for await (const event of handle.events) if (event.type === 'output') received += event.chunk.length;
  await handle.completion;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (received !== bytes) throw new Error(`received ${received} of ${bytes} bytes`);
  return bytes / 2 ** 20 / seconds;
}
