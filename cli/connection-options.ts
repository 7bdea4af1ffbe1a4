import { Command, Option } from 'commander';
import { ExecClient, type ExecClientOptions } from '../src/client/exec-client.js';
import type { RelayTarget } from '../src/client/relay-channel.js';
import { resolveToken } from '../src/auth/bearer-tokens.js';
import { loadIdentityFile, loadKnownEnvironments, parsePublicIdentity } from '../src/noise/identity.js';

/** How a client command reaches the agent: directly (`--url`) or through a relay (`--relay --env`). */
export interface ConnectionOptions {
  url?: string;
  relay?: string;
  env?: string;
  agentKey?: string;
  knownEnvironments?: string;
  key?: string;
  tokenFile?: string;
  token?: string;
}

/** The flags are incomplete or inconsistent (a usage error: exit status 2), as opposed to a failure to connect. */
export class ConnectionUsageError extends Error {
  override readonly name = 'ConnectionUsageError';
}

/** Adds the connection flags shared by every client command (`exec`, `fs`, `mcp`, ...). */
export function addConnectionOptions<C extends Command>(command: C): C {
  command
    .addOption(new Option('--url <url>', 'agent WebSocket URL for a direct connection (ws://HOST:PORT)').env('EXECRELAY_URL'))
    .addOption(new Option('--relay <url>', 'relay URL (ws:// or wss://): reach the environment through it, end-to-end encrypted').env('EXECRELAY_RELAY'))
    .addOption(new Option('--env <id>', 'environment to reach through the relay').env('EXECRELAY_ENVIRONMENT_ID'))
    .addOption(new Option('--agent-key <identity>', 'the agent\'s public identity; the connection is refused if the agent presents another').env('EXECRELAY_AGENT_KEY'))
    .addOption(new Option('--known-environments <file>', 'file of "ENVIRONMENT_ID PUBLIC_IDENTITY" lines to look the agent key up in').env('EXECRELAY_KNOWN_ENVIRONMENTS'))
    .addOption(new Option('--key <file>', 'this client\'s identity key (for agents that restrict clients); a fresh one otherwise').env('EXECRELAY_CLIENT_KEY'))
    .addOption(new Option('--token-file <file>', 'bearer token for the relay (first token in the file)').env('EXECRELAY_TOKEN_FILE'))
    .addOption(new Option('--token <token>').env('EXECRELAY_TOKEN').hideHelp());
  return command;
}

/**
 * Where the flags point: the agent's URL, or the relay target (environment, pinned agent key given
 * or looked up in the known-environments file, bearer token, optional client identity). Throws
 * ConnectionUsageError for missing or conflicting flags; other errors (unreadable files) as they are.
 */
export async function resolveConnectionTarget(options: ConnectionOptions): Promise<string | RelayTarget> {
  if (!options.url && !options.relay) {
    throw new ConnectionUsageError('give --relay URL --env ID --agent-key KEY (or --url URL for a direct agent)');
  }
  if (!options.relay) return options.url!;
  if (!options.env) throw new ConnectionUsageError('--relay needs --env ENVIRONMENT_ID');
  let agentKey = options.agentKey;
  if (!agentKey && options.knownEnvironments) {
    agentKey = (await loadKnownEnvironments(options.knownEnvironments)).get(options.env);
    if (!agentKey) throw new ConnectionUsageError(`environment ${options.env} is not in ${options.knownEnvironments}`);
  }
  if (!agentKey) throw new ConnectionUsageError('--relay needs the agent\'s public identity: --agent-key KEY or --known-environments FILE');
  try {
    parsePublicIdentity(agentKey);
  } catch (error) {
    throw new ConnectionUsageError(`--agent-key: ${(error as Error).message}`);
  }
  const token = await resolveToken(options.token, options.tokenFile, '--relay');
  const identity = options.key ? await loadIdentityFile(options.key) : undefined;
  return { relay: options.relay, environmentId: options.env, agentKey, token, ...(identity ? { identity } : {}) };
}

/** Connects (and initializes a session) as the flags say. */
export async function connectFromOptions(options: ConnectionOptions, clientOptions: ExecClientOptions = {}): Promise<ExecClient> {
  const target = await resolveConnectionTarget(options);
  return ExecClient.connect(target, { clientName: 'execrelay-cli', ...clientOptions });
}
