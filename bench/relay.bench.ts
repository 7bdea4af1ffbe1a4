/**
 * Relay benchmarks (issue: rendezvous relay): one-shot `true` latency through relay+Noise against
 * the direct local agent and a plain local spawn, and output throughput through relay+Noise against
 * the direct agent and a raw WebSocket stream of the same bytes (the transport ceiling). Relay,
 * agents and the raw WebSocket sender each run in their own process; everything is on loopback.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { ExecClient } from '../src/client/exec-client.js';
import { timeRuns, type BenchFigure } from './bench-result.js';
import { startCli, startProcess, type RunningProcess } from './cli-process.js';

const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 200);
const THROUGHPUT_BYTES = Number(process.env.BENCH_THROUGHPUT_MIB ?? 128) * 1024 * 1024;
const THROUGHPUT_RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 3);
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

export async function setUpRelayAndAgents(): Promise<{
  relayClient: ExecClient;
  directClient: ExecClient;
  stop(): Promise<void>;
}> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-'));
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, `bench-token-${Date.now()}-0123456789\n`, { mode: 0o600 });
  const keyFile = path.join(dir, 'agent.key');
  const processes: RunningProcess[] = [];
  const keygen = spawn(process.execPath, [(await import('./cli-process.js')).CLI, 'keygen', '--out', keyFile]);
  let agentKey = '';
  keygen.stdout.on('data', (d: Buffer) => (agentKey += d.toString()));
  await new Promise((resolve) => keygen.on('exit', resolve));
  const relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile]);
  processes.push(relay);
  processes.push(await startCli(['agent', '--relay', relay.firstLine, '--environment-id', 'bench', '--key', keyFile, '--token-file', tokenFile]));
  const direct = await startCli(['agent', '--listen', 'ws://127.0.0.1:0']);
  processes.push(direct);
  const token = (await import('node:fs/promises')).readFile(tokenFile, 'utf8');
  const relayClient = await ExecClient.connect({ relay: relay.firstLine, environmentId: 'bench', agentKey: agentKey.trim(), token: (await token).trim() });
  const directClient = await ExecClient.connect(direct.firstLine);
  return {
    relayClient,
    directClient,
    async stop() {
      relayClient.close();
      directClient.close();
      await Promise.all(processes.map((p) => p.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('true', [], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', () => resolve());
  });
}

/** A sender process that streams `bytes` over a raw WebSocket in 64 KiB binary messages. */
async function rawWebSocketThroughput(bytes: number): Promise<number> {
  const script = `
    const { WebSocketServer } = require(${JSON.stringify(require_ws_path())});
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => console.log('ws://127.0.0.1:' + wss.address().port));
    wss.on('connection', (ws) => {
      const chunk = Buffer.alloc(65536, 120); let left = ${bytes};
      const pump = () => { while (left > 0) { const n = Math.min(left, chunk.length); left -= n; ws.send(chunk.subarray(0, n)); if (ws.bufferedAmount > 8 * 1048576) return setTimeout(pump, 1); } ws.close(); };
      pump();
    });`;
  const sender = await startProcess(['-e', script]);
  try {
    const socket = new WebSocket(sender.firstLine, { maxPayload: 1 << 20 });
    const start = process.hrtime.bigint();
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      socket.on('message', (data: Buffer) => (received += data.length));
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (received !== bytes) throw new Error(`raw ws received ${received} of ${bytes}`);
    return bytes / 2 ** 20 / seconds;
  } finally {
    await sender.stop();
  }
}

function require_ws_path(): string {
  return path.join(process.cwd(), 'node_modules', 'ws');
}

async function execThroughput(client: ExecClient, bytes: number): Promise<number> {
  const start = process.hrtime.bigint();
  const handle = await client.exec(['head', '-c', String(bytes), '/dev/zero'], { cwd: '/', env, collectOutput: false, streamEvents: true });
  let received = 0;
  for await (const event of handle.events) if (event.type === 'output') received += event.chunk.length;
  await handle.completion;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (received !== bytes) throw new Error(`received ${received} of ${bytes}`);
  return bytes / 2 ** 20 / seconds;
}

export async function run(): Promise<BenchFigure[]> {
  const setup = await setUpRelayAndAgents();
  try {
    const scenario = 'one-shot `true` latency (connection open)';
    const oneShot = (client: ExecClient) => async () => {
      const handle = await client.exec(['true'], { cwd: '/', env });
      await handle.completion;
    };
    const relayReadsBefore = setup.relayClient.readsIssued;
    // Interleave blocks so drift on a shared machine hits every variant alike.
    const relaySamples: number[] = [];
    const directSamples: number[] = [];
    const spawnSamples: number[] = [];
    for (let block = 0; block < 4; block++) {
      directSamples.push(...(await timeRuns(LATENCY_RUNS / 4, block === 0 ? 20 : 0, oneShot(setup.directClient))));
      relaySamples.push(...(await timeRuns(LATENCY_RUNS / 4, block === 0 ? 20 : 0, oneShot(setup.relayClient))));
      spawnSamples.push(...(await timeRuns(LATENCY_RUNS / 4, block === 0 ? 20 : 0, spawnTrue)));
    }
    const figures: BenchFigure[] = [
      { scenario, name: 'local child_process.spawn (floor)', unit: 'ms', higherIsBetter: false, samples: spawnSamples },
      { scenario, name: 'direct local agent', unit: 'ms', higherIsBetter: false, samples: directSamples, baseline: 'local child_process.spawn (floor)' },
      {
        scenario,
        name: 'execrelay via relay+Noise',
        unit: 'ms',
        higherIsBetter: false,
        samples: relaySamples,
        baseline: 'direct local agent',
        notes: { processReads: setup.relayClient.readsIssued - relayReadsBefore },
      },
    ];
    const tScenario = `output throughput (${THROUGHPUT_BYTES / 2 ** 20} MiB to stdout)`;
    const raw: number[] = [];
    const direct: number[] = [];
    const relayed: number[] = [];
    for (let i = 0; i < THROUGHPUT_RUNS; i++) {
      raw.push(await rawWebSocketThroughput(THROUGHPUT_BYTES));
      direct.push(await execThroughput(setup.directClient, THROUGHPUT_BYTES));
      relayed.push(await execThroughput(setup.relayClient, THROUGHPUT_BYTES));
    }
    figures.push(
      { scenario: tScenario, name: 'raw ws loopback stream (ceiling)', unit: 'MiB/s', higherIsBetter: true, samples: raw },
      { scenario: tScenario, name: 'direct local agent', unit: 'MiB/s', higherIsBetter: true, samples: direct, baseline: 'raw ws loopback stream (ceiling)' },
      { scenario: tScenario, name: 'execrelay via relay+Noise', unit: 'MiB/s', higherIsBetter: true, samples: relayed, baseline: 'raw ws loopback stream (ceiling)' },
    );
    return figures;
  } finally {
    await setup.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
