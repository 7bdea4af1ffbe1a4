/**
 * The MCP SDK's Streamable HTTP client and its whole OAuth flow through the executor, across a
 * real relay, against a real MCP server and authorization server built with the SDK's server side
 * (dynamic registration, PKCE, refresh) that answer only the agent's source address. The test
 * process's own global fetch throws, and every request the servers saw is one the agent sent.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../../src/client/exec-client.js';
import { FileOAuthProvider } from '../../src/client/file-oauth-provider.js';
import {
  connectMcpThroughExecutor,
  finishMcpAuthorization,
  parseAuthorizationRedirect,
  startMcpAuthorization,
  UnauthorizedError,
} from '../../src/client/mcp-through-executor.js';
import { registerMcpCommands, type McpCommandIo } from '../../cli/mcp-commands.js';
import { createIdentityFile } from '../../src/noise/identity.js';
import { relayTarget, startRelay, TEST_TOKEN, type RelayFixture } from '../support/relay-harness.js';
import { forbidDirectFetch, startRelayedHttpAgent, type RelayedHttpAgent } from '../support/mcp-executor-harness.js';
import { startOAuthMcpServers, type OAuthMcpServers } from '../support/oauth-mcp-servers.js';

const REDIRECT_URI = 'http://127.0.0.1:8914/callback';

let relay: RelayFixture;
let remote: RelayedHttpAgent;
let servers: OAuthMcpServers;
let client: ExecClient;
let dir: string;

/** The user's browser step, played through the executor: the authorization server approves and redirects. */
async function approveInBrowser(authorizationUrl: URL): Promise<string> {
  const response = await client.fetch(authorizationUrl, { redirect: 'manual' });
  expect(response.status).toBe(302);
  await response.body?.cancel();
  const location = response.headers.get('location');
  expect(location?.startsWith(REDIRECT_URI)).toBe(true);
  return location!;
}

function allServed(): number {
  return servers.authorizationServer.served.length + servers.resourceServer.served.length;
}

beforeAll(async () => {
  forbidDirectFetch();
  dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-mcp-'));
  // The CLI's relay connections need a client key (the harness's agent serves any client).
  await createIdentityFile(path.join(dir, 'client.key'));
  servers = await startOAuthMcpServers();
  relay = await startRelay();
  remote = await startRelayedHttpAgent(relay.url, 'mcp-env');
  client = await ExecClient.connect(relayTarget(relay.url, remote));
});

afterAll(async () => {
  client?.close();
  remote?.stop();
  await relay?.stop();
  await servers?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('MCP with OAuth through the executor', () => {
  it('registers, logs in with PKCE, calls a tool, and refreshes an expired token — all HTTP through the executor', async () => {
    const file = path.join(dir, 'oauth.json');
    let authorizationUrl: URL | undefined;
    const provider = new FileOAuthProvider({ file, serverUrl: servers.mcpUrl, redirectUrl: REDIRECT_URI, onAuthorizationUrl: (url) => void (authorizationUrl = url) });

    // No tokens: the SDK discovers, registers, and asks for the user's approval.
    await expect(connectMcpThroughExecutor(client, servers.mcpUrl, { authProvider: provider })).rejects.toBeInstanceOf(UnauthorizedError);
    expect(servers.provider.counts.registrations).toBe(1);
    expect(authorizationUrl).toBeDefined();
    expect(authorizationUrl!.origin).toBe(new URL(servers.issuerUrl).origin);
    expect(authorizationUrl!.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorizationUrl!.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorizationUrl!.searchParams.get('resource')).toBe(servers.mcpUrl);
    const [clientId] = [...servers.provider.clients.keys()];
    expect(authorizationUrl!.searchParams.get('client_id')).toBe(clientId);

    const { code, state } = parseAuthorizationRedirect(await approveInBrowser(authorizationUrl!));
    expect(state).toBe(provider.pendingState);
    await finishMcpAuthorization(client, servers.mcpUrl, provider, code);
    expect(servers.provider.counts.codeExchanges).toBe(1);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(saved.tokens.refresh_token).toEqual(expect.any(String));
    expect(saved.clientInformation.client_id).toBe(clientId);
    expect(saved.codeVerifier).toBeUndefined();

    const connection = await connectMcpThroughExecutor(client, servers.mcpUrl, { authProvider: provider });
    try {
      const { tools } = await connection.client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['ping', 'whoami']);
      const first = await connection.client.callTool({ name: 'whoami', arguments: { greeting: 'hi' } });
      expect(first.content).toEqual([{ type: 'text', text: `hi ${clientId}` }]);

      // The access token expires; the next call gets 401 and the SDK refreshes through the executor.
      servers.provider.expireAccessTokens();
      const before = JSON.parse(await readFile(file, 'utf8')).tokens.access_token;
      const second = await connection.client.callTool({ name: 'whoami', arguments: {} });
      expect(second.content).toEqual([{ type: 'text', text: `hello ${clientId}` }]);
      expect(servers.provider.counts.refreshes).toBe(1);
      expect(JSON.parse(await readFile(file, 'utf8')).tokens.access_token).not.toBe(before);
    } finally {
      await connection.close();
    }
    // Closing the MCP client cancelled its long-lived SSE GET through the executor.
    const deadline = Date.now() + 10_000;
    while (client.http.activeBodies > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(client.http.activeBodies).toBe(0);

    // Provably through the executor: the servers refused nobody and saw exactly what the agent sent.
    expect(servers.authorizationServer.violations).toEqual([]);
    expect(servers.resourceServer.violations).toEqual([]);
    expect(remote.requests.length).toBe(allServed());
    const paths = remote.requests.map((r) => new URL(r.url).pathname);
    expect(paths).toEqual(expect.arrayContaining(['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-authorization-server', '/register', '/authorize', '/token', '/mcp']));
    expect(servers.toolCalls).toEqual(['whoami', 'whoami']);
  });

  it('an OAuth response over 1 MiB fails with the exact message', async () => {
    servers.oversizedMetadataBytes = 2 * 1024 * 1024;
    try {
      const provider = new FileOAuthProvider({ file: path.join(dir, 'oversized.json'), serverUrl: servers.mcpUrl, redirectUrl: REDIRECT_URI, onAuthorizationUrl: () => undefined });
      await expect(connectMcpThroughExecutor(client, servers.mcpUrl, { authProvider: provider })).rejects.toThrow(/^OAuth HTTP response body exceeds 1048576 bytes$/);
      await expect(startMcpAuthorization(client, servers.mcpUrl, provider)).rejects.toThrow('OAuth HTTP response body exceeds 1048576 bytes');
    } finally {
      servers.oversizedMetadataBytes = 0;
    }
  });
});

describe('execrelay mcp login / tools', () => {
  function cli(): { io: McpCommandIo; stdout: () => string; stderr: () => string; stdin: PassThrough; exitCode: () => number | undefined; program: Command } {
    let out = '';
    let err = '';
    let code: number | undefined;
    const stdin = new PassThrough();
    const io: McpCommandIo = {
      stdout: { write: (text: string) => (out += text) },
      stderr: { write: (text: string) => (err += text) },
      stdin,
      setExitCode: (c) => void (code = c),
    };
    const program = new Command().exitOverride();
    registerMcpCommands(program, io);
    return { io, stdout: () => out, stderr: () => err, stdin, exitCode: () => code, program };
  }

  it('logs in (authorization URL printed, redirect pasted on stdin) and lists tools, through the relay', async () => {
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, `${TEST_TOKEN}\n`, { mode: 0o600 });
    const oauthFile = path.join(dir, 'cli-oauth.json');
    const connection = ['--relay', relay.url, '--env', remote.environmentId, '--agent-key', remote.identity.publicIdentity, '--key', path.join(dir, 'client.key'), '--token-file', tokenFile, '--oauth-file', oauthFile];

    const notLoggedIn = cli();
    await notLoggedIn.program.parseAsync(['mcp', 'tools', ...connection, servers.mcpUrl], { from: 'user' });
    expect(notLoggedIn.exitCode()).toBe(255);
    expect(notLoggedIn.stderr()).toMatch(/needs a login.*execrelay mcp login/);

    const login = cli();
    const running = login.program.parseAsync(['mcp', 'login', ...connection, servers.mcpUrl], { from: 'user' });
    // Wait for the printed authorization URL, approve it as the browser would, paste the redirect.
    const deadline = Date.now() + 15_000;
    while (!/https?:\/\/\S+\/authorize\?\S+/.test(login.stdout())) {
      if (Date.now() > deadline) throw new Error(`no authorization URL; stderr: ${login.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const authorizationUrl = new URL(login.stdout().match(/https?:\/\/\S+\/authorize\?\S+/)![0]);
    login.stdin.end(`${await approveInBrowser(authorizationUrl)}\n`);
    await running;
    expect(login.stderr()).not.toMatch(/execrelay mcp login:/);
    expect(login.exitCode()).toBe(0);
    expect(login.stdout()).toMatch(/logged in to .*\/mcp; credentials saved in /);
    expect((await stat(oauthFile)).mode & 0o777).toBe(0o600);

    const tools = cli();
    await tools.program.parseAsync(['mcp', 'tools', ...connection, servers.mcpUrl], { from: 'user' });
    expect(tools.stderr()).toBe('');
    expect(tools.exitCode()).toBe(0);
    expect(tools.stdout()).toBe('whoami\tNames the OAuth client that called\nping\tAnswers pong\n');

    const json = cli();
    await json.program.parseAsync(['mcp', 'tools', '--json', ...connection, servers.mcpUrl], { from: 'user' });
    expect(JSON.parse(json.stdout()).map((t: { name: string }) => t.name)).toEqual(['whoami', 'ping']);
  });

  it('finishes a login given --redirect, and refuses a redirect from another login (state mismatch)', async () => {
    const oauthFile = path.join(dir, 'cli-redirect.json');
    const connection = ['--oauth-file', oauthFile];
    // Start the login through the library (same file), then finish it with the CLI flag.
    let authorizationUrl: URL | undefined;
    const provider = new FileOAuthProvider({ file: oauthFile, serverUrl: servers.mcpUrl, redirectUrl: REDIRECT_URI, onAuthorizationUrl: (url) => void (authorizationUrl = url) });
    expect(await startMcpAuthorization(client, servers.mcpUrl, provider)).toBe('REDIRECT');
    const redirect = await approveInBrowser(authorizationUrl!);
    const target = ['--relay', relay.url, '--env', remote.environmentId, '--agent-key', remote.identity.publicIdentity, '--key', path.join(dir, 'client.key'), '--token', TEST_TOKEN];

    const forged = cli();
    const wrongState = new URL(redirect);
    wrongState.searchParams.set('state', 'forged');
    await forged.program.parseAsync(['mcp', 'login', ...connection, ...target, '--redirect', wrongState.href, servers.mcpUrl], { from: 'user' });
    expect(forged.exitCode()).toBe(255);
    expect(forged.stderr()).toMatch(/state mismatch/);

    const finish = cli();
    await finish.program.parseAsync(['mcp', 'login', ...connection, ...target, '--redirect', redirect, servers.mcpUrl], { from: 'user' });
    expect(finish.stderr()).toBe('');
    expect(finish.exitCode()).toBe(0);
    expect(JSON.parse(await readFile(oauthFile, 'utf8')).tokens.access_token).toEqual(expect.any(String));
  });

  it('reports usage errors with exit status 2', async () => {
    const usage = cli();
    await usage.program.parseAsync(['mcp', 'tools', '--relay', relay.url, servers.mcpUrl], { from: 'user' });
    expect(usage.exitCode()).toBe(255);
    expect(usage.stderr()).toMatch(/--relay needs --env/);
  });
});
