/**
 * The relay fleet (`execrelay relay --nats URL --instance-id ID`): what routing through NATS costs,
 * each figure a ratio against a baseline measured in the same run, variants interleaved.
 *
 * One `nats-server` (deploy/fleet/nats-server.conf, JetStream on), relays and agents of the built
 * CLI, every one a separate process; the clients (ExecClient) run in this process. All on loopback.
 *
 * 1. One-shot `true` latency, connection open. Relays A and B join the fleet; one agent registers
 *    on B. Cross-instance: a client connected to A (its frames go A → NATS → B → agent and back
 *    B → NATS → A). Single-instance: a client connected to B (the same agent, the same fleet relay,
 *    only the path differs). Plain: a relay without `--nats` and its own agent (what a lone relay
 *    costs). Variants interleaved in blocks, the order rotated per block; p50 and p99 ratios.
 * 2. Output throughput of `head -c N /dev/zero` over the same three paths (runs interleaved), with
 *    the CPU each process spent per MiB of output.
 * 3. Frames per second per instance, 3 instances against 1: the same concurrent load (E
 *    environments with one agent each; C clients per environment, each running K concurrent
 *    `head -c M /dev/zero` in a loop) through a fleet of one relay and through a fleet of three
 *    (agent i registered on relay i mod 3; client j of environment e connected to relay (e+j) mod 3,
 *    so two clients in three cross instances). Each relay's `execrelay_relay_frames_routed_total`
 *    and `execrelay_relay_fleet_frames_total{direction}` are read before and after a fixed window
 *    while the load runs; the two fleets' windows alternate in blocks.
 *
 * Without `nats-server` on the machine every figure is reported as not measured.
 * Sizes: BENCH_FLEET_LATENCY_RUNS, BENCH_FLEET_THROUGHPUT_MIB, BENCH_FLEET_THROUGHPUT_RUNS,
 * BENCH_FLEET_LOAD_MS (window), BENCH_FLEET_LOAD_BLOCKS, BENCH_FLEET_LOAD_CLIENTS (per environment),
 * BENCH_FLEET_LOAD_CONCURRENCY (execs per client), BENCH_FLEET_LOAD_MIB (output per exec).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ExecClient } from '../src/client/exec-client.js';
import { benchNumber, median, quantile, QUICK, timeRuns, unavailable, withTimeout, type BenchFigure } from './bench-result.js';
import { cpuMs, keygen } from './cli-process.js';
import { COMMAND_ENV, execThroughput, runOneShot } from './fixtures.js';
import {
  machineTicks,
  natsServerInstalled,
  scrapeMetrics,
  startAgent,
  startNats,
  startRelay,
  stopAllStarted,
  type BenchAgent,
  type BenchRelay,
  type NatsProcess,
} from './fleet-processes.js';
import { sumOf, type Sample } from '../test/support/prometheus-exposition.js';

const LATENCY_RUNS = benchNumber('BENCH_FLEET_LATENCY_RUNS', 600, 60);
const LATENCY_BLOCKS = QUICK ? 2 : 6;
const LATENCY_WARMUP = QUICK ? 10 : 30;
const LATENCY_BUDGET_MS = 60_000;
const THROUGHPUT_MIB = benchNumber('BENCH_FLEET_THROUGHPUT_MIB', 32, 16);
const THROUGHPUT_RUNS = benchNumber('BENCH_FLEET_THROUGHPUT_RUNS', 10, 2);
const LOAD_MS = benchNumber('BENCH_FLEET_LOAD_MS', 2500, 1500);
const LOAD_BLOCKS = benchNumber('BENCH_FLEET_LOAD_BLOCKS', 6, 1);
const LOAD_ENVIRONMENTS = 3;
const LOAD_CLIENTS = benchNumber('BENCH_FLEET_LOAD_CLIENTS', 3, 3);
const LOAD_CONCURRENCY = benchNumber('BENCH_FLEET_LOAD_CONCURRENCY', 2, 2);
const LOAD_MIB = benchNumber('BENCH_FLEET_LOAD_MIB', 4, 4);
/** The load runs this long before a window opens (every exec loop started, pipelines full). */
const LOAD_RAMP_MS = 500;
const LOAD_WARMUP_MS = QUICK ? 500 : 1500;
/** Bound on any one exec (or the drain of a load window): a hang fails the bench, it does not stall it. */
const EXEC_TIMEOUT_MS = 60_000;

const LAT_SCENARIO = 'relay fleet: one-shot `true` latency (connection open)';
const TP_SCENARIO = `relay fleet: output throughput (${THROUGHPUT_MIB} MiB to stdout)`;
const LOAD_SCENARIO = `relay fleet: frames/s, 3 instances vs 1 (${LOAD_ENVIRONMENTS} envs, ${LOAD_ENVIRONMENTS * LOAD_CLIENTS} clients x ${LOAD_CONCURRENCY} x head -c ${LOAD_MIB}M)`;

const PLAIN = 'plain relay, no --nats';
const SINGLE = 'single-instance: client and agent on fleet relay B';
const CROSS = 'cross-instance: client on A, agent on B (via NATS)';

const ONE_PER = '1 instance: frames routed/s (per instance = whole fleet)';
const THREE_PER = '3 instances: frames routed/s per instance (mean)';
const THREE_TOTAL = '3 instances: frames routed/s, whole fleet';
const THREE_NATS = '3 instances: NATS frames/s per instance (published + received)';
const ONE_OUT = '1 instance: client output delivered';
const THREE_OUT = '3 instances: client output delivered';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `list` rotated to start at `offset` (the order of variants changes per block). */
function rotate<T>(list: readonly T[], offset: number): T[] {
  return list.map((_, i) => list[(i + offset) % list.length]!);
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The processes of one run, stopped together (also when a step fails). */
class Processes {
  readonly nats: NatsProcess;
  readonly relays: BenchRelay[] = [];
  readonly agents: BenchAgent[] = [];
  readonly clients: ExecClient[] = [];
  constructor(nats: NatsProcess) {
    this.nats = nats;
  }
  async relay(tokenFile: string, instanceId?: string): Promise<BenchRelay> {
    const relay = await startRelay(tokenFile, instanceId ? { natsUrl: this.nats.url, instanceId } : undefined);
    this.relays.push(relay);
    return relay;
  }
  async agent(relay: BenchRelay, environmentId: string, keyFile: string, tokenFile: string): Promise<BenchAgent> {
    const agent = await startAgent(relay, environmentId, keyFile, tokenFile);
    this.agents.push(agent);
    return agent;
  }
  async stopEndpoints(): Promise<void> {
    for (const client of this.clients.splice(0)) client.close();
    await Promise.all(this.agents.splice(0).map((a) => a.stop()));
    await Promise.all(this.relays.splice(0).map((r) => r.stop()));
  }
  async stopAll(): Promise<void> {
    await this.stopEndpoints().catch(() => undefined);
    await this.nats.stop();
    await stopAllStarted(); // anything whose start was still under way when a step failed
  }
}

interface Setup {
  processes: Processes;
  tokenFile: string;
  token: string;
  keyFile: string;
  agentKey: string;
}

async function connect(setup: Setup, relay: BenchRelay, environmentId: string): Promise<ExecClient> {
  const client = await ExecClient.connect({ relay: relay.url, environmentId, agentKey: setup.agentKey, token: setup.token });
  setup.processes.clients.push(client);
  return client;
}

/** Frames dropped and fleet errors on the given relays since `before` (all should stay 0). */
async function troubleSince(relays: readonly BenchRelay[], before: Sample[][]): Promise<{ dropped: number; fleetErrors: number }> {
  const after = await Promise.all(relays.map(scrapeMetrics));
  let dropped = 0;
  let fleetErrors = 0;
  after.forEach((snapshot, i) => {
    dropped += sumOf(snapshot, 'execrelay_relay_frames_dropped_total') - sumOf(before[i]!, 'execrelay_relay_frames_dropped_total');
    fleetErrors += sumOf(snapshot, 'execrelay_relay_fleet_errors_total') - sumOf(before[i]!, 'execrelay_relay_fleet_errors_total');
  });
  return { dropped, fleetErrors };
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: latency and throughput, cross-instance vs single-instance vs plain

async function pathFigures(setup: Setup): Promise<BenchFigure[]> {
  const { processes: p, tokenFile, keyFile } = setup;
  const [relayA, relayB, plain] = await Promise.all([p.relay(tokenFile, 'bench-a'), p.relay(tokenFile, 'bench-b'), p.relay(tokenFile)]);
  const [agentB, agentPlain] = await Promise.all([p.agent(relayB, 'fleet-path', keyFile, tokenFile), p.agent(plain, 'plain-path', keyFile, tokenFile)]);
  const [cross, single, plainClient] = await Promise.all([connect(setup, relayA, 'fleet-path'), connect(setup, relayB, 'fleet-path'), connect(setup, plain, 'plain-path')]);
  const relays = [relayA, relayB, plain];
  const troubleBefore = await Promise.all(relays.map(scrapeMetrics));

  // 1. Latency.
  console.error(`  fleet: latency, ${LATENCY_RUNS} execs per path in ${LATENCY_BLOCKS} blocks`);
  const variants: Array<[string, ExecClient]> = [
    [PLAIN, plainClient],
    [SINGLE, single],
    [CROSS, cross],
  ];
  const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  const perBlock = Math.ceil(LATENCY_RUNS / LATENCY_BLOCKS);
  const budget = LATENCY_BUDGET_MS / (LATENCY_BLOCKS * variants.length);
  for (let block = 0; block < LATENCY_BLOCKS; block++) {
    for (const [name, client] of rotate(variants, block)) {
      samples.get(name)!.push(...(await timeRuns(perBlock, block === 0 ? LATENCY_WARMUP : 0, () => withTimeout(runOneShot(client, ['true']), EXEC_TIMEOUT_MS, 'exec true'), budget)));
    }
  }
  const q = (name: string, at: number) => quantile([...samples.get(name)!].sort((a, b) => a - b), at);
  const latencyTrouble = await troubleSince(relays, troubleBefore);
  const latency = (name: string, extra: Partial<BenchFigure>): BenchFigure => ({ scenario: LAT_SCENARIO, name, unit: 'ms', higherIsBetter: false, samples: samples.get(name)!, ...extra });
  const figures: BenchFigure[] = [
    latency(PLAIN, {}),
    latency(SINGLE, { baseline: PLAIN, notes: { p99VsPlain: round(q(SINGLE, 0.99) / q(PLAIN, 0.99)) } }),
    latency(CROSS, {
      baseline: SINGLE,
      alsoCompare: [PLAIN],
      notes: {
        p99VsSingle: round(q(CROSS, 0.99) / q(SINGLE, 0.99)),
        p50AddedMs: round(q(CROSS, 0.5) - q(SINGLE, 0.5)),
        p99AddedMs: round(q(CROSS, 0.99) - q(SINGLE, 0.99)),
        droppedFrames: latencyTrouble.dropped,
        fleetErrors: latencyTrouble.fleetErrors,
      },
    }),
  ];

  // 2. Throughput, with every process's CPU per MiB of output.
  console.error(`  fleet: throughput, ${THROUGHPUT_RUNS} x ${THROUGHPUT_MIB} MiB per path`);
  const bytes = THROUGHPUT_MIB * 2 ** 20;
  const warm = Math.min(bytes, 16 * 2 ** 20);
  for (const [, client] of variants) await withTimeout(execThroughput(client, warm), EXEC_TIMEOUT_MS, 'throughput warm-up');
  const tSamples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  const cpu = new Map<string, Record<string, number[]>>(variants.map(([name]) => [name, { client: [], relayA: [], relayB: [], plainRelay: [], nats: [], agent: [] }]));
  const pids = { relayA: relayA.pid, relayB: relayB.pid, plainRelay: plain.pid, nats: p.nats.pid, agentB: agentB.pid, agentPlain: agentPlain.pid };
  const readCpu = async () => {
    const entries = await Promise.all(Object.entries(pids).map(async ([k, pid]) => [k, await cpuMs(pid)] as const));
    const usage = process.cpuUsage();
    return { ...Object.fromEntries(entries), client: (usage.user + usage.system) / 1000 } as Record<string, number>;
  };
  const tpTroubleBefore = await Promise.all(relays.map(scrapeMetrics));
  for (let run = 0; run < THROUGHPUT_RUNS; run++) {
    for (const [name, client] of rotate(variants, run)) {
      const before = await readCpu();
      tSamples.get(name)!.push(await withTimeout(execThroughput(client, bytes), EXEC_TIMEOUT_MS, `${name}: ${THROUGHPUT_MIB} MiB`));
      const after = await readCpu();
      const perMiB = (k: string) => (after[k]! - before[k]!) / THROUGHPUT_MIB;
      const c = cpu.get(name)!;
      c.client!.push(perMiB('client'));
      c.relayA!.push(perMiB('relayA'));
      c.relayB!.push(perMiB('relayB'));
      c.plainRelay!.push(perMiB('plainRelay'));
      c.nats!.push(perMiB('nats'));
      c.agent!.push(perMiB('agentB') + perMiB('agentPlain'));
    }
  }
  const tpTrouble = await troubleSince(relays, tpTroubleBefore);
  const cpuNotes = (name: string): Record<string, number> => {
    const c = cpu.get(name)!;
    // What routing costs: every relay plus nats-server, CPU ms per MiB of output.
    const routing = c.relayA!.map((v, i) => v + c.relayB![i]! + c.plainRelay![i]! + c.nats![i]!);
    const notes: Record<string, number> = { routingCpuMsPerMiB: round(median(routing)) };
    const label: Record<string, string> = { client: 'clientCpuMsPerMiB', agent: 'agentCpuMsPerMiB', relayA: 'relayACpuMsPerMiB', relayB: 'relayBCpuMsPerMiB', plainRelay: 'plainRelayCpuMsPerMiB', nats: 'natsCpuMsPerMiB' };
    for (const [key, values] of Object.entries(c)) {
      const value = median(values);
      // Idle processes (the other relays) read 0 or one 10 ms tick: leave them out.
      if (value * THROUGHPUT_MIB >= 20 || key === 'client' || key === 'agent') notes[label[key]!] = round(value);
    }
    return notes;
  };
  const tp = (name: string, extra: Partial<BenchFigure>): BenchFigure => ({
    scenario: TP_SCENARIO,
    name,
    unit: 'MiB/s',
    higherIsBetter: true,
    samples: tSamples.get(name)!,
    ...extra,
    notes: { ...cpuNotes(name), ...(extra.notes ?? {}) },
  });
  figures.push(
    tp(PLAIN, {}),
    tp(SINGLE, { baseline: PLAIN }),
    tp(CROSS, {
      baseline: SINGLE,
      alsoCompare: [PLAIN],
      // Each run's cross/single ratio (the two measured back to back), median over runs: less drift than the ratio of medians.
      notes: { pairedRatioVsSingle: round(median(tSamples.get(CROSS)!.map((v, i) => v / tSamples.get(SINGLE)![i]!))), droppedFrames: tpTrouble.dropped, fleetErrors: tpTrouble.fleetErrors },
    }),
  );
  await p.stopEndpoints();
  return figures;
}

// ---------------------------------------------------------------------------------------------
// 3. Frames per second per instance, 3 instances vs 1

interface Fleet {
  name: '1' | '3';
  relays: BenchRelay[];
  agents: BenchAgent[];
  clients: ExecClient[];
}

interface Reading {
  at: bigint;
  metrics: Sample[][];
  relayCpu: number[];
  natsCpu: number;
  agentCpu: number;
  clientCpu: number;
  delivered: number;
  machine: { busy: number; total: number };
}

interface Window {
  seconds: number;
  routedPerSecond: number[];
  natsPerSecond: number[];
  publishedPerSecond: number[];
  receivedPerSecond: number[];
  relayCpuPercent: number[];
  natsCpuPercent: number;
  agentsCpuPercent: number;
  clientCpuPercent: number;
  machineBusyPercent: number;
  deliveredMiBs: number;
  dropped: number;
  fleetErrors: number;
}

async function startFleet(setup: Setup, name: '1' | '3'): Promise<Fleet> {
  const { processes: p, tokenFile, keyFile } = setup;
  const relays = await Promise.all(Array.from({ length: Number(name) }, (_, i) => p.relay(tokenFile, `load${name}-r${i + 1}`)));
  const agents = await Promise.all(Array.from({ length: LOAD_ENVIRONMENTS }, (_, e) => p.agent(relays[e % relays.length]!, `load${name}-e${e}`, keyFile, tokenFile)));
  const clients: ExecClient[] = [];
  for (let e = 0; e < LOAD_ENVIRONMENTS; e++) {
    for (let j = 0; j < LOAD_CLIENTS; j++) clients.push(await connect(setup, relays[(e + j) % relays.length]!, `load${name}-e${e}`));
  }
  return { name, relays, agents, clients };
}

/** Runs K concurrent `head -c M /dev/zero` loops on every client until `deadline`; counts bytes delivered. */
function driveLoad(fleet: Fleet, deadline: number, counter: { bytes: number }): Promise<void> {
  const size = String(LOAD_MIB * 2 ** 20);
  const loop = async (client: ExecClient) => {
    while (Date.now() < deadline) {
      const handle = await client.exec(['head', '-c', size, '/dev/zero'], { cwd: '/', env: COMMAND_ENV, collectOutput: false, streamEvents: true });
      for await (const event of handle.events) if (event.type === 'output') counter.bytes += event.chunk.length;
      const done = await handle.completion;
      if (done.exitCode !== 0) throw new Error(`head exited with ${done.exitCode}`);
    }
  };
  return Promise.all(fleet.clients.flatMap((client) => Array.from({ length: LOAD_CONCURRENCY }, () => loop(client)))).then(() => undefined);
}

async function read(fleet: Fleet, nats: NatsProcess, counter: { bytes: number }): Promise<Reading> {
  const usage = process.cpuUsage();
  const [metrics, relayCpu, natsCpu, agentCpu, machine] = await Promise.all([
    Promise.all(fleet.relays.map(scrapeMetrics)),
    Promise.all(fleet.relays.map((r) => cpuMs(r.pid))),
    cpuMs(nats.pid),
    Promise.all(fleet.agents.map((a) => cpuMs(a.pid))).then((v) => v.reduce((s, x) => s + x, 0)),
    machineTicks(),
  ]);
  return { at: process.hrtime.bigint(), metrics, relayCpu, natsCpu, agentCpu, clientCpu: (usage.user + usage.system) / 1000, delivered: counter.bytes, machine };
}

/** One window of load through `fleet`: counters read before and after, the load kept running across both. */
async function loadWindow(fleet: Fleet, nats: NatsProcess, windowMs: number): Promise<Window> {
  const counter = { bytes: 0 };
  // Settled at once into a value: a failing exec loop is reported after the window, not as an unhandled rejection.
  const driving = driveLoad(fleet, Date.now() + LOAD_RAMP_MS + windowMs, counter).then(
    () => undefined,
    (error: unknown) => error,
  );
  try {
    await sleep(LOAD_RAMP_MS);
    const a = await read(fleet, nats, counter);
    await sleep(windowMs);
    const b = await read(fleet, nats, counter);
    const seconds = Number(b.at - a.at) / 1e9;
    const delta = (i: number, name: string, labels: Record<string, string> = {}) => sumOf(b.metrics[i]!, name, labels) - sumOf(a.metrics[i]!, name, labels);
    const each = (f: (i: number) => number) => fleet.relays.map((_, i) => f(i));
    const published = each((i) => delta(i, 'execrelay_relay_fleet_frames_total', { direction: 'published' }) / seconds);
    const received = each((i) => delta(i, 'execrelay_relay_fleet_frames_total', { direction: 'received' }) / seconds);
    return {
      seconds,
      routedPerSecond: each((i) => delta(i, 'execrelay_relay_frames_routed_total') / seconds),
      publishedPerSecond: published,
      receivedPerSecond: received,
      natsPerSecond: published.map((v, i) => v + received[i]!),
      relayCpuPercent: each((i) => ((b.relayCpu[i]! - a.relayCpu[i]!) / (seconds * 1000)) * 100),
      natsCpuPercent: ((b.natsCpu - a.natsCpu) / (seconds * 1000)) * 100,
      agentsCpuPercent: ((b.agentCpu - a.agentCpu) / (seconds * 1000)) * 100,
      clientCpuPercent: ((b.clientCpu - a.clientCpu) / (seconds * 1000)) * 100,
      machineBusyPercent: ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) * 100 * os.cpus().length,
      deliveredMiBs: (b.delivered - a.delivered) / 2 ** 20 / seconds,
      dropped: each((i) => delta(i, 'execrelay_relay_frames_dropped_total')).reduce((s, x) => s + x, 0),
      fleetErrors: each((i) => delta(i, 'execrelay_relay_fleet_errors_total')).reduce((s, x) => s + x, 0),
    };
  } finally {
    // A stuck stream (a relay died: the client would wait minutes to give up) fails the bench instead.
    const failure = await withTimeout(driving, EXEC_TIMEOUT_MS, 'load drain');
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error(String(failure));
  }
}

async function loadFigures(setup: Setup): Promise<BenchFigure[]> {
  const nats = setup.processes.nats;
  const one = await startFleet(setup, '1');
  const three = await startFleet(setup, '3');
  const fleets = [one, three];
  console.error(`  fleet: load, ${LOAD_BLOCKS} windows of ${LOAD_MS} ms per fleet`);
  for (const fleet of fleets) await loadWindow(fleet, nats, LOAD_WARMUP_MS); // JIT, pipelines: not measured
  const windows = new Map<string, Window[]>([
    ['1', []],
    ['3', []],
  ]);
  for (let block = 0; block < LOAD_BLOCKS; block++) {
    for (const fleet of rotate(fleets, block)) windows.get(fleet.name)!.push(await loadWindow(fleet, nats, LOAD_MS));
  }
  const w1 = windows.get('1')!;
  const w3 = windows.get('3')!;
  const sum = (values: readonly number[]) => values.reduce((s, x) => s + x, 0);
  const med = (ws: readonly Window[], f: (w: Window) => number, digits = 1) => round(median(ws.map(f)), digits);
  const common = (ws: readonly Window[]) => ({
    natsCpuPercent: med(ws, (w) => w.natsCpuPercent),
    agentsCpuPercent: med(ws, (w) => w.agentsCpuPercent),
    clientCpuPercent: med(ws, (w) => w.clientCpuPercent),
    machineBusyPercent: med(ws, (w) => w.machineBusyPercent),
    droppedFrames: sum(ws.map((w) => w.dropped)),
    fleetErrors: sum(ws.map((w) => w.fleetErrors)),
  });
  const perInstance = (ws: readonly Window[], f: (w: Window) => number[], key: string, digits = 0): Record<string, number> =>
    Object.fromEntries(ws[0]!.routedPerSecond.map((_, i) => [`${key}R${i + 1}`, med(ws, (w) => f(w)[i]!, digits)]));
  const figure = (name: string, unit: string, samples: number[], extra: Partial<BenchFigure> = {}): BenchFigure => ({
    scenario: LOAD_SCENARIO,
    name,
    unit,
    higherIsBetter: true,
    samples,
    ...extra,
  });
  const routedPerMiB = (ws: readonly Window[]) => med(ws, (w) => sum(w.routedPerSecond) / w.deliveredMiBs);
  /** Relays' and nats-server's CPU per MiB of output the clients received (what routing costs per unit of useful work). */
  const routingPerMiB = (ws: readonly Window[]) => med(ws, (w) => ((sum(w.relayCpuPercent) + w.natsCpuPercent) * 10) / w.deliveredMiBs, 2);
  /** Relay CPU (all instances) per 1,000 frames routed. */
  const cpuPerKiloFrame = (ws: readonly Window[]) => med(ws, (w) => (sum(w.relayCpuPercent) * 10) / (sum(w.routedPerSecond) / 1000), 2);
  /** Each block's 3-instance window against the 1-instance window of the same block, median over blocks. */
  const paired = (f: (w: Window) => number) => round(median(w3.map((w, i) => f(w) / f(w1[i]!))));
  return [
    figure(
      ONE_PER,
      'frames/s',
      w1.map((w) => sum(w.routedPerSecond)),
      { notes: { relayCpuPercent: med(w1, (w) => w.relayCpuPercent[0]!), relayCpuMsPer1000Frames: cpuPerKiloFrame(w1), routingCpuMsPerMiBDelivered: routingPerMiB(w1), framesRoutedPerMiBDelivered: routedPerMiB(w1), ...common(w1), windowSeconds: med(w1, (w) => w.seconds, 2) } },
    ),
    figure(
      THREE_PER,
      'frames/s',
      w3.map((w) => sum(w.routedPerSecond) / w.routedPerSecond.length),
      { baseline: ONE_PER, notes: { pairedRatio: paired((w) => sum(w.routedPerSecond) / w.routedPerSecond.length), ...perInstance(w3, (w) => w.routedPerSecond, 'routed'), ...perInstance(w3, (w) => w.relayCpuPercent, 'cpuPercent', 1) } },
    ),
    figure(
      THREE_TOTAL,
      'frames/s',
      w3.map((w) => sum(w.routedPerSecond)),
      { baseline: ONE_PER, notes: { pairedRatio: paired((w) => sum(w.routedPerSecond)), relaysCpuPercent: med(w3, (w) => sum(w.relayCpuPercent)), relayCpuMsPer1000Frames: cpuPerKiloFrame(w3), routingCpuMsPerMiBDelivered: routingPerMiB(w3), framesRoutedPerMiBDelivered: routedPerMiB(w3), ...common(w3), windowSeconds: med(w3, (w) => w.seconds, 2) } },
    ),
    figure(
      THREE_NATS,
      'frames/s',
      w3.map((w) => sum(w.natsPerSecond) / w.natsPerSecond.length),
      { notes: { ...perInstance(w3, (w) => w.publishedPerSecond, 'published'), ...perInstance(w3, (w) => w.receivedPerSecond, 'received') } },
    ),
    figure(ONE_OUT, 'MiB/s', w1.map((w) => w.deliveredMiBs)),
    figure(THREE_OUT, 'MiB/s', w3.map((w) => w.deliveredMiBs), { baseline: ONE_OUT, notes: { pairedRatio: paired((w) => w.deliveredMiBs) } }),
  ];
}

// ---------------------------------------------------------------------------------------------

const ALL_FIGURES: ReadonlyArray<[string, string, string, boolean]> = [
  [LAT_SCENARIO, PLAIN, 'ms', false],
  [LAT_SCENARIO, SINGLE, 'ms', false],
  [LAT_SCENARIO, CROSS, 'ms', false],
  [TP_SCENARIO, PLAIN, 'MiB/s', true],
  [TP_SCENARIO, SINGLE, 'MiB/s', true],
  [TP_SCENARIO, CROSS, 'MiB/s', true],
  [LOAD_SCENARIO, ONE_PER, 'frames/s', true],
  [LOAD_SCENARIO, THREE_PER, 'frames/s', true],
  [LOAD_SCENARIO, THREE_TOTAL, 'frames/s', true],
];

export async function run(): Promise<BenchFigure[]> {
  if ((await natsServerInstalled()) === null) {
    return ALL_FIGURES.map(([scenario, name, unit, higherIsBetter]) => unavailable({ scenario, name, unit, higherIsBetter }, 'nats-server is not installed (apt-get install nats-server)'));
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-fleet-'));
  let processes: Processes | undefined;
  try {
    const token = `bench-fleet-${Date.now()}-0123456789`;
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const keyFile = path.join(dir, 'agent.key');
    const agentKey = await keygen(keyFile);
    processes = new Processes(await startNats());
    const setup: Setup = { processes, tokenFile, token, keyFile, agentKey };
    const figures = await pathFigures(setup);
    figures.push(...(await loadFigures(setup)));
    return figures;
  } finally {
    await processes?.stopAll();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(QUICK ? '(quick mode)' : '(full mode)');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
