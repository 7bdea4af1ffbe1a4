import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FleetSubject, REGISTRY_BUCKET, RegistryKey, environmentToken, isNewerRegistration, parseClientSubject, parseFleetControlMessage } from '../../relay/fleet-wire.js';
import { parseNatsUrl } from '../../relay/fleet-connection.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { encodeRelayFrame } from '../../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../../src/relay-frame/limits.js';
import { runCli } from '../support/cli.js';
import { generateIdentity, type Identity } from '../../src/noise/identity.js';
import { executorProofHeaders } from '../../src/relay-control/executor-proof.js';
import { EXECUTOR_CONNECT_PATH } from '../../src/relay-control/relay-endpoints.js';
import { connectRelaySocket, RelayRefusedError } from '../../src/relay-link/relay-socket.js';
import {
  fleetToolsInstalled,
  freePort,
  metricEventually,
  relayMetric,
  spawnFleetRelay,
  startNats,
  type FleetRelay,
  type NatsServer,
} from '../support/fleet-harness.js';
import { TEST_TOKEN } from '../support/relay-harness.js';
import { cwd, env, eventually, spawnRelay, startObservedAgent, waitFor } from '../support/resilience-helpers.js';

describe('fleet wire and options', () => {
  it('environment ids become one subject token, whatever their dots', () => {
    expect(environmentToken('a.b-c_d')).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(environmentToken('a.b')).not.toBe(environmentToken('a-b'));
    expect(FleetSubject.toExecutor(environmentToken('x.y'))).toBe(`execrelay.env.${environmentToken('x.y')}.up`);
  });

  it('the newest registration wins: later registeredAt, then the greater instance id', () => {
    expect(isNewerRegistration({ registeredAt: 2, instance: 'a' }, { registeredAt: 1, instance: 'b' })).toBe(true);
    expect(isNewerRegistration({ registeredAt: 1, instance: 'b' }, { registeredAt: 2, instance: 'a' })).toBe(false);
    expect(isNewerRegistration({ registeredAt: 5, instance: 'b' }, { registeredAt: 5, instance: 'a' })).toBe(true);
    expect(isNewerRegistration({ registeredAt: 5, instance: 'a' }, { registeredAt: 5, instance: 'a' })).toBe(false);
  });

  it('client subjects parse only in their exact shape', () => {
    expect(parseClientSubject('execrelay.client.relay-1.AbC_9.Cr3d_-x.c1')).toEqual({ instanceId: 'relay-1', boot: 'AbC_9', credentialId: 'Cr3d_-x', connection: 'c1' });
    for (const bad of ['execrelay.client.relay-1.boot.c1', 'execrelay.client.a.b.c.d.e', 'other.client.a.b.c.d', 'execrelay.env.a.b.c.d', 'execrelay.client.a*.b.c.d', '']) {
      expect(parseClientSubject(bad), bad).toBeNull();
    }
  });

  it('control messages are validated, anything else is null', () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value));
    expect(parseFleetControlMessage(encode({ type: 'takeover', instance: 'relay-1', registeredAt: 3 }))).toEqual({ type: 'takeover', instance: 'relay-1', registeredAt: 3 });
    expect(parseFleetControlMessage(encode({ type: 'claim', client: 'execrelay.client.r.b.k.c1', streamId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' }))).not.toBeNull();
    for (const bad of [
      { type: 'takeover', instance: 'relay 1', registeredAt: 3 },
      { type: 'takeover', instance: 'r', registeredAt: 0 },
      { type: 'takeover', instance: 'r', revision: 3 },
      { type: 'claim', client: 'execrelay.client.r.b.k.c1', streamId: 'not-a-uuid' },
      { type: 'claim', client: 'somewhere.else', streamId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' },
      { type: 'detach' },
      { type: 'explode' },
    ]) {
      expect(parseFleetControlMessage(encode(bad)), JSON.stringify(bad)).toBeNull();
    }
    expect(parseFleetControlMessage(Buffer.from('{not json'))).toBeNull();
  });

  it('--nats URLs: servers, user and password, or a token', () => {
    expect(parseNatsUrl('nats://127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'] });
    expect(parseNatsUrl('nats://relay:p%40ss@n1:4222, nats://n2:4222')).toEqual({ servers: ['nats://n1:4222', 'nats://n2:4222'], user: 'relay', pass: 'p@ss' });
    expect(parseNatsUrl('tls://s3cret@n1:4222')).toEqual({ servers: ['tls://n1:4222'], token: 's3cret' });
    expect(parseNatsUrl('n1:4222')).toEqual({ servers: ['nats://n1:4222'] });
    expect(() => parseNatsUrl('http://n1:4222')).toThrow(/expected nats:\/\/HOST:PORT/);
    expect(() => parseNatsUrl(' , ')).toThrow(/at least one/);
  });

  it('the relay command refuses bad fleet options with a clear message', async () => {
    const tokens = path.join(mkdtempSync(path.join(os.tmpdir(), 'execrelay-fleet-cli-')), 'tokens');
    writeFileSync(tokens, `${TEST_TOKEN}\n`, { mode: 0o600 });
    const base = ['relay', '--listen', '127.0.0.1:0', '--token-file', tokens];
    const badId = await runCli([...base, '--nats', 'nats://127.0.0.1:1', '--instance-id', 'no spaces']);
    expect(badId.code).not.toBe(0);
    expect(badId.stderr).toMatch(/invalid --instance-id "no spaces"/);
    const idAlone = await runCli([...base, '--instance-id', 'relay-1']);
    expect(idAlone.code).not.toBe(0);
    expect(idAlone.stderr).toMatch(/--instance-id names a fleet member; give --nats too/);
    const badUrl = await runCli([...base, '--nats', 'http://127.0.0.1:4222']);
    expect(badUrl.code).not.toBe(0);
    expect(badUrl.stderr).toMatch(/invalid --nats URL/);
    const shortTtl = await runCli([...base, '--nats', 'nats://127.0.0.1:1', '--registry-ttl-ms', '10']);
    expect(shortTtl.code).not.toBe(0);
    expect(shortTtl.stderr).toMatch(/--registry-ttl-ms must be at least 1000/);
  }, 60_000);
});

const toolsMissing = !fleetToolsInstalled();
describe.skipIf(toolsMissing && !process.env.CI)('a relay fleet when NATS misbehaves', () => {
  beforeAll(() => {
    if (toolsMissing) throw new Error('CI is set but nats-server/haproxy are not installed; install with: apt-get install -y nats-server haproxy');
  });
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  const fastLink = { backoff: { initialMs: 100, maxMs: 1000 }, pingIntervalMs: 500, pongTimeoutMs: 3000 };

  /** A NATS server and relay instances joined to it (stopped after the test). */
  async function fleet(instanceIds: string[], relayArgs: string[] = []): Promise<{ server: NatsServer; relays: FleetRelay[] }> {
    const server = await startNats();
    cleanup.push(() => server.kill());
    const relays: FleetRelay[] = [];
    for (const id of instanceIds) {
      const relay = await spawnFleetRelay(server, id, relayArgs);
      cleanup.push(() => relay.kill('SIGKILL'));
      relays.push(relay);
    }
    return { server, relays };
  }

  async function agentOn(url: string, environmentId: string) {
    const agent = await startObservedAgent(url, environmentId, fastLink);
    cleanup.push(() => agent.stop());
    return agent;
  }

  /** A raw executor registration with a valid proof of `identity`: `registered`, or the refusal's status and reason. */
  async function rawExecutorRefusal(relayUrl: string, environmentId: string, identity: Identity): Promise<string> {
    const proof = await executorProofHeaders(identity, environmentId, relayUrl);
    return connectRelaySocket(`${relayUrl}${EXECUTOR_CONNECT_PATH}?environmentId=${environmentId}`, TEST_TOKEN, 5000, proof).then(
      (socket) => (socket.terminate(), 'registered'),
      (error: unknown) => (error instanceof RelayRefusedError ? `${error.status} ${error.reason}` : String(error)),
    );
  }

  /** `ExecClient.connect` through a relay, giving up at once on a refusal. */
  const connectThrough = (relayUrl: string, agent: { environmentId: string; identity: { publicIdentity: string } }) =>
    ExecClient.connect({ relay: relayUrl, environmentId: agent.environmentId, agentKey: agent.identity.publicIdentity, token: TEST_TOKEN, reconnectGiveUpMs: 0 });

  it('NATS without JetStream: the relay exits with a message saying what to change', async () => {
    const port = await freePort();
    const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    cleanup.push(() => nats.kill('SIGKILL'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const error = await spawnRelay(0, ['--nats', `nats://127.0.0.1:${port}`, '--instance-id', 'relay-1']).then(
      (relay) => (relay.kill('SIGKILL'), null),
      (e: Error) => e,
    );
    expect(error?.message).toMatch(/NATS has no JetStream.*start nats-server with -js/s);
  }, 30_000);

  it('NATS not up yet: the relay waits for it, not ready until it joined, then serves', async () => {
    const port = await freePort();
    const tokens = path.join(mkdtempSync(path.join(os.tmpdir(), 'execrelay-fleet-wait-')), 'tokens');
    writeFileSync(tokens, `${TEST_TOKEN}\n`, { mode: 0o600 });
    const relayPort = await freePort();
    const child = spawn(process.execPath, [path.resolve('dist/cli/main.js'), 'relay', '--listen', `127.0.0.1:${relayPort}`, '--token-file', tokens, '--nats', `nats://127.0.0.1:${port}`], {
      env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanup.push(() => child.kill('SIGKILL'));
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const readyz = () =>
      fetch(`http://127.0.0.1:${relayPort}/readyz`).then(
        (r) => r.status,
        () => 0,
      );
    expect(await eventually(readyz, 5000, 'the relay to listen')).toBe(503); // listening, but not in the fleet yet
    expect(stdout).toBe('');
    const nats = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', mkdtempSync(path.join(os.tmpdir(), 'execrelay-nats-late-'))], { stdio: 'ignore' });
    cleanup.push(() => nats.kill('SIGKILL'));
    await waitFor(() => stdout.includes('\n'), 15_000, 'the relay to print its URL once it joined');
    expect(stdout.trim()).toBe(`ws://127.0.0.1:${relayPort}`);
    expect(await readyz()).toBe(200);
  }, 30_000);

  it('NATS down: local routing goes on, a client for an environment held elsewhere is told 503 fleet_unavailable, and all is back after NATS', async () => {
    const { server, relays: [a, b] } = await fleet(['relay-a', 'relay-b']);
    const local = await agentOn(a!.url, 'fleet-local');
    const remote = await agentOn(b!.url, 'fleet-remote');
    const connectTo = (agent: typeof local) => connectThrough(a!.url, agent);

    await server.kill();
    await metricEventually(a!, 'execrelay_relay_fleet_connected', (v) => v === 0);
    const sameInstance = await connectTo(local);
    cleanup.push(() => sameInstance.close());
    expect((await (await sameInstance.exec(['echo', 'local'], { cwd, env })).completion).stdout.toString()).toBe('local\n');
    await expect(connectTo(remote)).rejects.toThrow(/503 fleet_unavailable/);
    expect((await fetch(`http://127.0.0.1:${a!.port}/readyz`)).status).toBe(200);

    await server.restart();
    const across = await eventually(() => connectTo(remote).catch(() => null), 15_000, 'a client through A for the environment on B', 100);
    cleanup.push(() => across.close());
    expect((await (await across.exec(['echo', 'across'], { cwd, env })).completion).stdout.toString()).toBe('across\n');
    expect(await relayMetric(a!, 'execrelay_relay_fleet_connected')).toBe(1);
  }, 60_000);

  it('an instance that dies for good: its environments are refused at once and leave the registry within the TTL; its clients\' streams get the client grace', async () => {
    const { server, relays } = await fleet(['relay-a', 'relay-b', 'relay-c'], ['--client-grace-ms', '1000']);
    const [a, b, c] = relays as [FleetRelay, FleetRelay, FleetRelay];
    // The executor of "fleet-on-a" dials A only; the one of "fleet-on-b" dials B only.
    const onA = await agentOn(a.url, 'fleet-on-a');
    const onB = await agentOn(b.url, 'fleet-on-b');
    const viaA = await connectThrough(a.url, onB);
    cleanup.push(() => viaA.close());
    const running = await viaA.exec(['sleep', '30'], { cwd, env });
    running.completion.catch(() => undefined);
    expect(await relayMetric(b, 'execrelay_relay_fleet_remote_clients')).toBe(1);
    expect(await relayMetric(b, 'execrelay_relay_streams_open')).toBe(1);

    await a.kill('SIGKILL');
    const diedAt = Date.now();
    // Another instance refuses clients for A's environment at once: its registry entry lives on
    // until the TTL (3 s here), but NATS knows nobody subscribes to the environment any more.
    const refusedAt = await eventually(
      () =>
        connectThrough(c.url, onA).then(
          (client) => (client.close(), 0),
          (error: Error) => (/404 executor_unavailable/.test(error.message) ? Date.now() : 0),
        ),
      10_000,
      'a refusal for the environment of the dead instance',
      100,
    );
    expect(refusedAt - diedAt).toBeLessThan(2000);
    const { servers, user, pass } = parseNatsUrl(server.url);
    const observer = await connect({ servers, user: user!, pass: pass! });
    cleanup.push(() => observer.close());
    const registry = await new Kvm(observer).open(REGISTRY_BUCKET);
    const key = RegistryKey.environment(environmentToken('fleet-on-a'));
    const expiredAt = await eventually(async () => ((await registry.get(key)) ? 0 : Date.now()), 8000, 'the registry entry to expire', 100);
    expect(expiredAt - diedAt).toBeLessThan(3000 + 1000);
    expect(await registry.get(RegistryKey.environment(environmentToken('fleet-on-b')))).not.toBeNull();
    // B learns that A's process is gone (its instance entry expired), detaches its client sockets,
    // and after the client grace the stream is reset towards the executor.
    await metricEventually(b, 'execrelay_relay_streams_open', (v) => v === 0, { timeoutMs: 15_000 });
    expect(await relayMetric(b, 'execrelay_relay_fleet_remote_clients')).toBe(0);
    expect(await relayMetric(b, 'execrelay_relay_resets_total', { reason: 'client_gone' })).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('NATS down: an agent whose key this instance saw bound re-registers; an unknown key or environment is refused 503 bindings_unavailable, never bound blindly', async () => {
    const { server, relays: [a] } = await fleet(['relay-a']);
    const agent = await agentOn(a!.url, 'fleet-bound-down');
    await server.kill();
    await metricEventually(a!, 'execrelay_relay_fleet_connected', (v) => v === 0);
    agent.registration.dropLink();
    await waitFor(() => agent.registrations() >= 2, 10_000, 'the agent to re-register while NATS is down');
    const stranger = await generateIdentity();
    // Another key: a retryable 503 (the agent retries), not admitted.
    expect(await rawExecutorRefusal(a!.url, 'fleet-bound-down', stranger)).toBe('503 bindings_unavailable');
    expect(await rawExecutorRefusal(a!.url, 'fleet-new-down', stranger)).toBe('503 bindings_unavailable');
    await server.restart();
    await metricEventually(a!, 'execrelay_relay_fleet_connected', (v) => v === 1, { timeoutMs: 15_000 });
    // Back: the binding was kept in NATS (file storage) through the restart.
    expect(await rawExecutorRefusal(a!.url, 'fleet-bound-down', stranger)).toBe('403 environment_key_mismatch');
  }, 60_000);

  it('the registry bucket deleted under running relays: they recreate it and rewrite their entries within a tick or two', async () => {
    const { server, relays } = await fleet(['relay-a', 'relay-b']);
    const [a, b] = relays as [FleetRelay, FleetRelay];
    const agent = await agentOn(b.url, 'fleet-bucket');
    const { servers, user, pass } = parseNatsUrl(server.url);
    const operator = await connect({ servers, user: user!, pass: pass! });
    cleanup.push(() => operator.close());
    const kvm = new Kvm(operator);
    await (await kvm.open(REGISTRY_BUCKET)).destroy();
    const deletedAt = Date.now();
    const key = RegistryKey.environment(environmentToken('fleet-bucket'));
    await eventually(async () => (await kvm.open(REGISTRY_BUCKET).then((kv) => kv.get(key)).catch(() => null)) !== null, 10_000, 'the entry to be rewritten', 100);
    expect(Date.now() - deletedAt).toBeLessThan(3000 * 2 + 1000); // two ticks of a third of the TTL, with room
    expect(await relayMetric(b, 'execrelay_relay_fleet_errors_total', { kind: 'registry' })).toBeGreaterThanOrEqual(1);
    const client = await connectThrough(a.url, agent);
    cleanup.push(() => client.close());
    expect((await (await client.exec(['echo', 'found'], { cwd, env })).completion).stdout.toString()).toBe('found\n');
  }, 60_000);

  it('garbage on the fleet subjects is dropped and counted; the routes it names go on', async () => {
    const { server, relays } = await fleet(['relay-a', 'relay-b']);
    const [a, b] = relays as [FleetRelay, FleetRelay];
    const agent = await agentOn(b.url, 'fleet-garbage');
    const client = await connectThrough(a.url, agent);
    cleanup.push(() => client.close());
    expect((await (await client.exec(['echo', 'before'], { cwd, env })).completion).stdout.toString()).toBe('before\n');

    const { servers, user, pass } = parseNatsUrl(server.url);
    const stranger = await connect({ servers, user: user!, pass: pass! });
    cleanup.push(() => stranger.close());
    const token = environmentToken('fleet-garbage');
    const frame = encodeRelayFrame({ streamId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', ack: NO_ACK, ackBits: 0, body: { type: 'heartbeat' } });
    stranger.publish(FleetSubject.control(token), Buffer.from('{"type":"explode"}'));
    stranger.publish(FleetSubject.control(token), Buffer.from('not json at all'));
    stranger.publish(FleetSubject.control(token), Buffer.from(JSON.stringify({ type: 'detach', client: 'execrelay.client.nobody.x.k.c1' })));
    stranger.publish(FleetSubject.control(token), Buffer.from(JSON.stringify({ type: 'claim', client: 'execrelay.client.nobody.x.k.c1', streamId: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' })));
    stranger.publish(FleetSubject.toExecutor(token), frame); // no reply subject
    stranger.publish(FleetSubject.toExecutor(token), frame, { reply: 'somewhere.else' });
    stranger.publish(FleetSubject.toExecutor(token), Buffer.from('not a relay frame'), { reply: 'execrelay.client.nobody.x.k.c1' });
    stranger.publish(FleetSubject.client('relay-a', 'x', 'k', 'c1'), frame);
    await stranger.flush();

    await metricEventually(b, 'execrelay_relay_fleet_errors_total', (v) => v >= 2, { labels: { kind: 'control' } });
    expect(await relayMetric(b, 'execrelay_relay_fleet_errors_total', { kind: 'control' })).toBe(2);
    expect(await relayMetric(b, 'execrelay_relay_frames_dropped_total', { reason: 'invalid' })).toBeGreaterThanOrEqual(2);
    expect((await (await client.exec(['echo', 'after'], { cwd, env })).completion).stdout.toString()).toBe('after\n');
    expect(await relayMetric(b, 'execrelay_relay_executors_registered')).toBe(1);
  }, 60_000);
});
