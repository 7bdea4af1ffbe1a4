/**
 * Soak: many concurrent streams over many executors through one relay process, for a bounded
 * time, under random link faults (cuts, half-open links, stalls, latency) on every executor and
 * client link. Every command's output is checked against its expected checksum, so a lost,
 * duplicated or reordered byte fails the run. The relay runs as its own process; its RSS is
 * sampled from /proc/PID/status.
 *
 *   node dist/bench/soak.js                 # 40 streams over 5 executors for 10 s
 *   SOAK_FULL=1 node dist/bench/soak.js     # 200 streams over 20 executors for 60 s
 *   SOAK_STREAMS=… SOAK_EXECUTORS=… SOAK_SECONDS=… override either.
 *
 * Loopback only; every loop is bounded by the run's deadline plus a drain timeout.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExecutorAgent } from '../executor-agent/executor-agent.js';
import { RelayRegistration } from '../executor-agent/relay-registration.js';
import { ExecClient } from '../src/client/exec-client.js';
import { generateIdentity, type Identity } from '../src/noise/identity.js';
import { createLogger } from '../src/logging/logger.js';
import { RelayCredentials } from '../relay/relay-credentials.js';
import { RelayServer } from '../relay/relay-server.js';
import { NO_RELAY_EVENTS } from '../relay/relay-events.js';
import { startFaultProxy, type FaultProxy } from '../test/support/fault-proxy.js';

export interface SoakOptions {
  streams: number;
  executors: number;
  durationMs: number;
  /** A random fault every this many ms (on average). */
  faultEveryMs: number;
  /** Lines per command, and how many 8-hex-digit words each line carries. */
  linesPerCommand: number;
  wordsPerLine: number;
  /** Lines per burst, and the pause between bursts (s): a command spans several faults. */
  burstLines: number;
  burstPauseSeconds: number;
  seed: number;
  /** Progress lines on stderr. */
  verbose: boolean;
  /**
   * 'process' (default): the relay is the built CLI in its own process and its RSS is sampled.
   * 'in-process': a RelayServer here, whose resets and drops are counted by reason (for diagnosis).
   */
  relayMode?: 'process' | 'in-process';
}

export const SMALL_SOAK: SoakOptions = {
  streams: 40,
  executors: 5,
  durationMs: 10_000,
  faultEveryMs: 700,
  linesPerCommand: 1200,
  wordsPerLine: 4,
  burstLines: 100,
  burstPauseSeconds: 0.1,
  seed: 6,
  verbose: false,
};

export const FULL_SOAK: SoakOptions = { ...SMALL_SOAK, streams: 200, executors: 20, durationMs: 60_000, faultEveryMs: 500 };

export interface SoakReport {
  options: SoakOptions;
  elapsedMs: number;
  commandsCompleted: number;
  commandsFailed: number;
  /** Streams (clients) that completed at least one command. */
  streamsActive: number;
  bytesVerified: number;
  throughputMiBps: number;
  faults: Record<string, number>;
  clientReconnects: number;
  agentRegistrations: number;
  relayRssKiB: { start: number; max: number; end: number };
  /** In-process relay only: resets and dropped frames by reason, with the time of the first of each. */
  relayEvents?: Record<string, { count: number; firstAtMs: number }>;
  failures: string[];
}

const TOKEN = 'soak-token-0123456789abcdef';

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The command a stream runs and the exact output it must produce. */
function command(offset: number, options: SoakOptions): { argv: string[]; expected: Buffer } {
  const { linesPerCommand: n, wordsPerLine: k, burstLines: b, burstPauseSeconds: d } = options;
  const script = `$|=1; for $i (${offset + 1}..${offset + n}) { printf("%d %s\\n", $i, sprintf("%08x", ($i*2654435761) % 4294967296) x ${k}); select(undef,undef,undef,${d}) if $i % ${b} == 0 }`;
  let expected = '';
  for (let i = offset + 1; i <= offset + n; i++) {
    const word = Number((BigInt(i) * 2654435761n) % 4294967296n)
      .toString(16)
      .padStart(8, '0');
    expected += `${i} ${word.repeat(k)}\n`;
  }
  return { argv: ['perl', '-e', script], expected: Buffer.from(expected) };
}

function findCli(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'dist', 'cli', 'main.js');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('dist/cli/main.js not found: run "npm run build" first');
}

async function rssKiB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

async function spawnRelay(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-soak-'));
  const tokenFile = path.join(dir, 'tokens');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  // Its own bindings file: agents hosts of earlier runs bound the same environment ids to other keys.
  const child = spawn(process.execPath, [findCli(), 'relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--bindings-file', path.join(dir, 'bindings')], {
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-10_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`relay did not start: ${stderr}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      if (buffered.includes('\n')) {
        clearTimeout(timer);
        resolve(buffered.split('\n')[0]!.trim());
      }
    });
    child.once('exit', (code) => reject(new Error(`relay exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const AGENT_LIVENESS = { pingIntervalMs: 500, pongTimeoutMs: 3000 };
const AGENT_BACKOFF = { initialMs: 100, maxMs: 1000 };

/**
 * `node soak.js --agents-host RELAY_URL COUNT`: runs COUNT agents registered as soak-0… through
 * RELAY_URL, prints one JSON line `{agents:[{environmentId, publicIdentity}]}` once all are
 * registered, then a `{registrations:N}` line whenever an agent (re-)registers.
 */
async function agentsHostMain(relayUrl: string, count: number): Promise<void> {
  const agents: Array<{ environmentId: string; publicIdentity: string }> = [];
  let registrations = 0;
  const stops: Array<() => void> = [];
  for (let i = 0; i < count; i++) {
    const identity = await generateIdentity();
    const agent = new ExecutorAgent({}, createLogger('soak-agent', 'silent'));
    const registration = new RelayRegistration(agent, {
      relayUrl,
      environmentId: `soak-${i}`,
      token: TOKEN,
      identity,
      // The soak's clients use fresh identities.
      authorizedClients: 'any',
      logger: createLogger('soak-registration', 'silent'),
      backoff: AGENT_BACKOFF,
      ...AGENT_LIVENESS,
      onEvent: (event) => {
        if (event.type !== 'registered') return;
        registrations++;
        if (agents.length === count) process.stdout.write(`${JSON.stringify({ registrations })}\n`);
      },
    });
    await registration.start();
    stops.push(() => {
      registration.stop();
      agent.shutdown();
    });
    agents.push({ environmentId: `soak-${i}`, publicIdentity: identity.publicIdentity });
  }
  process.stdout.write(`${JSON.stringify({ agents, registrations })}\n`);
  const stop = () => {
    for (const s of stops) s();
    setTimeout(() => process.exit(0), 200);
  };
  process.once('SIGTERM', stop);
  process.stdin.on('end', stop); // the soak went away
  process.stdin.resume();
}

async function spawnAgentsHost(
  relayUrl: string,
  count: number,
  onRegistrations: (count: number) => void,
): Promise<{ agents: Array<{ environmentId: string; identity: Pick<Identity, 'publicIdentity'> }>; stop(): Promise<void> }> {
  const script = path.join(path.dirname(path.dirname(findCli())), 'bench', 'soak.js');
  const child = spawn(process.execPath, [script, '--agents-host', relayUrl, String(count)], {
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'silent' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-10_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const agents = await new Promise<Array<{ environmentId: string; publicIdentity: string }>>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`agents host did not start: ${stderr}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = JSON.parse(buffered.slice(0, newline)) as { agents?: Array<{ environmentId: string; publicIdentity: string }>; registrations: number };
        buffered = buffered.slice(newline + 1);
        onRegistrations(line.registrations);
        if (line.agents) {
          clearTimeout(timer);
          resolve(line.agents);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`agents host exited with ${code}: ${stderr}`)));
  });
  return {
    agents: agents.map((a) => ({ environmentId: a.environmentId, identity: { publicIdentity: a.publicIdentity } })),
    async stop() {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      await exited;
    },
  };
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = (message: string) => {
    if (options.verbose) process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
  };
  const random = prng(options.seed);
  const t0 = Date.now();
  const relayEvents: Record<string, { count: number; firstAtMs: number }> = {};
  const note = (key: string) => {
    const entry = (relayEvents[key] ??= { count: 0, firstAtMs: Date.now() - t0 });
    entry.count++;
  };
  const relay =
    options.relayMode === 'in-process'
      ? await (async () => {
          const server = new RelayServer({
            credentials: RelayCredentials.fromBareTokens([TOKEN]),
            logger: createLogger('soak-relay', 'silent'),
            events: { ...NO_RELAY_EVENTS, reset: (reason) => note(`reset:${reason}`), frameDropped: (reason) => note(`dropped:${reason}`), heartbeatMissed: () => note('heartbeat-missed') },
          });
          const url = await server.listen('127.0.0.1', 0);
          return { url, pid: process.pid, stop: () => server.close() };
        })()
      : await spawnRelay();
  const relayPort = Number(new URL(relay.url).port);
  const cleanup: Array<() => unknown> = [() => relay.stop()];
  const failures: string[] = [];
  const faults: Record<string, number> = {};
  let clientReconnects = 0;
  let agentRegistrations = 0;
  const rss = { start: await rssKiB(relay.pid), max: 0, end: 0 };
  const rssTimer = setInterval(() => {
    void rssKiB(relay.pid).then((kib) => (rss.max = Math.max(rss.max, kib)));
  }, 500);
  try {
    // One proxy in front of the relay for all executor links, one for all client links.
    const executorLinks: FaultProxy = await startFaultProxy(relayPort);
    const clientLinks: FaultProxy = await startFaultProxy(relayPort);
    cleanup.push(() => executorLinks.close(), () => clientLinks.close());
    const liveness = AGENT_LIVENESS;
    const backoff = AGENT_BACKOFF;

    // Executors: in a process of their own (their process spawns would otherwise stall this
    // process's event loop, where the clients and the fault proxies run).
    const host = await spawnAgentsHost(executorLinks.url, options.executors, (count) => (agentRegistrations = count));
    cleanup.push(() => host.stop());
    const agents = host.agents;
    log(`${options.executors} executors registered (relay ${relay.url}, executor proxy ${executorLinks.port}, client proxy ${clientLinks.port})`);

    // Clients: one stream each, in batches (the relay bounds pending handshakes per executor).
    const clients: ExecClient[] = [];
    const histories: string[][] = Array.from({ length: options.streams }, () => []);
    for (let i = 0; i < options.streams; i += 16) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(16, options.streams - i) }, (_, j) => {
          const agent = agents[(i + j) % agents.length]!;
          return ExecClient.connect({
            relay: clientLinks.url,
            environmentId: agent.environmentId,
            agentKey: agent.identity.publicIdentity,
            token: TOKEN,
            backoff,
            ...liveness,
            onLinkEvent: (event) => {
              if (event.type === 'connected' && event.reconnect) clientReconnects++;
              const history = histories[i + j]!;
              history.push(`${Date.now() - t0}:${event.type}${'reason' in event ? `/${event.reason}` : ''}${'error' in event ? `/${event.error.slice(0, 160)}` : ''}`);
              if (history.length > 12) history.shift();
            },
          });
        }),
      );
      clients.push(...batch);
    }
    cleanup.push(() => clients.forEach((client) => client.close()));
    log(`${clients.length} streams connected; running for ${options.durationMs / 1000} s`);

    const started = Date.now();
    const deadline = started + options.durationMs;
    let bytesVerified = 0;
    let commandsCompleted = 0;
    let commandsFailed = 0;
    const active = new Set<number>();

    // Each stream runs commands back to back until the deadline; each output is checked whole.
    const streamLoops = clients.map(async (client, index) => {
      let offset = index * 1_000_000;
      while (Date.now() < deadline) {
        const { argv, expected } = command(offset, options);
        offset += options.linesPerCommand;
        try {
          const handle = await client.exec(argv, { cwd: os.tmpdir(), env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
          const result = await Promise.race([
            handle.completion,
            sleep(options.durationMs + 120_000).then(() => {
              throw new Error('command did not complete in time');
            }),
          ]);
          const same = createHash('sha256').update(result.stdout).digest('hex') === createHash('sha256').update(expected).digest('hex');
          if (!same || result.exitCode !== 0) {
            commandsFailed++;
            failures.push(`stream ${index}: output mismatch (got ${result.stdout.length} bytes, expected ${expected.length}; exit ${result.exitCode})`);
          } else {
            commandsCompleted++;
            bytesVerified += expected.length;
            active.add(index);
          }
        } catch (error) {
          commandsFailed++;
          failures.push(`stream ${index} at ${Date.now() - t0} ms: ${(error as Error).message} [link: ${histories[index]!.join(' ')}]`);
          return; // this stream's session is gone
        }
      }
    });

    // Faults until the deadline.
    const faultLoop = (async () => {
      const pick = <T>(items: T[]): T | undefined => items[Math.floor(random() * items.length)];
      while (Date.now() < deadline - 1000) {
        await sleep(options.faultEveryMs * (0.5 + random()));
        if (Date.now() >= deadline - 1000) break;
        const roll = random();
        let kind: string;
        if (roll < 0.2) {
          kind = 'executor-cut';
          pick(executorLinks.connections())?.cut();
        } else if (roll < 0.4) {
          kind = 'client-cuts';
          for (const connection of clientLinks.connections()) if (random() < 0.1) connection.cut();
        } else if (roll < 0.5) {
          kind = 'executor-half-open';
          pick(executorLinks.connections())?.halfOpen(pick(['both', 'upstream', 'downstream'] as const)!);
        } else if (roll < 0.6) {
          kind = 'client-half-open';
          for (const connection of clientLinks.connections()) if (random() < 0.05) connection.halfOpen('both');
        } else if (roll < 0.75) {
          kind = 'stall-1s';
          const victims = clientLinks.connections().filter(() => random() < 0.2);
          const executorVictim = pick(executorLinks.connections());
          victims.forEach((v) => v.stall());
          executorVictim?.stall();
          void sleep(1000).then(() => {
            victims.forEach((v) => v.heal());
            executorVictim?.heal();
          });
        } else if (roll < 0.9) {
          kind = 'latency-2s';
          executorLinks.configure({ delayMs: 40 });
          clientLinks.configure({ delayMs: 40 });
          void sleep(2000).then(() => {
            executorLinks.configure({ delayMs: 0 });
            clientLinks.configure({ delayMs: 0 });
          });
        } else {
          kind = 'throttle-2s';
          executorLinks.configure({ bytesPerSecond: 2 * 1024 * 1024 });
          void sleep(2000).then(() => executorLinks.configure({ bytesPerSecond: 0 }));
        }
        faults[kind] = (faults[kind] ?? 0) + 1;
        log(`fault ${kind} at ${Date.now() - t0} ms`);
      }
    })();

    const diag = setInterval(() => {
      if (!options.verbose) return;
      const now = Date.now();
      const describe = (proxy: FaultProxy) => {
        const conns = proxy.connections();
        const silent = conns.filter((c) => now - c.openedAt > 3000 && c.forwarded('downstream') === 0);
        return `${conns.length} conns, ${silent.length} >3s old with nothing back (modes ${silent.map((c) => `${c.modes.upstream}/${c.modes.downstream}:up${c.forwarded('upstream')}`).slice(0, 5).join(',')})`;
      };
      log(`clients: ${describe(clientLinks)}; executors: ${describe(executorLinks)}`);
    }, 2000);
    cleanup.push(() => clearInterval(diag));
    const progress = setInterval(() => log(`${commandsCompleted} commands ok, ${commandsFailed} failed, ${(bytesVerified / 2 ** 20).toFixed(1)} MiB verified, relay RSS max ${(rss.max / 1024).toFixed(0)} MiB`), 5000);
    await faultLoop;
    await Promise.all(streamLoops);
    clearInterval(progress);
    const elapsedMs = Date.now() - started;
    rss.end = await rssKiB(relay.pid);
    rss.max = Math.max(rss.max, rss.end);
    return {
      options,
      elapsedMs,
      commandsCompleted,
      commandsFailed,
      streamsActive: active.size,
      bytesVerified,
      throughputMiBps: Number((bytesVerified / 2 ** 20 / (elapsedMs / 1000)).toFixed(2)),
      faults,
      clientReconnects,
      agentRegistrations,
      relayRssKiB: rss,
      ...(options.relayMode === 'in-process' ? { relayEvents } : {}),
      failures: failures.slice(0, 20),
    };
  } finally {
    clearInterval(rssTimer);
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch {
        /* best effort */
      }
    }
  }
}

/** Options from the environment: SOAK_FULL=1 for the full run, SOAK_* to override. */
export function soakOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): SoakOptions {
  const base = env.SOAK_FULL === '1' ? FULL_SOAK : SMALL_SOAK;
  const num = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback);
  return {
    ...base,
    streams: num('SOAK_STREAMS', base.streams),
    executors: num('SOAK_EXECUTORS', base.executors),
    durationMs: num('SOAK_SECONDS', base.durationMs / 1000) * 1000,
    seed: num('SOAK_SEED', base.seed),
    relayMode: env.SOAK_RELAY === 'in-process' ? 'in-process' : 'process',
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]) && process.argv[2] === '--agents-host') {
  await agentsHostMain(process.argv[3]!, Number(process.argv[4]));
} else if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const report = await runSoak({ ...soakOptionsFromEnv(), verbose: true });
  console.log(JSON.stringify(report, null, 2));
  process.exit(report.commandsFailed === 0 && report.failures.length === 0 ? 0 : 1);
}
