import { codexRegistryPath, CODEX_NOISE_STREAM_ID_HEADER, CODEX_SECURITY_PROFILE, type CodexRegistryAction } from './registry-endpoints.js';
import { ConnectResponse, RegisterResponse, RegistryErrorBody, ValidateResponse } from './registry-messages.js';
import { encodeRegistryPublicKey, parseRegistryPublicKey } from '../noise-hybrid/registry-public-key.js';
import type { HybridPublicKey } from '../noise-hybrid/hybrid-keys.js';

/** Largest registry answer read (a connect answer is ≈ 2.5 KB, the largest). */
const MAX_ANSWER_BYTES = 64 * 1024;

/** What `connect` answers, checked. */
export interface CodexConnectAnswer {
  /** The harness's rendezvous WebSocket URL (signed by the relay, short-lived). */
  readonly url: string;
  readonly registrationId: string;
  /** The key the executor registered: the handshake pins it. */
  readonly executorKey: HybridPublicKey;
  readonly authorization: string;
}

/** The registry refused (`status` and its error `code`, or a malformed answer). */
export class CodexRegistryRefusedError extends Error {
  override readonly name = 'CodexRegistryRefusedError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** A refusal retrying will not change (bad token, scope, request), or an answer that is not the registry's (codex exits on one). */
  get permanent(): boolean {
    if (this.code === 'malformed_answer') return true;
    return this.status >= 400 && this.status < 500 && this.status !== 404 && this.status !== 409;
  }
}

/** The registry's HTTP base for a relay URL: `ws://H:P` → `http://H:P`, `wss://` → `https://`. */
export function registryBaseUrl(relay: string): string {
  const url = new URL(relay);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  else if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`relay URL must be ws://, wss://, http:// or https:// (got ${url.protocol})`);
  return url.origin;
}

/**
 * `POST {relay}/cloud/environment/{id}/connect` with a client-role bearer token and this client's
 * hybrid public key. @throws CodexRegistryRefusedError with the registry's reason.
 */
export async function requestCodexConnect(options: {
  relay: string;
  environmentId: string;
  token: string;
  harnessKey: HybridPublicKey;
  timeoutMs?: number;
}): Promise<CodexConnectAnswer> {
  const body = await postRegistry(options.relay, options.environmentId, 'connect', options.token, { harness_public_key: encodeRegistryPublicKey(options.harnessKey) }, options.timeoutMs);
  const status = 200; // a refusal threw in postRegistry
  const answer = ConnectResponse.safeParse(body);
  if (!answer.success) throw new CodexRegistryRefusedError(status, 'malformed_answer', "the relay's connect answer is not a codex connect response");
  if (answer.data.environment_id !== options.environmentId) throw new CodexRegistryRefusedError(status, 'malformed_answer', 'the relay answered for another environment');
  if (answer.data.security_profile !== CODEX_SECURITY_PROFILE) throw new CodexRegistryRefusedError(status, 'malformed_answer', `unsupported security profile ${JSON.stringify(answer.data.security_profile.slice(0, 64))}`);
  const rendezvous = new URL(answer.data.url);
  if (rendezvous.protocol !== 'ws:' && rendezvous.protocol !== 'wss:') throw new CodexRegistryRefusedError(status, 'malformed_answer', 'the rendezvous URL is not ws:// or wss://');
  let executorKey: HybridPublicKey;
  try {
    executorKey = parseRegistryPublicKey(answer.data.executor_public_key, 'executor_public_key');
  } catch (error) {
    throw new CodexRegistryRefusedError(status, 'malformed_answer', `the relay's connect answer: ${(error as Error).message}`);
  }
  return { url: answer.data.url, registrationId: answer.data.executor_registration_id, executorKey, authorization: answer.data.harness_key_authorization };
}

/** What `register` answers, checked as codex checks it. */
export interface CodexRegisterAnswer {
  /** The executor's rendezvous WebSocket URL (signed by the relay, short-lived), used verbatim. */
  readonly url: string;
  readonly registrationId: string;
}

/**
 * `POST {relay}/cloud/environment/{id}/register` with an executor-role bearer token and the
 * executor's hybrid public key, as `codex exec-server --remote` does; the answer is checked as
 * codex checks it (same environment, the one security profile, the bearer never echoed).
 * @throws CodexRegistryRefusedError with the registry's reason.
 */
export async function requestCodexRegister(options: {
  relay: string;
  environmentId: string;
  token: string;
  executorKey: HybridPublicKey;
  timeoutMs?: number;
}): Promise<CodexRegisterAnswer> {
  const request = { security_profile: CODEX_SECURITY_PROFILE, executor_public_key: encodeRegistryPublicKey(options.executorKey) };
  const body = await postRegistry(options.relay, options.environmentId, 'register', options.token, request, options.timeoutMs);
  const answer = RegisterResponse.safeParse(body);
  const malformed = (why: string) => new CodexRegistryRefusedError(200, 'malformed_answer', `the relay's register answer ${why}`);
  if (!answer.success) throw malformed('is not a codex registration response');
  if (answer.data.environment_id !== options.environmentId) throw malformed('is for another environment');
  if (answer.data.security_profile !== CODEX_SECURITY_PROFILE) throw malformed(`names an unsupported security profile ${JSON.stringify(answer.data.security_profile.slice(0, 64))}`);
  if (JSON.stringify(body).includes(options.token)) throw malformed('echoes the bearer token');
  const rendezvous = new URL(answer.data.url);
  if (rendezvous.protocol !== 'ws:' && rendezvous.protocol !== 'wss:') throw malformed('has a rendezvous URL that is not ws:// or wss://');
  return { url: answer.data.url, registrationId: answer.data.executor_registration_id };
}

/**
 * `POST {relay}/cloud/environment/{id}/validate` (the executor's bearer token, the stream in
 * `x-codex-noise-stream-id`): whether the relay minted `authorization` for exactly this client key,
 * environment and registration. True only for `{"valid":true}`; any other answer, refusal or
 * failure is false (codex resets the handshake on each).
 */
export async function requestCodexValidate(options: {
  relay: string;
  environmentId: string;
  token: string;
  streamId: string;
  registrationId: string;
  harnessKey: HybridPublicKey;
  authorization: string;
  timeoutMs?: number;
}): Promise<boolean> {
  const request = {
    executor_registration_id: options.registrationId,
    harness_public_key: encodeRegistryPublicKey(options.harnessKey),
    harness_key_authorization: options.authorization,
  };
  try {
    const body = await postRegistry(options.relay, options.environmentId, 'validate', options.token, request, options.timeoutMs, { [CODEX_NOISE_STREAM_ID_HEADER]: options.streamId });
    const answer = ValidateResponse.safeParse(body);
    return answer.success && answer.data.valid;
  } catch {
    return false;
  }
}

/** One registry call: POST the JSON `request`, read a bounded JSON answer. @throws CodexRegistryRefusedError on a refusal or a non-JSON answer. */
async function postRegistry(
  relay: string,
  environmentId: string,
  action: CodexRegistryAction,
  token: string,
  request: unknown,
  timeoutMs = 10_000,
  headers: Record<string, string> = {},
): Promise<unknown> {
  const base = registryBaseUrl(relay);
  const where = `${base}${codexRegistryPath(environmentId, action)}`;
  let response: Response;
  try {
    response = await fetch(where, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
  } catch (error) {
    throw new Error(`cannot reach the relay's registry at ${base}: ${(error as Error).message}`);
  }
  const text = await boundedText(response);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CodexRegistryRefusedError(response.status, 'malformed_answer', `the relay's registry answered HTTP ${response.status} without JSON`);
  }
  if (!response.ok) {
    const error = RegistryErrorBody.safeParse(body);
    const code = error.success ? error.data.error.code : 'unknown';
    const message = error.success ? `: ${error.data.error.message}` : '';
    const what = action === 'connect' ? 'connect to' : action === 'register' ? 'register' : 'validate a client for';
    throw new CodexRegistryRefusedError(response.status, code, `the relay refused to ${what} environment ${environmentId}: HTTP ${response.status} ${code}${message}`);
  }
  return body;
}

async function boundedText(response: Response): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_ANSWER_BYTES) {
    await response.body?.cancel();
    throw new CodexRegistryRefusedError(response.status, 'malformed_answer', 'the relay answered more than a registry answer holds');
  }
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw new CodexRegistryRefusedError(response.status, 'malformed_answer', 'the relay answered more than a registry answer holds');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
