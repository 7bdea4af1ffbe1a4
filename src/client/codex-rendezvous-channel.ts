import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { CodexChannelError } from '../codex-channel/codex-channel-error.js';
import { CodexNoiseChannel } from '../codex-channel/codex-noise-channel.js';
import { decodeCodexRelayFrame, encodeCodexRelayFrame, MAX_CODEX_RELAY_FRAME_BYTES } from '../codex-relay-frame/codex-relay-frame.js';
import { CODEX_REJECTION_REASON_HEADER } from '../codex-registry/registry-endpoints.js';
import { CodexRegistryRefusedError, requestCodexConnect } from '../codex-registry/registry-client.js';
import { hybridFingerprint } from '../noise-hybrid/hybrid-fingerprint.js';
import { HybridIkInitiator } from '../noise-hybrid/hybrid-ik-handshake.js';
import { hybridPrologue } from '../noise-hybrid/prologue.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../transport/message-transport.js';
import { CLIENT_NOT_AUTHORIZED_RESET_REASON } from '../relay-control/relay-endpoints.js';
import { proxyAgent, ProxyRefusedError, proxyUrlHasCredentials, redactProxyUrl, type RelayProxy } from '../relay-link/relay-proxy.js';
import { ClientNotAuthorizedError } from './client-not-authorized-error.js';
import { ACCEPT_RELAY_KEY, type CodexRendezvousTarget } from './codex-rendezvous-target.js';
import { DEFAULT_SESSION_RECOVERY, type StreamReopener } from './session-resume-retries.js';

export { ACCEPT_RELAY_KEY, type CodexRendezvousTarget };

/** The pinned executor key and the one the relay named differ. */
export class CodexExecutorKeyMismatchError extends Error {
  override readonly name = 'CodexExecutorKeyMismatchError';
  constructor(
    readonly expected: string,
    readonly presented: string,
  ) {
    super(`the relay names executor key ${presented} for this environment, not the pinned ${expected}: refused (if the codex executor restarted, it has a new key)`);
  }
}

/** What the channel ends up with. */
export interface CodexRendezvousChannel {
  readonly channel: CodexNoiseChannel;
  /** `hyb1:` fingerprint of the executor key the handshake authenticated. */
  readonly executorFingerprint: string;
}

/**
 * Opens one end-to-end encrypted stream to a codex-protocol executor through the relay:
 * `POST …/connect` (client token, this client's hybrid key → rendezvous URL, executor key,
 * registration id, authorization), the rendezvous WebSocket, `Resume{0}` then `Handshake{msg1}`
 * carrying the authorization, the executor's `Handshake{msg2}` → the transport. A pinned key that
 * differs from the relay's answer is refused before anything is sent to the executor. An
 * executor's `client_not_authorized` reset (`execrelay agent --wire codex`'s own list) is a
 * {@link ClientNotAuthorizedError} naming this client's `hyb1:` fingerprint.
 */
export async function openCodexRendezvousChannel(target: CodexRendezvousTarget): Promise<CodexRendezvousChannel> {
  const timeoutMs = target.handshakeTimeoutMs ?? 10_000;
  const answer = await requestCodexConnect({
    relay: target.relay,
    environmentId: target.environmentId,
    token: target.token,
    harnessKey: target.hybridKey.publicKey,
    timeoutMs,
    ...(target.proxy ? { proxy: target.proxy } : {}),
  });
  const executorFingerprint = hybridFingerprint(answer.executorKey);
  if (target.executorKey !== ACCEPT_RELAY_KEY && target.executorKey !== executorFingerprint) throw new CodexExecutorKeyMismatchError(target.executorKey, executorFingerprint);
  const socket = await openRendezvousSocket(answer.url, timeoutMs, target.proxy);
  const streamId = randomUUID();
  try {
    const initiator = new HybridIkInitiator({
      staticKeyPair: target.hybridKey,
      responderStaticKey: answer.executorKey,
      prologue: hybridPrologue({ environmentId: target.environmentId, executorRegistrationId: answer.registrationId, streamId }),
    });
    const message1 = initiator.writeMessage1(Buffer.from(answer.authorization, 'utf8'));
    const channel = await new Promise<CodexNoiseChannel>((resolve, reject) => {
      const timer = setTimeout(() => fail(new CodexChannelError('handshake-timeout', `the codex executor did not answer the handshake within ${timeoutMs} ms`)), timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        socket.off('message', onMessage);
        socket.off('close', onClose);
      };
      const fail = (error: Error) => {
        cleanup();
        reject(error);
      };
      const onClose = (code: number) => fail(new CodexChannelError('socket-closed', `the rendezvous socket closed during the handshake (code ${code})`));
      const onMessage = (data: Buffer, isBinary: boolean) => {
        if (!isBinary) return;
        const decoded = decodeCodexRelayFrame(data);
        if (!decoded.ok || decoded.frame.streamId !== streamId) return;
        const { body } = decoded.frame;
        if (body.type === 'reset') {
          // An execrelay agent on the codex wire checks its own authorized clients: named as the native client names it.
          if (body.reason === CLIENT_NOT_AUTHORIZED_RESET_REASON) return fail(new ClientNotAuthorizedError(hybridFingerprint(target.hybridKey.publicKey)));
          return fail(new CodexChannelError('reset', handshakeResetMessage(body.reason), body.reason));
        }
        if (body.type !== 'handshake') return;
        try {
          const transport = initiator.readMessage2(body.payload);
          cleanup();
          // Attached in this same callback: no frame after message 2 is missed.
          resolve(new CodexNoiseChannel(socket, streamId, transport, target.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES));
        } catch (error) {
          fail(new CodexChannelError('handshake-failed', `the codex executor's handshake answer failed: ${(error as Error).message}`));
        }
      };
      socket.on('message', onMessage);
      socket.on('close', onClose);
      socket.send(encodeCodexRelayFrame({ streamId, body: { type: 'resume', nextSeq: 0 } }), { binary: true });
      socket.send(encodeCodexRelayFrame({ streamId, body: { type: 'handshake', payload: message1 } }), { binary: true });
    });
    return { channel, executorFingerprint };
  } catch (error) {
    socket.close(1000);
    throw error;
  }
}

/**
 * How `ExecClient` gets a new stream to the same executor when one ends: a new `connect` (a fresh
 * authorization), a new stream id and handshake, pinned to the key the first handshake
 * authenticated — a session lives in one executor process, so another key (another executor, or
 * one the relay names instead) is refused, not resumed against.
 */
export function codexStreamReopener(target: CodexRendezvousTarget, executorFingerprint: string): StreamReopener | undefined {
  const policy = target.recovery ?? DEFAULT_SESSION_RECOVERY;
  if (policy.timeoutMs <= 0) return undefined;
  const handshakeTimeoutMs = target.handshakeTimeoutMs ?? 10_000;
  return {
    policy,
    reopen: async (remainingMs) => (await openCodexRendezvousChannel({ ...target, executorKey: executorFingerprint, handshakeTimeoutMs: Math.min(handshakeTimeoutMs, remainingMs) })).channel,
    isPermanent: isPermanentCodexFailure,
  };
}

/**
 * A failure to open a stream that retrying will not change: another executor key, the executor
 * refusing this client (its authorized clients), a registry refusal of the token or request, a
 * proxy refusing the relay. The executor not being registered
 * (yet, after a relay restart), the relay being unreachable, a handshake or socket failure are
 * worth another attempt.
 */
export function isPermanentCodexFailure(error: unknown): boolean {
  if (error instanceof CodexExecutorKeyMismatchError || error instanceof ClientNotAuthorizedError) return true;
  if (error instanceof CodexRegistryRefusedError) return error.permanent;
  if (error instanceof ProxyRefusedError) return error.permanent;
  return false;
}

function handshakeResetMessage(reason: string): string {
  if (reason === 'noise_relay_protocol_error') {
    return 'the codex executor refused the handshake (reset noise_relay_protocol_error): the relay did not validate this client\'s authorization, or the executor key changed';
  }
  return `the handshake was refused: reset ${reason}`;
}

/** The rendezvous WebSocket (its URL carries its own signed credential), through `proxy` when given. */
function openRendezvousSocket(url: string, timeoutMs: number, proxy: RelayProxy | undefined): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let proxyRefusal: ProxyRefusedError | undefined;
    const agent = proxy
      ? proxyAgent(proxy, (status, statusText) => {
          if (status !== 200) proxyRefusal = new ProxyRefusedError(redactProxyUrl(proxy.url), status, statusText, new URL(url).host, proxyUrlHasCredentials(proxy.url));
        })
      : undefined;
    const via = proxy ? ` through proxy ${redactProxyUrl(proxy.url)}` : '';
    const socket = new WebSocket(url, { maxPayload: MAX_CODEX_RELAY_FRAME_BYTES, perMessageDeflate: false, handshakeTimeout: timeoutMs, ...(agent ? { agent } : {}) });
    socket.once('open', () => {
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      resolve(socket);
    });
    socket.once('unexpected-response', (_request, response) => {
      const reason = response.headers[CODEX_REJECTION_REASON_HEADER];
      response.resume();
      socket.terminate();
      reject(proxyRefusal ?? new Error(`the relay refused the rendezvous socket: HTTP ${response.statusCode ?? 0}${reason ? ` ${String(reason)}` : ''}`));
    });
    socket.once('error', (error) => reject(proxyRefusal ?? new Error(`cannot open the rendezvous socket${via}: ${error.message}`)));
  });
}
