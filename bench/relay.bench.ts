/**
 * Scenarios 1 and 2 of the benchmark issue, each against what a user would pick instead, measured
 * side by side in one run (variants interleaved in blocks so drift on a shared machine hits all):
 *
 * 1. One-shot `true` latency with the connection already open: execrelay through relay+Noise, the
 *    direct local agent, the real `codex exec-server` 0.169.0 on its local WebSocket, OpenSSH through
 *    a persistent ControlMaster connection, and a plain local `child_process.spawn` from a small
 *    Node process (the floor).
 *    The count of `process/read` calls each client needed is kept beside its figure.
 * 2. Output throughput of `head -c N /dev/zero` (512 MiB in the full run): execrelay through
 *    relay+Noise, the direct agent, `ssh HOST head -c N /dev/zero` over the ControlMaster, and a raw
 *    WebSocket stream of the same bytes between two processes (the transport ceiling). Each path's
 *    notes give the CPU milliseconds per MiB of output of its client, relay and agent (ssh: the
 *    ControlMaster client and the sshd processes), medians over the runs, and their sum.
 *
 * Relay, agents, sshd, codex and the raw WebSocket sender are separate processes; all on loopback.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { tuneMemory } from '../cli/memory-tuning.js';
import type { ExecClient } from '../src/client/exec-client.js';
import { ExecClient as Client } from '../src/client/exec-client.js';
import { benchNumber, optionalBaseline, QUICK, timeRuns, unavailable, type BenchFigure } from './bench-result.js';
import { agentPids, cpuMsOf, startProcess } from './cli-process.js';
import { startCodexServer, type CodexServer } from './codex-server.js';
import { execThroughput, runOneShot, startExecrelay } from './fixtures.js';
import { startSshServer, type SshServer } from './ssh-server.js';

const LATENCY_RUNS = benchNumber('BENCH_LATENCY_RUNS', 200, 40);
const THROUGHPUT_MIB = benchNumber('BENCH_THROUGHPUT_MIB', 512, 32);
const THROUGHPUT_RUNS = benchNumber('BENCH_THROUGHPUT_RUNS', 3, 1);
const BLOCKS = 4;

const SPAWN = 'local child_process.spawn (floor)';
const DIRECT = 'direct local agent';
const RELAY = 'execrelay via relay+Noise';
const CODEX = 'codex exec-server 0.169.0 (local ws)';
const SSH_CM = 'OpenSSH, ControlMaster connection';
const RAW_WS = 'raw ws loopback stream (ceiling)';
const SSH_CAT = 'ssh HOST head -c N /dev/zero (ControlMaster)';

/**
 * The floor: `count` local spawns of `true`, timed inside a fresh, small Node process (libuv forks,
 * and a fork costs more from a big process such as this one, with its sockets and heap).
 */
function spawnFloor(count: number, warmup: number): Promise<number[]> {
  const script = `
    const { spawn } = require('node:child_process');
    const once = () => new Promise((resolve, reject) => { const c = spawn('true', [], { stdio: 'ignore' }); c.on('error', reject); c.on('exit', resolve); });
    (async () => {
      for (let i = 0; i < ${warmup}; i++) await once();
      const samples = [];
      for (let i = 0; i < ${count}; i++) { const t = process.hrtime.bigint(); await once(); samples.push(Number(process.hrtime.bigint() - t) / 1e6); }
      console.log(JSON.stringify(samples));
    })();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`spawn floor helper exited ${code}`))));
  });
}

function runSsh(args: string[], command: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...args, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let received = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (received += d.length));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(received) : reject(new Error(`ssh ${command.join(' ')} exited ${code}: ${stderr}`))));
  });
}

/**
 * A sender process that streams `bytes` over a raw WebSocket in 64 KiB binary messages, refilling
 * its socket on `drain` (a 1 ms timer here before held this ceiling to about half of what ws does).
 */
async function rawWebSocketThroughput(bytes: number): Promise<number> {
  const script = `
    const { WebSocketServer } = require(${JSON.stringify(path.join(process.cwd(), 'node_modules', 'ws'))});
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => console.log('ws://127.0.0.1:' + wss.address().port));
    wss.on('connection', (ws) => {
      const chunk = Buffer.alloc(65536, 120); let left = ${bytes};
      const pump = () => { while (left > 0) { const n = Math.min(left, chunk.length); left -= n; ws.send(chunk.subarray(0, n)); if (ws.bufferedAmount > 8 * 1048576) return ws._socket.once('drain', pump); } ws.close(); };
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

/** CPU milliseconds of each role's processes so far (/proc, 10 ms ticks; a pid that is gone counts 0). */
async function cpuByRole(roles: Record<string, number[]>): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [role, pids] of Object.entries(roles)) out[role] = await cpuMsOf(pids);
  return out;
}

/**
 * Runs one transfer of `mib` MiB and adds, per role, the CPU milliseconds per MiB it cost to
 * `perMiB` (`client` in-process is this process's `process.cpuUsage()`, the rest from /proc).
 */
async function withCpu(mib: number, roles: () => Promise<Record<string, number[]>>, inProcessClient: boolean, perMiB: Map<string, number[]>, transfer: () => Promise<number>): Promise<number> {
  const pids = await roles();
  const before = await cpuByRole(pids);
  const usage = process.cpuUsage();
  const result = await transfer();
  const used = process.cpuUsage(usage);
  const after = await cpuByRole(pids);
  const add = (role: string, ms: number) => (perMiB.get(role) ?? perMiB.set(role, []).get(role)!).push(ms / mib);
  if (inProcessClient) add('client', (used.user + used.system) / 1000);
  for (const role of Object.keys(pids)) add(role, after[role]! - before[role]!);
  return result;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;

/** `clientCpuMsPerMiB` … notes (medians over the runs) and their sum. */
function cpuNotes(perMiB: Map<string, number[]>): Record<string, number> {
  const notes: Record<string, number> = {};
  let sum = 0;
  for (const [role, values] of perMiB) {
    notes[`${role}CpuMsPerMiB`] = median(values);
    sum += median(values);
  }
  if (perMiB.size > 0) notes.cpuMsPerMiB = sum;
  return notes;
}

export async function run(): Promise<BenchFigure[]> {
  // The clients here run in this process: tuned as the CLI's client commands are.
  tuneMemory();
  const execrelay = await startExecrelay();
  const ssh = await optionalBaseline('OpenSSH server', startSshServer);
  const codex = await optionalBaseline('codex exec-server', startCodexServer);
  const clients: ExecClient[] = [];
  try {
    if (typeof ssh !== 'string') await ssh.startMaster();
    const relayClient = await execrelay.connectRelay();
    const directClient = await execrelay.connectDirect();
    clients.push(relayClient, directClient);
    let codexClient: ExecClient | undefined;
    if (typeof codex !== 'string') {
      codexClient = await Client.connect(codex.url);
      clients.push(codexClient);
    }

    // 1. One-shot latency.
    const scenario = 'one-shot `true` latency (connection open)';
    const samples = new Map<string, number[]>([SPAWN, DIRECT, RELAY, CODEX, SSH_CM].map((name) => [name, []]));
    const variants: Array<[string, () => Promise<void>]> = [
      [DIRECT, () => runOneShot(directClient, ['true'])],
      [RELAY, () => runOneShot(relayClient, ['true'])],
    ];
    if (codexClient) {
      const c = codexClient;
      variants.push([CODEX, () => runOneShot(c, ['true'])]);
    }
    if (typeof ssh !== 'string') variants.push([SSH_CM, async () => void (await runSsh(ssh.masterArgs, ['true']))]);
    const readsBefore = new Map(clients.map((c) => [c, c.readsIssued]));
    for (let block = 0; block < BLOCKS; block++) {
      samples.get(SPAWN)!.push(...(await spawnFloor(Math.ceil(LATENCY_RUNS / BLOCKS), 10)));
      for (const [name, fn] of variants) {
        samples.get(name)!.push(...(await timeRuns(Math.ceil(LATENCY_RUNS / BLOCKS), block === 0 ? 10 : 0, fn, 30_000)));
      }
    }
    const reads = (client: ExecClient | undefined) => (client ? client.readsIssued - readsBefore.get(client)! : 0);
    const latency = (name: string, baseline: string | undefined, extra: Partial<BenchFigure> = {}): BenchFigure => ({
      scenario,
      name,
      unit: 'ms',
      higherIsBetter: false,
      samples: samples.get(name)!,
      ...(baseline ? { baseline } : {}),
      ...extra,
    });
    const figures: BenchFigure[] = [
      latency(SPAWN, undefined),
      latency(DIRECT, SPAWN, { notes: { processReads: reads(directClient) } }),
      latency(RELAY, DIRECT, { alsoCompare: [SSH_CM, CODEX], notes: { processReads: reads(relayClient) } }),
      codexClient
        ? latency(CODEX, DIRECT, { notes: { processReads: reads(codexClient) } })
        : unavailable({ scenario, name: CODEX, unit: 'ms', higherIsBetter: false }, codex as string),
      typeof ssh !== 'string'
        ? latency(SSH_CM, DIRECT)
        : unavailable({ scenario, name: SSH_CM, unit: 'ms', higherIsBetter: false }, ssh),
    ];

    // 2. Output throughput.
    const relayReadsAfterLatency = relayClient.readsIssued;
    const directReadsAfterLatency = directClient.readsIssued;
    const bytes = THROUGHPUT_MIB * 2 ** 20;
    const tScenario = `output throughput (${THROUGHPUT_MIB} MiB to stdout)`;
    const tSamples = new Map<string, number[]>([RAW_WS, DIRECT, RELAY, SSH_CAT].map((name) => [name, []]));
    // Warm-up (not measured): the JIT has not seen the bulk path yet.
    const warmUp = Math.min(bytes, 32 * 2 ** 20);
    await execThroughput(directClient, warmUp);
    await execThroughput(relayClient, warmUp);
    // CPU per MiB of output for each path and role (the agent's child `head` is not counted, nor
    // sshd's session child `head`; ssh's client is the ControlMaster process that does its crypto).
    const cpu = new Map<string, Map<string, number[]>>([DIRECT, RELAY, SSH_CAT].map((name) => [name, new Map()]));
    const pid = (p: { child: { pid?: number | undefined } }) => (p.child.pid === undefined ? [] : [p.child.pid]);
    for (let i = 0; i < THROUGHPUT_RUNS; i++) {
      tSamples.get(RAW_WS)!.push(await rawWebSocketThroughput(bytes));
      tSamples.get(DIRECT)!.push(await withCpu(THROUGHPUT_MIB, async () => ({ agent: agentPids(execrelay.directAgent.child.pid!) }), true, cpu.get(DIRECT)!, () => execThroughput(directClient, bytes)));
      tSamples.get(RELAY)!.push(
        await withCpu(THROUGHPUT_MIB, async () => ({ relay: pid(execrelay.relay), agent: agentPids(execrelay.remoteAgent.child.pid!) }), true, cpu.get(RELAY)!, () => execThroughput(relayClient, bytes)),
      );
      if (typeof ssh !== 'string') {
        const rate = await withCpu(THROUGHPUT_MIB, async () => ssh.cpuPids(), false, cpu.get(SSH_CAT)!, async () => {
          const start = process.hrtime.bigint();
          const received = await runSsh(ssh.masterArgs, ['head', '-c', String(bytes), '/dev/zero']);
          if (received !== bytes) throw new Error(`ssh delivered ${received} of ${bytes} bytes`);
          return bytes / 2 ** 20 / (Number(process.hrtime.bigint() - start) / 1e9);
        });
        tSamples.get(SSH_CAT)!.push(rate);
      }
    }
    const tp = (name: string, baseline: string | undefined, extra: Partial<BenchFigure> = {}): BenchFigure => ({
      scenario: tScenario,
      name,
      unit: 'MiB/s',
      higherIsBetter: true,
      samples: tSamples.get(name)!,
      ...(baseline ? { baseline } : {}),
      ...extra,
    });
    figures.push(
      tp(RAW_WS, undefined),
      tp(DIRECT, RAW_WS, { alsoCompare: [SSH_CAT], notes: { processReads: directClient.readsIssued - directReadsAfterLatency, ...cpuNotes(cpu.get(DIRECT)!) } }),
      tp(RELAY, RAW_WS, { alsoCompare: [SSH_CAT, DIRECT], notes: { processReads: relayClient.readsIssued - relayReadsAfterLatency, ...cpuNotes(cpu.get(RELAY)!) } }),
      typeof ssh !== 'string'
        ? tp(SSH_CAT, RAW_WS, { notes: cpuNotes(cpu.get(SSH_CAT)!) })
        : unavailable({ scenario: tScenario, name: SSH_CAT, unit: 'MiB/s', higherIsBetter: true }, ssh),
    );
    return figures;
  } finally {
    for (const client of clients) client.close();
    await Promise.all([
      execrelay.stop(),
      typeof ssh !== 'string' ? ssh.stop() : undefined,
      typeof codex !== 'string' ? (codex as CodexServer).stop() : undefined,
    ]);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(QUICK ? '(quick mode)' : '(full mode)');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}

export type { SshServer };
