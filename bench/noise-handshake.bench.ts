/**
 * Handshake time, in one process: the codex hybrid IK handshake (X25519 + ML-KEM-768, AES-256-GCM,
 * SHA-256; src/noise-hybrid/) against the native libp2p Noise XX handshake (Ed25519 identities,
 * X25519, ChaCha20-Poly1305; src/noise/), the baseline, measured in the same run.
 *
 * Both run over an in-memory link on which every message is framed, copied and delivered on a later
 * event-loop turn (XX: reliable stream + relay frames, as in layers.bench.ts; hybrid: codex relay
 * frames, Handshake body), from "start" until both sides hold a usable transport. Static keys are
 * made beforehand in both, so the figure is the handshake alone: ephemeral keys, KEM, DH, hashing.
 * A third figure is the hybrid handshake's computation alone (no link, no frames).
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { decodeCodexRelayFrame, encodeCodexRelayFrame } from '../src/codex-relay-frame/codex-relay-frame.js';
import { HybridIkInitiator, HybridIkResponder } from '../src/noise-hybrid/hybrid-ik-handshake.js';
import { generateHybridKeyPair } from '../src/noise-hybrid/hybrid-keys.js';
import { hybridPrologue } from '../src/noise-hybrid/prologue.js';
import { generateIdentity } from '../src/noise/identity.js';
import { benchNumber, timeRuns, type BenchFigure } from './bench-result.js';
import { xxChannelPair } from './xx-channel-pair.js';

const RUNS = benchNumber('BENCH_HANDSHAKE_RUNS', 200, 30);
const WARMUP = benchNumber('BENCH_HANDSHAKE_WARMUP', 20, 5);

const SCENARIO = 'Noise handshake in one process (until both sides hold a transport)';
const XX = 'libp2p Noise XX (Ed25519, X25519, ChaCha20-Poly1305), reliable stream + relay frames';
const HYBRID = 'hybrid IK (X25519 + ML-KEM-768, AES-256-GCM), codex relay frames';
const HYBRID_COMPUTE = 'hybrid IK, computation only (no link, no frames)';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function xxHandshakes(): Promise<number[]> {
  const [clientIdentity, agentIdentity] = await Promise.all([generateIdentity(), generateIdentity()]);
  return timeRuns(RUNS, WARMUP, async () => {
    const { client, agent } = await xxChannelPair({ client: clientIdentity, agent: agentIdentity });
    await Promise.all([client.close(), agent.close()]);
  });
}

const harness = generateHybridKeyPair();
const executor = generateHybridKeyPair();
const authorization = Buffer.from('hka_0123456789abcdefghijklmnopqrstuv'); // 36 bytes, as codex's

function handshakeMessage(frame: Uint8Array): Uint8Array {
  const decoded = decodeCodexRelayFrame(Buffer.from(frame));
  if (!decoded.ok || decoded.frame.body.type !== 'handshake') throw new Error('bench: not a handshake frame');
  return decoded.frame.body.payload;
}

async function hybridHandshake(framed: boolean): Promise<void> {
  const streamId = randomUUID();
  const prologue = hybridPrologue({ environmentId: 'bench-env', executorRegistrationId: 'reg-bench', streamId });
  const initiator = new HybridIkInitiator({ staticKeyPair: harness, responderStaticKey: executor.publicKey, prologue });
  const responder = new HybridIkResponder({ staticKeyPair: executor, prologue });
  const message1 = initiator.writeMessage1(authorization);
  if (!framed) {
    responder.readMessage1(message1);
    initiator.readMessage2(responder.writeMessage2().message);
    return;
  }
  const frame1 = encodeCodexRelayFrame({ streamId, body: { type: 'handshake', payload: message1 } });
  await nextTurn();
  responder.readMessage1(handshakeMessage(frame1));
  const frame2 = encodeCodexRelayFrame({ streamId, body: { type: 'handshake', payload: responder.writeMessage2().message } });
  await nextTurn();
  initiator.readMessage2(handshakeMessage(frame2));
}

export async function run(): Promise<BenchFigure[]> {
  const xx = await xxHandshakes();
  const hybrid = await timeRuns(RUNS, WARMUP, () => hybridHandshake(true));
  const compute = await timeRuns(RUNS, WARMUP, () => hybridHandshake(false));
  return [
    { scenario: SCENARIO, name: XX, unit: 'ms', higherIsBetter: false, samples: xx },
    { scenario: SCENARIO, name: HYBRID, unit: 'ms', higherIsBetter: false, samples: hybrid, baseline: XX },
    { scenario: SCENARIO, name: HYBRID_COMPUTE, unit: 'ms', higherIsBetter: false, samples: compute, baseline: XX },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
