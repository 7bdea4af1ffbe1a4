/**
 * The execrelay client library (`import { ExecClient } from 'execrelay'`): connect to an agent
 * directly (`ws://…`) or through a relay (to an execrelay agent, or to a codex executor), run processes, use files and HTTP through the executor,
 * recover a session. The exec protocol's types are under `execrelay/protocol`; MCP through the
 * executor under `execrelay/mcp` (it loads the MCP SDK, so it is not part of this entry).
 */
export {
  ExecClient,
  ProcessHandle,
  DEFAULT_EVENT_BUFFER_BYTES,
  DEFAULT_MAX_COLLECTED_BYTES,
  type ExecClientOptions,
  type ExecOptions,
} from './client/exec-client.js';
export type { SlowConsumerPolicy } from './client/process-tracker.js';
export { OutputLostError, type ClientProcessEvent, type ProcessCompletion } from './client/process-events.js';
export type { RelayTarget, RelayLinkEvent } from './client/relay-channel.js';
export { TRUST_ON_FIRST_USE } from './noise/channel-options.js';
// A codex-protocol environment behind the relay's rendezvous (hybrid IK): `ExecClient.connect` with a
// CodexRendezvousTarget holding the client's hybrid key.
export { ACCEPT_RELAY_KEY, type CodexRendezvousTarget } from './client/codex-rendezvous-target.js';
export { generateHybridKeyPair, type HybridKeyPair, type HybridPublicKey } from './noise-hybrid/hybrid-keys.js';
export { createHybridKeyFile, loadHybridKeyFile, type LoadHybridKeyFileOptions } from './noise-hybrid/hybrid-key-file.js';
export { hybridFingerprint } from './noise-hybrid/hybrid-fingerprint.js';
export { ClientNotAuthorizedError } from './client/client-not-authorized-error.js';
export { CallInterruptedError } from './client/resend-after-stream-loss.js';
export { FsClient, DEFAULT_WALK_OPTIONS, toRemoteUri, type ReadBlock, type RemotePath } from './client/fs-client.js';
export { ExecutorHttp, BodyQueueOverflowError, type ExecutorFetch, type ExecutorFetchOptions } from './client/executor-fetch.js';
export {
  recoverSession,
  resumeSession,
  reconcileProcess,
  type ProcessCursor,
  type ReconciledProcess,
  type ReconcileOptions,
} from './client/session-recovery.js';
export {
  generateIdentity,
  createIdentityFile,
  loadIdentityFile,
  parsePublicIdentity,
  isPublicIdentity,
  IdentityError,
  type Identity,
  type LoadIdentityOptions,
} from './noise/identity.js';
export { RpcError, ErrorCode, type ErrorCodeValue, type RpcErrorObject } from './protocol/error-codes.js';
