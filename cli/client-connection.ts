import { ExecClient } from '../src/client/exec-client.js';
import type { RelayTarget } from '../src/client/relay-channel.js';
import { resolveToken } from '../src/auth/bearer-tokens.js';
import { loadIdentityFile, loadKnownEnvironments, parsePublicIdentity } from '../src/noise/identity.js';
import type { ConnectionOptions } from './connection-options.js';
import { describeError, ExitStatus } from './exit-status.js';

/** The flags are incomplete or inconsistent (a usage error), as opposed to a failure to connect. */
export class ConnectionUsageError extends Error {
  override readonly name = 'ConnectionUsageError';
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

/**
 * Connects (and initializes a session) as the flags say, for the client command `command` (as in
 * `execrelay walk: …` messages). On failure it writes one line to `stderr` and returns the exit
 * status: ExitStatus.Usage for missing or conflicting flags, ExitStatus.ExecrelayFailure when the
 * agent cannot be reached.
 */
export async function connectClient(command: string, options: ConnectionOptions, stderr: { write(text: string): unknown } = process.stderr): Promise<ExecClient | number> {
  let target: string | RelayTarget;
  try {
    target = await resolveConnectionTarget(options);
  } catch (error) {
    stderr.write(`execrelay ${command}: ${describeError(error)}\n`);
    return ExitStatus.Usage;
  }
  try {
    return await ExecClient.connect(target, { clientName: 'execrelay-cli' });
  } catch (error) {
    stderr.write(`execrelay ${command}: ${describeError(error)}\n`);
    return ExitStatus.ExecrelayFailure;
  }
}
