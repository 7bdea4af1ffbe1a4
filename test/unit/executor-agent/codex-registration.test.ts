/**
 * The codex-wire executor (`CodexRelayRegistration`) against a scripted registry and rendezvous on
 * a real loopback HTTP/WebSocket server, so that each frame the executor gets and each answer of
 * `/validate` is the test's choice: the happy path (register, handshake, validate, JSON-RPC over
 * records) and every refusal — garbage, a client outside the authorized list (the relay never
 * asked), `{"valid":false}`, Data on a stream that is not served, a second Handshake on a served
 * stream, more pending handshakes than codex allows, a refused registration — and re-registration
 * when the rendezvous socket drops.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { ExecutorAgent } from '../../../executor-agent/executor-agent.js';
import { CodexRelayRegistration, type CodexRegistrationOptions } from '../../../executor-agent/codex-registration.js';
import { CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES, CODEX_PROTOCOL_ERROR_RESET_REASON } from '../../../src/codex-channel/codex-channel-limits.js';
import { CodexNoiseChannel } from '../../../src/codex-channel/codex-noise-channel.js';
import { decodeCodexRelayFrame, encodeCodexRelayFrame, type CodexRelayFrame } from '../../../src/codex-relay-frame/codex-relay-frame.js';
import { hybridFingerprint } from '../../../src/noise-hybrid/hybrid-fingerprint.js';
import { HybridIkInitiator } from '../../../src/noise-hybrid/hybrid-ik-handshake.js';
import { generateHybridKeyPair, type HybridKeyPair } from '../../../src/noise-hybrid/hybrid-keys.js';
import { hybridPrologue } from '../../../src/noise-hybrid/prologue.js';
import { CLIENT_NOT_AUTHORIZED_RESET_REASON, ResetReason } from '../../../src/relay-control/relay-endpoints.js';
import { createLogger } from '../../../src/logging/logger.js';

const ENV = 'codex-unit';
const TOKEN = 'executor-token-0123456789abcdef';
const AUTHORIZATION = 'authorization-minted-by-the-relay';

/** The scripted registry + rendezvous, and what the executor did to it. */
interface FakeRendezvous {
  url: string;
  registrations: number;
  validations: Array<{ streamId: string; body: any }>;
  /** How `/validate` answers (a pending promise holds the answer back). */
  validate: (body: any) => Promise<unknown> | unknown;
  /** How `/register` answers: status and body. */
  register: () => { status: number; body: unknown };
  /** The executor's rendezvous sockets, in order. */
  sockets: WebSocket[];
  nextSocket(): Promise<WebSocket>;
  close(): Promise<void>;
}

async function startFakeRendezvous(): Promise<FakeRendezvous> {
  const socketWaiters: Array<(socket: WebSocket) => void> = [];
  const fake: FakeRendezvous = {
    url: '',
    registrations: 0,
    validations: [],
    validate: () => ({ valid: true }),
    register: () => ({
      status: 200,
      body: { environment_id: ENV, url: `${fake.url.replace(/^http:/, 'ws:')}/rendezvous?sig=x`, security_profile: 'noise_hybrid_ik_v1', executor_registration_id: `reg-${fake.registrations}` },
    }),
    sockets: [],
    nextSocket: () => new Promise((resolve) => socketWaiters.push(resolve)),
    close: async () => {
      for (const socket of fake.sockets) socket.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
        let status = 200;
        let answer: unknown;
        if (req.url === `/cloud/environment/${ENV}/register`) {
          fake.registrations += 1;
          ({ status, body: answer } = fake.register());
        } else if (req.url === `/cloud/environment/${ENV}/validate`) {
          fake.validations.push({ streamId: String(req.headers['x-codex-noise-stream-id']), body });
          answer = await fake.validate(body);
        } else {
          status = 404;
          answer = { error: { code: 'not_found', message: 'no' } };
        }
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      })();
    });
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket) => {
    fake.sockets.push(socket);
    socketWaiters.shift()?.(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

/** A harness on the executor's socket (as the relay would forward it): writes message 1, reads what comes back on its stream. */
class Harness {
  readonly key: HybridKeyPair;
  private readonly frames: CodexRelayFrame[] = [];
  private readonly waiters: Array<() => void> = [];

  constructor(
    private readonly socket: WebSocket,
    key?: HybridKeyPair,
  ) {
    this.key = key ?? generateHybridKeyPair();
    socket.on('message', (data: Buffer) => {
      const decoded = decodeCodexRelayFrame(data);
      if (!decoded.ok) return;
      this.frames.push(decoded.frame);
      for (const waiter of this.waiters.splice(0)) waiter();
    });
  }

  send(frame: Parameters<typeof encodeCodexRelayFrame>[0]): void {
    this.socket.send(encodeCodexRelayFrame(frame));
  }

  /** Sends message 1 on `streamId` for `executorKey`, registration `registrationId`. */
  handshake(streamId: string, executorKey: HybridKeyPair, registrationId: string): HybridIkInitiator {
    const initiator = new HybridIkInitiator({
      staticKeyPair: this.key,
      responderStaticKey: executorKey.publicKey,
      prologue: hybridPrologue({ environmentId: ENV, executorRegistrationId: registrationId, streamId }),
    });
    this.send({ streamId, body: { type: 'handshake', payload: initiator.writeMessage1(Buffer.from(AUTHORIZATION)) } });
    return initiator;
  }

  /** The next frame on `streamId` (past or future). */
  async next(streamId: string, timeoutMs = 5000): Promise<CodexRelayFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex((frame) => frame.streamId === streamId);
      if (index !== -1) return this.frames.splice(index, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame on ${streamId}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

describe('CodexRelayRegistration (the codex-wire executor)', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A registration with the fake registry (this file's environment, token and quick backoff), stopped after the test. */
  function registrationWith(agent: ExecutorAgent, fake: { url: string }, options: Partial<CodexRegistrationOptions> = {}): CodexRelayRegistration {
    const registration = new CodexRelayRegistration(agent, {
      relayUrl: fake.url.replace(/^http:/, 'ws:'),
      environmentId: ENV,
      token: TOKEN,
      hybridKey: generateHybridKeyPair(),
      authorizedClients: 'any',
      backoff: { initialMs: 20, maxMs: 100 },
      logger: createLogger('test-codex-registration', 'silent'),
      ...options,
    });
    cleanups.push(() => registration.stop());
    return registration;
  }

  async function start(options: { authorized?: (harnessKey: HybridKeyPair) => Set<string> | 'any'; client?: HybridKeyPair; maxStreams?: number; validationTimeoutMs?: number } = {}) {
    const fake = await startFakeRendezvous();
    cleanups.push(() => fake.close());
    const executorKey = generateHybridKeyPair();
    const client = options.client ?? generateHybridKeyPair();
    const agent = new ExecutorAgent({}, createLogger('test-agent', 'silent'));
    cleanups.push(() => agent.shutdown());
    const registration = registrationWith(agent, fake, {
      hybridKey: executorKey,
      authorizedClients: options.authorized?.(client) ?? new Set([hybridFingerprint(client.publicKey)]),
      ...(options.maxStreams === undefined ? {} : { maxStreams: options.maxStreams }),
      ...(options.validationTimeoutMs === undefined ? {} : { validationTimeoutMs: options.validationTimeoutMs }),
    });
    const socket = fake.nextSocket();
    await registration.start();
    return { fake, agent, registration, executorKey, client, harness: new Harness(await socket, client) };
  }

  it('registers with its key and bearer, completes a validated handshake and serves JSON-RPC over the stream', async () => {
    const { fake, registration, executorKey, harness } = await start();
    expect(fake.registrations).toBe(1);
    const initiator = harness.handshake('s-1', executorKey, 'reg-1');
    const answer = await harness.next('s-1');
    expect(answer.body.type).toBe('handshake');
    expect(fake.validations).toEqual([
      {
        streamId: 's-1',
        body: { executor_registration_id: 'reg-1', harness_public_key: expect.objectContaining({ suite: expect.any(String) }), harness_key_authorization: AUTHORIZATION },
      },
    ]);
    const transport = initiator.readMessage2((answer.body as { payload: Uint8Array }).payload);
    const channel = new CodexNoiseChannel(fake.sockets[0]!, 's-1', transport, 1024 * 1024);
    const replies: any[] = [];
    channel.onMessage((message) => replies.push(JSON.parse(message)));
    await channel.send(JSON.stringify({ id: 1, method: 'initialize', params: { clientName: 'unit', capabilities: { binaryOutput: true } } }));
    await expect.poll(() => replies.length).toBe(1);
    expect(replies[0].result.sessionId).toEqual(expect.any(String));
    // The codex wire is JSON only: binaryOutput is never offered, even when asked for.
    expect(replies[0].result.capabilities).toEqual({ ptyResize: true, fileTransfer: true });
    expect(registration.activeStreams).toBe(1);
  });

  it('resets a garbage handshake without asking the relay', async () => {
    const { fake, harness } = await start();
    harness.send({ streamId: 'garbage', body: { type: 'handshake', payload: Buffer.alloc(3600, 7) } });
    expect((await harness.next('garbage')).body).toEqual({ type: 'reset', reason: CODEX_PROTOCOL_ERROR_RESET_REASON });
    expect(fake.validations).toHaveLength(0);
  });

  it('resets a handshake for another registration (prologue) without asking the relay', async () => {
    const { fake, executorKey, harness } = await start();
    harness.handshake('old-reg', executorKey, 'reg-0');
    expect((await harness.next('old-reg')).body).toEqual({ type: 'reset', reason: CODEX_PROTOCOL_ERROR_RESET_REASON });
    expect(fake.validations).toHaveLength(0);
  });

  it('refuses a client outside its authorized clients with client_not_authorized, before the relay is asked', async () => {
    const { fake, executorKey, harness } = await start({ authorized: () => new Set([hybridFingerprint(generateHybridKeyPair().publicKey)]) });
    harness.handshake('stranger', executorKey, 'reg-1');
    expect((await harness.next('stranger')).body).toEqual({ type: 'reset', reason: CLIENT_NOT_AUTHORIZED_RESET_REASON });
    expect(fake.validations).toHaveLength(0);
  });

  it('resets a handshake the relay does not validate, and serves the next one', async () => {
    const { fake, executorKey, harness } = await start({ authorized: () => 'any' });
    fake.validate = () => ({ valid: false });
    harness.handshake('refused', executorKey, 'reg-1');
    expect((await harness.next('refused')).body).toEqual({ type: 'reset', reason: CODEX_PROTOCOL_ERROR_RESET_REASON });
    fake.validate = () => ({ valid: 'yes' }); // not {"valid":true}
    harness.handshake('malformed', executorKey, 'reg-1');
    expect((await harness.next('malformed')).body.type).toBe('reset');
    fake.validate = () => ({ valid: true });
    harness.handshake('accepted', executorKey, 'reg-1');
    expect((await harness.next('accepted')).body.type).toBe('handshake');
  });

  it('resets Data on a stream it does not serve, and a second Handshake on a served stream', async () => {
    const { executorKey, harness, registration } = await start();
    harness.send({ streamId: 'unknown', body: { type: 'data', seq: 0, payload: Buffer.alloc(32, 1) } });
    expect((await harness.next('unknown')).body).toEqual({ type: 'reset', reason: CODEX_PROTOCOL_ERROR_RESET_REASON });
    harness.handshake('twice', executorKey, 'reg-1');
    expect((await harness.next('twice')).body.type).toBe('handshake');
    expect(registration.activeStreams).toBe(1);
    harness.handshake('twice', executorKey, 'reg-1');
    expect((await harness.next('twice')).body.type).toBe('reset');
    expect(registration.activeStreams).toBe(0);
    // Resume, Ack and Heartbeat frames are ignored (codex 0.169.0 does the same).
    harness.send({ streamId: 'quiet', body: { type: 'heartbeat' } });
    harness.send({ streamId: 'quiet', body: { type: 'resume', nextSeq: 0 } });
    await expect(harness.next('quiet', 200)).rejects.toThrow(/no frame/);
  });

  it(`holds at most ${CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES} handshakes waiting for validation`, async () => {
    const { fake, executorKey, harness } = await start();
    const held: Array<() => void> = [];
    fake.validate = () => new Promise((resolve) => held.push(() => resolve({ valid: true })));
    for (let i = 0; i < CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES; i++) harness.handshake(`pending-${i}`, executorKey, 'reg-1');
    await expect.poll(() => fake.validations.length, { timeout: 10_000 }).toBe(CODEX_EXECUTOR_MAX_PENDING_HANDSHAKES);
    harness.handshake('one-more', executorKey, 'reg-1');
    expect((await harness.next('one-more')).body).toEqual({ type: 'reset', reason: ResetReason.TooManyPendingOpens });
    for (const release of held) release();
    expect((await harness.next('pending-0')).body.type).toBe('handshake');
  });

  it('resets a handshake whose validation is not answered in time (codex: 10 s), and one that arrives while draining', async () => {
    const { fake, agent, executorKey, harness } = await start({ validationTimeoutMs: 200 });
    fake.validate = () => new Promise(() => undefined); // never answers
    harness.handshake('unanswered', executorKey, 'reg-1');
    expect((await harness.next('unanswered')).body).toEqual({ type: 'reset', reason: CODEX_PROTOCOL_ERROR_RESET_REASON });
    await agent.drain();
    harness.handshake('draining', executorKey, 'reg-1');
    expect((await harness.next('draining')).body).toEqual({ type: 'reset', reason: ResetReason.ExecutorDraining });
    expect(fake.validations).toHaveLength(1);
  });

  it('serves at most maxStreams streams (codex: 128); a stream that ends makes room', async () => {
    const { executorKey, harness, registration } = await start({ maxStreams: 2 });
    for (const streamId of ['a', 'b']) {
      harness.handshake(streamId, executorKey, 'reg-1');
      expect((await harness.next(streamId)).body.type).toBe('handshake');
    }
    harness.handshake('c', executorKey, 'reg-1');
    expect((await harness.next('c')).body).toEqual({ type: 'reset', reason: ResetReason.TooManyStreams });
    harness.send({ streamId: 'a', body: { type: 'reset', reason: 'client_closed' } });
    await expect.poll(() => registration.activeStreams).toBe(1);
    harness.handshake('d', executorKey, 'reg-1');
    expect((await harness.next('d')).body.type).toBe('handshake');
  });

  it('registers again when its rendezvous socket drops, and answers handshakes of the new registration', async () => {
    const { fake, executorKey, client } = await start();
    const second = fake.nextSocket();
    fake.sockets[0]!.terminate();
    const harness = new Harness(await second, client);
    expect(fake.registrations).toBe(2);
    harness.handshake('after', executorKey, 'reg-2');
    expect((await harness.next('after')).body.type).toBe('handshake');
  });

  it('rejects start when the registry refuses the token (final: no retry)', async () => {
    const fake = await startFakeRendezvous();
    cleanups.push(() => fake.close());
    fake.register = () => ({ status: 403, body: { error: { code: 'forbidden_role', message: 'an executor token is needed' } } });
    const registration = registrationWith(new ExecutorAgent({}, createLogger('test-agent', 'silent')), fake);
    await expect(registration.start()).rejects.toThrow(/HTTP 403 forbidden_role: an executor token is needed/);
    expect(fake.registrations).toBe(1);
  });

  it('rejects start on an answer that is not a registration of this environment, or that echoes the bearer (final, as codex exits)', async () => {
    const fake = await startFakeRendezvous();
    cleanups.push(() => fake.close());
    const ws = fake.url.replace(/^http:/, 'ws:');
    const answers = [
      { environment_id: 'another-env', url: `${ws}/r`, security_profile: 'noise_hybrid_ik_v1', executor_registration_id: 'reg-1' },
      { environment_id: ENV, url: `${ws}/r?t=${TOKEN}`, security_profile: 'noise_hybrid_ik_v1', executor_registration_id: 'reg-1' },
      { environment_id: ENV, url: `${ws}/r`, security_profile: 'classical', executor_registration_id: 'reg-1' },
      { environment_id: ENV, url: fake.url, security_profile: 'noise_hybrid_ik_v1', executor_registration_id: 'reg-1' },
    ];
    const expected = [/for another environment/, /echoes the bearer token/, /unsupported security profile/, /not ws:\/\/ or wss:\/\//];
    for (const [index, body] of answers.entries()) {
      fake.register = () => ({ status: 200, body });
      const registration = registrationWith(new ExecutorAgent({}, createLogger('test-agent', 'silent')), fake);
      await expect(registration.start()).rejects.toThrow(expected[index]!);
    }
    expect(fake.registrations).toBe(answers.length);
  });
});
