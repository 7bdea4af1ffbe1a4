/**
 * `execrelay cp` of one big file up and back down through a relay, with the peak RSS (VmHWM) of the
 * client and of the agent and the wall time of each direction, between builds, interleaved:
 *
 *   npm run build && node dist/bench/cp-memory.js [--mib 1024] [--rounds 2] \
 *     --variant before --dist .ab/base/dist --variant after --dist dist
 *
 * Each variant and round starts its own relay and relay-registered agent (so the agent's VmHWM is
 * that of one copy up and one down) from its `dist` (a copy of an older build kept inside this
 * checkout, with a package.json beside it); the client is the `cp` of the same build. Rounds run
 * the variants in rotated order. The file is random bytes; SHA-256 is compared both ways.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startProcess } from './cli-process.js';

interface Variant {
  name: string;
  dist: string;
}

const MiB = 1024 * 1024;
const TOKEN = `cp-memory-token-${Date.now()}-0123456789abcdef`;

function parseArgs(argv: string[]): { mib: number; rounds: number; variants: Variant[] } {
  let mib = 1024;
  let rounds = 2;
  const variants: Variant[] = [];
  for (let i = 0; i < argv.length; i++) {
    const value = argv[++i];
    if (value === undefined) throw new Error(`${argv[i - 1]} needs a value`);
    switch (argv[i - 1]) {
      case '--mib':
        mib = Number(value);
        break;
      case '--rounds':
        rounds = Number(value);
        break;
      case '--variant':
        variants.push({ name: value, dist: path.resolve('dist') });
        break;
      case '--dist':
        if (!variants.at(-1)) throw new Error('--dist follows a --variant');
        variants.at(-1)!.dist = path.resolve(value);
        break;
      default:
        throw new Error(`unknown argument ${argv[i - 1]}`);
    }
  }
  if (variants.length === 0) variants.push({ name: 'this', dist: path.resolve('dist') });
  return { mib, rounds, variants };
}

/** A live process's VmHWM in bytes (0 once it is gone); synchronous, so timer samples never queue up. */
function peakRss(pid: number): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Runs `node CLI ARGS...`, sampling its VmHWM every 20 ms; resolves with its peak and wall time. */
function runMeasured(cli: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ peak: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, peakRss(child.pid!))), 20);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sampler);
      if (code === 0) resolve({ peak, ms: Date.now() - started });
      else reject(new Error(`cp ${args.join(' ')} exited with ${code}: ${output}`));
    });
  });
}

async function round(variant: Variant, dir: string, big: string, expected: string): Promise<Record<string, number | string>> {
  const cli = path.join(variant.dist, 'cli', 'main.js');
  if (!existsSync(cli) || !existsSync(path.join(variant.dist, '..', 'package.json'))) {
    throw new Error(`${variant.name}: ${variant.dist} needs cli/main.js and a package.json beside it`);
  }
  const own = await mkdtemp(path.join(dir, `${variant.name}-`));
  const tokenFile = path.join(own, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const env = { XDG_STATE_HOME: own, XDG_CONFIG_HOME: own, EXECRELAY_LOG_LEVEL: 'warn' };
  const agentKeyFile = path.join(own, 'agent.key');
  const keygen = await startProcess([cli, 'keygen', '--out', agentKeyFile], env);
  const agentKey = keygen.firstLine.trim();
  const clientKey = path.join(own, 'client.key');
  await (await startProcess([cli, 'keygen', '--out', clientKey], env)).stop();
  const relay = await startProcess([cli, 'relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile], env);
  const agent = await startProcess(
    [cli, 'agent', '--relay', relay.firstLine, '--environment-id', 'cpmem', '--key', agentKeyFile, '--token-file', tokenFile, '--allow-any-client'],
    env,
  );
  const remoteDir = path.join(own, 'remote');
  await mkdir(remoteDir);
  const connection = ['--relay', relay.firstLine, '--env', 'cpmem', '--agent-key', agentKey, '--token-file', tokenFile, '--key', clientKey];
  try {
    const up = await runMeasured(cli, ['cp', ...connection, big, `:${remoteDir}/`], env);
    const agentAfterUp = peakRss(agent.child.pid!);
    const back = path.join(own, 'back.bin');
    const down = await runMeasured(cli, ['cp', ...connection, `:${path.join(remoteDir, path.basename(big))}`, back], env);
    const agentAfterDown = peakRss(agent.child.pid!);
    const intact = (await sha256(path.join(remoteDir, path.basename(big)))) === expected && (await sha256(back)) === expected;
    return {
      variant: variant.name,
      upSeconds: +(up.ms / 1000).toFixed(1),
      upClientMiB: +(up.peak / MiB).toFixed(0),
      agentAfterUpMiB: +(agentAfterUp / MiB).toFixed(0),
      downSeconds: +(down.ms / 1000).toFixed(1),
      downClientMiB: +(down.peak / MiB).toFixed(0),
      agentAfterDownMiB: +(agentAfterDown / MiB).toFixed(0),
      sha256: intact ? 'equal' : 'DIFFERENT',
    };
  } finally {
    await agent.stop();
    await relay.stop();
    await rm(own, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { mib, rounds, variants } = parseArgs(process.argv.slice(2));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-cp-memory-'));
  try {
    const big = path.join(dir, 'big.bin');
    const handle = await open(big, 'w');
    for (let written = 0; written < mib * MiB; written += 16 * MiB) await handle.write(randomBytes(Math.min(16 * MiB, mib * MiB - written)));
    await handle.close();
    const expected = await sha256(big);
    for (let r = 0; r < rounds; r++) {
      const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
      for (const variant of order) console.log(JSON.stringify({ round: r + 1, mib, ...(await round(variant, dir, big, expected)) }));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
