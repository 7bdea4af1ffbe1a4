/**
 * A relay fleet on loopback for tests and benchmarks: a real `nats-server` and `haproxy` started
 * with the checked-in configs of `deploy/fleet/` (the ones docs/fleet.md tells operators to use),
 * and relay processes of the built CLI joined through `--nats`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { freePort, waitForPort } from './loopback-port.js';
import { parseExposition, sumOf } from './prometheus-workload.js';
import { eventually, spawnRelay, type RelayProcess } from './resilience-helpers.js';

export { freePort };

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const NATS_CONFIG = path.join(REPO, 'deploy/fleet/nats-server.conf');
export const HAPROXY_CONFIG = path.join(REPO, 'deploy/fleet/haproxy.cfg');
const NATS_USER = 'relay';
const NATS_PASSWORD = 'fleet-test-password';

/** True when the system packages the fleet tests drive are installed (`.ci/run` installs them). */
export function fleetToolsInstalled(): boolean {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function startDaemon(command: string, args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<void> } {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, output: () => output, exited };
}

export interface NatsServer {
  readonly port: number;
  /** What relays pass to `--nats` (with the relay account's credentials). */
  readonly url: string;
  /** Stops the server (SIGKILL: nothing is flushed, as in a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port (the registry, memory-only, is empty again). */
  restart(): Promise<void>;
  output(): string;
}

/** `nats-server -c deploy/fleet/nats-server.conf` on a free loopback port. */
export async function startNats(): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-nats-'));
  const env = { NATS_HOST: '127.0.0.1', NATS_PORT: String(port), NATS_STORE_DIR: storeDir, NATS_RELAY_USER: NATS_USER, NATS_RELAY_PASSWORD: NATS_PASSWORD };
  let daemon = startDaemon('nats-server', ['-c', NATS_CONFIG], env);
  const up = () => waitForPort(port, 10_000, () => daemon.output());
  await up();
  return {
    port,
    url: `nats://${NATS_USER}:${NATS_PASSWORD}@127.0.0.1:${port}`,
    async kill() {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
      await daemon.exited;
    },
    async restart() {
      daemon = startDaemon('nats-server', ['-c', NATS_CONFIG], env);
      await up();
    },
    output: () => daemon.output(),
  };
}

export const NATS_CLUSTER_CONFIG = path.join(REPO, 'deploy/fleet/nats-cluster.conf');

export interface NatsClusterNode {
  readonly name: string;
  readonly port: number;
  kill(): Promise<void>;
}

export interface NatsCluster {
  /** What relays pass to `--nats`: every server, with the relay account's credentials. */
  readonly url: string;
  readonly nodes: readonly NatsClusterNode[];
}

/** Three `nats-server -c deploy/fleet/nats-cluster.conf` forming one cluster on loopback. */
export async function startNatsCluster(): Promise<NatsCluster> {
  const ports = await Promise.all([0, 1, 2].map(() => freePort()));
  const clusterPorts = await Promise.all([0, 1, 2].map(() => freePort()));
  const routes = Object.fromEntries(clusterPorts.map((p, i) => [`NATS_ROUTE_${i + 1}`, `nats-route://127.0.0.1:${p}`]));
  const nodes = await Promise.all(
    ports.map(async (port, i) => {
      const name = `n${i + 1}`;
      const env = {
        NATS_HOST: '127.0.0.1',
        NATS_PORT: String(port),
        NATS_CLUSTER_PORT: String(clusterPorts[i]),
        NATS_SERVER_NAME: name,
        NATS_STORE_DIR: mkdtempSync(path.join(os.tmpdir(), `execrelay-nats-${name}-`)),
        NATS_RELAY_USER: NATS_USER,
        NATS_RELAY_PASSWORD: NATS_PASSWORD,
        ...routes,
      };
      const daemon = startDaemon('nats-server', ['-c', NATS_CLUSTER_CONFIG], env);
      await waitForPort(port, 10_000, () => daemon.output());
      return {
        name,
        port,
        async kill() {
          if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
          await daemon.exited;
        },
      };
    }),
  );
  const [first, ...rest] = ports;
  const url = [`nats://${NATS_USER}:${NATS_PASSWORD}@127.0.0.1:${first}`, ...rest.map((p) => `nats://127.0.0.1:${p}`)].join(',');
  await jetStreamClusterReady(ports);
  return { url, nodes };
}

/**
 * Waits until the three servers have formed their JetStream cluster (routes up, a meta leader
 * elected): `$JS.API.INFO` answers without an error on every server. A relay started earlier
 * waits for it itself, but on a loaded machine the election can take longer than a test wants
 * to spend inside a relay's start.
 */
async function jetStreamClusterReady(ports: readonly number[]): Promise<void> {
  const giveUpAt = Date.now() + 60_000;
  let last = 'no answer yet';
  for (const port of ports) {
    const nc = await connect({ servers: [`127.0.0.1:${port}`], user: NATS_USER, pass: NATS_PASSWORD, noRandomize: true });
    try {
      for (;;) {
        try {
          const reply = JSON.parse(new TextDecoder().decode((await nc.request('$JS.API.INFO', '', { timeout: 2_000 })).data)) as { error?: { description?: string } };
          if (!reply.error) break;
          last = reply.error.description ?? JSON.stringify(reply.error);
        } catch (error) {
          last = (error as Error).message;
        }
        if (Date.now() > giveUpAt) throw new Error(`the NATS cluster formed no JetStream meta leader in 60 s (server on ${port}: ${last})`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    } finally {
      await nc.close();
    }
  }
}

export interface FleetRelay extends RelayProcess {
  readonly instanceId: string;
}

/**
 * `execrelay relay --nats URL --instance-id ID` (a short registry TTL so tests see expiry quickly).
 * Its start may wait up to 30 s for the registry (the relay's own bound), so the harness waits
 * longer than that, and keeps its info log so that a slow start says which step it was in.
 */
export async function spawnFleetRelay(nats: { readonly url: string }, instanceId: string, extraArgs: string[] = []): Promise<FleetRelay> {
  const relay = await spawnRelay(0, ['--nats', nats.url, '--instance-id', instanceId, '--registry-ttl-ms', '3000', ...extraArgs], { EXECRELAY_LOG_LEVEL: 'info' }, 45_000);
  return Object.assign(relay, { instanceId });
}

export interface LoadBalancer {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
  output(): string;
}

/** `haproxy -f deploy/fleet/haproxy.cfg` in front of three relays. */
export async function startLoadBalancer(relays: readonly RelayProcess[]): Promise<LoadBalancer> {
  if (relays.length !== 3) throw new Error('deploy/fleet/haproxy.cfg names three relays');
  const port = await freePort();
  const env: Record<string, string> = { EXECRELAY_LB_BIND: `127.0.0.1:${port}` };
  relays.forEach((relay, i) => (env[`EXECRELAY_RELAY${i + 1}`] = `127.0.0.1:${relay.port}`));
  const daemon = startDaemon('haproxy', ['-f', HAPROXY_CONFIG, '-db'], env);
  await waitForPort(port, 10_000, () => daemon.output());
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    async stop() {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
      await daemon.exited;
    },
    output: () => daemon.output(),
  };
}

/** One gauge or counter value from a relay's `/metrics` (summed over its label sets). */
export async function relayMetric(relay: RelayProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${relay.port}/metrics`);
  return sumOf(parseExposition(await response.text()), name, labels);
}

/** The relays that hold a live executor registration right now. */
export async function holdersOf(relays: readonly RelayProcess[]): Promise<RelayProcess[]> {
  const alive = relays.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
  const counts = await Promise.all(alive.map((r) => relayMetric(r, 'execrelay_relay_executors_registered').catch(() => 0)));
  return alive.filter((_, i) => counts[i]! > 0);
}

/** Resolves once a relay's metric satisfies `accept`; rejects (naming the last value) after `timeoutMs`. */
export async function metricEventually(
  relay: RelayProcess,
  name: string,
  accept: (value: number) => boolean,
  options: { labels?: Record<string, string>; timeoutMs?: number } = {},
): Promise<number> {
  let last = NaN;
  try {
    await eventually(async () => accept((last = await relayMetric(relay, name, options.labels))), options.timeoutMs ?? 5000, `${name} on ${relay.url}`);
  } catch (error) {
    throw new Error(`${(error as Error).message} (last value ${last})`);
  }
  return last;
}
