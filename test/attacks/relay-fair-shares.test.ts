import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { ExecClient } from '../../src/client/exec-client.js';
import { createIdentityFile } from '../../src/noise/identity.js';
import { encodeRelayFrame, decodeRelayFrame } from '../../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../../src/relay-frame/limits.js';
import { clientConnectPath } from '../../src/relay-control/relay-endpoints.js';
import { connectProvenExecutor } from '../support/proven-executor.js';
import { connectRelaySocket, RelayRefusedError } from '../../src/relay-link/relay-socket.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { startRemoteAgent, type RemoteAgentFixture } from '../support/relay-harness.js';
import { cwd, env, eventually, sleep, spawnRelay, type RelayProcess } from '../support/resilience-helpers.js';
import { expectVictimUnharmed, startConnectionProbe, startVictim, type ProbeReport, type VictimRun } from '../support/victim-client.js';
import { parseExposition, sumOf } from '../support/prometheus-exposition.js';
import { freePort } from '../support/loopback-port.js';

/**
 * Security review findings 3, 4 and 5: one token holder (with no authorized client key) starving
 * the other users of the relay. A real relay process with scoped tokens, a real agent, a victim
 * running a numbered-line `execrelay exec` and a probe making new connections, each with the
 * victim's token; the attacker speaks raw relay frames with its own tokens. For each attack the
 * victim loses no line and its new connections keep succeeding; its worst stall is printed.
 */

const ENVIRONMENT = 'victim-env';
const AGENT_TOKEN = 'agent-token-0123456789abcdef';
const VICTIM_TOKEN = 'victim-token-0123456789abcdef';
const ATTACKER_TOKEN = 'attacker-token-0123456789abcdef';
const ATTACKER_EXECUTOR_TOKEN = 'attacker-exec-token-0123456789abcdef';
/** Small relay-wide caps so attack 5 fills its token's share quickly: 40 × 1/4 = 10 per token. */
const MAX_CLIENTS = 40;
const MAX_EXECUTORS = 40;
const TOKEN_SOCKETS = MAX_CLIENTS / 4;
const HANDSHAKE_TIMEOUT_MS = 1000;

const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-fair-'));
const tokenFile = path.join(dir, 'relay.tokens');
const victimTokenFile = path.join(dir, 'victim.token');
const victimKeyFile = path.join(dir, 'victim.key');
let relay: RelayProcess;
let metricsUrl: string;
let proxy: FaultProxy;
let agent: RemoteAgentFixture;
const attackerSockets: WebSocket[] = [];

beforeAll(async () => {
  writeFileSync(
    tokenFile,
    [
      `${AGENT_TOKEN} executor victim-*`,
      `${VICTIM_TOKEN} client victim-*`,
      `${ATTACKER_TOKEN} client *`,
      `${ATTACKER_EXECUTOR_TOKEN} executor attacker-*`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  writeFileSync(victimTokenFile, `${VICTIM_TOKEN}\n`, { mode: 0o600 });
  await createIdentityFile(victimKeyFile);
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  relay = await spawnRelay(0, [
    '--token-file', tokenFile,
    '--max-clients', String(MAX_CLIENTS),
    '--max-executors', String(MAX_EXECUTORS),
    '--handshake-timeout-ms', String(HANDSHAKE_TIMEOUT_MS),
    '--metrics-listen', `127.0.0.1:${metricsPort}`,
  ]);
  // The agent reaches the relay through a proxy that attack 3 cuts (its re-dial).
  proxy = await startFaultProxy(relay.port);
  agent = await startRemoteAgent(proxy.url, ENVIRONMENT, { token: AGENT_TOKEN, registration: { backoff: { initialMs: 50, maxMs: 200 } } });
}, 30_000);

afterAll(async () => {
  for (const socket of attackerSockets) socket.terminate();
  agent?.stop();
  await proxy?.close();
  await relay?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The attacker: raw relay frames with its own token

const frame = (streamId: string, body: Parameters<typeof encodeRelayFrame>[0]['body']) => encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body });
const openFrame = (streamId: string) => frame(streamId, { type: 'open', payload: new Uint8Array(0) });
const resumeFrame = (streamId: string) => frame(streamId, { type: 'resume', nextSeq: 0 });
const heartbeatFrame = (streamId: string) => frame(streamId, { type: 'heartbeat' });
/** A Noise "message" too short to hold the XX handshake's first key: the agent's handshake fails. */
const badNoiseFrame = (streamId: string) => frame(streamId, { type: 'data', seq: 0, segmentIndex: 0, segmentCount: 1, payload: Uint8Array.from([0, 3, 1, 2, 3]) });

interface AttackerSocket {
  socket: WebSocket;
  resets: Map<string, number>;
  closeCode: Promise<number>;
}

async function attackerClient(token = ATTACKER_TOKEN): Promise<AttackerSocket> {
  const socket = await connectRelaySocket(`${relay.url}${clientConnectPath(ENVIRONMENT)}`, token, 5000);
  attackerSockets.push(socket);
  const resets = new Map<string, number>();
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    const decoded = isBinary ? decodeRelayFrame(data) : null;
    if (decoded?.ok && decoded.frame.body.type === 'reset') {
      const reason = decoded.frame.body.reason.split(':')[0]!;
      resets.set(reason, (resets.get(reason) ?? 0) + 1);
    }
  });
  socket.on('error', () => undefined);
  const closeCode = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  socket.resume();
  return { socket, resets, closeCode };
}

function mergeResets(sockets: AttackerSocket[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const { resets } of sockets) for (const [reason, count] of resets) total[reason] = (total[reason] ?? 0) + count;
  return total;
}

// ---------------------------------------------------------------------------------------------
// The victim: a numbered-line exec run and a new-connection probe, with the victim's token

const LINES = 25;
const LINE_INTERVAL_S = 0.2;

function victimRun() {
  return startVictim(['--relay', relay.url, '--env', ENVIRONMENT, '--agent-key', agent.identity.publicIdentity, '--token-file', victimTokenFile, '--key', victimKeyFile], {
    lines: LINES,
    intervalSeconds: LINE_INTERVAL_S,
  });
}

function probe() {
  return startConnectionProbe(
    async () => {
      const client = await ExecClient.connect({ relay: relay.url, environmentId: ENVIRONMENT, agentKey: agent.identity.publicIdentity, token: VICTIM_TOKEN });
      try {
        const handle = await client.exec(['true'], { cwd, env });
        const result = await handle.completion;
        if (result.exitCode !== 0) throw new Error(`true exited ${result.exitCode}`);
      } finally {
        client.close();
      }
    },
    { pauseMs: 100, timeoutMs: 8000 },
  );
}

function report(attack: string, run: VictimRun, probed: ProbeReport, attacker: Record<string, unknown>): void {
  console.log(
    `[fair shares] ${attack}: victim worst stall ${run.worstLineGapMs} ms between lines (every ${LINE_INTERVAL_S * 1000} ms; ${run.worstGapMs} ms with the process start); ` +
      `probe ${probed.attempts} new connections, ${probed.failures.length} failed, slowest ${probed.worstMs} ms; attacker ${JSON.stringify(attacker)}`,
  );
}

/** Streams the relay routes now (from its own metrics listener). */
async function streamsOpen(): Promise<number> {
  const response = await fetch(`${metricsUrl}/metrics`);
  return sumOf(parseExposition(await response.text()), 'execrelay_relay_streams_open');
}

describe('fair shares at the relay (findings 3, 4, 5)', () => {
  it('finding 3: 128 random resumes during the agent re-dial cost the attacker its own share and are gone within the handshake timeout', async () => {
    const victim = victimRun();
    await eventually(async () => (victim.lines.length >= 2 ? true : null), 15_000, 'the victim running');
    const sockets = await Promise.all(Array.from({ length: 8 }, () => attackerClient()));
    const ids: string[] = [];
    // The agent's link drops; it re-dials after 1 s. The attacker resumes 128 random stream ids
    // meanwhile (a relay restarted and lost its routes looks the same to the relay).
    proxy.configure({ refuseNew: true });
    proxy.cutAll();
    await sleep(100);
    for (let i = 0; i < 128; i++) {
      const id = randomUUID();
      ids.push(id);
      sockets[i % sockets.length]!.socket.send(resumeFrame(id));
    }
    await sleep(900);
    proxy.configure({ refuseNew: false });
    // It keeps its streams "alive" with heartbeats for as long as the test runs.
    const heartbeats = setInterval(() => {
      ids.forEach((id, i) => sockets[i % sockets.length]!.socket.readyState === WebSocket.OPEN && sockets[i % sockets.length]!.socket.send(heartbeatFrame(id)));
    }, 200);
    try {
      await eventually(async () => ((await streamsOpen()) <= 2 ? true : null), 4 * HANDSHAKE_TIMEOUT_MS + 5000, "the attacker's resumed routes to end");
      const probing = probe();
      await sleep(2500);
      const probed = await probing.stop();
      const run = await victim.finished;
      const attacker = mergeResets(sockets);
      report('finding 3 (resume flood)', run, probed, attacker);
      expectVictimUnharmed(run, LINES);
      expect(probed.failures).toEqual([]);
      expect(probed.attempts).toBeGreaterThan(3);
      // One token's pending share of the environment (16 of 32): the rest refused at once.
      expect(attacker.too_many_pending_opens ?? 0).toBeGreaterThanOrEqual(128 - 16);
      expect((attacker.handshake_timeout ?? 0) + (attacker.unknown_stream ?? 0)).toBeGreaterThan(0);
    } finally {
      clearInterval(heartbeats);
      victim.kill();
      for (const { socket } of sockets) socket.terminate();
    }
  }, 60_000);

  it('finding 4: opens with bad Noise messages (and opens that never send one) close only the attacker\'s sockets, never the executor link', async () => {
    const victim = victimRun();
    await eventually(async () => (victim.lines.length >= 2 ? true : null), 15_000, 'the victim running');
    const acceptedBefore = proxy.accepted;
    const probing = probe();
    const used: AttackerSocket[] = [];
    const closeCodes: number[] = [];
    let stop = false;
    // Ten sockets at a time; a socket the relay closes is replaced by a new one at once.
    const worker = async (index: number) => {
      while (!stop) {
        let attacker: AttackerSocket;
        try {
          attacker = await attackerClient();
        } catch {
          await sleep(50);
          continue;
        }
        used.push(attacker);
        void attacker.closeCode.then((code) => closeCodes.push(code));
        while (!stop && attacker.socket.readyState === WebSocket.OPEN) {
          const id = randomUUID();
          attacker.socket.send(openFrame(id));
          if (index % 2 === 0) attacker.socket.send(badNoiseFrame(id)); // half never send a Noise message at all
          await sleep(25);
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, i) => worker(i));
    const run = await victim.finished;
    stop = true;
    await Promise.all(workers);
    const probed = await probing.stop();
    for (const { socket } of used) socket.terminate();
    const attacker: Record<string, number> = { ...mergeResets(used), sockets: used.length, closedWith4002: closeCodes.filter((code) => code === 4002).length };
    report('finding 4 (failed handshakes)', run, probed, attacker);
    expectVictimUnharmed(run, LINES);
    expect(probed.failures).toEqual([]);
    expect(probed.attempts).toBeGreaterThan(5);
    // The attacker is cut off by its own bounds: its sockets closed after 8 failed handshakes
    // each (4002), or its token's new streams refused for a cool-down after 32 within a minute.
    expect(attacker.closedWith4002! + (attacker.too_many_failed_handshakes ?? 0)).toBeGreaterThan(0);
    // The executor link never dropped: the agent registered once, through one proxied connection
    // since attack 3's re-dial.
    expect(proxy.connections().length).toBe(1);
    expect(proxy.accepted).toBe(acceptedBefore);
  }, 60_000);

  it("finding 5: one token's idle client sockets and fake executors fill only its share of the relay", async () => {
    const victim = victimRun();
    await eventually(async () => (victim.lines.length >= 2 ? true : null), 15_000, 'the victim running');
    const refusals: string[] = [];
    const idle: WebSocket[] = [];
    for (let i = 0; i < MAX_CLIENTS; i++) {
      try {
        idle.push((await attackerClient()).socket);
      } catch (error) {
        refusals.push(error instanceof RelayRefusedError ? `${error.status} ${error.reason}` : (error as Error).message);
      }
    }
    const executorRefusals: string[] = [];
    for (let i = 0; i < MAX_EXECUTORS; i++) {
      try {
        const socket = await connectProvenExecutor(relay.url, `attacker-${i}`, ATTACKER_EXECUTOR_TOKEN);
        attackerSockets.push(socket);
        socket.on('error', () => undefined);
        socket.resume();
        idle.push(socket);
      } catch (error) {
        executorRefusals.push(error instanceof RelayRefusedError ? `${error.status} ${error.reason}` : (error as Error).message);
      }
    }
    try {
      expect(idle.length).toBe(2 * TOKEN_SOCKETS);
      expect(new Set(refusals)).toEqual(new Set(['503 too_many_clients_for_token']));
      expect(new Set(executorRefusals)).toEqual(new Set(['503 too_many_executors_for_token']));
      // The victim's new connections get in, and a new agent with its own token registers.
      const probing = probe();
      const second = await startRemoteAgent(relay.url, 'victim-2', { token: AGENT_TOKEN });
      second.stop();
      const run = await victim.finished;
      const probed = await probing.stop();
      report('finding 5 (socket exhaustion)', run, probed, { clientRefusals: refusals.length, executorRefusals: executorRefusals.length });
      expectVictimUnharmed(run, LINES);
      expect(probed.failures).toEqual([]);
      expect(probed.attempts).toBeGreaterThan(5);
    } finally {
      victim.kill();
      for (const socket of idle) socket.terminate();
    }
  }, 60_000);
});
