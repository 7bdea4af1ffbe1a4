import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type WebSocket from 'ws';
import { ExecClient } from '../../src/client/exec-client.js';
import { generateIdentity, parseKnownEnvironments, type Identity } from '../../src/noise/identity.js';
import { AGENT_PROOF_TIME_HEADER, executorProofHeaders, PROOF_MAX_SKEW_MS } from '../../src/relay-control/executor-proof.js';
import { EXECUTOR_CONNECT_PATH, parseRelayControlMessage } from '../../src/relay-control/relay-endpoints.js';
import { connectRelaySocket, RelayRefusedError } from '../../src/relay-link/relay-socket.js';
import { runCli } from '../support/cli.js';
import { parseExposition, sumOf } from '../support/prometheus-exposition.js';
import { TEST_TOKEN } from '../support/relay-harness.js';
import {
  connectObservedClient,
  cwd,
  env,
  expectCompleteRun,
  numberedLinesCommand,
  sleep,
  spawnRelay,
  startObservedAgent,
  waitFor,
  watchLines,
  type ObservedAgent,
  type RelayProcess,
} from '../support/resilience-helpers.js';

/**
 * Finding 2: any relay-token holder could register an existing environment id with another key
 * and take the environment over (the relay replaced the live link; the real agent gave up, its
 * clients stalled, and the hijacker learned live stream ids). Now the agent proves its key at
 * registration and the relay binds the environment to it: another key is refused before the
 * upgrade, and nothing changes. Real relay processes (the built CLI), real agents, real sockets.
 */
describe('environment takeover by another key', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-takeover-'));
  const tokenFile = path.join(dir, 'token');
  let attackerKeyFile = '';
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  beforeAll(async () => {
    writeFileSync(tokenFile, `${TEST_TOKEN}\n`, { mode: 0o600 });
    attackerKeyFile = path.join(dir, 'attacker.key');
    expect((await runCli(['keygen', '--out', attackerKeyFile])).code).toBe(0);
  });

  async function relayProcess(extraArgs: string[] = []): Promise<RelayProcess & { bindingsFile: string }> {
    const bindingsFile = path.join(mkdtempSync(path.join(dir, 'relay-')), 'environment-bindings');
    const relay = await spawnRelay(0, ['--bindings-file', bindingsFile, ...extraArgs]);
    cleanup.push(() => relay.kill('SIGKILL'));
    return Object.assign(relay, { bindingsFile });
  }

  async function agentOn(relayUrl: string, environmentId: string, identity?: Identity): Promise<ObservedAgent> {
    const agent = await startObservedAgent(relayUrl, environmentId, identity ? { identity } : {});
    cleanup.push(() => agent.stop());
    return agent;
  }

  /** A raw executor upgrade with these extra headers: the open socket, or the refusal. */
  async function rawRegistration(relayUrl: string, environmentId: string, headers: Record<string, string>): Promise<WebSocket | RelayRefusedError> {
    try {
      const socket = await connectRelaySocket(`${relayUrl}${EXECUTOR_CONNECT_PATH}?environmentId=${environmentId}`, TEST_TOKEN, 5000, headers);
      cleanup.push(() => socket.terminate());
      return socket;
    } catch (error) {
      if (error instanceof RelayRefusedError) return error;
      throw error;
    }
  }

  /** `execrelay agent --relay URL` with the attacker's key, run to its end. */
  const attackerAgentProcess = (relayUrl: string, environmentId: string) =>
    runCli(['agent', '--relay', relayUrl, '--environment-id', environmentId, '--key', attackerKeyFile, '--token-file', tokenFile], { timeoutMs: 15_000 });

  async function metric(relay: RelayProcess, name: string, labels: Record<string, string>): Promise<number> {
    return sumOf(parseExposition(await (await fetch(`http://127.0.0.1:${relay.port}/metrics`)).text()), name, labels);
  }

  it('another key registering a served environment is refused 403 environment_key_mismatch; the agent keeps serving, the victim loses no line, new clients connect', async () => {
    const relay = await relayProcess();
    const victimAgent = await agentOn(relay.url, 'victim-env');
    const victim = await connectObservedClient(relay.url, victimAgent);
    cleanup.push(() => victim.client.close());
    const count = 600;
    const handle = await victim.client.exec(numberedLinesCommand(count), { cwd, env, streamEvents: true });
    const watcher = watchLines(handle);
    await waitFor(() => watcher.lines.length >= 50, 20_000, 'the first lines');
    const attackStartedAt = Date.now();

    // The attacker's own agent process: refused for good, exits non-zero saying why and what to do.
    const attackerProcess = attackerAgentProcess(relay.url, 'victim-env');
    // Meanwhile raw registrations with valid proofs of fresh keys, as fast as the relay answers.
    const refusals: string[] = [];
    while (Date.now() - attackStartedAt < 1500) {
      const attempt = await rawRegistration(relay.url, 'victim-env', await executorProofHeaders(await generateIdentity(), 'victim-env', relay.url));
      expect(attempt).toBeInstanceOf(RelayRefusedError); // never a socket: nothing about live streams reaches it
      refusals.push(`${(attempt as RelayRefusedError).status} ${(attempt as RelayRefusedError).reason}`);
      // New clients keep reaching the real agent during the attack.
      if (refusals.length % 10 === 1) {
        const fresh = await ExecClient.connect({ relay: relay.url, environmentId: 'victim-env', agentKey: victimAgent.identity.publicIdentity, token: TEST_TOKEN });
        expect((await (await fresh.exec(['echo', 'still here'], { cwd, env })).completion).stdout.toString()).toBe('still here\n');
        fresh.close();
      }
    }
    const attacker = await attackerProcess;
    expect(attacker.code).not.toBe(0);
    expect(attacker.stderr).toMatch(/HTTP 403 environment_key_mismatch/);
    expect(attacker.stderr).toMatch(/execrelay relay unbind/);
    expect(new Set(refusals)).toEqual(new Set(['403 environment_key_mismatch']));

    await watcher.done;
    expectCompleteRun(watcher, count);
    const worstGapMs = watcher.worstGapMs(attackStartedAt);
    console.log(`environment takeover: ${refusals.length} raw attempts and one agent process refused; victim's worst gap between lines during the attack: ${worstGapMs} ms`);
    expect(worstGapMs).toBeLessThan(2000);
    // The real agent was never replaced, never disconnected; the victim client never reconnected.
    expect(victimAgent.registrations()).toBe(1);
    expect(victimAgent.events.filter((e) => e.type === 'disconnected')).toEqual([]);
    expect(victimAgent.registration.connected).toBe(true);
    expect(victim.reconnects()).toBe(0);
    expect(await metric(relay, 'execrelay_relay_registrations_total', { result: 'replaced' })).toBe(0);
    expect(await metric(relay, 'execrelay_relay_registrations_total', { result: 'rejected' })).toBeGreaterThanOrEqual(refusals.length + 1);
    // The binding is the victim's, in the relay's state file.
    expect(parseKnownEnvironments(readFileSync(relay.bindingsFile, 'utf8')).get('victim-env')).toBe(victimAgent.identity.publicIdentity);
  }, 60_000);

  it('a registration without a proof, with a stale, replayed or forged one, or one made for another environment or relay is refused', async () => {
    const relay = await relayProcess();
    const key = await generateIdentity();
    const refusal = (result: WebSocket | RelayRefusedError) => (result instanceof RelayRefusedError ? `${result.status} ${result.reason}` : 'registered');

    expect(refusal(await rawRegistration(relay.url, 'env-p', {}))).toBe('401 agent_proof_required');
    const stale = await executorProofHeaders(key, 'env-p', relay.url, Date.now() - PROOF_MAX_SKEW_MS - 10_000);
    expect(refusal(await rawRegistration(relay.url, 'env-p', stale))).toBe('403 invalid_agent_proof');
    const forged = { ...(await executorProofHeaders(key, 'env-p', relay.url)), [AGENT_PROOF_TIME_HEADER]: String(Date.now() - 1000) };
    expect(refusal(await rawRegistration(relay.url, 'env-p', forged))).toBe('403 invalid_agent_proof');
    const otherEnvironment = await executorProofHeaders(key, 'env-other', relay.url);
    expect(refusal(await rawRegistration(relay.url, 'env-p', otherEnvironment))).toBe('403 invalid_agent_proof');
    const otherRelay = await executorProofHeaders(key, 'env-p', `ws://relay.elsewhere.example:${relay.port}`);
    expect(refusal(await rawRegistration(relay.url, 'env-p', otherRelay))).toBe('403 invalid_agent_proof');
    // None of that bound anything.
    expect(await runCli(['relay', 'bindings', '--bindings-file', relay.bindingsFile])).toMatchObject({ code: 0, stdout: '' });

    // A valid proof registers once; the same headers again (a replay, even by the holder of the link) are refused.
    const valid = await executorProofHeaders(key, 'env-p', relay.url);
    const socket = await rawRegistration(relay.url, 'env-p', valid);
    expect(refusal(socket)).toBe('registered');
    const registered = new Promise<string>((resolve) => (socket as WebSocket).once('message', (data) => resolve(parseRelayControlMessage(data.toString())?.type ?? '')));
    (socket as WebSocket).resume();
    expect(await registered).toBe('registered');
    let closed = false;
    (socket as WebSocket).once('close', () => (closed = true));
    expect(refusal(await rawRegistration(relay.url, 'env-p', valid))).toBe('403 invalid_agent_proof');
    await sleep(200);
    expect(closed).toBe(false); // the replay did not replace the link
  }, 30_000);

  it('after `execrelay relay unbind ENV` against the running relay\'s file, a new key can register', async () => {
    const relay = await relayProcess();
    const oldAgent = await agentOn(relay.url, 'rekeyed-env');
    oldAgent.stop();
    const newKey = await generateIdentity();
    // The agent with its new key is refused for good (and would exit) until the operator unbinds.
    await expect(startObservedAgent(relay.url, 'rekeyed-env', { identity: newKey })).rejects.toThrow(/HTTP 403 environment_key_mismatch.*execrelay relay unbind/);

    const listed = await runCli(['relay', 'bindings', '--bindings-file', relay.bindingsFile]);
    expect(listed.stdout).toBe(`rekeyed-env ${oldAgent.identity.publicIdentity}\n`);
    const unbound = await runCli(['relay', 'unbind', 'rekeyed-env', '--bindings-file', relay.bindingsFile]);
    expect(unbound.code).toBe(0);
    expect(unbound.stdout).toContain(`unbound rekeyed-env from ${oldAgent.identity.publicIdentity}`);
    const again = await runCli(['relay', 'unbind', 'rekeyed-env', '--bindings-file', relay.bindingsFile]);
    expect(again.stdout).toContain('rekeyed-env was not bound');

    // No relay restart: it re-reads the file it shares with the operator's command.
    const newAgent = await agentOn(relay.url, 'rekeyed-env', newKey);
    const client = await connectObservedClient(relay.url, newAgent);
    cleanup.push(() => client.client.close());
    expect((await (await client.client.exec(['echo', 'new key'], { cwd, env })).completion).stdout.toString()).toBe('new key\n');
    // Bound to the new key now: the old one is the stranger.
    await expect(startObservedAgent(relay.url, 'rekeyed-env', { identity: oldAgent.identity })).rejects.toThrow(/environment_key_mismatch/);
    expect((await runCli(['relay', 'bindings', '--bindings-file', relay.bindingsFile])).stdout).toBe(`rekeyed-env ${newKey.publicIdentity}\n`);
  }, 30_000);

  it('a pinned key (--environment-keys) refuses even the first registration with another key', async () => {
    const pinnedKey = await generateIdentity();
    const keysFile = path.join(dir, 'environment-keys');
    writeFileSync(keysFile, `# pinned by the operator\npinned-env ${pinnedKey.publicIdentity}\n`);
    const relay = await relayProcess(['--environment-keys', keysFile]);
    const attacker = await attackerAgentProcess(relay.url, 'pinned-env');
    expect(attacker.code).not.toBe(0);
    expect(attacker.stderr).toMatch(/HTTP 403 environment_key_mismatch/);
    const agent = await agentOn(relay.url, 'pinned-env', pinnedKey);
    expect(agent.registration.connected).toBe(true);
    // Pins are not bindings: nothing was written for the pinned environment.
    expect(await runCli(['relay', 'bindings', '--bindings-file', relay.bindingsFile])).toMatchObject({ code: 0, stdout: '' });
  }, 30_000);

  it('a damaged --environment-keys file stops the relay at start with the line at fault', async () => {
    const keysFile = path.join(dir, 'bad-environment-keys');
    writeFileSync(keysFile, 'env-only-one-field\n');
    await expect(relayProcess(['--environment-keys', keysFile])).rejects.toThrow(/known environments file .* line 1/);
  }, 30_000);
});
