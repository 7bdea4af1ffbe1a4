import { existsSync } from 'node:fs';
import { ExecClient } from '../src/client/exec-client.js';
import type { RelayTarget } from '../src/client/relay-channel.js';
import { resolveToken } from '../src/auth/bearer-tokens.js';
import { loadIdentityFile, loadKnownEnvironments, parsePublicIdentity } from '../src/noise/identity.js';
import { relayProxyFor } from '../src/relay-link/relay-proxy.js';
import type { ConnectionOptions } from './connection-options.js';
import { defaultClientKeyPath } from './client-key-path.js';
import { describeError, ExitStatus } from './exit-status.js';

/** The flags are incomplete or inconsistent (a usage error), as opposed to a failure to connect. */
export class ConnectionUsageError extends Error {
  override readonly name = 'ConnectionUsageError';
}

/** A direct agent's URL, with the bearer token to present when the agent listens with `--listen-token-file`. */
export interface DirectTarget {
  url: string;
  token?: string;
}

/**
 * Where the flags point: the agent's URL (with a bearer token when `--agent-token-file` is given), or the
 * relay target (environment, pinned agent key given or looked up in the known-environments file,
 * bearer token, the client identity from `--key` or the default client key). Throws ConnectionUsageError for missing or conflicting
 * flags; other errors (unreadable files, token files readable by others) as they are. `warn` is told
 * when an insecure token file is accepted because of --allow-insecure-token-permissions.
 */
export async function resolveConnectionTarget(options: ConnectionOptions, warn: (message: string) => void = () => undefined): Promise<DirectTarget | RelayTarget> {
  if (!options.url && !options.relay) {
    throw new ConnectionUsageError('give --relay URL --env ID --agent-key KEY (or --url URL for a direct agent)');
  }
  const tokenOptions = { allowInsecurePermissions: options.allowInsecureTokenPermissions === true, warn };
  if (!options.relay) {
    const url = options.url!;
    if (!options.agentTokenFile) return { url };
    return { url, token: await resolveToken(undefined, options.agentTokenFile, '--url', tokenOptions) };
  }
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
  const token = await resolveToken(options.token, options.tokenFile, '--relay', tokenOptions);
  const proxy = relayProxyFor(options.relay, options.proxy);
  const identity = await loadIdentityFile(await clientKeyPath(options.key));
  return { relay: options.relay, environmentId: options.env, agentKey, token, identity, ...(proxy ? { proxy } : {}) };
}

/**
 * The client key file for a relay connection: `--key` (EXECRELAY_CLIENT_KEY), else the default
 * client key, which must exist (a client has one identity, which agents authorize: a fresh key per
 * run would never be authorized).
 */
async function clientKeyPath(key: string | undefined): Promise<string> {
  if (key !== undefined) {
    if (key.trim() === '') throw new ConnectionUsageError('--key (EXECRELAY_CLIENT_KEY) is empty: give this client\'s key file');
    return key;
  }
  const defaultPath = defaultClientKeyPath();
  if (!existsSync(defaultPath)) {
    throw new ConnectionUsageError(
      `--relay needs this client's identity key and ${defaultPath} does not exist: create it with \`execrelay keygen\` ` +
        '(it prints the identity to give the agent\'s operator), or give --key FILE',
    );
  }
  return defaultPath;
}

/**
 * Connects (and initializes a session) as the flags say, for the client command `command` (as in
 * `execrelay walk: …` messages). On failure it writes one line to `stderr` and returns the exit
 * status: ExitStatus.Usage for missing or conflicting flags, ExitStatus.ExecrelayFailure when the
 * agent cannot be reached.
 */
export async function connectClient(command: string, options: ConnectionOptions, stderr: { write(text: string): unknown } = process.stderr): Promise<ExecClient | number> {
  let target: DirectTarget | RelayTarget;
  try {
    target = await resolveConnectionTarget(options, (message) => stderr.write(`execrelay ${command}: warning: ${message}\n`));
  } catch (error) {
    stderr.write(`execrelay ${command}: ${describeError(error)}\n`);
    return ExitStatus.Usage;
  }
  try {
    if ('url' in target) return await ExecClient.connect(target.url, { clientName: 'execrelay-cli', ...(target.token ? { token: target.token } : {}) });
    return await ExecClient.connect(target, { clientName: 'execrelay-cli' });
  } catch (error) {
    stderr.write(`execrelay ${command}: ${describeError(error)}\n`);
    return ExitStatus.ExecrelayFailure;
  }
}
