import http from 'node:http';
import https from 'node:https';
import { codexRegistryPath, CODEX_NOISE_STREAM_ID_HEADER, CODEX_SECURITY_PROFILE, type CodexRegistryAction } from './registry-endpoints.js';
import { ConnectResponse, RegisterResponse, RegistryErrorBody, ValidateResponse } from './registry-messages.js';
import { encodeRegistryPublicKey, parseRegistryPublicKey } from '../noise-hybrid/registry-public-key.js';
import type { HybridPublicKey } from '../noise-hybrid/hybrid-keys.js';
import { proxyAgent, ProxyRefusedError, proxyUrlHasCredentials, redactProxyUrl, type RelayProxy } from '../relay-link/relay-proxy.js';

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

  /**
   * A refusal retrying will not change (bad token, scope, request), or a 2xx answer that is not the
   * registry's (codex exits on one); a non-JSON 5xx (a proxy in front of a restarting relay) is not.
   */
  get permanent(): boolean {
    if (this.code === 'malformed_answer') return this.status >= 200 && this.status < 300;
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
export async function requestCodexConnect(options: RegistryCallOptions & { harnessKey: HybridPublicKey }): Promise<CodexConnectAnswer> {
  const what = `connect to environment ${options.environmentId}`;
  const answer = await callRegistry(options, 'connect', what, { harness_public_key: encodeRegistryPublicKey(options.harnessKey) });
  return parseConnectAnswer(answer.status, answer.body, options.environmentId);
}

/** What every registry call is given: where, as whom (the bearer token), how long. */
interface RegistryCallOptions {
  relay: string;
  environmentId: string;
  token: string;
  /** Default 10 s. */
  timeoutMs?: number;
  /** Tunnel the call through this HTTP CONNECT proxy (the one the rendezvous socket goes through). */
  proxy?: RelayProxy;
}

/**
 * One registry call: POSTs `request` as JSON to `{relay}/cloud/environment/{id}/{endpoint}` with
 * the bearer token (default timeout 10 s), reads the answer (see `postJson`) and checks it is a
 * 2xx JSON answer (see `registryAnswerBody`; `what` names what a refusal refused). Each caller
 * checks the body's shape its own way.
 */
async function callRegistry(
  options: RegistryCallOptions,
  endpoint: CodexRegistryAction,
  what: string,
  request: Record<string, unknown>,
  headers?: Readonly<Record<string, string>>,
): Promise<{ status: number; text: string; body: unknown }> {
  const where = `${registryBaseUrl(options.relay)}${codexRegistryPath(options.environmentId, endpoint)}`;
  const { status, text } = await postJson(where, options.token, JSON.stringify(request), options.timeoutMs ?? 10_000, options.proxy, headers);
  return { status, text, body: registryAnswerBody(status, text, what) };
}

/** A 2xx answer's JSON body; otherwise the registry's refusal (`what` it refused) as a CodexRegistryRefusedError. */
function registryAnswerBody(status: number, text: string, what: string): unknown {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CodexRegistryRefusedError(status, 'malformed_answer', `the relay's registry answered HTTP ${status} without JSON`);
  }
  if (status < 200 || status >= 300) {
    const error = RegistryErrorBody.safeParse(body);
    const code = error.success ? error.data.error.code : 'unknown';
    const message = error.success ? `: ${error.data.error.message}` : '';
    throw new CodexRegistryRefusedError(status, code, `the relay refused to ${what}: HTTP ${status} ${code}${message}`);
  }
  return body;
}

/** The connect answer checked (or the registry's refusal, as a CodexRegistryRefusedError). */
function parseConnectAnswer(status: number, body: unknown, environmentId: string): CodexConnectAnswer {
  const answer = ConnectResponse.safeParse(body);
  if (!answer.success) throw new CodexRegistryRefusedError(status, 'malformed_answer', "the relay's connect answer is not a codex connect response");
  if (answer.data.environment_id !== environmentId) throw new CodexRegistryRefusedError(status, 'malformed_answer', 'the relay answered for another environment');
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
 * codex checks it (same environment, the one security profile, the bearer never echoed, a
 * `ws(s)://` URL). @throws CodexRegistryRefusedError with the registry's reason (a malformed
 * answer is `permanent`: codex exits on one).
 */
export async function requestCodexRegister(options: RegistryCallOptions & { executorKey: HybridPublicKey }): Promise<CodexRegisterAnswer> {
  const request = { security_profile: CODEX_SECURITY_PROFILE, executor_public_key: encodeRegistryPublicKey(options.executorKey) };
  const response = await callRegistry(options, 'register', `register environment ${options.environmentId}`, request);
  const answer = RegisterResponse.safeParse(response.body);
  const malformed = (why: string) => new CodexRegistryRefusedError(response.status, 'malformed_answer', `the relay's register answer ${why}`);
  if (!answer.success) throw malformed('is not a codex registration response');
  if (answer.data.environment_id !== options.environmentId) throw malformed('is for another environment');
  if (answer.data.security_profile !== CODEX_SECURITY_PROFILE) throw malformed(`names an unsupported security profile ${JSON.stringify(answer.data.security_profile.slice(0, 64))}`);
  if (response.text.includes(options.token)) throw malformed('echoes the bearer token');
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
export async function requestCodexValidate(
  options: RegistryCallOptions & { streamId: string; registrationId: string; harnessKey: HybridPublicKey; authorization: string },
): Promise<boolean> {
  const request = {
    executor_registration_id: options.registrationId,
    harness_public_key: encodeRegistryPublicKey(options.harnessKey),
    harness_key_authorization: options.authorization,
  };
  try {
    const response = await callRegistry(options, 'validate', 'validate', request, { [CODEX_NOISE_STREAM_ID_HEADER]: options.streamId });
    const answer = ValidateResponse.safeParse(response.body);
    return answer.success && answer.data.valid;
  } catch {
    return false;
  }
}

/**
 * POSTs `body` with the bearer `token` and reads the answer, at most MAX_ANSWER_BYTES, within
 * `timeoutMs` (redirects are not followed). Through `proxy`, the call is tunnelled with the
 * relay's proxy dialer; the proxy refusing the CONNECT is a ProxyRefusedError.
 */
function postJson(
  where: string,
  token: string,
  body: string,
  timeoutMs: number,
  proxy: RelayProxy | undefined,
  headers: Readonly<Record<string, string>> = {},
): Promise<{ status: number; text: string }> {
  const url = new URL(where);
  const base = url.origin;
  let proxyRefusal: ProxyRefusedError | undefined;
  const agent = proxy
    ? proxyAgent(proxy, (status, statusText) => {
        if (status !== 200) proxyRefusal = new ProxyRefusedError(redactProxyUrl(proxy.url), status, statusText, url.host, proxyUrlHasCredentials(proxy.url));
      })
    : undefined;
  const via = proxy ? ` through proxy ${redactProxyUrl(proxy.url)}` : '';
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeoutMs),
      ...(agent ? { agent } : {}),
    });
    request.once('error', (error) => reject(proxyRefusal ?? new Error(`cannot reach the relay's registry at ${base}${via}: ${error.message}`, { cause: error })));
    request.once('response', (response) => {
      if (proxyRefusal) {
        response.resume();
        return reject(proxyRefusal);
      }
      const status = response.statusCode ?? 0;
      const tooLarge = () => {
        response.destroy();
        reject(new CodexRegistryRefusedError(status, 'malformed_answer', 'the relay answered more than a registry answer holds'));
      };
      if (Number(response.headers['content-length'] ?? 0) > MAX_ANSWER_BYTES) return tooLarge();
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) return tooLarge();
        chunks.push(chunk);
      });
      response.once('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8') }));
      response.once('error', (error) => reject(new Error(`cannot read the answer of the relay's registry at ${base}${via}: ${error.message}`)));
    });
    request.end(body);
  });
}
