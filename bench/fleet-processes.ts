/**
 * The processes of a relay fleet for bench/fleet.bench.ts: a real `nats-server` started with the
 * checked-in `deploy/fleet/nats-server.conf`, relays of the built CLI joined with `--nats`, agents
 * registered with them, and a reader for the relays' `/metrics`. (test/support/fleet-harness.ts
 * does much the same for the tests; the two are still separate.)
 *
 * Every process started here is remembered until it is stopped: `stopAll()` stops what is left,
 * and an `exit` hook SIGKILLs anything still running if the bench process ends without it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCli, stopChild } from './cli-process.js';
import { freePort, waitForPort } from '../test/support/loopback-port.js';
import { parseExposition, type Sample } from '../test/support/prometheus-exposition.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NATS_CONFIG = path.join(REPO, 'deploy', 'fleet', 'nats-server.conf');


/** Children not stopped yet (SIGKILLed on exit if the bench ends without stopping them). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
  }
}

/** Stops every process this module started that is still running (whatever else failed). */
export async function stopAllStarted(): Promise<void> {
  await Promise.all([...live].map(stopChild));
}

/** True when `nats-server` can be run here. */
export function natsServerInstalled(): Promise<string | null> {
  return new Promise((resolve) => {
    const child = spawn('nats-server', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', () => resolve(null));
    child.once('exit', (code) => resolve(code === 0 ? out.trim() : null));
  });
}

export interface NatsProcess {
  readonly pid: number;
  /** What relays pass to `--nats` (with the relay account's credentials). */
  readonly url: string;
  stop(): Promise<void>;
}

/** `nats-server -c deploy/fleet/nats-server.conf` on a free loopback port, its JetStream store in a temp dir. */
export async function startNats(): Promise<NatsProcess> {
  const port = await freePort();
  const storeDir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-nats-'));
  // Letters first: nats-server parses an environment variable's value as a config value, so a
  // password that reads as a number (`12345678`, `4e8abc`, `10MB`) fails to load the config.
  const password = `bench-${randomBytes(12).toString('hex')}`;
  const child = spawn('nats-server', ['-c', NATS_CONFIG], {
    env: { ...process.env, NATS_HOST: '127.0.0.1', NATS_PORT: String(port), NATS_STORE_DIR: storeDir, NATS_RELAY_USER: 'relay', NATS_RELAY_PASSWORD: password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-10_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = async () => {
    await stopChild(child);
    await rm(storeDir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, 10_000, () => output, child);
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid: child.pid!, url: `nats://relay:${password}@127.0.0.1:${port}`, stop };
}

/** A started CLI process: its first stdout line, its pid and how to stop it. */
interface CliProcess {
  firstLine: string;
  pid: number;
  stop(): Promise<void>;
}

/** The built CLI (`startCli`), remembered from the moment it is spawned (see `stopAllStarted`). */
async function startTracked(args: string[]): Promise<CliProcess> {
  const started = await startCli(args, {}, track);
  return { firstLine: started.firstLine.trim(), pid: started.child.pid!, stop: started.stop };
}

export interface BenchRelay {
  readonly url: string;
  readonly pid: number;
  /** The fleet instance id, or undefined for a relay without `--nats`. */
  readonly instanceId: string | undefined;
  stop(): Promise<void>;
}

/** `execrelay relay` on a free loopback port; with `nats`, a fleet member named `instanceId`. */
export async function startRelay(tokenFile: string, fleet?: { natsUrl: string; instanceId: string }): Promise<BenchRelay> {
  const args = ['relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile];
  if (fleet) args.push('--nats', fleet.natsUrl, '--instance-id', fleet.instanceId);
  const relay = await startTracked(args);
  return { url: relay.firstLine, pid: relay.pid, instanceId: fleet?.instanceId, stop: relay.stop };
}

export interface BenchAgent {
  readonly environmentId: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** `execrelay agent --relay URL --environment-id ID` (resolves once it registered). */
export async function startAgent(relay: BenchRelay, environmentId: string, keyFile: string, tokenFile: string): Promise<BenchAgent> {
  const agent = await startTracked(['agent', '--relay', relay.url, '--environment-id', environmentId, '--key', keyFile, '--token-file', tokenFile, '--allow-any-client']);
  return { environmentId, pid: agent.pid, stop: agent.stop };
}

/** Every sample of a relay's `/metrics`. */
export async function scrapeMetrics(relay: BenchRelay): Promise<Sample[]> {
  const base = relay.url.replace(/^ws/, 'http');
  const response = await fetch(`${base}/metrics`);
  if (!response.ok) throw new Error(`${base}/metrics answered ${response.status}`);
  return parseExposition(await response.text());
}

/** Machine-wide CPU ticks from /proc/stat: busy and total (for the share of both cores in use). */
export async function machineTicks(): Promise<{ busy: number; total: number }> {
  const { readFile } = await import('node:fs/promises');
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}
