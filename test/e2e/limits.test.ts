import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { RelayServer } from '../../relay/relay-server.js';
import { HARD_QUEUE_FACTOR } from '../../relay/stream-router.js';
import type { RelayLimits } from '../../relay/relay-config.js';
import { NO_RELAY_EVENTS, type RelayEvents } from '../../relay/relay-events.js';
import { RelayCredentials } from '../../relay/relay-credentials.js';
import { createLogger } from '../../src/logging/logger.js';
import { decodeRelayFrame, encodeRelayFrame } from '../../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../../src/relay-frame/limits.js';
import { clientConnectPath } from '../../src/relay-control/relay-endpoints.js';
import { connectProvenExecutor } from '../support/proven-executor.js';
import { connectRelaySocket, RelayRefusedError } from '../../src/relay-link/relay-socket.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { MAX_PENDING_EVENTS, ProcessTracker, type PushedProcessEvent } from '../../src/client/process-tracker.js';
import { JsonRpcConnection, DEFAULT_MAX_PENDING_REQUESTS } from '../../src/jsonrpc/connection.js';
import type { MessageTransport } from '../../src/transport/message-transport.js';
import { Session } from '../../executor-agent/session.js';
import { processHandlers } from '../../executor-agent/process-handlers.js';
import { DEFAULT_AGENT_CONFIG } from '../../executor-agent/agent-config.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { TEST_TOKEN, startRelay } from '../support/relay-harness.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { connectObservedClient, cwd, env, sleep, startObservedAgent, waitFor } from '../support/resilience-helpers.js';

/**
 * One test per bound that had none elsewhere; docs/limits.md lists every bound with the test that
 * hits it (here or in the suite that already did).
 */

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

// ---------------------------------------------------------------------------------------------
// Relay: raw sockets against a relay with small limits

interface Counting extends RelayEvents {
  counts: Map<string, number>;
}

function countingEvents(): Counting {
  const counts = new Map<string, number>();
  const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  return {
    ...NO_RELAY_EVENTS,
    counts,
    frameDropped: (reason) => bump(`dropped:${reason}`),
    reset: (reason) => bump(`reset:${reason}`),
    socketPaused: () => bump('paused'),
    heartbeatMissed: () => bump('heartbeat-missed'),
  };
}

async function relayWith(limits: Partial<RelayLimits>, events: RelayEvents = NO_RELAY_EVENTS) {
  const relay = new RelayServer({ credentials: RelayCredentials.fromBareTokens([TEST_TOKEN]), logger: createLogger('limits-relay', 'silent'), limits, events });
  const url = await relay.listen('127.0.0.1', 0);
  cleanup.push(() => relay.close());
  return { relay, url };
}

/** An executor upgrade proving the environment's agent key (the same key for every registration of it). */
const executorUpgrade = (url: string, environmentId: string): Promise<WebSocket> => connectProvenExecutor(url, environmentId, TEST_TOKEN);

/** A bare executor socket: registered, and it answers nothing unless told to. */
async function rawExecutor(url: string, environmentId: string): Promise<WebSocket> {
  const socket = await executorUpgrade(url, environmentId);
  const registered = new Promise<void>((resolve) => socket.once('message', () => resolve()));
  socket.resume();
  await registered;
  cleanup.push(() => socket.terminate());
  return socket;
}

async function rawClient(url: string, environmentId: string): Promise<WebSocket> {
  const socket = await connectRelaySocket(`${url}${clientConnectPath(environmentId)}`, TEST_TOKEN, 5000);
  socket.resume();
  cleanup.push(() => socket.terminate());
  return socket;
}

function frames(socket: WebSocket): Array<{ streamId: string; type: string; reason?: string }> {
  const seen: Array<{ streamId: string; type: string; reason?: string }> = [];
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    const decoded = decodeRelayFrame(data);
    if (!decoded.ok) return;
    const body = decoded.frame.body;
    seen.push({ streamId: decoded.frame.streamId, type: body.type, ...(body.type === 'reset' ? { reason: body.reason } : {}) });
  });
  return seen;
}

const openFrame = (streamId: string) => encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'open', payload: new Uint8Array(0) } });
const resetFrame = (streamId: string) => encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'reset', reason: 'no' } });
const dataFrame = (streamId: string, seq: number, payload: Uint8Array) =>
  encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'data', seq, segmentIndex: 0, segmentCount: 1, payload } });

const resetOf = (seen: ReturnType<typeof frames>, streamId: string) => seen.find((f) => f.streamId === streamId && f.type === 'reset')?.reason;

describe('relay limits', () => {
  it('maxStreamsPerExecutor: the stream past it is reset too_many_streams', async () => {
    const { url } = await relayWith({ maxStreamsPerExecutor: 3, maxPendingOpensPerExecutor: 100 });
    await rawExecutor(url, 'env-streams');
    const clients = await Promise.all([0, 1].map(() => rawClient(url, 'env-streams')));
    const seen = frames(clients[1]!);
    const ids = Array.from({ length: 4 }, () => randomUUID());
    clients[0]!.send(openFrame(ids[0]!));
    clients[0]!.send(openFrame(ids[1]!));
    clients[1]!.send(openFrame(ids[2]!));
    clients[1]!.send(openFrame(ids[3]!));
    await waitFor(() => resetOf(seen, ids[3]!) !== undefined, 5000, 'the reset');
    expect(resetOf(seen, ids[3]!)).toBe('too_many_streams');
    expect(resetOf(seen, ids[2]!)).toBeUndefined();
  });

  it('maxPendingOpensPerExecutor: opens the executor has not accepted are bounded (too_many_pending_opens)', async () => {
    const { url } = await relayWith({ maxPendingOpensPerExecutor: 2 });
    await rawExecutor(url, 'env-pending');
    const client = await rawClient(url, 'env-pending');
    const seen = frames(client);
    const ids = Array.from({ length: 3 }, () => randomUUID());
    for (const id of ids) client.send(openFrame(id));
    await waitFor(() => resetOf(seen, ids[2]!) !== undefined, 5000, 'the reset');
    expect(resetOf(seen, ids[2]!)).toBe('too_many_pending_opens');
  });

  it('maxFailedHandshakesPerClient: a client socket whose opens failed that many handshakes is closed (4002); the executor link stays', async () => {
    const { url } = await relayWith({ maxFailedHandshakesPerClient: 3, maxPendingOpensPerExecutor: 10 });
    const executor = await rawExecutor(url, 'env-failing');
    let executorClosed = false;
    executor.once('close', () => (executorClosed = true));
    executor.on('message', (data: Buffer, isBinary: boolean) => {
      const decoded = isBinary ? decodeRelayFrame(data) : null;
      if (decoded?.ok && decoded.frame.body.type === 'open') executor.send(resetFrame(decoded.frame.streamId));
    });
    const client = await rawClient(url, 'env-failing');
    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    for (let i = 0; i < 2; i++) client.send(openFrame(randomUUID()));
    await sleep(200);
    expect(client.readyState).toBe(WebSocket.OPEN); // two failures: still under the bound
    client.send(openFrame(randomUUID()));
    expect(await closed).toBe(4002);
    // Another client of the environment still gets through: the executor's link was not touched.
    const other = await rawClient(url, 'env-failing');
    const seen = frames(executor);
    const id = randomUUID();
    other.send(openFrame(id));
    await waitFor(() => seen.some((f) => f.streamId === id && f.type === 'open'), 5000, 'the open at the executor');
    expect(executorClosed).toBe(false);
  });

  it('retiredStreamIds: an ended id is refused, and only the newest N are remembered', async () => {
    const { url } = await relayWith({ retiredStreamIds: 2 });
    const executor = await rawExecutor(url, 'env-retired');
    const client = await rawClient(url, 'env-retired');
    const seen = frames(client);
    const ids = Array.from({ length: 3 }, () => randomUUID());
    for (const id of ids) {
      client.send(openFrame(id));
      await sleep(20);
      executor.send(resetFrame(id)); // the executor ends each stream: its id retires
    }
    await waitFor(() => ids.every((id) => resetOf(seen, id) === 'no'), 5000, 'the three resets');
    seen.length = 0;
    client.send(openFrame(ids[2]!)); // remembered
    client.send(openFrame(ids[0]!)); // pushed out by the two newer ones: may be opened again
    await waitFor(() => resetOf(seen, ids[2]!) !== undefined, 5000, 'the refusal');
    expect(resetOf(seen, ids[2]!)).toBe('stream_id_retired');
    await sleep(100);
    expect(resetOf(seen, ids[0]!)).toBeUndefined();
  });

  it('idleTimeoutMs: a stream with no frame either way is reset idle_timeout', async () => {
    const { url } = await relayWith({ idleTimeoutMs: 300, handshakeTimeoutMs: 60_000 });
    const executor = await rawExecutor(url, 'env-idle');
    const client = await rawClient(url, 'env-idle');
    const seen = frames(client);
    const id = randomUUID();
    executor.on('message', (data: Buffer, isBinary: boolean) => {
      const decoded = isBinary ? decodeRelayFrame(data) : null;
      if (decoded?.ok && decoded.frame.body.type === 'open') executor.send(openFrame(decoded.frame.streamId)); // accept
    });
    client.send(openFrame(id));
    await waitFor(() => resetOf(seen, id) !== undefined, 5000, 'the idle reset');
    expect(resetOf(seen, id)).toBe('idle_timeout');
  });

  it('executorGraceMs: streams of an executor that does not come back are reset executor_unavailable', async () => {
    const { url } = await relayWith({ executorGraceMs: 300 });
    const executor = await rawExecutor(url, 'env-grace');
    const client = await rawClient(url, 'env-grace');
    const seen = frames(client);
    const id = randomUUID();
    client.send(openFrame(id));
    await sleep(50);
    executor.terminate();
    await sleep(150);
    expect(resetOf(seen, id)).toBeUndefined(); // still within the grace
    await waitFor(() => resetOf(seen, id) !== undefined, 5000, 'the reset');
    expect(resetOf(seen, id)).toBe('executor_unavailable');
  });

  it('clientGraceMs: streams of a client that does not come back are reset client_gone towards the executor', async () => {
    const { url } = await relayWith({ clientGraceMs: 300 });
    const executor = await rawExecutor(url, 'env-cgrace');
    const seen = frames(executor);
    const client = await rawClient(url, 'env-cgrace');
    const id = randomUUID();
    client.send(openFrame(id));
    await waitFor(() => seen.some((f) => f.streamId === id), 5000, 'the open');
    client.terminate();
    await sleep(150);
    expect(resetOf(seen, id)).toBeUndefined();
    await waitFor(() => resetOf(seen, id) !== undefined, 5000, 'the reset');
    expect(resetOf(seen, id)).toBe('client_gone');
  });

  it('a stream the relay ended while the executor was away is reset when the executor mentions it again', async () => {
    const { url } = await relayWith({ clientGraceMs: 200, executorGraceMs: 60_000 });
    const first = await rawExecutor(url, 'env-retire-away');
    const client = await rawClient(url, 'env-retire-away');
    const id = randomUUID();
    client.send(openFrame(id));
    await sleep(50);
    first.terminate();
    client.terminate();
    await sleep(600); // the client's grace ends: the relay retires the stream
    const second = await rawExecutor(url, 'env-retire-away');
    const seen = frames(second);
    second.send(openFrame(id)); // the agent's re-sent acceptance
    await waitFor(() => resetOf(seen, id) !== undefined, 5000, 'the reset');
    expect(resetOf(seen, id)).toBe('stream_id_retired');
  });

  it('maxQueuedBytesPerSocket: a client that stops reading pauses nobody else and costs bounded memory (frames past 2x are dropped)', async () => {
    const events = countingEvents();
    const limit = 64 * 1024;
    const { relay, url } = await relayWith({ maxQueuedBytesPerSocket: limit }, events);
    const executor = await rawExecutor(url, 'env-queue');
    const client = await rawClient(url, 'env-queue');
    const id = randomUUID();
    client.send(openFrame(id));
    await sleep(50);
    client.pause(); // stops reading: the relay's socket towards it fills
    const payload = new Uint8Array(60 * 1024);
    let maxQueued = 0;
    const relayClientSocket = () => [...(relay as unknown as { wss: { clients: Set<WebSocket> } }).wss.clients].find((s) => s !== undefined && s.bufferedAmount > 0);
    for (let seq = 0; seq < 600 && (events.counts.get('dropped:backpressure') ?? 0) < 20; seq++) {
      executor.send(dataFrame(id, seq, payload));
      if (seq % 20 === 0) {
        await sleep(5);
        maxQueued = Math.max(maxQueued, relayClientSocket()?.bufferedAmount ?? 0);
      }
    }
    await waitFor(() => (events.counts.get('dropped:backpressure') ?? 0) > 0, 10_000, 'frames dropped for backpressure');
    expect(maxQueued).toBeLessThanOrEqual(HARD_QUEUE_FACTOR * limit + 2 * (payload.length + 64));
    // The client direction: a client feeding a congested executor socket is paused instead.
    client.resume();
  }, 30_000);

  it('maxExecutors and maxClients: registrations and client sockets past them are refused with 503', async () => {
    const { url } = await relayWith({ maxExecutors: 1, maxClients: 1 });
    await rawExecutor(url, 'env-one');
    await expect(executorUpgrade(url, 'env-two')).rejects.toThrow(/HTTP 503 too_many_executors/);
    await rawClient(url, 'env-one');
    const refusal = await connectRelaySocket(`${url}${clientConnectPath('env-one')}`, TEST_TOKEN, 5000).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(RelayRefusedError);
    expect((refusal as RelayRefusedError).reason).toBe('too_many_clients');
    expect((refusal as RelayRefusedError).permanent).toBe(false); // a client retries it
  });
});

// ---------------------------------------------------------------------------------------------
// Agent

describe('agent limits', () => {
  it('maxSessions: the session past it is refused with -32600', async () => {
    const agent: RunningAgent = await startAgent({ maxSessions: 2 });
    cleanup.push(() => agent.stop());
    const clients = await Promise.all([ExecClient.connect(agent.url), ExecClient.connect(agent.url)]);
    cleanup.push(() => clients.forEach((c) => c.close()));
    await expect(ExecClient.connect(agent.url)).rejects.toThrow('too many sessions (limit 2)');
  });

  function handlerContext(session: Session) {
    return { session, detachSignal: new AbortController().signal, config: DEFAULT_AGENT_CONFIG, notify: async () => undefined };
  }

  it('maxProcesses per session: the process past it is refused with -32600', async () => {
    const session = new Session({ maxProcesses: 2, maxFinishedProcesses: 2 });
    cleanup.push(() => session.end());
    const start = (processId: string) =>
      processHandlers['process/start']!({ processId, argv: ['sleep', '5'], cwd: 'file:///tmp', env }, handlerContext(session));
    await start('a');
    await start('b');
    await expect(start('c')).rejects.toMatchObject({ code: -32600, message: 'too many processes in this session (limit 2)' });
  });

  it('maxFinishedProcesses: the oldest finished process is forgotten (-32004 on read)', async () => {
    const session = new Session({ maxProcesses: 10, maxFinishedProcesses: 2 });
    cleanup.push(() => session.end());
    const context = handlerContext(session);
    const readAll = (id: string) => processHandlers['process/read']!({ processId: id, afterSeq: 0, waitMs: 0 }, context);
    // One at a time, so they finish in this order even on a loaded machine.
    for (const id of ['p1', 'p2', 'p3']) {
      await processHandlers['process/start']!({ processId: id, argv: ['true'], cwd: 'file:///tmp', env }, context);
      await waitFor(() => session.processes.get(id)?.closed !== false, 10_000, `${id} to close`);
    }
    // The third close pushes the first finished process out.
    await waitFor(() => !session.processes.has('p1'), 10_000, 'p1 to be forgotten');
    expect(session.processes.size).toBe(2);
    await expect(readAll('p1')).rejects.toMatchObject({ code: -32004 });
    await expect(readAll('p3')).resolves.toMatchObject({ exited: true });
  });

  it('maxQueuedPushBytes: a client that does not read pauses the process output; nothing is lost when it reads again', async () => {
    const agent = await startAgent({ maxQueuedPushBytes: 64 * 1024 });
    cleanup.push(() => agent.stop());
    const proxy = await startFaultProxy(Number(new URL(agent.url).port));
    cleanup.push(() => proxy.close());
    const client = await ExecClient.connect(proxy.url);
    cleanup.push(() => client.close());
    const size = 48 * 1024 * 1024;
    const handle = await client.exec(['sh', '-c', `head -c ${size} /dev/zero`], { cwd, env });
    await sleep(100);
    proxy.stallAll('downstream'); // the client reads nothing more
    const sessions = (agent.agent.registry as unknown as { sessions: Map<string, Session> }).sessions;
    await waitFor(() => [...sessions.values()].some((s) => s.isOutputPaused), 20_000, 'the session to pause its output');
    proxy.healAll();
    const result = await handle.completion;
    expect(result.stdout.length).toBe(size);
    expect(client.readsIssued).toBe(0); // nothing was dropped: paused, not discarded
  }, 60_000);

  it('relay maxStreams and maxQueuedBytes: the agent refuses streams past its cap; tiny socket queues still deliver every byte', async () => {
    const relay = await startRelay();
    cleanup.push(() => relay.stop());
    const agent = await startObservedAgent(relay.url, 'env-agent-caps', { maxStreams: 1, maxQueuedBytes: 16 * 1024 });
    cleanup.push(() => agent.stop());
    const first = await connectObservedClient(relay.url, agent, { maxQueuedBytes: 16 * 1024 });
    cleanup.push(() => first.client.close());
    await expect(connectObservedClient(relay.url, agent, { connectTimeoutMs: 5000 })).rejects.toThrow(/too_many_streams/);
    const handle = await first.client.exec(['sh', '-c', 'head -c 2000000 /dev/zero | tr "\\0" z'], { cwd, env });
    const result = await handle.completion;
    expect(result.stdout.length).toBe(2_000_000);
    expect(result.stdout.every((b) => b === 0x7a)).toBe(true);
  }, 60_000);

  it('streamSilenceTimeoutMs: a stream whose client is silent past it is reset (client_gone)', async () => {
    const relay = await startRelay();
    cleanup.push(() => relay.stop());
    const agent = await startObservedAgent(relay.url, 'env-silence', { streamSilenceTimeoutMs: 400 });
    cleanup.push(() => agent.stop());
    // A client that heartbeats far less often than the agent's silence timeout (misconfigured on purpose).
    const { client } = await connectObservedClient(relay.url, agent, { heartbeatIntervalMs: 60_000 });
    const closed = new Promise<Error | undefined>((resolve) => client.rpc.onClose((error) => resolve(error)));
    expect(agent.registration.activeStreams).toBe(1);
    expect(String(await closed)).toMatch(/client_gone/);
    await waitFor(() => agent.registration.activeStreams === 0, 5000, 'the agent to forget the stream');
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------
// Client

function silentTransport(): MessageTransport {
  const notUsed = () => {
    throw new Error('receive pausing is not used by this test transport');
  };
  return {
    kind: 'memory',
    closed: false,
    send: async () => undefined,
    onMessage: () => undefined,
    onClose: () => undefined,
    pauseReceiving: notUsed,
    resumeReceiving: notUsed,
    close: () => undefined,
  };
}

describe('client limits', () => {
  it('DEFAULT_MAX_PENDING_REQUESTS: the request past it is refused, the connection stays usable', async () => {
    const rpc = new JsonRpcConnection(silentTransport());
    const pending = Array.from({ length: DEFAULT_MAX_PENDING_REQUESTS }, (_, i) => rpc.request('x', { i }));
    for (const p of pending) p.catch(() => undefined);
    await expect(rpc.request('x', {})).rejects.toThrow(`too many pending requests (limit ${DEFAULT_MAX_PENDING_REQUESTS})`);
    expect(rpc.closed).toBe(false);
  });

  it('MAX_PENDING_EVENTS: out-of-order pushed events held for a gap are bounded; a read fills in the rest', async () => {
    const total = 3 * MAX_PENDING_EVENTS;
    let reads = 0;
    const tracker = new ProcessTracker({
      read: async (afterSeq) => {
        reads++;
        const chunks = [];
        for (let seq = afterSeq + 1; seq <= total; seq++) chunks.push({ seq, stream: 'stdout' as const, chunk: Buffer.from(`${seq}\n`) });
        return { chunks, nextSeq: total + 3, exited: true, exitCode: 0, closed: true, failure: null, sandboxDenied: false };
      },
      onReadIssued: () => undefined,
      collectOutput: true,
      maxCollectedBytes: 1 << 20,
      eventBufferBytes: null,
      slowConsumer: 'pause',
      onBackpressure: () => {
        throw new Error('no event buffer, so no backpressure');
      },
    });
    const pending = (tracker as unknown as { pending: Map<number, PushedProcessEvent> }).pending;
    let maxPending = 0;
    // seq 1 never arrives by push: everything after it waits for the gap.
    for (let seq = 2; seq <= total; seq++) {
      tracker.push({ type: 'output', processId: 'p', seq, stream: 'stdout', chunk: Buffer.from(`${seq}\n`) });
      maxPending = Math.max(maxPending, pending.size);
    }
    expect(maxPending).toBeLessThanOrEqual(MAX_PENDING_EVENTS);
    const result = await tracker.completion;
    expect(result.stdout.toString()).toBe(Array.from({ length: total }, (_, i) => `${i + 1}\n`).join(''));
    expect(reads).toBeGreaterThanOrEqual(1);
  });

  it('maxCollectedBytes: collected output is capped and flagged outputTruncated', async () => {
    const agent = await startAgent();
    cleanup.push(() => agent.stop());
    const client = await ExecClient.connect(agent.url);
    cleanup.push(() => client.close());
    const handle = await client.exec(['sh', '-c', 'head -c 50000 /dev/zero'], { cwd, env, maxCollectedBytes: 10_000 });
    const result = await handle.completion;
    expect(result.outputTruncated).toBe(true);
    expect(result.stdout.length).toBeLessThanOrEqual(10_000);
    expect(result.exitCode).toBe(0);
  });

  it('reconnectGiveUpMs: a client that cannot reach the relay gives up and fails clearly', async () => {
    const relay = await startRelay();
    const proxy = await startFaultProxy(Number(new URL(relay.url).port));
    cleanup.push(() => relay.stop(), () => proxy.close());
    const agent = await startObservedAgent(relay.url, 'env-giveup');
    cleanup.push(() => agent.stop());
    const observed = await connectObservedClient(proxy.url, agent, { reconnectGiveUpMs: 800, backoff: { initialMs: 100, maxMs: 200 } });
    const handle = await observed.client.exec(['sleep', '5'], { cwd, env });
    proxy.configure({ refuseNew: true });
    proxy.cutAll();
    await expect(handle.completion).rejects.toThrow(/connection to the agent closed.*client_gone/);
    expect(observed.linkEvents.some((e) => e.type === 'gave-up')).toBe(true);
  }, 30_000);
});
