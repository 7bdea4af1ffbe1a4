import type WebSocket from 'ws';
import { generateIdentity, type Identity } from '../../src/noise/identity.js';
import { executorProofHeaders } from '../../src/relay-control/executor-proof.js';
import { EXECUTOR_CONNECT_PATH } from '../../src/relay-control/relay-endpoints.js';
import { connectRelaySocket } from '../../src/relay-link/relay-socket.js';

/** One agent key per environment id, so that a second registration of an environment is the same agent's. */
const keys = new Map<string, Promise<Identity>>();

/** The agent key a raw executor of `environmentId` proves (the same one every time in this process). */
export function executorKeyFor(environmentId: string): Promise<Identity> {
  let key = keys.get(environmentId);
  if (!key) {
    key = generateIdentity();
    keys.set(environmentId, key);
  }
  return key;
}

/**
 * A raw executor upgrade to the relay at `relayUrl`, as an agent makes it: the bearer token and a
 * fresh proof of the environment's agent key (`executorKeyFor`, or `identity`). Resolves with the
 * paused socket (call `resume()`), rejects with RelayRefusedError on a refusal.
 */
export async function connectProvenExecutor(relayUrl: string, environmentId: string, token: string, identity?: Identity): Promise<WebSocket> {
  const proof = await executorProofHeaders(identity ?? (await executorKeyFor(environmentId)), environmentId, relayUrl);
  return connectRelaySocket(`${relayUrl}${EXECUTOR_CONNECT_PATH}?environmentId=${encodeURIComponent(environmentId)}`, token, 5000, proof);
}
