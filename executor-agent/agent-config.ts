import { DEFAULT_MAX_MESSAGE_BYTES } from '../src/transport/message-transport.js';
import { DEFAULT_RETAINED_OUTPUT_BYTES } from './output-log.js';
import type { RootSpec } from './root-confinement.js';
import type { HttpAllowRule } from './http-destination-policy.js';
import { DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_CLIENT, DEFAULT_SESSION_RETENTION_MS } from './session-registry.js';

/** Everything that tunes the agent; each bound is named here with its default. */
export interface AgentConfig {
  /** Cap on one JSON-RPC message in either direction (over it: -32600). */
  maxMessageBytes: number;
  /** Newest output bytes kept per process for `process/read`. */
  retainedOutputBytes: number;
  /** Detached sessions are kept this long for `resumeSessionId`, then their processes are killed. */
  sessionRetentionMs: number;
  /** Sessions held at once by all clients together (the backstop behind `maxSessionsPerClient`). */
  maxSessions: number;
  /**
   * Sessions one client identity holds at once: a relay client's Noise identity, or `local` for
   * every client of the WebSocket listener and stdio. At it, a new session ends that identity's
   * longest-detached session; with none detached, `initialize` is refused (-32600).
   */
  maxSessionsPerClient: number;
  /** Requests of one connection in their handlers at once (long-polls included); the rest wait in order. */
  maxConcurrentRequests: number;
  /** Requests of one connection waiting for a handler slot; past it: -32600 `too many pending requests`. */
  maxQueuedRequests: number;
  /**
   * Estimated bytes of large responses (`fs/readFile`, `fs/readBlock`, `process/read`) being built
   * or sent on one connection; a response that does not fit waits for earlier ones to be sent.
   */
  maxInflightResponseBytesPerConnection: number;
  /** The same budget for the whole agent, across connections. */
  maxInflightResponseBytes: number;
  /** Grace between SIGTERM and SIGKILL on `process/terminate`, and for what a drain terminates. */
  terminateGraceMs: number;
  /**
   * How long a drain (the agent's SIGTERM) lets running processes finish before it terminates
   * them (SIGTERM, then SIGKILL after `terminateGraceMs`).
   */
  drainTimeoutMs: number;
  /**
   * Bytes of pushed notifications queued on one connection before the session stops reading its
   * processes' output (they block on their pipes until the client catches up). At twice this,
   * pushes are dropped; a client then sees the seq gap and catches up with `process/read`.
   */
  maxQueuedPushBytes: number;
  /** Compatibility mode for tests: behave like a legacy server that omits `sandboxDenied`. */
  omitSandboxDenied: boolean;
  /**
   * Directories that fs paths and process cwds must resolve into (`--root PATH[:ro|:rw]`); writes
   * need an `rw` root. Empty: the whole filesystem the agent's user can reach.
   */
  roots: RootSpec[];
  /**
   * `--http-allow HOST[:PORT]` / `ADDRESS/LENGTH[:PORT]`: destinations `http/request` may reach
   * (every redirect hop is checked). Empty: any destination whose addresses are public. Loopback,
   * link-local, private, unique-local and unspecified addresses are refused unless an entry names
   * the address or a range holding it (a name entry alone never lets its name reach them).
   */
  httpAllow: HttpAllowRule[];
  /** `--http-allow-private`: lift the address-class refusal (names may resolve to any address). Default false. */
  httpAllowPrivate: boolean;
}

export const DEFAULT_AGENT_CONFIG: AgentConfig = {
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  retainedOutputBytes: DEFAULT_RETAINED_OUTPUT_BYTES,
  sessionRetentionMs: DEFAULT_SESSION_RETENTION_MS,
  maxSessions: DEFAULT_MAX_SESSIONS,
  maxSessionsPerClient: DEFAULT_MAX_SESSIONS_PER_CLIENT,
  maxConcurrentRequests: 32,
  maxQueuedRequests: 1024,
  maxInflightResponseBytesPerConnection: 64 * 1024 * 1024,
  maxInflightResponseBytes: 256 * 1024 * 1024,
  terminateGraceMs: 2000,
  drainTimeoutMs: 300_000,
  maxQueuedPushBytes: 2 * 1024 * 1024,
  omitSandboxDenied: false,
  roots: [],
  httpAllow: [],
  httpAllowPrivate: false,
};
