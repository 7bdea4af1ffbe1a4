import { existsSync } from 'node:fs';
import { ExecClient } from '../src/client/exec-client.js';
import type { RelayTarget } from '../src/client/relay-channel.js';
import { ACCEPT_RELAY_KEY, type CodexRendezvousTarget } from '../src/client/codex-rendezvous-target.js';
import { HYBRID_FINGERPRINT_PREFIX } from '../src/noise-hybrid/hybrid-fingerprint.js';
import { resolveToken } from '../src/auth/bearer-tokens.js';
import { TRUST_ON_FIRST_USE } from '../src/noise/channel-options.js';
import { loadIdentityFile, parsePublicIdentity } from '../src/noise/identity.js';
import { NoiseChannelError } from '../src/noise/noise-channel-error.js';
import { relayProxyFor } from '../src/relay-link/relay-proxy.js';
import { loadClientConfig, type EnvironmentEntry } from './client-config.js';
import type { ConnectionOptions } from './connection-options.js';
import { defaultClientHybridKeyPath, defaultClientKeyPath } from './client-key-path.js';
import { describeError, ExitStatus } from './exit-status.js';
import { identityFingerprint, lookUpKnownEnvironment, recordKnownEnvironment } from './known-environments-file.js';
import { defaultConfigPath, defaultKnownEnvironmentsPath } from './user-config-paths.js';

/** The flags are incomplete or inconsistent (a usage error), as opposed to a failure to connect. */
export class ConnectionUsageError extends Error {
  override readonly name = 'ConnectionUsageError';
}

/** A direct agent's URL, with the bearer token to present when the agent listens with `--listen-token-file`. */
export interface DirectTarget {
  url: string;
  token?: string;
}

/** Where the pinned agent identity came from: the known environments file's line is named in a mismatch. */
export type AgentKeySource =
  | { kind: 'given' }
  | { kind: 'known'; file: string; lineNumber: number }
  | { kind: 'learn'; file: string };

/** What the flags and the config entry resolve to. */
export interface ResolvedConnection {
  target: DirectTarget | RelayTarget | CodexRendezvousTarget;
  /** The config entry used, if any (its `cwd` is exec's default). */
  entry?: EnvironmentEntry;
  /** For a relay target: where its agent key came from. */
  agentKeySource?: AgentKeySource;
}

/**
 * Where the flags point, with the named config entry's settings under them (flags override the
 * entry, and a `--url` or `--relay` flag replaces the entry's endpoint): the agent's URL (with a
 * bearer token when an agent token file is given), or the relay target (environment, pinned agent
 * key given or looked up in the known environments file, bearer token, the client identity from
 * `--key` or the default client key). Throws ConnectionUsageError for missing or conflicting flags;
 * other errors (a bad config, unreadable files, token files readable by others) as they are. `warn`
 * is told when an insecure token file is accepted because of --allow-insecure-token-permissions.
 */
export async function resolveConnection(options: ConnectionOptions, warn: (message: string) => void = () => undefined): Promise<ResolvedConnection> {
  const config = await loadClientConfig(options.config);
  let entry: EnvironmentEntry | undefined;
  let env = options.env;
  if (options.environment !== undefined) {
    entry = config.environments.get(options.environment);
    if (entry === undefined) {
      // Not an entry: with --relay, the operand is the environment id itself.
      if (!options.relay) {
        throw new ConnectionUsageError(
          `no environment "${options.environment}" in ${config.file ?? `${defaultConfigPath()} (which does not exist)`}; add an [environments.${options.environment}] entry, or give --relay URL`,
        );
      }
      if (env !== undefined && env !== options.environment) throw new ConnectionUsageError(`environment "${options.environment}" and --env ${env} disagree: give one`);
      env = options.environment;
    }
  }
  const flagsEndpoint = options.url !== undefined || options.relay !== undefined;
  const url = flagsEndpoint ? options.url : entry?.url;
  const relay = flagsEndpoint ? options.relay : entry?.relay;
  if (!url && !relay) {
    throw new ConnectionUsageError('give a named environment from the config file, or --relay URL --env ID (or --url URL for a direct agent)');
  }
  const tokenOptions = { allowInsecurePermissions: options.allowInsecureTokenPermissions === true, warn };
  if (!relay) {
    const agentTokenFile = options.agentTokenFile ?? entry?.agentTokenFile;
    const target: DirectTarget = agentTokenFile ? { url: url!, token: await resolveToken(undefined, agentTokenFile, '--url', tokenOptions) } : { url: url! };
    return entry ? { target, entry } : { target };
  }
  const environmentId = env ?? entry?.environmentId;
  if (!environmentId) throw new ConnectionUsageError('--relay needs --env ENVIRONMENT_ID (or a named environment)');

  const givenKey = options.agentKey ?? entry?.agentKey;
  if (options.acceptRelayKey === true || givenKey?.trim().toLowerCase().startsWith(HYBRID_FINGERPRINT_PREFIX)) {
    const target = await resolveCodexTarget(options, entry, relay, environmentId, givenKey, tokenOptions);
    return entry ? { target, entry } : { target };
  }

  const explicitKnown = options.knownEnvironments ?? entry?.knownEnvironments ?? config.knownEnvironments;
  const knownFile = explicitKnown ?? defaultKnownEnvironmentsPath();
  const acceptNew = options.acceptNew ?? entry?.acceptNew ?? config.acceptNew;
  let agentKey: RelayTarget['agentKey'];
  let agentKeySource: AgentKeySource;
  if (givenKey !== undefined) {
    try {
      parsePublicIdentity(givenKey);
    } catch (error) {
      throw new ConnectionUsageError(`${options.agentKey !== undefined ? '--agent-key' : `agent_key of environment ${entry?.name}`}: ${(error as Error).message}`);
    }
    agentKey = givenKey;
    agentKeySource = { kind: 'given' };
  } else {
    const known = await lookUpKnownEnvironment(knownFile, environmentId, explicitKnown === undefined || acceptNew);
    if (known !== undefined) {
      agentKey = known.identity;
      agentKeySource = { kind: 'known', file: knownFile, lineNumber: known.lineNumber };
    } else if (acceptNew) {
      agentKey = TRUST_ON_FIRST_USE;
      agentKeySource = { kind: 'learn', file: knownFile };
    } else {
      throw new ConnectionUsageError(
        `environment ${environmentId} has no known identity: it is not in ${knownFile}. Give --agent-key KEY (the agent's operator has it: execrelay keygen --show), ` +
          'or learn it on first contact with --accept-new (or accept_new = true in the config)',
      );
    }
  }
  const token = options.token || options.tokenFile ? await resolveToken(options.token, options.tokenFile, '--relay', tokenOptions) : await resolveToken(undefined, entry?.tokenFile, '--relay', tokenOptions);
  const proxy = relayProxyFor(relay, options.proxy);
  const identity = await loadIdentityFile(await clientKeyPath(options.key ?? entry?.key, options.key !== undefined));
  const target: RelayTarget = { relay, environmentId, agentKey, token, identity, ...(proxy ? { proxy } : {}) };
  return entry ? { target, entry, agentKeySource } : { target, agentKeySource };
}

/**
 * A codex-protocol environment (`--accept-relay-key`, or `--agent-key hyb1:…`): the executor key
 * pinned by its fingerprint or taken from the relay's answer, and this client's hybrid key
 * (`--key`, else the default hybrid client key).
 */
async function resolveCodexTarget(
  options: ConnectionOptions,
  entry: EnvironmentEntry | undefined,
  relay: string,
  environmentId: string,
  givenKey: string | undefined,
  tokenOptions: { allowInsecurePermissions: boolean; warn: (message: string) => void },
): Promise<CodexRendezvousTarget> {
  // Loaded only for codex environments: ML-KEM is not needed by any other command.
  const { parseHybridFingerprint } = await import('../src/noise-hybrid/hybrid-fingerprint.js');
  const { loadHybridKeyFile } = await import('../src/noise-hybrid/hybrid-key-file.js');
  let executorKey: CodexRendezvousTarget['executorKey'] = ACCEPT_RELAY_KEY;
  if (givenKey !== undefined) {
    try {
      executorKey = parseHybridFingerprint(givenKey);
    } catch (error) {
      const shown = givenKey.trim().slice(0, 60);
      throw new ConnectionUsageError(
        givenKey.trim().toLowerCase().startsWith(HYBRID_FINGERPRINT_PREFIX)
          ? `--agent-key ${shown}: ${(error as Error).message}`
          : `--accept-relay-key reaches a codex executor, whose key is a hybrid fingerprint (hyb1:...): --agent-key ${shown} is not one`,
      );
    }
  }
  // The registry call and the rendezvous socket go through the same proxy as a native relay connection.
  const proxy = relayProxyFor(relay, options.proxy);
  const token = options.token || options.tokenFile ? await resolveToken(options.token, options.tokenFile, '--relay', tokenOptions) : await resolveToken(undefined, entry?.tokenFile, '--relay', tokenOptions);
  const keyPath = options.key ?? entry?.key;
  let path: string;
  if (keyPath !== undefined) {
    if (keyPath.trim() === '') throw new ConnectionUsageError('--key (EXECRELAY_CLIENT_KEY) is empty: give this client\'s hybrid key file');
    path = keyPath;
  } else {
    path = defaultClientHybridKeyPath();
    if (!existsSync(path)) {
      throw new ConnectionUsageError(
        `a codex environment needs this client's hybrid key and ${path} does not exist: create it with \`execrelay keygen --hybrid\`, or give --key FILE`,
      );
    }
  }
  let hybridKey;
  try {
    hybridKey = await loadHybridKeyFile(path);
  } catch (error) {
    throw new ConnectionUsageError(`${(error as Error).message} (a codex environment needs a hybrid key: execrelay keygen --hybrid --out FILE)`);
  }
  return { relay, environmentId, token, hybridKey, executorKey, ...(proxy ? { proxy } : {}) };
}

/**
 * The client key file for a relay connection: `--key` (EXECRELAY_CLIENT_KEY) or the entry's `key`,
 * else the default client key, which must exist (a client has one identity, which agents authorize:
 * a fresh key per run would never be authorized).
 */
async function clientKeyPath(key: string | undefined, fromFlag: boolean): Promise<string> {
  if (key !== undefined) {
    if (key.trim() === '') throw new ConnectionUsageError(`${fromFlag ? '--key (EXECRELAY_CLIENT_KEY)' : 'the config entry\'s key'} is empty: give this client's key file`);
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

/** A connected client, with the config entry it was reached through (if any). */
export interface ConnectedClient {
  client: ExecClient;
  entry?: EnvironmentEntry;
}

/**
 * Connects (and initializes a session) as the flags and the config say, for the client command
 * `command` (as in `execrelay walk: …` messages). An identity learned on first contact
 * (`--accept-new`) is recorded in the known environments file and its fingerprint written to
 * `stderr`; an identity that differs from the known environments file's is refused with a warning
 * naming the file and line. On failure it writes to `stderr` and returns ExitStatus.ExecrelayFailure.
 */
export async function connectClient(command: string, options: ConnectionOptions, stderr: { write(text: string): unknown } = process.stderr): Promise<ConnectedClient | number> {
  const say = (text: string): unknown => stderr.write(`execrelay ${command}: ${text}\n`);
  let resolved: ResolvedConnection;
  try {
    resolved = await resolveConnection(options, (message) => say(`warning: ${message}`));
  } catch (error) {
    say(describeError(error));
    return ExitStatus.ExecrelayFailure;
  }
  const { target, entry, agentKeySource } = resolved;
  let client: ExecClient;
  try {
    if ('hybridKey' in target) {
      client = await ExecClient.connectCodex(target, {
        clientName: 'execrelay-cli',
        onSessionResumed: ({ cause, attempts }) => say(`${cause}: resumed the session on a new stream (${attempts} ${attempts === 1 ? 'attempt' : 'attempts'})`),
      });
      if (target.executorKey === ACCEPT_RELAY_KEY) say(`environment ${target.environmentId} is a codex executor with key ${client.agentIdentity ?? '?'} (as the relay names it; pin it with --agent-key)`);
      return entry ? { client, entry } : { client };
    }
    client =
      'url' in target
        ? await ExecClient.connect(target.url, { clientName: 'execrelay-cli', ...(target.token ? { token: target.token } : {}) })
        : await ExecClient.connect(target, { clientName: 'execrelay-cli' });
  } catch (error) {
    if (error instanceof NoiseChannelError && error.code === 'agent-identity-mismatch' && agentKeySource?.kind === 'known' && 'relay' in target) {
      warnChangedIdentity(say, target.environmentId, agentKeySource, error);
    } else {
      say(describeError(error));
    }
    return ExitStatus.ExecrelayFailure;
  }
  if (agentKeySource?.kind === 'learn' && 'relay' in target && client.agentIdentity !== undefined) {
    try {
      const lineNumber = await recordKnownEnvironment(agentKeySource.file, target.environmentId, client.agentIdentity);
      say(
        `learned the identity of environment ${target.environmentId}: ${client.agentIdentity} ` +
          `(fingerprint ${identityFingerprint(client.agentIdentity)}); recorded in ${agentKeySource.file} line ${lineNumber}`,
      );
    } catch (error) {
      client.close();
      say(`cannot record the identity of environment ${target.environmentId}: ${describeError(error)}`);
      return ExitStatus.ExecrelayFailure;
    }
  }
  return entry ? { client, entry } : { client };
}

/** ssh's "REMOTE HOST IDENTIFICATION HAS CHANGED" for an environment, naming the file and line to look at. */
function warnChangedIdentity(say: (text: string) => unknown, environmentId: string, source: { file: string; lineNumber: number }, error: NoiseChannelError): void {
  const presented = /the agent presented (\S+)/.exec(error.message)?.[1] ?? 'another identity';
  say('@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@');
  say(`@    WARNING: ENVIRONMENT ${environmentId} IDENTITY HAS CHANGED!    @`);
  say('@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@');
  say(`the agent presented ${presented}, not the identity recorded in ${source.file} line ${source.lineNumber}.`);
  say('Someone could be impersonating the environment, or its agent key was replaced.');
  say(`Refused. If the change is expected, remove line ${source.lineNumber} of ${source.file} and connect again (with --accept-new to learn the new identity).`);
}
