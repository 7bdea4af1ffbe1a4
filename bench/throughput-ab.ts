/**
 * Interleaved A/B of output throughput between builds or settings, all in one run:
 *
 *   npm run build && node dist/bench/throughput-ab.js [--mib 256] [--rounds 5] [--paths relay,direct] \
 *     --variant before --dist /path/to/old/dist [--env WS_NO_BUFFER_UTIL=1] \
 *     --variant after --dist dist
 *
 * Each variant gets its own relay, relay-registered agent and direct agent, started from its `dist`
 * (a copy of an older build kept inside this checkout resolves this checkout's node_modules) with
 * its extra environment; its client runs `dist/bench/throughput-client.js` of the same build in a
 * process of its own. Rounds run every variant and path once, the order rotated per round (A,B then
 * B,A…), so drift on a shared machine hits all. For each transfer: MiB/s and the CPU milliseconds per
 * MiB of output of the client (`process.cpuUsage()` in the client), the relay and the agent
 * (`/proc/PID/stat`, 10 ms ticks; the agent's child `head` is not counted), and the mean output
 * message size the client saw (clients that do not report it print none). Prints medians per
 * variant and path, the median over rounds of each variant's ratio to the first variant's
 * figure of the same round (paired ratios, steadier than ratios of medians), and each variant's
 * peak RSS of relay and agents.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { quantile } from './bench-result.js';
import { agentPids, cpuMs, cpuMsOf, startProcess, type RunningProcess } from './cli-process.js';

interface Variant {
  name: string;
  dist: string;
  env: Record<string, string>;
}

interface Sample {
  mibPerSecond: number;
  clientMsPerMiB: number;
  relayMsPerMiB: number;
  agentMsPerMiB: number;
  /** Mean bytes of output per `process/output` message received (NaN when the client does not say). */
  bytesPerMessage: number;
}

type PathName = 'relay' | 'direct';

function parseArgs(argv: string[]): { mib: number; rounds: number; paths: PathName[]; variants: Variant[] } {
  let mib = 256;
  let rounds = 5;
  let paths: PathName[] = ['relay', 'direct'];
  const variants: Variant[] = [];
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    const need = (): string => {
      if (value === undefined) throw new Error(`${argv[i]} needs a value`);
      i++;
      return value;
    };
    switch (argv[i]) {
      case '--mib':
        mib = Number(need());
        break;
      case '--rounds':
        rounds = Number(need());
        break;
      case '--paths':
        paths = need().split(',').filter((p): p is PathName => p === 'relay' || p === 'direct');
        break;
      case '--variant':
        variants.push({ name: need(), dist: path.resolve('dist'), env: {} });
        break;
      case '--dist':
        variants.at(-1)!.dist = path.resolve(need());
        break;
      case '--env': {
        const [key, ...v] = need().split('=');
        variants.at(-1)!.env[key!] = v.join('=');
        break;
      }
      default:
        throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (variants.length === 0) throw new Error('give at least one --variant NAME [--dist DIR] [--env K=V]');
  if (!(mib > 0) || !(rounds > 0) || paths.length === 0) throw new Error('bad --mib, --rounds or --paths');
  return { mib, rounds, paths, variants };
}

function keygen(cli: string, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'keygen', '--out', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`keygen exited with ${code}`))));
  });
}

interface Running {
  variant: Variant;
  relay: RunningProcess;
  remoteAgent: RunningProcess;
  directAgent: RunningProcess;
  agentKey: string;
}

const TOKEN = `ab-token-${Date.now()}-0123456789abcdef`;

async function start(variant: Variant, dir: string, tokenFile: string): Promise<Running> {
  const cli = path.join(variant.dist, 'cli', 'main.js');
  // The CLI reads its version from the package.json beside its dist/.
  if (!existsSync(cli) || !existsSync(path.join(variant.dist, '..', 'package.json'))) {
    throw new Error(`${variant.name}: ${variant.dist} needs cli/main.js and a package.json beside it (cp package.json ${path.dirname(variant.dist)}/)`);
  }
  const own = await mkdtemp(path.join(dir, `${variant.name}-`));
  const keyFile = path.join(own, 'agent.key');
  const agentKey = await keygen(cli, keyFile);
  const env = { ...variant.env, XDG_STATE_HOME: own, XDG_CONFIG_HOME: own };
  const relay = await startProcess([cli, 'relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile], env);
  const remoteAgent = await startProcess([cli, 'agent', '--relay', relay.firstLine, '--environment-id', 'ab', '--key', keyFile, '--token-file', tokenFile, '--allow-any-client'], env);
  const directAgent = await startProcess([cli, 'agent', '--listen', 'ws://127.0.0.1:0'], env);
  return { variant, relay, remoteAgent, directAgent, agentKey };
}

interface ClientResult {
  bytes: number;
  /** Output messages received (older builds' clients do not report it). */
  messages?: number;
  seconds: number;
  cpuMs: number;
}

function runClient(r: Running, pathName: PathName, bytes: number): Promise<ClientResult> {
  const script = path.join(r.variant.dist, 'bench', 'throughput-client.js');
  const args =
    pathName === 'relay'
      ? [script, 'relay', r.relay.firstLine, 'ab', r.agentKey, TOKEN, String(bytes)]
      : [script, 'direct', r.directAgent.firstLine, String(bytes)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...r.variant.env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as ClientResult) : reject(new Error(`client exited with ${code}: ${out}`))));
  });
}

async function measure(r: Running, pathName: PathName, bytes: number): Promise<Sample> {
  const agent = pathName === 'relay' ? r.remoteAgent : r.directAgent;
  // The agent's CPU includes its process spawner's, where the variant has one (started by the warm-up).
  const agentProcesses = agentPids(agent.child.pid!);
  const relayBefore = await cpuMs(r.relay.child.pid!);
  const agentBefore = await cpuMsOf(agentProcesses);
  const result = await runClient(r, pathName, bytes);
  const relayAfter = await cpuMs(r.relay.child.pid!);
  const agentAfter = await cpuMsOf(agentProcesses);
  if (result.bytes !== bytes) throw new Error(`${r.variant.name} ${pathName}: received ${result.bytes} of ${bytes}`);
  const mib = bytes / 2 ** 20;
  return {
    mibPerSecond: mib / result.seconds,
    clientMsPerMiB: result.cpuMs / mib,
    relayMsPerMiB: pathName === 'relay' ? (relayAfter - relayBefore) / mib : 0,
    agentMsPerMiB: (agentAfter - agentBefore) / mib,
    bytesPerMessage: result.messages ? bytes / result.messages : NaN,
  };
}

const median = (values: number[]): number => quantile([...values].sort((a, b) => a - b), 0.5);
const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

const { mib, rounds, paths, variants } = parseArgs(process.argv.slice(2));
const bytes = mib * 2 ** 20;
const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-ab-'));
const tokenFile = path.join(dir, 'token');
await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
const running: Running[] = [];
try {
  for (const variant of variants) running.push(await start(variant, dir, tokenFile));
  // Warm-up, not measured: the JIT has not seen the bulk path yet.
  for (const r of running) for (const p of paths) await measure(r, p, Math.min(bytes, 32 * 2 ** 20));
  const samples = new Map<string, Sample[]>();
  const key = (v: number, p: PathName) => `${p}\u0000${v}`;
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < running.length; k++) {
      const v = (k + round) % running.length;
      for (const p of paths) {
        const s = await measure(running[v]!, p, bytes);
        (samples.get(key(v, p)) ?? samples.set(key(v, p), []).get(key(v, p))!).push(s);
        console.error(`round ${round + 1} ${running[v]!.variant.name} ${p}: ${fmt(s.mibPerSecond)} MiB/s, client ${fmt(s.clientMsPerMiB)} relay ${fmt(s.relayMsPerMiB)} agent ${fmt(s.agentMsPerMiB)} ms/MiB${Number.isNaN(s.bytesPerMessage) ? '' : `, ${fmt(s.bytesPerMessage / 1024)} KiB per message`}`);
      }
    }
  }
  console.log(`${mib} MiB per transfer, ${rounds} interleaved rounds, medians; ratio = median over rounds of (variant / ${running[0]!.variant.name}) in the same round`);
  console.log('path    variant              MiB/s   ratio   client  relay   agent   sum ms/MiB  cpu ratio');
  for (const p of paths) {
    const base = samples.get(key(0, p))!;
    running.forEach((r, v) => {
      const s = samples.get(key(v, p))!;
      const sum = (x: Sample) => x.clientMsPerMiB + x.relayMsPerMiB + x.agentMsPerMiB;
      const ratio = median(s.map((x, i) => x.mibPerSecond / base[i]!.mibPerSecond));
      const cpuRatio = median(s.map((x, i) => sum(x) / sum(base[i]!)));
      console.log(
        [p.padEnd(7), r.variant.name.padEnd(20), fmt(median(s.map((x) => x.mibPerSecond))).padStart(6), `${fmt(ratio)}x`.padStart(6),
          fmt(median(s.map((x) => x.clientMsPerMiB))).padStart(7), fmt(median(s.map((x) => x.relayMsPerMiB))).padStart(6),
          fmt(median(s.map((x) => x.agentMsPerMiB))).padStart(7), fmt(median(s.map(sum))).padStart(11), `${fmt(cpuRatio)}x`.padStart(10)].join(' '),
      );
    });
  }
  // Peak RSS over the whole run (warm-up included) of each variant's long-running processes.
  const peakMiB = async (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  for (const r of running) {
    console.log(`${r.variant.name}: peak RSS MiB relay ${fmt(await peakMiB(r.relay.child.pid!))}, relay-registered agent ${fmt(await peakMiB(r.remoteAgent.child.pid!))}, direct agent ${fmt(await peakMiB(r.directAgent.child.pid!))}`);
  }
} finally {
  await Promise.all(running.flatMap((r) => [r.relay.stop(), r.remoteAgent.stop(), r.directAgent.stop()]));
  await rm(dir, { recursive: true, force: true });
}
