import { DEFAULT_MAX_MESSAGE_BYTES } from '../src/transport/message-transport.js';
import { DEFAULT_RETAINED_OUTPUT_BYTES } from './output-log.js';
import type { RootSpec } from './root-confinement.js';
import type { HttpAllowRule } from './http-destination-policy.js';
import { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_RETENTION_MS } from './session-registry.js';

/** Everything that tunes the agent; each bound is named here with its default. */
export interface AgentConfig {
  /** Cap on one JSON-RPC message in either direction (over it: -32600). */
  maxMessageBytes: number;
  /** Newest output bytes kept per process for `process/read`. */
  retainedOutputBytes: number;
  /** Detached sessions are kept this long for `resumeSessionId`, then their processes are killed. */
  sessionRetentionMs: number;
  maxSessions: number;
  /** Grace between SIGTERM and SIGKILL on `process/terminate`. */
  terminateGraceMs: number;
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
  terminateGraceMs: 2000,
  maxQueuedPushBytes: 2 * 1024 * 1024,
  omitSandboxDenied: false,
  roots: [],
  httpAllow: [],
  httpAllowPrivate: false,
};
