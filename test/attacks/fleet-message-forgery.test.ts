/**
 * An attacker on a fleet's NATS bus: it holds NATS credentials (so it can subscribe and publish
 * on every subject) but neither a relay token, the fleet secret nor a client key the agent
 * admits. docs/fleet.md § Security says routing trusts NATS (a stranger there can drop or redirect
 * frames and act as a client without a token); what it must not gain is content: this file shows
 * that frames it captured and publishes again — towards the executor and towards the client, on
 * the stream they came from, or re-addressed to a new stream of its own — are ignored as
 * duplicates or fail the Noise handshake, so a client's command across two relay instances keeps
 * running and its output is exactly what the agent sent; and a codex registration claim it replays
 * to the minting instance, or makes up, is refused. (Garbage on the fleet subjects and a
 * rendezvous URL signed with another fleet secret are in e2e/relay-fleet-failures.test.ts and
 * e2e/relay-fleet-secret.test.ts.)
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetSubject, RegistrationClaimAnswer, environmentToken, parseFleetJson } from '../../relay/fleet-wire.js';
import { CODEX_SECURITY_PROFILE } from '../../src/codex-registry/registry-endpoints.js';
import { generateHybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey } from '../../src/noise-hybrid/registry-public-key.js';
import { parseNatsUrl } from '../../relay/fleet-connection.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { generateIdentity, type Identity } from '../../src/noise/identity.js';
import { decodeRelayFrame, encodeRelayFrame, streamIdToBytes, type RelayFrame } from '../../src/relay-frame/relay-frame.js';
import { spawnFleetRelay, startNats, type FleetRelay, type NatsServer } from '../support/fleet-harness.js';
import { TEST_TOKEN } from '../support/relay-harness.js';
import { expectCompleteRun, numberedLinesCommand, startObservedAgent, watchLines, type ObservedAgent } from '../support/resilience-helpers.js';

const ENVIRONMENT = 'fleet-forgery';
const LINES = 300;
const SECRET_DIR = mkdtempSync(path.join(os.tmpdir(), 'execrelay-fleet-forgery-'));
const FLEET_SECRET = path.join(SECRET_DIR, 'fleet.secret');
writeFileSync(FLEET_SECRET, 'the-forgery-fleet-secret-0123456789abcdef\n', { mode: 0o600 });

interface Captured {
  readonly subject: string;
  readonly reply: string | undefined;
  readonly data: Buffer;
}

function frameOf(bytes: Uint8Array): RelayFrame {
  const decoded = decodeRelayFrame(bytes);
  if (!decoded.ok) throw new Error(`captured a bad relay frame: ${decoded.error.code}`);
  return decoded.frame;
}

describe('an attacker on the NATS bus replays and re-addresses fleet frames', () => {
  let nats: NatsServer;
  const relays: FleetRelay[] = [];
  let a: FleetRelay;
  let b: FleetRelay;
  let agent: ObservedAgent;
  let victimIdentity: Identity;
  let stranger: NatsConnection;
  /** Every frame the stranger saw towards the executor (with its reply subject) and towards clients. */
  const towardsExecutor: Captured[] = [];
  const towardsClients: Captured[] = [];

  beforeAll(async () => {
    nats = await startNats();
    a = await spawnFleetRelay(nats, 'relay-a', ['--fleet-secret-file', FLEET_SECRET]);
    relays.push(a);
    b = await spawnFleetRelay(nats, 'relay-b', ['--fleet-secret-file', FLEET_SECRET]);
    relays.push(b);
    victimIdentity = await generateIdentity();
    // The agent admits the victim alone: a replayed handshake must not make the stranger a victim.
    agent = await startObservedAgent(b.url, ENVIRONMENT, { authorizedClients: new Set([victimIdentity.publicIdentity]), backoff: { initialMs: 50, maxMs: 500 } });
    const { servers, user, pass } = parseNatsUrl(nats.url);
    // noEcho: what it publishes itself is not captured again.
    stranger = await connect({ servers, user: user!, pass: pass!, noEcho: true });
    stranger.subscribe(FleetSubject.toExecutor(environmentToken(ENVIRONMENT)), {
      callback: (_error, msg) => void towardsExecutor.push({ subject: msg.subject, reply: msg.reply, data: Buffer.from(msg.data) }),
    });
    stranger.subscribe('execrelay.client.>', {
      callback: (_error, msg) => void towardsClients.push({ subject: msg.subject, reply: msg.reply, data: Buffer.from(msg.data) }),
    });
    await stranger.flush();
  }, 90_000);
  afterAll(async () => {
    await stranger?.close();
    agent?.stop();
    for (const relay of relays) await relay.kill('SIGKILL');
    await nats?.kill();
    rmSync(SECRET_DIR, { recursive: true, force: true });
  });

  function connectVictim(): Promise<ExecClient> {
    return ExecClient.connect({ relay: a.url, environmentId: ENVIRONMENT, agentKey: agent.identity.publicIdentity, token: TEST_TOKEN, identity: victimIdentity });
  }

  it('the frames of a running command published again, both ways, many times: the command completes with each line once, exit 0', async () => {
    const client = await connectVictim();
    try {
      const handle = await client.exec(numberedLinesCommand(LINES), { cwd: os.tmpdir(), streamEvents: true });
      const watcher = watchLines(handle);
      let finished = false;
      void watcher.done.finally(() => (finished = true));
      let replayed = 0;
      // While the command runs, the latest frames seen (up to 100 each way) go out again with their
      // reply subjects, towards the agent and towards the client: data, acks and opens already delivered.
      while (!finished) {
        for (const frame of [...towardsExecutor.slice(-100), ...towardsClients.slice(-100)]) {
          stranger.publish(frame.subject, frame.data, frame.reply ? { reply: frame.reply } : undefined);
          replayed += 1;
        }
        await stranger.flush();
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await watcher.done;
      expectCompleteRun(watcher, LINES);
      expect(towardsExecutor.length).toBeGreaterThan(0);
      expect(towardsClients.length).toBeGreaterThan(0);
      // The stream carried real output across the two instances and was not disturbed.
      expect((await (await client.exec(['echo', 'after replay'], { cwd: os.tmpdir() })).completion).stdout.toString()).toBe('after replay\n');
      console.log(`replayed ${replayed} frames (${towardsExecutor.length} seen towards the executor, ${towardsClients.length} towards clients); worst gap between lines ${watcher.worstGapMs()} ms`);
    } finally {
      client.close();
    }
  }, 90_000);

  it("the victim's handshake frames re-addressed to a new stream of the stranger's: the agent answers with its own handshake, then fails it and resets the stream; no session opens", async () => {
    const sessionsBefore = agent.agent.registry.size;
    const knownStreams = new Set(towardsExecutor.map((c) => frameOf(c.data).streamId));
    const client = await connectVictim();
    const victimStream = await expect
      .poll(() => towardsExecutor.map((c) => frameOf(c.data).streamId).find((id) => !knownStreams.has(id)), { timeout: 5_000 })
      .toBeDefined()
      .then(() => towardsExecutor.map((c) => frameOf(c.data).streamId).find((id) => !knownStreams.has(id))!);
    client.close();
    // The victim's stream: its open (Noise message 1) and its first data frames (message 3, then the initialize request).
    const victimFrames = towardsExecutor.map((c) => frameOf(c.data)).filter((f) => f.streamId === victimStream);
    const open = victimFrames.find((f) => f.body.type === 'open');
    const data = victimFrames.filter((f) => f.body.type === 'data');
    expect(open).toBeDefined();
    expect(data.length).toBeGreaterThan(0);

    const streamId = randomUUID();
    const replySubject = FleetSubject.client('relay-x', 'boot1', 'cred1', 'conn1');
    const answers: RelayFrame[] = [];
    stranger.subscribe(replySubject, { callback: (_error, msg) => void answers.push(frameOf(msg.data)) });
    await stranger.flush();
    const readdress = (frame: RelayFrame) => encodeRelayFrame({ streamId: streamIdToBytes(streamId), ack: frame.ack, ackBits: frame.ackBits, body: frame.body });
    const upSubject = FleetSubject.toExecutor(environmentToken(ENVIRONMENT));
    const [message1, ...rest] = data;
    const failuresBefore = agent.events.filter((e) => e.type === 'handshake' && e.result === 'failure').length;
    const successesBefore = agent.events.filter((e) => e.type === 'handshake' && e.result === 'success').length;
    stranger.publish(upSubject, readdress(open!), { reply: replySubject });
    stranger.publish(upSubject, readdress(message1!), { reply: replySubject });
    await stranger.flush();
    // The agent answers the victim's Noise message 1 with its message 2 (a fresh ephemeral key) ...
    await expect.poll(() => answers.some((f) => f.body.type === 'data'), { timeout: 10_000 }).toBe(true);
    // ... and the victim's message 3, made for another message 2, fails the handshake: reset.
    for (const frame of rest) stranger.publish(upSubject, readdress({ ...frame, ack: 0, ackBits: 0 }), { reply: replySubject });
    await stranger.flush();
    await expect.poll(() => answers.find((f) => f.body.type === 'reset'), { timeout: 15_000 }).toBeDefined();
    const reset = answers.find((f) => f.body.type === 'reset')!;
    expect(reset.streamId).toBe(streamId);
    // The agent's own account: one more failed handshake, none more succeeded.
    expect(agent.events.filter((e) => e.type === 'handshake' && e.result === 'failure').length).toBe(failuresBefore + 1);
    expect(agent.events.filter((e) => e.type === 'handshake' && e.result === 'success').length).toBe(successesBefore);
    expect(agent.agent.registry.size).toBeLessThanOrEqual(sessionsBefore + 1); // the victim's own session only
    // The agent was never told anything it answered as a session: no more than its handshake message went out.
    expect(answers.filter((f) => f.body.type === 'data').length).toBe(1);

    // The agent keeps serving the victim.
    const again = await connectVictim();
    try {
      expect((await (await again.exec(['echo', 'still served'], { cwd: os.tmpdir() })).completion).stdout.toString()).toBe('still served\n');
    } finally {
      again.close();
    }
  }, 60_000);

  it('a codex registration claim replayed on NATS, or one for a registration id it made up, is refused by the minter', async () => {
    const claims: Array<{ subject: string; data: Buffer }> = [];
    const claimSubscription = stranger.subscribe('execrelay.instance.relay-a.*.reg', {
      callback: (_error, msg) => void claims.push({ subject: msg.subject, data: Buffer.from(msg.data) }),
    });
    await stranger.flush();
    // A codex executor registers at A (its hybrid key; the bearer is an executor token) ...
    const key = generateHybridKeyPair();
    const response = await fetch(`http://127.0.0.1:${a.port}/cloud/environment/fleet-forgery-codex/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ security_profile: CODEX_SECURITY_PROFILE, executor_public_key: encodeRegistryPublicKey(key.publicKey) }),
    });
    expect(response.status).toBe(200);
    const { url } = (await response.json()) as { url: string };
    // ... and its rendezvous socket lands at B, which claims the registration from A over NATS.
    const target = new URL(url);
    target.host = `127.0.0.1:${b.port}`;
    const socket = new WebSocket(target);
    await new Promise<void>((resolve, reject) => {
      socket.once('upgrade', () => resolve());
      socket.once('unexpected-response', (_req, res) => reject(new Error(`rendezvous upgrade at B: ${res.statusCode}`)));
      socket.once('error', reject);
    });
    try {
      await expect.poll(() => claims.length, { timeout: 5_000 }).toBeGreaterThan(0);
      const claim = claims[0]!;
      // The same claim again, from the stranger: the minter handed the registration over once.
      const replayed = parseFleetJson(RegistrationClaimAnswer, (await stranger.request(claim.subject, claim.data, { timeout: 5_000 })).data);
      expect(replayed).toEqual({ result: 'refused' });
      // A claim for a registration id of its own making, on the same minter.
      const forged = JSON.stringify({ environmentId: 'fleet-forgery-codex', registrationId: `reg.relay-a.${claim.subject.split('.')[3]}.${randomUUID()}` });
      expect(parseFleetJson(RegistrationClaimAnswer, (await stranger.request(claim.subject, Buffer.from(forged), { timeout: 5_000 })).data)).toEqual({ result: 'refused' });
      // The executor's socket at B is still the one that holds the registration.
      expect(socket.readyState).toBe(WebSocket.OPEN);
    } finally {
      claimSubscription.unsubscribe();
      socket.terminate();
    }
  }, 60_000);
});
