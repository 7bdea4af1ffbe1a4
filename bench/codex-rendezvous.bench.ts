/**
 * Through one execrelay relay process, in the same run, three executors, each a process of its own:
 *
 * - the real `codex exec-server --remote` 0.169.0 (hybrid Noise IK over codex relay frames, the
 *   relay's codex registry and rendezvous);
 * - `execrelay agent --relay` (native wire: Noise XX over the reliable stream);
 * - `execrelay agent --relay --wire codex` (registers and serves as codex does: hybrid IK, codex
 *   frames).
 *
 * The relay is `execrelay relay` (the built CLI), the agents are the built CLI, codex is its native
 * binary; the client runs in the bench's own process for every target alike. Figures:
 *
 * - one-shot `true`: connect (registry call or relay socket, handshake, `initialize`), run `true`,
 *   close — what `execrelay exec -- true` costs beyond starting node; client keys are made
 *   beforehand for every target;
 * - `true` on an open session: the command alone;
 * - output throughput: `head -c N /dev/zero` read through pushed events, with the CPU time the
 *   client (this process), the relay and the executor process spent per MiB, and the number of
 *   `process/read` calls the client had to make.
 *
 * One-shot and open-session runs are interleaved across targets in blocks, and each throughput
 * round runs every target once, so that drift on a shared machine hits them alike.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ExecClient } from '../src/client/exec-client.js';
import { ACCEPT_RELAY_KEY } from '../src/client/codex-rendezvous-target.js';
import { generateHybridKeyPair } from '../src/noise-hybrid/hybrid-keys.js';
import { generateIdentity } from '../src/noise/identity.js';
import { ensureCodex } from './codex-server.js';
import { CLI, cpuMs, keygen, startCli, stopChild, type RunningProcess } from './cli-process.js';
import { benchNumber, timeInterleaved, type BenchFigure } from './bench-result.js';

const ONE_SHOT_RUNS = benchNumber('BENCH_CODEX_ONE_SHOT_RUNS', 40, 8);
const SESSION_RUNS = benchNumber('BENCH_CODEX_SESSION_RUNS', 100, 15);
const THROUGHPUT_RUNS = benchNumber('BENCH_CODEX_THROUGHPUT_RUNS', 4, 2);
const OUTPUT_MIB = benchNumber('BENCH_CODEX_THROUGHPUT_MIB', 64, 16);
const OUTPUT_BYTES = OUTPUT_MIB * 1024 * 1024;

const CODEX = 'codex exec-server 0.169.0 (hybrid IK, codex frames)';
const AGENT = 'execrelay agent (Noise XX, reliable stream)';
const AGENT_CODEX_WIRE = 'execrelay agent --wire codex (hybrid IK, codex frames)';
const TARGETS = [AGENT, AGENT_CODEX_WIRE, CODEX] as const;
type Target = (typeof TARGETS)[number];
/** Every figure is compared with the native execrelay agent's, and the codex-wire agent's with codex's too. */
const COMPARE: Record<Target, Pick<BenchFigure, 'baseline' | 'alsoCompare'>> = {
  [AGENT]: {},
  [AGENT_CODEX_WIRE]: { baseline: AGENT, alsoCompare: [CODEX] },
  [CODEX]: { baseline: AGENT },
};

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/** Children started here and not stopped yet: SIGKILLed if the bench process ends without stopping them. */
const live = new Set<ChildProcess>();
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}
process.once('exit', () => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** `execrelay keygen --hybrid --out FILE`: the codex-wire agent's key; resolves with its hyb1: fingerprint. */
function hybridKeygen(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'keygen', '--hybrid', '--out', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`keygen --hybrid exited with ${code}`))));
  });
}

/** A started CLI process, tracked. */
async function startTracked(args: string[]): Promise<RunningProcess> {
  return startCli(args, {}, track);
}

interface CodexProcess {
  pid: number;
  stop(): Promise<void>;
}

/**
 * `codex exec-server --remote` registering with the relay, resolved once its rendezvous socket is
 * open. (Not test/support/codex-remote-executor.ts: that harness finds the repo from its own
 * location, which under dist/ is wrong; see codex-server.ts.)
 */
async function startRemoteCodex(registry: string, environmentId: string, bearer: string): Promise<CodexProcess> {
  const binary = await ensureCodex();
  const home = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-codex-'));
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CODEX_') && k !== 'OPENAI_API_KEY') childEnv[k] = v;
  Object.assign(childEnv, { HOME: home, CODEX_HOME: home, RUST_LOG: 'info', NO_COLOR: '1' });
  const child = spawn(binary, ['exec-server', '--remote', registry, '--environment-id', environmentId, '--registration-bearer-stdin'], { cwd: home, env: childEnv, stdio: ['pipe', 'ignore', 'pipe'] });
  track(child);
  child.stdin.end(`${bearer}\n`);
  const stop = async () => {
    await stopChild(child);
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
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`codex exited (${code}):\n${log.slice(-2000)}`));
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  // Keep draining stderr (RUST_LOG=info) so the pipe never fills, without keeping it.
  child.stderr.removeAllListeners('data');
  child.stderr.resume();
  return { pid: child.pid!, stop };
}

interface Setup {
  connect: Record<Target, () => Promise<ExecClient>>;
  /** The pid of each target's executor process, and of the relay. */
  pids: Record<Target, number> & { relay: number };
  stop(): Promise<void>;
}

async function setUp(): Promise<Setup> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-rdv-'));
  const stops: Array<() => Promise<void>> = [() => rm(dir, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const executorToken = `bench-executor-${randomBytes(12).toString('hex')}`;
    const clientToken = `bench-client-${randomBytes(12).toString('hex')}`;
    const relayTokens = path.join(dir, 'relay-tokens');
    const executorTokenFile = path.join(dir, 'executor-token');
    await writeFile(relayTokens, `${executorToken} executor bench-*\n${clientToken} client bench-*\n`, { mode: 0o600 });
    await writeFile(executorTokenFile, `${executorToken}\n`, { mode: 0o600 });
    const agentKey = path.join(dir, 'agent.key');
    const agentHybridKey = path.join(dir, 'agent.hkey');
    await Promise.all([keygen(agentKey), hybridKeygen(agentHybridKey)]);

    // Its own bindings file: the executors' keys are new at every run (codex's at every start).
    const relay = await startTracked(['relay', '--listen', '127.0.0.1:0', '--token-file', relayTokens, '--bindings-file', path.join(dir, 'environment-bindings')]);
    stops.push(relay.stop);
    const url = relay.firstLine.trim();
    const agentArgs = (environmentId: string) => ['agent', '--relay', url, '--environment-id', environmentId, '--token-file', executorTokenFile, '--allow-any-client'];
    const [agent, agentCodexWire, codex] = await Promise.all([
      startTracked([...agentArgs('bench-agent'), '--key', agentKey]),
      startTracked([...agentArgs('bench-agent-codex-wire'), '--wire', 'codex', '--key', agentHybridKey]),
      startRemoteCodex(url.replace(/^ws:/, 'http:'), 'bench-codex', executorToken),
    ]).catch(async (error: unknown) => {
      await stopAllLive();
      throw error;
    });
    stops.push(agent.stop, agentCodexWire.stop, codex.stop);

    // Client keys made beforehand for every target: the one-shot figure is the connection alone.
    const identity = await generateIdentity();
    const hybridKey = generateHybridKeyPair();
    const agentIdentity = agent.firstLine.trim();
    const agentFingerprint = agentCodexWire.firstLine.trim();
    return {
      connect: {
        [AGENT]: () => ExecClient.connect({ relay: url, environmentId: 'bench-agent', token: clientToken, agentKey: agentIdentity, identity }),
        [AGENT_CODEX_WIRE]: () => ExecClient.connectCodex({ relay: url, environmentId: 'bench-agent-codex-wire', token: clientToken, hybridKey, executorKey: agentFingerprint }),
        [CODEX]: () => ExecClient.connectCodex({ relay: url, environmentId: 'bench-codex', token: clientToken, hybridKey, executorKey: ACCEPT_RELAY_KEY }),
      },
      pids: { relay: relay.child.pid!, [AGENT]: agent.child.pid!, [AGENT_CODEX_WIRE]: agentCodexWire.child.pid!, [CODEX]: codex.pid },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function stopAllLive(): Promise<void> {
  await Promise.all([...live].map(stopChild));
}

async function runTrue(client: ExecClient): Promise<void> {
  const completion = await (await client.exec(['true'], { cwd: '/', env })).completion;
  if (completion.exitCode !== 0) throw new Error('bench: true failed');
}

/**
 * `head -c BYTES /dev/zero`, its output counted as it arrives (not collected: as bench/relay.bench.ts
 * and throughput-client.ts measure it, so the client's figure is the transport's, not a 64 MiB buffer's).
 */
async function streamZeros(client: ExecClient, bytes: number): Promise<{ bytes: number; exitCode: number | null }> {
  const handle = await client.exec(['head', '-c', String(bytes), '/dev/zero'], { cwd: '/', env, collectOutput: false, streamEvents: true });
  let received = 0;
  for await (const event of handle.events) if (event.type === 'output') received += event.chunk.length;
  const completion = await handle.completion;
  return { bytes: received, exitCode: completion.exitCode };
}

/** CPU ms spent during the throughput runs of one target, and the MiB they carried. */
interface CpuTotals {
  client: number;
  relay: number;
  executor: number;
  mib: number;
}

export async function run(): Promise<BenchFigure[]> {
  const setup = await setUp();
  try {
    const figures: BenchFigure[] = [];
    const oneShot = await timeInterleaved(
      TARGETS.map((name) => [
        name,
        async () => {
          const client = await setup.connect[name]();
          try {
            await runTrue(client);
          } finally {
            client.close();
          }
        },
      ]),
      { runs: ONE_SHOT_RUNS, blocks: 4, warmup: 3, budgetMs: 60_000 },
    );
    for (const name of TARGETS) {
      figures.push({ scenario: 'one-shot `true` through the relay (connect, handshake, initialize, run, close)', name, unit: 'ms', higherIsBetter: false, samples: oneShot.get(name)!, ...COMPARE[name] });
    }

    const clients = {} as Record<Target, ExecClient>;
    try {
      for (const name of TARGETS) clients[name] = await setup.connect[name]();
      const session = await timeInterleaved(
        TARGETS.map((name) => [name, () => runTrue(clients[name])]),
        { runs: SESSION_RUNS, blocks: 4, warmup: 5, budgetMs: 60_000 },
      );
      for (const name of TARGETS) {
        figures.push({ scenario: '`true` on an open session through the relay', name, unit: 'ms', higherIsBetter: false, samples: session.get(name)!, ...COMPARE[name] });
      }

      const throughput = new Map<Target, number[]>(TARGETS.map((name) => [name, []]));
      const cpu = new Map<Target, CpuTotals>(TARGETS.map((name) => [name, { client: 0, relay: 0, executor: 0, mib: 0 }]));
      // One unmeasured quarter-size transfer each first (JIT, socket buffers).
      for (const name of TARGETS) await streamZeros(clients[name], OUTPUT_BYTES / 4);
      const readsBefore = new Map<Target, number>(TARGETS.map((name) => [name, clients[name].readsIssued]));
      for (let round = 0; round < THROUGHPUT_RUNS; round++) {
        for (const name of TARGETS) {
          const client = clients[name];
          const [relayBefore, executorBefore] = await Promise.all([cpuMs(setup.pids.relay), cpuMs(setup.pids[name])]);
          const clientBefore = process.cpuUsage();
          const started = performance.now();
          const received = await streamZeros(client, OUTPUT_BYTES);
          const seconds = (performance.now() - started) / 1000;
          const clientUsed = process.cpuUsage(clientBefore);
          const [relayAfter, executorAfter] = await Promise.all([cpuMs(setup.pids.relay), cpuMs(setup.pids[name])]);
          if (received.exitCode !== 0 || received.bytes !== OUTPUT_BYTES) throw new Error(`bench: ${name}: exit ${received.exitCode}, ${received.bytes} bytes of output`);
          throughput.get(name)!.push(OUTPUT_MIB / seconds);
          const totals = cpu.get(name)!;
          totals.client += (clientUsed.user + clientUsed.system) / 1000;
          totals.relay += relayAfter - relayBefore;
          totals.executor += executorAfter - executorBefore;
          totals.mib += OUTPUT_MIB;
        }
      }
      for (const name of TARGETS) {
        const totals = cpu.get(name)!;
        figures.push({
          scenario: `output throughput through the relay (${OUTPUT_MIB} MiB to stdout, pushed events)`,
          name,
          unit: 'MiB/s',
          higherIsBetter: true,
          samples: throughput.get(name)!,
          notes: {
            processReads: clients[name].readsIssued - readsBefore.get(name)!,
            clientCpuMsPerMiB: totals.client / totals.mib,
            relayCpuMsPerMiB: totals.relay / totals.mib,
            executorCpuMsPerMiB: totals.executor / totals.mib,
          },
          ...COMPARE[name],
        });
      }
    } finally {
      for (const client of Object.values(clients)) client.close();
    }
    return figures;
  } finally {
    await setup.stop();
    await stopAllLive();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
