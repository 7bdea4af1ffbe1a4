/**
 * One hand-driven harness handshake on a codex rendezvous socket, with whatever key and
 * authorization a test chooses (the attacks the library client would never make): `accepted` when
 * the executor answers with message 2 (the stream is then reset by us), or the reset reason.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { decodeCodexRelayFrame, encodeCodexRelayFrame } from '../../src/codex-relay-frame/codex-relay-frame.js';
import type { CodexConnectAnswer } from '../../src/codex-registry/registry-client.js';
import { HybridIkInitiator } from '../../src/noise-hybrid/hybrid-ik-handshake.js';
import type { HybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { hybridPrologue } from '../../src/noise-hybrid/prologue.js';

export type HandshakeOutcome = { outcome: 'accepted' } | { outcome: 'reset'; reason: string };

export async function tryCodexHandshake(options: { environmentId: string; answer: CodexConnectAnswer; harnessKey: HybridKeyPair; authorization?: string; timeoutMs?: number }): Promise<HandshakeOutcome> {
  const { answer } = options;
  const socket = new WebSocket(answer.url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const streamId = randomUUID();
  const initiator = new HybridIkInitiator({
    staticKeyPair: options.harnessKey,
    responderStaticKey: answer.executorKey,
    prologue: hybridPrologue({ environmentId: options.environmentId, executorRegistrationId: answer.registrationId, streamId }),
  });
  try {
    return await new Promise<HandshakeOutcome>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to the handshake')), options.timeoutMs ?? 20_000);
      socket.on('message', (data: Buffer) => {
        const decoded = decodeCodexRelayFrame(data);
        if (!decoded.ok || decoded.frame.streamId !== streamId) return;
        const { body } = decoded.frame;
        if (body.type === 'reset') {
          clearTimeout(timer);
          resolve({ outcome: 'reset', reason: body.reason });
        } else if (body.type === 'handshake') {
          clearTimeout(timer);
          initiator.readMessage2(body.payload);
          socket.send(encodeCodexRelayFrame({ streamId, body: { type: 'reset', reason: 'client_closed' } }));
          resolve({ outcome: 'accepted' });
        }
      });
      socket.send(encodeCodexRelayFrame({ streamId, body: { type: 'resume', nextSeq: 0 } }));
      socket.send(encodeCodexRelayFrame({ streamId, body: { type: 'handshake', payload: initiator.writeMessage1(Buffer.from(options.authorization ?? answer.authorization, 'utf8')) } }));
    });
  } finally {
    setTimeout(() => socket.close(), 50).unref();
  }
}
