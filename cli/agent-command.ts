import { Command, Option } from 'commander';
import { createLogger } from '../src/logging/logger.js';
import { ExecutorAgent } from '../executor-agent/executor-agent.js';
import { DEFAULT_AGENT_CONFIG, type AgentConfig } from '../executor-agent/agent-config.js';
import { insecureTokenPermissionsOption, positiveInteger } from './option-parsers.js';
import { BearerTokenVerifier, readTokenFile, resolveToken } from '../src/auth/bearer-tokens.js';
import { loadIdentityFile } from '../src/noise/identity.js';
import { validateEnvironmentId } from '../src/relay-control/relay-endpoints.js';
import { RelayRegistration } from '../executor-agent/relay-registration.js';
import { AuthorizedClients } from '../executor-agent/authorized-clients.js';
import type { Logger } from '../src/logging/logger.js';
import { parseRootSpec, type RootSpec } from '../executor-agent/root-confinement.js';
import { parseHttpAllow } from '../executor-agent/http-destination-policy.js';
import { startTracing } from '../src/telemetry/tracing.js';
import { createAgentTelemetry, type AgentTelemetry } from '../executor-agent/telemetry/agent-telemetry.js';
import { metricsListenOption } from './metrics-listen-option.js';
import { addAuditLogOptions, addAuditLogReadsOption, openAuditLog, type AuditLogCommandOptions } from './audit-log-options.js';
import { proxyOption } from './proxy-option.js';
import { redactProxyUrl, relayProxyFor, type RelayProxy } from '../src/relay-link/relay-proxy.js';

/**
 * The agent's numeric bounds that have a flag of their own: each flag, its variable, its highest
 * value and its help, with its default from DEFAULT_AGENT_CONFIG (where every bound is defined).
 */
const BOUND_FLAGS = [
  { key: 'maxMessageBytes', flag: '--max-message-bytes', env: 'EXECRELAY_MAX_MESSAGE_BYTES', max: 1024 * 1024 * 1024, help: 'largest JSON-RPC message accepted or sent' },
  { key: 'retainedOutputBytes', flag: '--retained-output-bytes', env: 'EXECRELAY_RETAINED_OUTPUT_BYTES', max: 256 * 1024 * 1024, help: 'newest output bytes kept per process for process/read' },
  { key: 'sessionRetentionMs', flag: '--session-retention-ms', env: 'EXECRELAY_SESSION_RETENTION_MS', max: 7 * 24 * 3600 * 1000, help: 'how long a disconnected session and its processes wait to be resumed' },
  { key: 'maxSessions', flag: '--max-sessions', env: 'EXECRELAY_MAX_SESSIONS', max: 1_000_000, help: 'sessions (attached or waiting to be resumed) held by all clients together' },
  { key: 'maxSessionsPerClient', flag: '--max-sessions-per-client', env: 'EXECRELAY_MAX_SESSIONS_PER_CLIENT', max: 1_000_000, help: 'sessions one relay client identity (its Noise identity) holds; past it its longest-detached session is ended, else initialize is refused (direct and stdio clients share only --max-sessions)' },
  { key: 'maxConcurrentRequests', flag: '--max-concurrent-requests', env: 'EXECRELAY_MAX_CONCURRENT_REQUESTS', max: 100_000, help: 'requests of one connection handled at once (long-polls included); the rest wait in order' },
  { key: 'maxQueuedRequests', flag: '--max-queued-requests', env: 'EXECRELAY_MAX_QUEUED_REQUESTS', max: 1_000_000, help: 'requests of one connection waiting to be handled; past it they are refused (-32600)' },
  { key: 'maxInflightResponseBytesPerConnection', flag: '--max-inflight-response-bytes-per-connection', env: 'EXECRELAY_MAX_INFLIGHT_RESPONSE_BYTES_PER_CONNECTION', max: 64 * 1024 * 1024 * 1024, help: 'estimated bytes of large responses (fs/readFile, fs/readBlock, process/read) built or sent at once on one connection; more wait' },
  { key: 'maxInflightResponseBytes', flag: '--max-inflight-response-bytes', env: 'EXECRELAY_MAX_INFLIGHT_RESPONSE_BYTES', max: 64 * 1024 * 1024 * 1024, help: 'the same budget for the whole agent, across connections' },
  { key: 'terminateGraceMs', flag: '--terminate-grace-ms', env: 'EXECRELAY_TERMINATE_GRACE_MS', max: 600_000, help: 'grace between SIGTERM and SIGKILL on process/terminate and for the processes a drain terminates' },
  {
    key: 'drainTimeoutMs',
    flag: '--drain-timeout-ms',
    env: 'EXECRELAY_DRAIN_TIMEOUT_MS',
    max: 24 * 3600 * 1000,
    help: 'on SIGTERM the agent drains: no new sessions, processes or streams; running processes get this long to finish, then are terminated (SIGTERM, SIGKILL after --terminate-grace-ms); then it exits 0. A second SIGTERM, or SIGINT, stops at once',
  },
] as const satisfies ReadonlyArray<{ key: keyof AgentConfig; flag: string; env: string; max: number; help: string }>;

type BoundKey = (typeof BOUND_FLAGS)[number]['key'];

interface AgentCommandOptions extends Pick<AgentConfig, BoundKey>, AuditLogCommandOptions {
  listen: string;
  metricsListen?: string;
  relay?: string;
  environmentId?: string;
  key?: string;
  tokenFile?: string;
  token?: string;
  authorizedClients?: string;
  allowAnyClient: boolean;
  allowInsecureKeyPermissions: boolean;
  listenTokenFile?: string;
  allowOrigin: string[];
  allowInsecureTokenPermissions: boolean;
  legacyExitEvents: boolean;
  root: string[];
  httpAllow: string[];
  httpAllowPrivate: boolean;
  proxy?: string;
  wire: 'native' | 'codex';
}

/** Commander collector for a repeatable option (`--root`, `--allow-origin`). */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * The values of a repeatable option: one per flag on the command line; from its environment
 * variable (EXECRELAY_ROOTS, EXECRELAY_ALLOW_ORIGINS) a comma-separated list.
 */
function listFrom(values: string[], source: string | undefined): string[] {
  return source === 'env' ? values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '') : values;
}

/** The configured roots, each PATH[:ro|:rw]. */
function rootsFrom(values: string[], source: string | undefined): RootSpec[] {
  return listFrom(values, source).map(parseRootSpec);
}

export function registerAgentCommand(program: Command): void {
  const command = program
    .command('agent')
    .description('run the executor agent: serve the exec protocol to clients')
    .addOption(
      new Option('--listen <url>', 'where to serve: ws://HOST:PORT (port 0 picks a free port; the bound URL is printed on stdout) or "stdio" (one JSON object per line)')
        .env('EXECRELAY_LISTEN')
        .default('ws://127.0.0.1:0'),
    );
  for (const bound of BOUND_FLAGS) {
    command.addOption(new Option(`${bound.flag} <n>`, bound.help).env(bound.env).argParser(positiveInteger(bound.max)).default(DEFAULT_AGENT_CONFIG[bound.key]));
  }
  command
    .addOption(
      new Option('--listen-token-file <file>', 'bearer tokens (one per line) that clients of the WebSocket listener must present; required off loopback')
        .env('EXECRELAY_LISTEN_TOKEN_FILE'),
    )
    .addOption(
      new Option('--allow-origin <origin>', 'let WebSocket upgrades from this browser Origin in (repeatable); any other Origin is refused 403')
        .env('EXECRELAY_ALLOW_ORIGINS')
        .argParser(collect)
        .default([]),
    )
    .addOption(new Option('--relay <url>', 'dial out to this relay (ws:// or wss://) and register an environment instead of listening').env('EXECRELAY_RELAY'))
    .addOption(
      new Option(
        '--wire <wire>',
        'with --relay: "native" (execrelay relay frames, Noise XX, an Ed25519 --key) or "codex" (register as a codex exec-server does: the registry API, ' +
          'hybrid post-quantum Noise IK, a hybrid --key from `execrelay keygen --hybrid --out FILE`, --authorized-clients listing hyb1: fingerprints)',
      )
        .choices(['native', 'codex'])
        .env('EXECRELAY_WIRE')
        .default('native'),
    )
    .addOption(new Option('--environment-id <id>', 'environment to register with the relay').env('EXECRELAY_ENVIRONMENT_ID'))
    .addOption(
      new Option('--key <file>', 'this agent\'s identity key (from `execrelay keygen`; with --wire codex a hybrid key from `execrelay keygen --hybrid --out FILE`); clients pin its public identity').env(
        'EXECRELAY_KEY',
      ),
    )
    .addOption(new Option('--token-file <file>', 'bearer token for the relay (first token in the file)').env('EXECRELAY_TOKEN_FILE'))
    .addOption(new Option('--token <token>').env('EXECRELAY_TOKEN').hideHelp())
    .addOption(proxyOption())
    .addOption(
      new Option(
        '--authorized-clients <file>',
        'with --relay: serve only the clients whose public identity is listed (one per line; add one with `execrelay authorize`); ' +
          're-read when it changes. Without it (and without --allow-any-client) every client is refused',
      ).env('EXECRELAY_AUTHORIZED_CLIENTS'),
    )
    .addOption(
      new Option('--allow-any-client', 'with --relay: serve every client that holds a relay token for the environment (warned at every start)')
        .env('EXECRELAY_ALLOW_ANY_CLIENT')
        .default(false),
    )
    .addOption(new Option('--allow-insecure-key-permissions', 'accept a key file readable by group or others').env('EXECRELAY_ALLOW_INSECURE_KEY_PERMISSIONS').default(false))
    .addOption(insecureTokenPermissionsOption())
    .addOption(
      new Option(
        '--root <PATH[:ro|:rw]>',
        'confine fs methods and process cwd to this directory (repeatable; default rw). Without any --root the agent serves the whole filesystem its user can reach',
      )
        .env('EXECRELAY_ROOTS')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option(
        '--http-allow <HOST[:PORT]>',
        'restrict http/request to these destinations (repeatable; *.DOMAIN for subdomains; ADDRESS/LENGTH[:PORT] for a range). ' +
          'Without it any destination. Either way loopback, link-local (169.254/16, fe80::/10), private (10/8, 172.16/12, 192.168/16), ' +
          'unique-local (fc00::/7) and unspecified addresses are refused unless an entry names the address or a range holding it ' +
          '(e.g. --http-allow 127.0.0.1:8080, --http-allow 10.0.0.0/8); an allowed name never reaches them on its own',
      )
        .env('EXECRELAY_HTTP_ALLOW')
        .argParser(collect)
        .default([]),
    )
    .addOption(
      new Option('--http-allow-private', 'let http/request reach loopback, link-local, private, unique-local and unspecified addresses (any name, any --http-allow entry)')
        .env('EXECRELAY_HTTP_ALLOW_PRIVATE')
        .default(false),
    )
    .addOption(metricsListenOption());
  addAuditLogReadsOption(addAuditLogOptions(command, 'sessions, process starts and exits, file writes, removes and copies, HTTP requests (method, origin, status), clients refused at the secure channel, drains'))
    .addOption(new Option('--legacy-exit-events', 'behave like a legacy server: omit sandboxDenied (for compatibility tests)').hideHelp().default(false))
    .action(async (options: AgentCommandOptions, command: Command) => {
      if (options.wire === 'codex' && !options.relay) throw new Error('--wire codex needs --relay URL (it is how the agent reaches a relay; a local listener speaks the exec protocol as codex does already)');
      const logger = createLogger('execrelay-agent');
      const roots = rootsFrom(options.root, command.getOptionValueSource('root'));
      const tracing = await startTracing({ serviceName: 'execrelay-agent' });
      const telemetry = createAgentTelemetry(tracing.enabled ? { tracer: tracing.tracer } : {});
      const auditLog = await openAuditLog(options, logger);
      // /readyz: registered with the relay, or listening locally.
      const readiness = { ready: false };
      const agent = new ExecutorAgent(
        {
          ...(Object.fromEntries(BOUND_FLAGS.map(({ key }) => [key, options[key]])) as Pick<AgentConfig, BoundKey>),
          omitSandboxDenied: options.legacyExitEvents,
          roots,
          httpAllow: parseHttpAllow(options.httpAllow),
          httpAllowPrivate: options.httpAllowPrivate,
        },
        logger,
        [],
        telemetry,
        auditLog,
      );
      if (options.metricsListen) {
        const metricsServer = await telemetry.startMetricsServer(options.metricsListen, { ready: () => readiness.ready });
        logger.info({ url: `${metricsServer.url}/metrics` }, 'metrics listening');
      }
      // The relay registration (remote mode), stopped with the agent.
      const remote: { registration?: { stop(): void } } = {};
      let stopped = false;
      const stop = (signal: string, exitCode = 0) => {
        if (stopped) return;
        stopped = true;
        logger.info({ signal }, 'agent stopping; ending sessions');
        remote.registration?.stop();
        agent.shutdown();
        logger.flush();
        // Spans are flushed before exit (bounded by the exporter's timeout).
        void Promise.all([tracing.shutdown(), auditLog?.close(), new Promise((resolve) => setTimeout(resolve, 50))]).then(() => process.exit(exitCode));
      };
      // SIGTERM drains (see --drain-timeout-ms); SIGINT, or a SIGTERM during the drain, stops at once.
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => {
        if (agent.draining) return stop('SIGTERM during the drain');
        readiness.ready = false;
        void agent.drain().then(() => stop('SIGTERM (drained)'));
      });
      if (options.relay) {
        // A registration that ends for good (replaced, refused) ends the process: its supervisor restarts or alerts.
        await runRemoteAgent(agent, options, logger, telemetry, readiness, remote, () => stop('registration ended', 1));
        return;
      }
      if (options.listen === 'stdio') {
        logger.info('agent serving on stdio');
        readiness.ready = true;
        await agent.serveStdio();
        stop('stdin closed');
        return;
      }
      const listenTokens = options.listenTokenFile
        ? new BearerTokenVerifier(await readTokenFile(options.listenTokenFile, tokenFileOptions(options, logger)))
        : undefined;
      const allowedOrigins = listFrom(options.allowOrigin, command.getOptionValueSource('allowOrigin'));
      const listener = await agent.listenWebSocket(options.listen, { ...(listenTokens ? { tokens: listenTokens } : {}), allowedOrigins });
      readiness.ready = true;
      process.stdout.write(`${listener.url}\n`);
      logger.info({ url: listener.url }, 'agent listening');
    });
}

/**
 * The clients a relay-mode agent serves: the --authorized-clients file (re-read when it changes),
 * `'any'` with --allow-any-client (warned), or nobody (warned). An empty setting, both at once, or a
 * missing, unreadable or invalid file is an error: the agent does not start.
 */
async function authorizedClientsFrom(
  options: AgentCommandOptions,
  logger: Logger,
  /** Checks one listed identity (default: Ed25519 public identities; `--wire codex`: hyb1: fingerprints). */
  parseIdentity?: (token: string) => string,
): Promise<AuthorizedClients | ReadonlySet<string> | 'any'> {
  if (options.authorizedClients !== undefined && options.allowAnyClient) {
    throw new Error('give either --authorized-clients FILE or --allow-any-client, not both');
  }
  if (options.authorizedClients !== undefined) {
    if (options.authorizedClients.trim() === '') {
      throw new Error(
        '--authorized-clients (EXECRELAY_AUTHORIZED_CLIENTS) is empty: give the file of authorized client identities (or unset it and give --allow-any-client)',
      );
    }
    try {
      return await AuthorizedClients.open(options.authorizedClients, { logger, ...(parseIdentity ? { parseIdentity } : {}) });
    } catch (error) {
      const missing = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
      const hint = !missing
        ? ''
        : parseIdentity
          ? `; create it with: execrelay authorize --authorized-clients ${options.authorizedClients} hyb1:CLIENT_FINGERPRINT (a client prints its own with: execrelay keygen --hybrid --show)`
          : `; create it with: execrelay authorize --authorized-clients ${options.authorizedClients} CLIENT_IDENTITY`;
      throw new Error(`--authorized-clients: ${(error as Error).message}${hint}`);
    }
  }
  if (options.allowAnyClient) {
    logger.warn('--allow-any-client: every holder of a relay token for this environment (and the relay operator, who issues them) can run commands here');
    return 'any';
  }
  logger.warn(
    'no --authorized-clients file: every client is refused. Restart with --authorized-clients FILE (add a client with: execrelay authorize --authorized-clients FILE CLIENT_IDENTITY), or --allow-any-client',
  );
  return new Set<string>();
}

function tokenFileOptions(options: AgentCommandOptions, logger: Logger): { allowInsecurePermissions: boolean; warn: (message: string) => void } {
  return { allowInsecurePermissions: options.allowInsecureTokenPermissions, warn: (message) => logger.warn(message) };
}

/**
 * `agent --relay` (either wire): dial out, register, serve every stream; prints the agent's public
 * key (an Ed25519 identity, or with `--wire codex` the hybrid key's hyb1: fingerprint) on stdout.
 */
async function runRemoteAgent(
  agent: ExecutorAgent,
  options: AgentCommandOptions,
  logger: Logger,
  telemetry: AgentTelemetry,
  readiness: { ready: boolean },
  remote: { registration?: { stop(): void } },
  onRegistrationEnded: () => void,
): Promise<void> {
  const codex = options.wire === 'codex';
  if (!options.environmentId) throw new Error(`execrelay agent --relay${codex ? ' --wire codex' : ''} needs --environment-id ID`);
  const invalid = validateEnvironmentId(options.environmentId);
  if (invalid) throw new Error(`--environment-id: ${invalid}`);
  const wire = codex ? await codexWire(agent, options) : await nativeWire(agent, options);
  const token = await resolveToken(options.token, options.tokenFile, 'execrelay agent --relay', tokenFileOptions(options, logger));
  const authorizedClients = await authorizedClientsFrom(options, logger, wire.parseClient);
  // The relay socket (and with --wire codex every registry call) through the proxy when there is one.
  const proxy = relayProxyFor(options.relay!, options.proxy);
  logger.info({ proxy: proxy ? redactProxyUrl(proxy.url) : 'none' }, proxy ? 'reaching the relay through an HTTP CONNECT proxy' : 'reaching the relay directly');
  const registration = wire.register({
    ...(proxy ? { proxy } : {}),
    relayUrl: options.relay!,
    environmentId: options.environmentId,
    token,
    authorizedClients,
    logger,
    onFatal: onRegistrationEnded,
    onEvent: registrationEventHandler(agent, telemetry, readiness),
  });
  remote.registration = registration;
  await registration.start();
  process.stdout.write(`${wire.publicKey}\n`);
  logger.info(
    { environmentId: options.environmentId, [wire.publicKeyField]: wire.publicKey, authorizedClients: authorizedClients === 'any' ? 'any' : authorizedClients.size },
    wire.registeredMessage,
  );
}

/** What every relay registration takes, whatever the wire. */
interface RegistrationCommonOptions {
  proxy?: RelayProxy;
  relayUrl: string;
  environmentId: string;
  token: string;
  authorizedClients: Awaited<ReturnType<typeof authorizedClientsFrom>>;
  logger: Logger;
  onFatal: () => void;
  onEvent: ReturnType<typeof registrationEventHandler>;
}

/** What differs between the wires of `agent --relay`: the key, how listed clients are checked, the registration. */
interface RelayWire {
  /** Checks one identity of the authorized clients file (default: Ed25519 public identities). */
  readonly parseClient?: (token: string) => string;
  /** What is printed on stdout and logged as `publicKeyField`. */
  readonly publicKey: string;
  readonly publicKeyField: string;
  readonly registeredMessage: string;
  register(common: RegistrationCommonOptions): { start(): Promise<void>; stop(): void };
}

/** The native wire: the agent's Ed25519 identity, Noise XX through the relay's executor endpoint. */
async function nativeWire(agent: ExecutorAgent, options: AgentCommandOptions): Promise<RelayWire> {
  if (!options.key) throw new Error('execrelay agent --relay needs --key FILE (create one with: execrelay keygen --out FILE)');
  const identity = await loadIdentityFile(options.key, { allowInsecurePermissions: options.allowInsecureKeyPermissions });
  return {
    publicKey: identity.publicIdentity,
    publicKeyField: 'publicIdentity',
    registeredMessage: 'agent registered with relay',
    register: (common) => new RelayRegistration(agent, { ...common, identity }),
  };
}

/**
 * `--wire codex`: register as a codex executor (the registry API, a persistent hybrid key), serve
 * every validated and authorized stream; clients are listed by their hyb1: fingerprints.
 */
async function codexWire(agent: ExecutorAgent, options: AgentCommandOptions): Promise<RelayWire> {
  if (!options.key) throw new Error('execrelay agent --wire codex needs --key FILE holding a hybrid key (create one with: execrelay keygen --hybrid --out FILE)');
  const { loadHybridKeyFile } = await import('../src/noise-hybrid/hybrid-key-file.js');
  const { hybridFingerprint, isHybridFingerprint, parseHybridFingerprint } = await import('../src/noise-hybrid/hybrid-fingerprint.js');
  const { CodexRelayRegistration } = await import('../executor-agent/codex-registration.js');
  let hybridKey;
  try {
    hybridKey = await loadHybridKeyFile(options.key, { allowInsecurePermissions: options.allowInsecureKeyPermissions });
  } catch (error) {
    throw new Error(`--key: ${(error as Error).message} (--wire codex needs a hybrid key: execrelay keygen --hybrid --out FILE)`);
  }
  return {
    parseClient: (token) => {
      if (!isHybridFingerprint(token)) {
        throw new Error(`${token.slice(0, 60)} is not a hybrid key fingerprint: --wire codex serves clients by their hyb1: fingerprint (a client prints its own with: execrelay keygen --hybrid --show)`);
      }
      return parseHybridFingerprint(token);
    },
    publicKey: hybridFingerprint(hybridKey.publicKey),
    publicKeyField: 'executorKey',
    registeredMessage: 'agent registered with relay (codex wire)',
    register: (common) => new CodexRelayRegistration(agent, { ...common, hybridKey }),
  };
}

/** Registration events, whatever the wire: telemetry, and readiness (registered and not draining). */
function registrationEventHandler(agent: ExecutorAgent, telemetry: AgentTelemetry, readiness: { ready: boolean }) {
  return (event: Parameters<AgentTelemetry['onRegistrationEvent']>[0]): void => {
    telemetry.onRegistrationEvent(event);
    if (event.type === 'registered') readiness.ready = !agent.draining;
    else if (event.type === 'disconnected') readiness.ready = false;
  };
}

