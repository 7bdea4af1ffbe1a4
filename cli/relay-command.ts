import { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { parseTokens } from '../src/auth/bearer-tokens.js';
import { createLogger } from '../src/logging/logger.js';
import { RelayServer } from '../relay/relay-server.js';
import { DEFAULT_RELAY_LIMITS } from '../relay/relay-config.js';
import { DEFAULT_REGISTRY_TTL_MS } from '../relay/fleet-registry.js';
import { readFleetSecret } from '../relay/fleet-secret.js';
import { fraction, insecureTokenPermissionsOption, positiveInteger } from './option-parsers.js';
import { startTracing } from '../src/telemetry/tracing.js';
import { startMetricsServer } from '../src/telemetry/metrics-server.js';
import { createRelayMetrics } from '../relay/telemetry/relay-metrics.js';
import { BindingsFile, defaultBindingsFile } from '../relay/bindings-file.js';
import { loadKnownEnvironments } from '../src/noise/identity.js';
import { bindingsFileOption, registerRelayBindingsCommands } from './relay-bindings-command.js';
import { RelayCredentials } from '../relay/relay-credentials.js';
import { metricsListenOption } from './metrics-listen-option.js';
import { addAuditLogOptions, openAuditLog, type AuditLogCommandOptions } from './audit-log-options.js';
import { watchRelayTokenFile, type TokenFileReload } from './relay-token-reload.js';

interface RelayCommandOptions extends AuditLogCommandOptions {
  listen: string;
  tokenFile?: string;
  token?: string;
  allowInsecureTokenPermissions: boolean;
  tlsCert?: string;
  tlsKey?: string;
  maxStreamsPerExecutor: number;
  maxStreamsPerClient: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  executorGraceMs: number;
  clientGraceMs: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  maxClients: number;
  maxExecutors: number;
  maxPendingOpensPerExecutor: number;
  maxPendingOpensPerClient: number;
  maxFailedHandshakesPerClient: number;
  maxFailedHandshakesPerToken: number;
  failedHandshakeCooldownMs: number;
  tokenShareOfEnvironment: number;
  tokenShareOfRelay: number;
  metricsListen?: string;
  nats?: string;
  instanceId?: string;
  registryTtlMs: number;
  registryReplicas: number;
  fleetSecretFile?: string;
  bindingsFile?: string;
  environmentKeys?: string;
}

/** Parses `HOST:PORT` (`[::1]:PORT` for IPv6). */
export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`invalid --listen ${value}: expected HOST:PORT, e.g. 127.0.0.1:7700`);
  return { host: (match[1] ?? match[2])!, port };
}

export function registerRelayCommand(program: Command): void {
  const relayCommand = program
    .command('relay')
    // Options after `relay unbind` / `relay bindings` are the subcommand's.
    .enablePositionalOptions()
    .description('run the rendezvous relay: executors register environments, clients reach them; content stays end-to-end encrypted')
    .addOption(new Option('--listen <host:port>', 'address to serve on (port 0 picks a free port; the URL is printed on stdout)').env('EXECRELAY_RELAY_LISTEN').default('127.0.0.1:7700'))
    .addOption(
      new Option(
        '--token-file <file>',
        'accepted bearer tokens, one per line: "TOKEN ROLE SCOPE" (ROLE executor or client; SCOPE environment ids or globs, comma-separated, e.g. laptop-*); re-read when it changes and on SIGHUP',
      ).env('EXECRELAY_TOKEN_FILE'),
    )
    .addOption(new Option('--token <token>', 'an accepted bearer token (prefer --token-file: arguments are visible to other users)').env('EXECRELAY_TOKEN').hideHelp())
    .addOption(insecureTokenPermissionsOption())
    .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve wss:// (or put a TLS proxy in front)').env('EXECRELAY_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key for --tls-cert').env('EXECRELAY_TLS_KEY'))
    .addOption(new Option('--max-streams-per-executor <n>').env('EXECRELAY_MAX_STREAMS_PER_EXECUTOR').argParser(positiveInteger(100_000)).default(DEFAULT_RELAY_LIMITS.maxStreamsPerExecutor))
    .addOption(new Option('--max-streams-per-client <n>').env('EXECRELAY_MAX_STREAMS_PER_CLIENT').argParser(positiveInteger(100_000)).default(DEFAULT_RELAY_LIMITS.maxStreamsPerClient))
    .addOption(new Option('--handshake-timeout-ms <n>', 'reset a stream the executor has not accepted within this').env('EXECRELAY_HANDSHAKE_TIMEOUT_MS').argParser(positiveInteger(600_000)).default(DEFAULT_RELAY_LIMITS.handshakeTimeoutMs))
    .addOption(new Option('--idle-timeout-ms <n>', 'reset a stream with no frames for this long').env('EXECRELAY_IDLE_TIMEOUT_MS').argParser(positiveInteger(86_400_000)).default(DEFAULT_RELAY_LIMITS.idleTimeoutMs))
    .addOption(new Option('--executor-grace-ms <n>', 'how long streams wait for a disconnected executor to come back').env('EXECRELAY_EXECUTOR_GRACE_MS').argParser(positiveInteger(3_600_000)).default(DEFAULT_RELAY_LIMITS.executorGraceMs))
    .addOption(new Option('--client-grace-ms <n>', 'how long streams wait for a disconnected client to come back and resume them').env('EXECRELAY_CLIENT_GRACE_MS').argParser(positiveInteger(3_600_000)).default(DEFAULT_RELAY_LIMITS.clientGraceMs))
    .addOption(new Option('--ping-interval-ms <n>', 'WebSocket ping interval towards every endpoint').env('EXECRELAY_PING_INTERVAL_MS').argParser(positiveInteger(3_600_000)).default(DEFAULT_RELAY_LIMITS.pingIntervalMs))
    .addOption(new Option('--pong-timeout-ms <n>', 'drop a socket that has not answered a ping for this long').env('EXECRELAY_PONG_TIMEOUT_MS').argParser(positiveInteger(3_600_000)).default(DEFAULT_RELAY_LIMITS.pongTimeoutMs))
    .addOption(new Option('--max-clients <n>', 'client sockets at once').env('EXECRELAY_MAX_CLIENTS').argParser(positiveInteger(1_000_000)).default(DEFAULT_RELAY_LIMITS.maxClients))
    .addOption(new Option('--max-executors <n>', 'executors registered at once').env('EXECRELAY_MAX_EXECUTORS').argParser(positiveInteger(1_000_000)).default(DEFAULT_RELAY_LIMITS.maxExecutors))
    .addOption(new Option('--max-pending-opens-per-executor <n>', 'streams to one environment its executor has not accepted yet').env('EXECRELAY_MAX_PENDING_OPENS_PER_EXECUTOR').argParser(positiveInteger(100_000)).default(DEFAULT_RELAY_LIMITS.maxPendingOpensPerExecutor))
    .addOption(new Option('--max-pending-opens-per-client <n>', 'streams of one client socket not accepted yet').env('EXECRELAY_MAX_PENDING_OPENS_PER_CLIENT').argParser(positiveInteger(100_000)).default(DEFAULT_RELAY_LIMITS.maxPendingOpensPerClient))
    .addOption(new Option('--max-failed-handshakes-per-client <n>', 'close a client socket whose streams failed their handshake this many times').env('EXECRELAY_MAX_FAILED_HANDSHAKES_PER_CLIENT').argParser(positiveInteger(100_000)).default(DEFAULT_RELAY_LIMITS.maxFailedHandshakesPerClient))
    .addOption(new Option('--max-failed-handshakes-per-token <n>', "a token's failed handshakes towards one environment per minute before its new streams there wait a cool-down").env('EXECRELAY_MAX_FAILED_HANDSHAKES_PER_TOKEN').argParser(positiveInteger(100_000)).default(DEFAULT_RELAY_LIMITS.maxFailedHandshakesPerToken))
    .addOption(new Option('--failed-handshake-cooldown-ms <n>', 'how long that cool-down lasts').env('EXECRELAY_FAILED_HANDSHAKE_COOLDOWN_MS').argParser(positiveInteger(3_600_000)).default(DEFAULT_RELAY_LIMITS.failedHandshakeCooldownMs))
    .addOption(new Option('--token-share-of-environment <fraction>', "one token's share of an environment's streams and pending opens (with more than one client token)").env('EXECRELAY_TOKEN_SHARE_OF_ENVIRONMENT').argParser(fraction).default(DEFAULT_RELAY_LIMITS.tokenShareOfEnvironment))
    .addOption(new Option('--token-share-of-relay <fraction>', "one token's share of --max-clients and of --max-executors (with more than one token in that role)").env('EXECRELAY_TOKEN_SHARE_OF_RELAY').argParser(fraction).default(DEFAULT_RELAY_LIMITS.tokenShareOfRelay))
    .addOption(metricsListenOption());
  addAuditLogOptions(relayCommand, 'executor registrations and refused executor and client connections (token failures included)')
    .addOption(new Option('--nats <url>', 'join a fleet of relay instances routing through NATS (nats://[user:password@]HOST:PORT, comma-separated for a NATS cluster; JetStream required)').env('EXECRELAY_NATS_URL'))
    .addOption(new Option('--instance-id <id>', 'this instance\'s name in the fleet (letters, digits, _ and -; default: host name and a random suffix)').env('EXECRELAY_INSTANCE_ID'))
    .addOption(new Option('--registry-ttl-ms <n>', 'fleet registry entries of an instance that stopped refreshing them expire after this').env('EXECRELAY_REGISTRY_TTL_MS').argParser(positiveInteger(600_000)).default(DEFAULT_REGISTRY_TTL_MS))
    .addOption(new Option('--registry-replicas <n>', 'copies of the fleet registry in a NATS cluster (3 survives losing one NATS server)').env('EXECRELAY_REGISTRY_REPLICAS').argParser(positiveInteger(5)).default(1))
    .addOption(new Option('--fleet-secret-file <file>', 'the secret every fleet instance shares (one line, at least 32 bytes, mode 0600): codex rendezvous URLs and authorizations signed by one instance verify on all').env('EXECRELAY_FLEET_SECRET_FILE'))
    .addOption(bindingsFileOption())
    .addOption(new Option('--environment-keys <file>', 'pinned agent keys, ENVIRONMENT_ID PUBLIC_IDENTITY per line: those environments accept only that key').env('EXECRELAY_ENVIRONMENT_KEYS'))
    .addHelpText('after', '\nEvery flag can also be set through the environment variable shown. Health: GET /livez, GET /readyz.\nMetrics: GET /metrics on the relay port, or only on --metrics-listen when given.\nToken file, scopes and reload: docs/relay.md. Environment bindings: docs/relay.md. Every limit: docs/limits.md.\nFleet deployment (several instances, NATS, a load balancer): docs/fleet.md.')
    .action(async (options: RelayCommandOptions, command: Command) => {
      const logger = createLogger('execrelay-relay');
      if (options.nats && command.getOptionValueSource('nats') === 'cli' && /\/\/[^/@]+@/.test(options.nats)) {
        logger.warn('--nats carries NATS credentials that other users can see in the process list; pass the URL through EXECRELAY_NATS_URL instead');
      }
      const { host, port } = parseHostPort(options.listen);
      const tokenFileOptions = { allowInsecurePermissions: options.allowInsecureTokenPermissions, warn: (message: string) => logger.warn(message) };
      let credentials: RelayCredentials;
      if (options.tokenFile) {
        const read = await RelayCredentials.read(options.tokenFile, tokenFileOptions);
        for (const warning of read.warnings) logger.warn(warning);
        credentials = read.credentials;
      } else if (options.token) credentials = RelayCredentials.fromBareTokens(parseTokens(options.token, 'EXECRELAY_TOKEN'));
      else throw new Error('execrelay relay: give --token-file FILE (accepted bearer tokens, one per line: TOKEN ROLE SCOPE)');
      if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new Error('execrelay relay: --tls-cert and --tls-key go together');
      if (options.instanceId !== undefined && options.nats === undefined) throw new Error('execrelay relay: --instance-id names a fleet member; give --nats too');
      if (options.fleetSecretFile !== undefined && options.nats === undefined) throw new Error('execrelay relay: --fleet-secret-file is shared by the instances of a fleet; give --nats too');
      const fleetSecret = options.fleetSecretFile !== undefined ? await readFleetSecret(options.fleetSecretFile, tokenFileOptions) : undefined;
      if (options.bindingsFile !== undefined && options.nats !== undefined) throw new Error("execrelay relay: --bindings-file is a single relay's; a fleet (--nats) keeps its bindings in NATS");
      const environmentKeys = options.environmentKeys ? await loadKnownEnvironments(options.environmentKeys) : undefined;
      const bindingsFile = options.nats ? undefined : (options.bindingsFile ?? defaultBindingsFile());
      const bindings = bindingsFile ? new BindingsFile(bindingsFile, DEFAULT_RELAY_LIMITS.maxBindings) : undefined;
      await bindings?.list(); // a file that cannot be read or parsed stops the relay now, with the line at fault
      const tls = options.tlsCert && options.tlsKey ? { cert: await readFile(options.tlsCert), key: await readFile(options.tlsKey) } : undefined;
      const auditLog = await openAuditLog(options, logger);
      const tracing = await startTracing({ serviceName: 'execrelay-relay' });
      let server: RelayServer | undefined;
      const metrics = createRelayMetrics(() => server, tracing.enabled ? { tracer: tracing.tracer } : {});
      const relay = new RelayServer({
        credentials,
        logger,
        events: metrics.events,
        ...(auditLog ? { auditLog } : {}),
        // With --metrics-listen, /metrics is served there only, not on the public relay port.
        ...(options.metricsListen ? {} : { httpRoutes: metrics.httpRoutes }),
        ...(tls ? { tls } : {}),
        ...(bindings ? { bindings } : {}),
        ...(environmentKeys ? { environmentKeys } : {}),
        ...(options.nats
          ?  { fleet: { natsUrl: options.nats, registryTtlMs: options.registryTtlMs, registryReplicas: options.registryReplicas, ...(options.instanceId !== undefined ? { instanceId: options.instanceId } : {}), ...(fleetSecret ? { secret: fleetSecret } : {}) } }
          : {}),
        limits: {
          maxStreamsPerExecutor: options.maxStreamsPerExecutor,
          maxStreamsPerClient: options.maxStreamsPerClient,
          handshakeTimeoutMs: options.handshakeTimeoutMs,
          idleTimeoutMs: options.idleTimeoutMs,
          executorGraceMs: options.executorGraceMs,
          clientGraceMs: options.clientGraceMs,
          pingIntervalMs: options.pingIntervalMs,
          pongTimeoutMs: options.pongTimeoutMs,
          maxClients: options.maxClients,
          maxExecutors: options.maxExecutors,
          maxPendingOpensPerExecutor: options.maxPendingOpensPerExecutor,
          maxPendingOpensPerClient: options.maxPendingOpensPerClient,
          maxFailedHandshakesPerClient: options.maxFailedHandshakesPerClient,
          maxFailedHandshakesPerToken: options.maxFailedHandshakesPerToken,
          failedHandshakeCooldownMs: options.failedHandshakeCooldownMs,
          tokenShareOfEnvironment: options.tokenShareOfEnvironment,
          tokenShareOfRelay: options.tokenShareOfRelay,
        },
      });
      server = relay;
      // Revocation without a restart: the token file is re-read when it changes and on SIGHUP.
      const tokenFile = options.tokenFile;
      const reload: TokenFileReload | null = tokenFile ? await watchRelayTokenFile(tokenFile, tokenFileOptions, (next) => relay.replaceCredentials(next), logger) : null;
      process.on('SIGHUP', () => {
        if (reload) void reload.reload();
        else logger.warn('SIGHUP: no --token-file to re-read');
      });
      const url = await relay.listen(host, port);
      const metricsServer = options.metricsListen ? await startMetricsServer(options.metricsListen, { metrics: metrics.expose, ready: () => relay.isReady }) : null;
      process.stdout.write(`${url}\n`);
      logger.info({ url, ...(metricsServer ? { metrics: metricsServer.url } : {}), ...(bindingsFile ? { bindingsFile } : {}), pinnedEnvironments: environmentKeys?.size ?? 0 }, 'relay listening');
      const stop = (signal: string) => {
        logger.info({ signal }, 'relay stopping; telling endpoints to reconnect');
        reload?.close();
        void relay
          .close({ graceful: true })
          .then(() => metricsServer?.close())
          .then(() => tracing.shutdown())
          .then(() => auditLog?.close())
          .then(() => process.exit(0));
        setTimeout(() => process.exit(0), 3000).unref();
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
  registerRelayBindingsCommands(relayCommand);
}
