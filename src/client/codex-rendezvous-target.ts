import type { HybridKeyPair } from '../noise-hybrid/hybrid-keys.js';
import type { RelayProxy } from '../relay-link/relay-proxy.js';
import type { SessionRecoveryPolicy } from './session-resume-retries.js';

/** Accept whatever executor key the relay's connect answer names (the relay vouches for it). */
export const ACCEPT_RELAY_KEY = Symbol('accept-relay-key');

/** Where and how a client reaches a codex-protocol environment through a relay. */
export interface CodexRendezvousTarget {
  /** Relay base URL, `ws://HOST:PORT` or `wss://HOST:PORT` (its registry is the same host over HTTP(S)). */
  relay: string;
  environmentId: string;
  /** A relay token with the client role for the environment. */
  token: string;
  /** This client's hybrid key (`execrelay keygen --hybrid`): the relay authorizes it for one handshake. */
  hybridKey: HybridKeyPair;
  /**
   * The executor key to insist on (`hyb1:` fingerprint; the connection is refused on any other),
   * or ACCEPT_RELAY_KEY: use the key the relay's connect answer names. A codex executor makes a
   * new key at every start, so only the relay can say which key is current.
   */
  executorKey: string | typeof ACCEPT_RELAY_KEY;
  handshakeTimeoutMs?: number;
  maxMessageBytes?: number;
  /**
   * When the stream ends under a live session (a dropped link, a relay restart), `ExecClient`
   * opens a new one and resumes the session within this policy (default DEFAULT_SESSION_RECOVERY:
   * 25 s); `timeoutMs: 0` turns recovery off.
   */
  recovery?: SessionRecoveryPolicy;
  /** An HTTP CONNECT proxy for the registry call and the rendezvous WebSocket (see `relayProxyFor`). */
  proxy?: RelayProxy;
}
