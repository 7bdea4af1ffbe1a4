import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { auth, UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { ExecClient } from './exec-client.js';
import type { ExecutorFetch, ExecutorFetchOptions } from './executor-fetch.js';

/** Largest OAuth HTTP response body (discovery, registration, token) accepted through the executor. */
export const OAUTH_RESPONSE_LIMIT_BYTES = 1024 * 1024;

/** An OAuth endpoint answered with more than `OAUTH_RESPONSE_LIMIT_BYTES`. */
export class OAuthResponseTooLargeError extends Error {
  constructor(readonly url: string) {
    super(`OAuth HTTP response body exceeds ${OAUTH_RESPONSE_LIMIT_BYTES} bytes`);
    this.name = 'OAuthResponseTooLargeError';
  }
}

export { UnauthorizedError };

export interface McpThroughExecutorOptions {
  /** Persists client registration, PKCE verifier and tokens; without it the server must not need OAuth. */
  authProvider?: OAuthClientProvider;
  /** What the MCP client calls itself in `initialize`. */
  clientInfo?: { name: string; version: string };
  /** Options of the executor fetch (queue bound, timeout) for the MCP traffic. */
  fetchOptions?: ExecutorFetchOptions;
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** Whether `url` is the MCP endpoint itself (the Streamable HTTP traffic, which may stream for long). */
function isMcpEndpoint(url: URL, serverUrl: URL): boolean {
  return url.origin === serverUrl.origin && url.pathname === serverUrl.pathname;
}

/** Reads at most `limit` bytes of `response` into a buffered copy, or throws OAuthResponseTooLargeError. */
async function bufferCapped(response: Response, url: string, limit: number): Promise<Response> {
  const declared = Number(response.headers.get('content-length') ?? 'NaN');
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw new OAuthResponseTooLargeError(url);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => undefined);
        throw new OAuthResponseTooLargeError(url);
      }
      chunks.push(value);
    }
  }
  const body = NULL_BODY_STATUSES.has(response.status) ? null : Buffer.concat(chunks, total);
  const copy = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  Object.defineProperty(copy, 'url', { value: response.url, enumerable: true });
  if (response.redirected) Object.defineProperty(copy, 'redirected', { value: true, enumerable: true });
  return copy;
}

/**
 * The fetch handed to the MCP SDK: every request goes through the executor. Requests to the MCP
 * endpoint pass through as streams; every other request the SDK makes (its OAuth flow: metadata
 * discovery, client registration, token exchange and refresh) has its response buffered and
 * capped at `OAUTH_RESPONSE_LIMIT_BYTES`. `onOversized` hears of every cap violation.
 */
export function mcpFetchThroughExecutor(executorFetch: ExecutorFetch, serverUrl: URL, onOversized?: (error: OAuthResponseTooLargeError) => void): FetchLike {
  return async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input.href);
    const response = await executorFetch(url, init);
    if (isMcpEndpoint(url, serverUrl)) return response;
    try {
      return await bufferCapped(response, url.href, OAUTH_RESPONSE_LIMIT_BYTES);
    } catch (error) {
      if (error instanceof OAuthResponseTooLargeError) onOversized?.(error);
      throw error;
    }
  };
}

/** An MCP server reached through the executor. */
export interface McpConnection {
  client: Client;
  transport: StreamableHTTPClientTransport;
  close(): Promise<void>;
}

/**
 * Remembers the first OAuth cap violation of one operation, so a failure the SDK reports
 * differently (it falls back silently when protected-resource metadata cannot be read) still
 * names the cause.
 */
class CapWatch {
  first: OAuthResponseTooLargeError | undefined;
  readonly listener = (error: OAuthResponseTooLargeError) => {
    this.first ??= error;
  };

  explain(error: unknown): unknown {
    if (!this.first || error === this.first || error instanceof OAuthResponseTooLargeError) return error;
    if (error instanceof UnauthorizedError) return error;
    return Object.assign(new OAuthResponseTooLargeError(this.first.url), { cause: error });
  }
}

function mcpFetch(execClient: ExecClient, serverUrl: URL, options: McpThroughExecutorOptions, watch: CapWatch): FetchLike {
  const executorFetch = options.fetchOptions ? execClient.http.fetchWith(options.fetchOptions) : execClient.fetch;
  return mcpFetchThroughExecutor(executorFetch, serverUrl, watch.listener);
}

/**
 * Connects the MCP SDK's Streamable HTTP client to `serverUrl` through the executor: the MCP
 * traffic and the SDK's whole OAuth flow use the executor-backed fetch. When the server needs a
 * login that the provider's tokens cannot satisfy (not even by refreshing), the SDK calls
 * `authProvider.redirectToAuthorization(url)` and this rejects with `UnauthorizedError`; finish
 * with `finishMcpAuthorization` and connect again.
 */
export async function connectMcpThroughExecutor(
  execClient: ExecClient,
  serverUrl: string | URL,
  options: McpThroughExecutorOptions = {},
): Promise<McpConnection> {
  const url = new URL(serverUrl);
  const watch = new CapWatch();
  const transport = new StreamableHTTPClientTransport(url, {
    fetch: mcpFetch(execClient, url, options, watch),
    ...(options.authProvider ? { authProvider: options.authProvider } : {}),
  });
  const client = new Client(options.clientInfo ?? { name: 'execrelay', version: '0.1.0' });
  try {
    await client.connect(transport);
  } catch (error) {
    await transport.close().catch(() => undefined);
    throw watch.explain(error);
  }
  return { client, transport, close: () => client.close() };
}

/**
 * Starts (or refreshes) the OAuth login for `serverUrl` through the executor: discovery, dynamic
 * client registration and PKCE. `REDIRECT`: the provider was given the authorization URL to open;
 * `AUTHORIZED`: its tokens are valid (refreshed when needed).
 */
export async function startMcpAuthorization(
  execClient: ExecClient,
  serverUrl: string | URL,
  authProvider: OAuthClientProvider,
  options: Omit<McpThroughExecutorOptions, 'authProvider'> = {},
): Promise<'AUTHORIZED' | 'REDIRECT'> {
  const url = new URL(serverUrl);
  const watch = new CapWatch();
  try {
    return await auth(authProvider, { serverUrl: url, fetchFn: mcpFetch(execClient, url, options, watch) });
  } catch (error) {
    throw watch.explain(error);
  }
}

/** Exchanges the authorization code from the redirect for tokens (through the executor) and saves them. */
export async function finishMcpAuthorization(
  execClient: ExecClient,
  serverUrl: string | URL,
  authProvider: OAuthClientProvider,
  authorizationCode: string,
  options: Omit<McpThroughExecutorOptions, 'authProvider'> = {},
): Promise<void> {
  const url = new URL(serverUrl);
  const watch = new CapWatch();
  let result: string;
  try {
    result = await auth(authProvider, { serverUrl: url, authorizationCode, fetchFn: mcpFetch(execClient, url, options, watch) });
  } catch (error) {
    throw watch.explain(error);
  }
  if (result !== 'AUTHORIZED') throw new UnauthorizedError('authorization code was not accepted');
}

/** The `code` (and `state`) from the URL the browser was redirected to; throws when it carries an OAuth error. */
export function parseAuthorizationRedirect(redirect: string): { code: string; state: string | undefined } {
  let url: URL;
  try {
    url = new URL(redirect.trim());
  } catch {
    throw new Error('not a URL: paste the whole address the browser was redirected to');
  }
  const error = url.searchParams.get('error');
  if (error) throw new Error(`authorization failed: ${error}${url.searchParams.get('error_description') ? `: ${url.searchParams.get('error_description')}` : ''}`);
  const code = url.searchParams.get('code');
  if (!code) throw new Error('the redirect URL has no "code" parameter');
  return { code, state: url.searchParams.get('state') ?? undefined };
}
