import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { RelayServer } from '../../../relay/relay-server.js';
import type { RelayLimits } from '../../../relay/relay-config.js';
import { RelayCredentials } from '../../../relay/relay-credentials.js';
import { createLogger } from '../../../src/logging/logger.js';
import { decodeRelayFrame, encodeRelayFrame } from '../../../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../../../src/relay-frame/limits.js';
import { clientConnectPath } from '../../../src/relay-control/relay-endpoints.js';
import { connectProvenExecutor } from '../../support/proven-executor.js';
import { connectRelaySocket } from '../../../src/relay-link/relay-socket.js';
import { sleep, waitFor } from '../../support/resilience-helpers.js';

/** The router's per-credential rules, through a real relay on loopback with two client tokens. */

const EXECUTOR = 'executor-token-0123456789abcdef';
const ALICE = 'alice-token-0123456789abcdef';
const MALLORY = 'mallory-token-0123456789abcdef';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function relayWith(limits: Partial<RelayLimits> = {}) {
  const { credentials } = RelayCredentials.parse(`${EXECUTOR} executor *\n${ALICE} client *\n${MALLORY} client *\n`, 'tokens');
  const relay = new RelayServer({ credentials, logger: createLogger('router-test', 'silent'), limits });
  const url = await relay.listen('127.0.0.1', 0);
  cleanup.push(() => relay.close());
  return url;
}

type Seen = Array<{ streamId: string; type: string; reason?: string }>;
async function socketTo(url: string, token: string, executor = false): Promise<{ socket: WebSocket; seen: Seen }> {
  const socket = executor ? await connectProvenExecutor(url, 'env', token) : await connectRelaySocket(`${url}${clientConnectPath('env')}`, token, 5000);
  const seen: Seen = [];
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    const decoded = isBinary ? decodeRelayFrame(data) : null;
    if (!decoded?.ok) return;
    const body = decoded.frame.body;
    seen.push({ streamId: decoded.frame.streamId, type: body.type, ...(body.type === 'reset' ? { reason: body.reason } : {}) });
  });
  const registered = executor ? new Promise((resolve) => socket.once('message', resolve)) : null;
  socket.resume();
  await registered;
  cleanup.push(() => socket.terminate());
  return { socket, seen };
}

const frame = (streamId: string, body: Parameters<typeof encodeRelayFrame>[0]['body']) => encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body });
const open = (id: string) => frame(id, { type: 'open', payload: new Uint8Array(0) });
const resume = (id: string) => frame(id, { type: 'resume', nextSeq: 0 });
const data = (id: string) => frame(id, { type: 'data', seq: 0, segmentIndex: 0, segmentCount: 1, payload: Uint8Array.from([1]) });
const resetOf = (seen: Seen, id: string) => seen.find((f) => f.streamId === id && f.type === 'reset')?.reason;

describe('StreamRouter per credential', () => {
  it('a stream is taken over only by a socket of the credential that opened it', async () => {
    const url = await relayWith();
    const executor = await socketTo(url, EXECUTOR, true);
    executor.socket.on('message', (raw: Buffer, isBinary: boolean) => {
      const decoded = isBinary ? decodeRelayFrame(raw) : null;
      if (decoded?.ok && decoded.frame.body.type === 'open') executor.socket.send(open(decoded.frame.streamId)); // accept
    });
    const alice = await socketTo(url, ALICE);
    const id = randomUUID();
    alice.socket.send(open(id));
    await waitFor(() => alice.seen.some((f) => f.streamId === id && f.type === 'open'), 5000, 'the acceptance');
    const mallory = await socketTo(url, MALLORY);
    mallory.socket.send(resume(id));
    await waitFor(() => resetOf(mallory.seen, id) !== undefined, 5000, "mallory's refusal");
    expect(resetOf(mallory.seen, id)).toBe('stream_id_in_use');
    const aliceAgain = await socketTo(url, ALICE);
    aliceAgain.socket.send(resume(id));
    aliceAgain.socket.send(data(id));
    await waitFor(() => executor.seen.filter((f) => f.streamId === id && f.type === 'data').length > 0, 5000, "alice's data through her new socket");
    expect(resetOf(aliceAgain.seen, id)).toBeUndefined();
  });

  it("one token holds at most its share of an environment's streams and pending opens; the other token still has room", async () => {
    const url = await relayWith({ maxStreamsPerExecutor: 8, maxPendingOpensPerExecutor: 4, handshakeTimeoutMs: 60_000 });
    await socketTo(url, EXECUTOR, true); // accepts nothing: every open stays pending
    const mallory = await Promise.all([0, 1, 2].map(() => socketTo(url, MALLORY)));
    const ids = Array.from({ length: 3 }, () => randomUUID());
    ids.forEach((id, i) => mallory[i]!.socket.send(open(id)));
    await waitFor(() => resetOf(mallory[2]!.seen, ids[2]!) !== undefined, 5000, 'the third pending open refused');
    expect(resetOf(mallory[2]!.seen, ids[2]!)).toBe('too_many_pending_opens'); // 4 × 1/2
    const alice = await socketTo(url, ALICE);
    const mine = [randomUUID(), randomUUID()];
    for (const id of mine) alice.socket.send(open(id));
    await sleep(200);
    expect(mine.map((id) => resetOf(alice.seen, id))).toEqual([undefined, undefined]);
  });

  it('a resume for a stream the relay does not know counts as pending, and is reset unless the executor confirms it', async () => {
    const url = await relayWith({ maxPendingOpensPerClient: 2, handshakeTimeoutMs: 300 });
    const executor = await socketTo(url, EXECUTOR, true);
    const mallory = await socketTo(url, MALLORY);
    const ids = Array.from({ length: 3 }, () => randomUUID());
    for (const id of ids) mallory.socket.send(resume(id));
    await waitFor(() => ids.every((id) => resetOf(mallory.seen, id) !== undefined), 5000, 'all three reset');
    expect(ids.map((id) => resetOf(mallory.seen, id))).toEqual(['handshake_timeout', 'handshake_timeout', 'too_many_pending_opens']);
    // A real one: the executor answers the resume (its reliable stream acks), which confirms it.
    const alice = await socketTo(url, ALICE);
    const real = randomUUID();
    executor.socket.on('message', (raw: Buffer, isBinary: boolean) => {
      const decoded = isBinary ? decodeRelayFrame(raw) : null;
      if (decoded?.ok && decoded.frame.streamId === real) executor.socket.send(frame(real, { type: 'ack' }));
    });
    alice.socket.send(resume(real));
    await sleep(800);
    expect(resetOf(alice.seen, real)).toBeUndefined();
  });
});
