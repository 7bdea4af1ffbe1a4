/**
 * Through an execrelay relay, in the same run: the real `codex exec-server --remote` 0.169.0
 * (hybrid Noise IK over codex relay frames, the relay's codex registry and rendezvous) against an
 * execrelay agent (Noise XX over the reliable stream), both on this machine, both reached through
 * the same in-process relay on loopback.
 *
 * - one-shot `true`: connect (registry call or relay socket, handshake, `initialize`), run `true`,
 *   close — what `execrelay exec -- true` costs beyond starting node;
 * - `true` on an open session: the command alone;
 * - output throughput: `head -c 16 MiB /dev/zero` read through pushed events.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RelayServer } from '../relay/relay-server.js';
import { RelayCredentials } from '../relay/relay-credentials.js';
import { ExecClient } from '../src/client/exec-client.js';
import { ACCEPT_RELAY_KEY } from '../src/client/codex-rendezvous-target.js';
import { createLogger } from '../src/logging/logger.js';
import { generateHybridKeyPair } from '../src/noise-hybrid/hybrid-keys.js';
import { ensureCodex } from './codex-server.js';
import { relayTarget, startRemoteAgent, TEST_TOKEN } from '../test/support/relay-harness.js';
import { benchNumber, timeRuns, type BenchFigure } from './bench-result.js';

const ONE_SHOT_RUNS = benchNumber('BENCH_CODEX_ONE_SHOT_RUNS', 40, 8);
const SESSION_RUNS = benchNumber('BENCH_CODEX_SESSION_RUNS', 100, 15);
const THROUGHPUT_RUNS = benchNumber('BENCH_CODEX_THROUGHPUT_RUNS', 5, 2);
const OUTPUT_BYTES = 16 * 1024 * 1024;

const CODEX = 'codex exec-server 0.169.0 via the relay (hybrid IK, codex frames)';
const AGENT = 'execrelay agent via the relay (Noise XX, reliable stream)';
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/**
 * `codex exec-server --remote` registering with the relay, resolved once its rendezvous socket is
 * open. (Not test/support/codex-remote-executor.ts: that harness finds the repo from its own
 * location, which under dist/ is wrong; see codex-server.ts.)
 */
async function startRemoteCodex(registry: string, environmentId: string, bearer: string): Promise<{ stop(): Promise<void> }> {
  const binary = await ensureCodex();
  const home = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-codex-'));
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CODEX_') && k !== 'OPENAI_API_KEY') childEnv[k] = v;
  Object.assign(childEnv, { HOME: home, CODEX_HOME: home, RUST_LOG: 'info', NO_COLOR: '1' });
  const child = spawn(binary, ['exec-server', '--remote', registry, '--environment-id', environmentId, '--registration-bearer-stdin'], { cwd: home, env: childEnv, stdio: ['pipe', 'ignore', 'pipe'] });
  child.stdin.end(`${bearer}\n`);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    child.kill('SIGKILL');
    await exited;
    await rm(home, { recursive: true, force: true });
  };
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`codex did not connect to the rendezvous:\n${log.slice(-2000)}`)), 30_000);
    child.stderr.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-64 * 1024);
      if (/Noise executor connected to rendezvous/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`codex exited:\n${log.slice(-2000)}`)));
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return { stop };
}

export async function run(): Promise<BenchFigure[]> {
  const relay = new RelayServer({ credentials: RelayCredentials.fromBareTokens([TEST_TOKEN]), logger: createLogger('bench-relay', 'silent') });
  const url = await relay.listen('127.0.0.1', 0);
  const codex = await startRemoteCodex(url.replace('ws:', 'http:'), 'bench-codex', TEST_TOKEN);
  const agent = await startRemoteAgent(url, 'bench-agent');
  try {
    const hybridKey = generateHybridKeyPair();
    const connect: Record<string, () => Promise<ExecClient>> = {
      [CODEX]: () => ExecClient.connectCodex({ relay: url, environmentId: 'bench-codex', token: TEST_TOKEN, hybridKey, executorKey: ACCEPT_RELAY_KEY }),
      [AGENT]: () => ExecClient.connect(relayTarget(url, agent)),
    };
    const figures: BenchFigure[] = [];
    const runTrue = async (client: ExecClient) => {
      const completion = await (await client.exec(['true'], { cwd: '/', env })).completion;
      if (completion.exitCode !== 0) throw new Error('bench: true failed');
    };
    for (const name of [AGENT, CODEX]) {
      const samples = await timeRuns(ONE_SHOT_RUNS, 3, async () => {
        const client = await connect[name]!();
        await runTrue(client);
        client.close();
      });
      figures.push({ scenario: 'one-shot `true` through the relay (connect, handshake, initialize, run, close)', name, unit: 'ms', higherIsBetter: false, samples, ...(name === CODEX ? { baseline: AGENT } : {}) });
    }
    for (const name of [AGENT, CODEX]) {
      const client = await connect[name]!();
      try {
        const samples = await timeRuns(SESSION_RUNS, 5, () => runTrue(client));
        figures.push({ scenario: '`true` on an open session through the relay', name, unit: 'ms', higherIsBetter: false, samples, ...(name === CODEX ? { baseline: AGENT } : {}) });
      } finally {
        client.close();
      }
    }
    for (const name of [AGENT, CODEX]) {
      const client = await connect[name]!();
      try {
        const samples: number[] = [];
        let reads = 0;
        for (let i = 0; i < THROUGHPUT_RUNS; i++) {
          const started = performance.now();
          const completion = await (await client.exec(['head', '-c', String(OUTPUT_BYTES), '/dev/zero'], { cwd: '/', env })).completion;
          const seconds = (performance.now() - started) / 1000;
          if (completion.stdout.length !== OUTPUT_BYTES) throw new Error(`bench: ${completion.stdout.length} bytes of output`);
          samples.push(OUTPUT_BYTES / 1024 / 1024 / seconds);
        }
        reads = client.readsIssued;
        figures.push({
          scenario: 'output throughput through the relay (16 MiB to stdout, pushed events)',
          name,
          unit: 'MiB/s',
          higherIsBetter: true,
          samples,
          notes: { processReads: reads },
          ...(name === CODEX ? { baseline: AGENT } : {}),
        });
      } finally {
        client.close();
      }
    }
    return figures;
  } finally {
    agent.stop();
    await codex.stop();
    await relay.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
