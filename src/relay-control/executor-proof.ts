import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { parsePublicIdentity, type Identity } from '../noise/identity.js';

/**
 * The executor's proof of identity at registration: on the upgrade of `/v1/executors/connect` the
 * agent names its public identity and signs, with that identity's Ed25519 key, a message binding
 * the proof to the environment, to the relay as dialled and to this moment:
 *
 * ```
 * execrelay executor registration v1\n<environmentId>\n<relay host>\n<unix ms>\n<nonce>
 * ```
 *
 * The relay host is the `Host` of the upgrade request (lower case, without a default port `:80`
 * or `:443`), so a proof made for one relay is no good at another. The relay accepts a timestamp
 * within {@link PROOF_MAX_SKEW_MS} of its own clock and refuses a (timestamp, nonce) it has seen
 * (a bounded replay cache on the relay side). Signing and verifying are `@libp2p/crypto`'s. The
 * format is defined here, for both sides, and nowhere else.
 */

/** The agent's public identity (`12D3KooW...`). */
export const AGENT_IDENTITY_HEADER = 'X-Execrelay-Agent-Identity';
/** The Ed25519 signature over the proof message, base64url (no padding). */
export const AGENT_PROOF_HEADER = 'X-Execrelay-Agent-Proof';
/** When the proof was made, unix milliseconds. */
export const AGENT_PROOF_TIME_HEADER = 'X-Execrelay-Agent-Proof-Time';
/** 16 random bytes, base64url (no padding): one proof, one use. */
export const AGENT_PROOF_NONCE_HEADER = 'X-Execrelay-Agent-Proof-Nonce';

/** The first line of every signed proof message (a fixed context: the signature means nothing else). */
export const PROOF_CONTEXT = 'execrelay executor registration v1';
/** How far a proof's timestamp may be from the relay's clock, either way. */
export const PROOF_MAX_SKEW_MS = 5 * 60_000;

const NONCE_BYTES = 16;
const NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/;
const TIME_PATTERN = /^\d{1,15}$/;
/** An Ed25519 signature (64 bytes) in base64url without padding. */
const SIGNATURE_PATTERN = /^[A-Za-z0-9_-]{86}$/;
/** Longer than any Ed25519 peer id string; checked before parsing. */
const MAX_IDENTITY_CHARS = 100;

/** The host part a proof is bound to: lower case, without a default port. */
export function proofHost(host: string): string {
  return host.trim().toLowerCase().replace(/:(80|443)$/, '');
}

/** The host of a relay URL as the agent dials it (what the relay sees in `Host`). */
export function relayUrlHost(relayUrl: string): string {
  return proofHost(new URL(relayUrl).host);
}

function proofMessage(environmentId: string, host: string, timestamp: string, nonce: string): Uint8Array {
  return new TextEncoder().encode(`${PROOF_CONTEXT}\n${environmentId}\n${proofHost(host)}\n${timestamp}\n${nonce}`);
}

/**
 * The headers proving `identity` on a registration of `environmentId` at the relay `relayUrl`.
 * Fresh on every call (a new timestamp and nonce): make them for every dial.
 */
export async function executorProofHeaders(identity: Identity, environmentId: string, relayUrl: string, now = Date.now()): Promise<Record<string, string>> {
  const timestamp = String(now);
  const nonce = randomBytes(NONCE_BYTES).toString('base64url');
  const signature = await identity.privateKey.sign(proofMessage(environmentId, relayUrlHost(relayUrl), timestamp, nonce));
  return {
    [AGENT_IDENTITY_HEADER]: identity.publicIdentity,
    [AGENT_PROOF_HEADER]: Buffer.from(signature).toString('base64url'),
    [AGENT_PROOF_TIME_HEADER]: timestamp,
    [AGENT_PROOF_NONCE_HEADER]: nonce,
  };
}

/** Why a proof was not accepted (a fixed set: the relay logs and counts these, never more). */
export type ProofProblem = 'missing' | 'malformed' | 'stale' | 'bad_signature';

/** A verified proof: whose it is, and what the relay must remember until `expiresAt` to refuse a replay. */
export interface VerifiedProof {
  ok: true;
  /** The canonical public identity that signed. */
  identity: string;
  /** Names this proof among all proofs (its timestamp and nonce). */
  replayKey: string;
  /** After this (unix ms) the proof is stale anyway and need not be remembered. */
  expiresAt: number;
}

/**
 * Checks the proof headers of an executor upgrade for `environmentId`, made to `host` (the request's
 * `Host`), at `now`. Never throws. Does not check for a replay: the caller remembers `replayKey`.
 */
export async function verifyExecutorProof(
  headers: IncomingHttpHeaders,
  environmentId: string,
  host: string | undefined,
  now = Date.now(),
): Promise<VerifiedProof | { ok: false; problem: ProofProblem }> {
  const identityText = header(headers, AGENT_IDENTITY_HEADER);
  const signatureText = header(headers, AGENT_PROOF_HEADER);
  const timestamp = header(headers, AGENT_PROOF_TIME_HEADER);
  const nonce = header(headers, AGENT_PROOF_NONCE_HEADER);
  if (identityText === undefined || signatureText === undefined || timestamp === undefined || nonce === undefined) return { ok: false, problem: 'missing' };
  if (
    host === undefined ||
    identityText.length > MAX_IDENTITY_CHARS ||
    !SIGNATURE_PATTERN.test(signatureText) ||
    !TIME_PATTERN.test(timestamp) ||
    !NONCE_PATTERN.test(nonce)
  ) {
    return { ok: false, problem: 'malformed' };
  }
  let publicKey;
  let identity: string;
  try {
    const peerId = parsePublicIdentity(identityText);
    publicKey = peerId.publicKey;
    identity = peerId.toString();
  } catch {
    return { ok: false, problem: 'malformed' };
  }
  const madeAt = Number(timestamp);
  if (Math.abs(now - madeAt) > PROOF_MAX_SKEW_MS) return { ok: false, problem: 'stale' };
  let valid: boolean;
  try {
    valid = await publicKey.verify(proofMessage(environmentId, host, timestamp, nonce), Buffer.from(signatureText, 'base64url'));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, problem: 'bad_signature' };
  return { ok: true, identity, replayKey: `${timestamp}.${nonce}`, expiresAt: madeAt + PROOF_MAX_SKEW_MS };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return typeof value === 'string' ? value : undefined;
}
