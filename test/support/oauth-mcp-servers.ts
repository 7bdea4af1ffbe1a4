/**
 * A real OAuth-protected MCP deployment for tests, built from the MCP SDK's server side:
 * - an authorization server (`mcpAuthRouter`: RFC 8414 metadata, dynamic client registration,
 *   authorization endpoint that approves at once (the user said yes), PKCE-checked token endpoint
 *   with authorization_code and refresh_token grants);
 * - a resource server: protected-resource metadata (RFC 9728) and a Streamable HTTP MCP endpoint
 *   behind `requireBearerAuth`, with a `whoami` tool.
 * Both answer only connections from the agent's source address (see mcp-executor-harness.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { createOAuthMetadata, getOAuthProtectedResourceMetadataUrl, mcpAuthMetadataRouter, mcpAuthRouter } from '@modelcontextprotocol/sdk/server/auth/router.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidGrantError, InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { AuthorizationParams, OAuthServerProvider } from '@modelcontextprotocol/sdk/server/auth/provider.js';
import type { OAuthRegisteredClientsStore } from '@modelcontextprotocol/sdk/server/auth/clients.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { OAuthClientInformationFull, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { startGuardedServer, type GuardedServer } from './mcp-executor-harness.js';

interface IssuedCode {
  clientId: string;
  params: AuthorizationParams;
}

interface IssuedToken {
  clientId: string;
  scopes: string[];
  expiresAt: number;
  resource?: URL | undefined;
}

/** An in-memory authorization server that approves every authorization request at once. */
export class AutoApprovingOAuthProvider implements OAuthServerProvider {
  readonly clients = new Map<string, OAuthClientInformationFull>();
  private readonly codes = new Map<string, IssuedCode>();
  private readonly accessTokens = new Map<string, IssuedToken>();
  private readonly refreshTokens = new Map<string, Omit<IssuedToken, 'expiresAt'>>();
  readonly counts = { registrations: 0, authorizations: 0, codeExchanges: 0, refreshes: 0 };

  get clientsStore(): OAuthRegisteredClientsStore {
    return {
      getClient: (clientId) => this.clients.get(clientId),
      registerClient: (metadata) => {
        // The SDK's registration handler has already generated client_id (clientIdGeneration).
        const client = metadata as OAuthClientInformationFull;
        this.counts.registrations++;
        this.clients.set(client.client_id, client);
        return client;
      },
    };
  }

  async authorize(client: OAuthClientInformationFull, params: AuthorizationParams, res: { redirect(status: number, url: string): void }): Promise<void> {
    this.counts.authorizations++;
    const code = randomBytes(16).toString('hex');
    this.codes.set(code, { clientId: client.client_id, params });
    const target = new URL(params.redirectUri);
    target.searchParams.set('code', code);
    if (params.state !== undefined) target.searchParams.set('state', params.state);
    res.redirect(302, target.href);
  }

  async challengeForAuthorizationCode(_client: OAuthClientInformationFull, authorizationCode: string): Promise<string> {
    const issued = this.codes.get(authorizationCode);
    if (!issued) throw new InvalidGrantError('unknown authorization code');
    return issued.params.codeChallenge;
  }

  async exchangeAuthorizationCode(client: OAuthClientInformationFull, authorizationCode: string, _verifier?: string, redirectUri?: string, resource?: URL): Promise<OAuthTokens> {
    const issued = this.codes.get(authorizationCode);
    if (!issued || issued.clientId !== client.client_id) throw new InvalidGrantError('authorization code not issued to this client');
    if (redirectUri !== undefined && redirectUri !== issued.params.redirectUri) throw new InvalidGrantError('redirect_uri mismatch');
    this.codes.delete(authorizationCode);
    this.counts.codeExchanges++;
    return this.issue(client.client_id, issued.params.scopes ?? [], resource ?? issued.params.resource);
  }

  async exchangeRefreshToken(client: OAuthClientInformationFull, refreshToken: string, _scopes?: string[], resource?: URL): Promise<OAuthTokens> {
    const issued = this.refreshTokens.get(refreshToken);
    if (!issued || issued.clientId !== client.client_id) throw new InvalidGrantError('unknown refresh token');
    this.refreshTokens.delete(refreshToken); // rotated
    this.counts.refreshes++;
    return this.issue(client.client_id, issued.scopes, resource ?? issued.resource);
  }

  async verifyAccessToken(token: string): Promise<AuthInfo> {
    const issued = this.accessTokens.get(token);
    if (!issued) throw new InvalidTokenError('unknown access token');
    return { token, clientId: issued.clientId, scopes: issued.scopes, expiresAt: issued.expiresAt, ...(issued.resource ? { resource: issued.resource } : {}) };
  }

  /** Makes every access token issued so far expired (the refresh tokens stay valid). */
  expireAccessTokens(): void {
    for (const token of this.accessTokens.values()) token.expiresAt = Math.floor(Date.now() / 1000) - 10;
  }

  private issue(clientId: string, scopes: string[], resource: URL | undefined): OAuthTokens {
    const accessToken = randomBytes(24).toString('hex');
    const refreshToken = randomBytes(24).toString('hex');
    this.accessTokens.set(accessToken, { clientId, scopes, expiresAt: Math.floor(Date.now() / 1000) + 3600, resource });
    this.refreshTokens.set(refreshToken, { clientId, scopes, resource });
    return { access_token: accessToken, token_type: 'Bearer', expires_in: 3600, refresh_token: refreshToken, scope: scopes.join(' ') };
  }
}

export interface OAuthMcpServers {
  /** The authorization server's issuer URL (`http://127.0.0.1:PORT/`). */
  issuerUrl: string;
  /** The MCP endpoint (`http://127.0.0.1:PORT/mcp`). */
  mcpUrl: string;
  provider: AutoApprovingOAuthProvider;
  authorizationServer: GuardedServer;
  resourceServer: GuardedServer;
  /** Serve authorization-server metadata larger than this many bytes (0: the real metadata). */
  oversizedMetadataBytes: number;
  /** Tool calls the MCP server ran. */
  readonly toolCalls: string[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Starts both servers on loopback ports, answering only the agent's source address. */
export async function startOAuthMcpServers(): Promise<OAuthMcpServers> {
  const provider = new AutoApprovingOAuthProvider();
  let asHandler: Handler = (_req, res) => res.writeHead(503).end();
  let rsHandler: Handler = (_req, res) => res.writeHead(503).end();
  const authorizationServer = await startGuardedServer((req, res) => asHandler(req, res));
  const resourceServer = await startGuardedServer((req, res) => rsHandler(req, res));
  const issuerUrl = new URL(`${authorizationServer.url}/`);
  const mcpUrl = new URL(`${resourceServer.url}/mcp`);
  const toolCalls: string[] = [];
  const fixture: OAuthMcpServers = {
    issuerUrl: issuerUrl.href,
    mcpUrl: mcpUrl.href,
    provider,
    authorizationServer,
    resourceServer,
    oversizedMetadataBytes: 0,
    toolCalls,
    async close() {
      for (const transport of sessions.values()) await transport.close().catch(() => undefined);
      await authorizationServer.close();
      await resourceServer.close();
    },
  };

  const noRateLimit = { rateLimit: false } as const;
  const as = createMcpExpressApp({ host: '127.0.0.1' });
  as.use('/.well-known/oauth-authorization-server', (_req: unknown, res: ServerResponse, next: () => void) => {
    if (fixture.oversizedMetadataBytes <= 0) return next();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ issuer: issuerUrl.href, padding: 'x'.repeat(fixture.oversizedMetadataBytes) }));
  });
  as.use(
    mcpAuthRouter({
      provider,
      issuerUrl,
      scopesSupported: ['mcp:tools'],
      authorizationOptions: noRateLimit,
      tokenOptions: noRateLimit,
      clientRegistrationOptions: noRateLimit,
      revocationOptions: noRateLimit,
    }),
  );
  asHandler = as as unknown as Handler;

  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const newMcpServer = () => {
    const server = new McpServer({ name: 'private-mcp', version: '1.0.0' });
    server.registerTool(
      'whoami',
      { description: 'Names the OAuth client that called', inputSchema: { greeting: z.string().optional() } },
      async ({ greeting }, extra) => {
        toolCalls.push('whoami');
        return { content: [{ type: 'text' as const, text: `${greeting ?? 'hello'} ${extra.authInfo?.clientId ?? 'anonymous'}` }] };
      },
    );
    server.registerTool('ping', { description: 'Answers pong' }, async () => ({ content: [{ type: 'text' as const, text: 'pong' }] }));
    return server;
  };
  const rs = createMcpExpressApp({ host: '127.0.0.1' });
  rs.use(
    mcpAuthMetadataRouter({
      oauthMetadata: createOAuthMetadata({ provider, issuerUrl, scopesSupported: ['mcp:tools'] }),
      resourceServerUrl: mcpUrl,
      scopesSupported: ['mcp:tools'],
      resourceName: 'private MCP server',
    }),
  );
  const bearer = requireBearerAuth({ verifier: provider, resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(mcpUrl) });
  rs.all('/mcp', bearer, async (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => {
    const sessionId = req.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
    if (!transport) {
      if (req.method !== 'POST' || typeof sessionId === 'string') {
        res.writeHead(typeof sessionId === 'string' ? 404 : 400, { 'content-type': 'application/json' }).end('{"error":"no such session"}');
        return;
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void sessions.set(id, created),
      });
      created.onclose = () => {
        if (created.sessionId) sessions.delete(created.sessionId);
      };
      await newMcpServer().connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res, req.body);
  });
  rsHandler = rs as unknown as Handler;
  return fixture;
}
