import { Command, Option } from 'commander';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { FileOAuthProvider } from '../src/client/file-oauth-provider.js';
import {
  connectMcpThroughExecutor,
  finishMcpAuthorization,
  parseAuthorizationRedirect,
  startMcpAuthorization,
  UnauthorizedError,
} from '../src/client/mcp-through-executor.js';
import { addConnectionOptions, type ConnectionOptions } from './connection-options.js';
import { connectClient, ConnectionUsageError } from './client-connection.js';
import { describeError, ExitStatus } from './exit-status.js';

/** Where the commands read and write; the defaults are the process's (tests pass their own). */
export interface McpCommandIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  stdin: NodeJS.ReadableStream;
  setExitCode(code: number): void;
}

const PROCESS_IO: McpCommandIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

/**
 * Registered as the OAuth client's redirect URI. Nothing needs to listen there: after approving,
 * the browser shows an error page whose address (with `code` and `state`) the user pastes back.
 */
export const DEFAULT_OAUTH_REDIRECT_URI = 'http://127.0.0.1:8914/callback';

interface McpCommandOptions extends ConnectionOptions {
  oauthFile?: string;
  redirectUri: string;
  redirect?: string;
  clientName: string;
  scope?: string;
  json?: boolean;
}

/** The default OAuth state file: one per (environment or agent URL, MCP server URL), under the user's config directory. */
export function defaultOAuthFile(options: ConnectionOptions, serverUrl: string): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  const where = options.relay ? `env:${options.env ?? ''}` : `url:${options.url ?? ''}`;
  const digest = createHash('sha256').update(`${where}\n${serverUrl}`).digest('hex').slice(0, 32);
  return path.join(base, 'execrelay', 'mcp-oauth', `${digest}.json`);
}


function parseServerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConnectionUsageError(`not a URL: ${value}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConnectionUsageError(`the MCP server URL must be http:// or https://, got ${url.protocol}`);
  return url.href;
}

async function readLine(input: NodeJS.ReadableStream): Promise<string | undefined> {
  const lines = createInterface({ input, terminal: false });
  try {
    for await (const line of lines) {
      if (line.trim() !== '') return line.trim();
    }
    return undefined;
  } finally {
    lines.close();
  }
}

function addMcpOptions(command: Command): Command {
  return addConnectionOptions(command)
    .addOption(new Option('--oauth-file <file>', 'where OAuth registration and tokens are kept (mode 0600); default one file per environment and server under ~/.config/execrelay/mcp-oauth').env('EXECRELAY_MCP_OAUTH_FILE'))
    .addOption(new Option('--redirect-uri <uri>', 'redirect URI registered with the authorization server').default(DEFAULT_OAUTH_REDIRECT_URI))
    .addOption(new Option('--client-name <name>', 'client_name for dynamic client registration').default('execrelay'))
    .addOption(new Option('--scope <scope>', 'scope to request when the server advertises none'));
}

async function runLogin(serverUrlArg: string, options: McpCommandOptions, io: McpCommandIo): Promise<number> {
  let serverUrl: string;
  try {
    serverUrl = parseServerUrl(serverUrlArg);
  } catch (error) {
    io.stderr.write(`execrelay mcp login: ${describeError(error)}\n`);
    return ExitStatus.ExecrelayFailure;
  }
  const connected = await connectClient('mcp login', options, io.stderr);
  if (typeof connected === 'number') return connected;
  const { client } = connected;
  const file = options.oauthFile ?? defaultOAuthFile(options, serverUrl);
  try {
    const provider = new FileOAuthProvider({
      file,
      serverUrl,
      redirectUrl: options.redirectUri,
      clientName: options.clientName,
      ...(options.scope ? { scope: options.scope } : {}),
      onAuthorizationUrl: (url) => {
        io.stdout.write(`Open this URL in a browser and approve the access:\n${url.href}\n`);
      },
    });
    // A registration made for another redirect URI cannot complete this login: register again.
    const registered = provider.clientInformation();
    if (registered && 'redirect_uris' in registered && Array.isArray(registered.redirect_uris) && !registered.redirect_uris.includes(options.redirectUri)) {
      await provider.invalidateCredentials('client');
    }
    const finish = async (redirect: string) => {
      const { code, state } = parseAuthorizationRedirect(redirect);
      if (provider.pendingState !== undefined && state !== provider.pendingState) {
        throw new Error('the redirect does not belong to the pending login (state mismatch); start the login again');
      }
      await finishMcpAuthorization(client, serverUrl, provider, code);
    };
    if (options.redirect) {
      await finish(options.redirect);
    } else {
      const result = await startMcpAuthorization(client, serverUrl, provider);
      if (result === 'AUTHORIZED') {
        io.stdout.write(`already logged in to ${serverUrl} (tokens refreshed); credentials in ${file}\n`);
        return 0;
      }
      io.stderr.write('Then paste the address your browser was sent to (it carries code=...), or rerun with --redirect URL:\n');
      const line = await readLine(io.stdin);
      if (!line) {
        io.stderr.write(`execrelay mcp login: no redirect URL given; finish with: execrelay mcp login ... --redirect 'URL' ${serverUrl}\n`);
        return ExitStatus.ExecrelayFailure;
      }
      await finish(line);
    }
    io.stdout.write(`logged in to ${serverUrl}; credentials saved in ${file}\n`);
    return 0;
  } catch (error) {
    io.stderr.write(`execrelay mcp login: ${describeError(error)}\n`);
    return ExitStatus.ExecrelayFailure;
  } finally {
    client.close();
  }
}

async function runTools(serverUrlArg: string, options: McpCommandOptions, io: McpCommandIo): Promise<number> {
  let serverUrl: string;
  try {
    serverUrl = parseServerUrl(serverUrlArg);
  } catch (error) {
    io.stderr.write(`execrelay mcp tools: ${describeError(error)}\n`);
    return ExitStatus.ExecrelayFailure;
  }
  const connected = await connectClient('mcp tools', options, io.stderr);
  if (typeof connected === 'number') return connected;
  const { client } = connected;
  const file = options.oauthFile ?? defaultOAuthFile(options, serverUrl);
  try {
    // No onAuthorizationUrl: this command refreshes tokens but never starts a login.
    const provider = new FileOAuthProvider({ file, serverUrl, redirectUrl: options.redirectUri, clientName: options.clientName });
    const connection = await connectMcpThroughExecutor(client, serverUrl, { authProvider: provider, clientInfo: { name: 'execrelay-cli', version: '0.1.0' } });
    try {
      const tools: Array<{ name: string; description?: string | undefined; inputSchema?: unknown }> = [];
      let cursor: string | undefined;
      do {
        const page = await connection.client.listTools(cursor ? { cursor } : {});
        tools.push(...page.tools);
        cursor = page.nextCursor;
      } while (cursor);
      if (options.json) {
        io.stdout.write(`${JSON.stringify(tools.map((t) => ({ name: t.name, description: t.description ?? null, inputSchema: t.inputSchema ?? null })), null, 2)}\n`);
      } else {
        for (const tool of tools) io.stdout.write(`${tool.name}${tool.description ? `\t${tool.description.split('\n')[0]}` : ''}\n`);
      }
      return 0;
    } finally {
      await connection.close().catch(() => undefined);
    }
  } catch (error) {
    const hint = error instanceof UnauthorizedError || /needs a login/.test((error as Error)?.message ?? '') ? ` (log in with: execrelay mcp login ... ${serverUrl})` : '';
    io.stderr.write(`execrelay mcp tools: ${describeError(error)}${hint}\n`);
    return ExitStatus.ExecrelayFailure;
  } finally {
    client.close();
  }
}

/** `execrelay mcp login|tools`: MCP servers reachable only from the executor, all HTTP through it. */
export function registerMcpCommands(program: Command, io: McpCommandIo = PROCESS_IO): Command {
  const mcp = program
    .command('mcp')
    .description('use an MCP server (Streamable HTTP) that only the executor can reach: OAuth login and tools, all HTTP through the executor');
  addMcpOptions(
    mcp
      .command('login')
      .description('log in to an OAuth-protected MCP server through the executor: prints the authorization URL, then takes the redirect')
      .option('--redirect <url>', 'the address the browser was redirected to after approving (instead of pasting it on stdin)')
      .argument('<server-url>', 'the MCP endpoint, e.g. https://mcp.internal/mcp'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  execrelay mcp login --relay wss://relay.example --env build-box --agent-key 12D3KooW... --token-file token https://mcp.internal/mcp\n  (open the printed URL, approve, paste the address the browser ends up on)',
    )
    .action(async (serverUrl: string, options: McpCommandOptions) => io.setExitCode(await runLogin(serverUrl, options, io)));
  addMcpOptions(
    mcp
      .command('tools')
      .description('list the tools of an MCP server through the executor (refreshes the OAuth token when needed)')
      .option('--json', 'print the tools as JSON (name, description, inputSchema)', false)
      .argument('<server-url>', 'the MCP endpoint'),
  ).action(async (serverUrl: string, options: McpCommandOptions) => io.setExitCode(await runTools(serverUrl, options, io)));
  return mcp;
}
