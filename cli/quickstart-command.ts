import { Command, Option } from 'commander';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { RelayCredentials } from '../relay/relay-credentials.js';
import { createIdentityFile } from '../src/noise/identity.js';
import { createLogger } from '../src/logging/logger.js';
import { RelayServer } from '../relay/relay-server.js';
import { createRelayMetrics } from '../relay/telemetry/relay-metrics.js';
import { ExecutorAgent } from '../executor-agent/executor-agent.js';
import { RelayRegistration } from '../executor-agent/relay-registration.js';
import { AuthorizedClients } from '../executor-agent/authorized-clients.js';
import { parseHostPort } from './relay-command.js';
import { authorizeClient } from './authorize-command.js';

/**
 * `execrelay quickstart` (what `npm start` runs): a relay and an agent on loopback with a fresh
 * token, agent key and client key (the only client the agent authorizes, through an authorized
 * clients file in the same temporary directory), and the one `execrelay exec` command, with that
 * client key, that reaches the agent through the relay.
 */
export function registerQuickstartCommand(program: Command): void {
  program
    .command('quickstart')
    .description('start a relay and an agent on loopback with generated keys (agent, client, token), and print the exec command that reaches them')
    .addOption(new Option('--listen <host:port>', 'relay address').env('EXECRELAY_RELAY_LISTEN').default('127.0.0.1:0'))
    .addOption(new Option('--environment-id <id>', 'environment the agent registers').env('EXECRELAY_ENVIRONMENT_ID').default('quickstart'))
    .action(async (options: { listen: string; environmentId: string }) => {
      const logger = createLogger('execrelay-quickstart');
      const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-quickstart-'));
      const tokenFile = path.join(dir, 'token');
      const token = randomBytes(24).toString('base64url');
      await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
      const identity = await createIdentityFile(path.join(dir, 'agent.key'));
      const clientKeyFile = path.join(dir, 'client.key');
      const authorizedClientsFile = path.join(dir, 'authorized-clients');
      await authorizeClient(authorizedClientsFile, (await createIdentityFile(clientKeyFile)).publicIdentity);
      const authorizedClients = await AuthorizedClients.open(authorizedClientsFile, { logger });
      // Metrics as any relay serves them: GET /metrics on the relay port.
      let server: RelayServer | undefined;
      const metrics = createRelayMetrics(() => server);
      const relay = new RelayServer({ credentials: RelayCredentials.fromBareTokens([token]), logger, events: metrics.events, httpRoutes: metrics.httpRoutes });
      server = relay;
      const { host, port } = parseHostPort(options.listen);
      const relayUrl = await relay.listen(host, port);
      const agent = new ExecutorAgent({}, logger);
      const stop = (exitCode = 0) => {
        registration.stop();
        authorizedClients.close();
        agent.shutdown();
        // The generated token and keys go with it: nothing secret is left in the temporary directory.
        void relay
          .close()
          .then(() => rm(dir, { recursive: true, force: true }))
          .finally(() => process.exit(exitCode));
      };
      const registration = new RelayRegistration(agent, {
        relayUrl,
        environmentId: options.environmentId,
        token,
        identity,
        authorizedClients,
        logger,
        onFatal: () => stop(1),
      });
      await registration.start();
      const cli = path.relative(process.cwd(), process.argv[1] ?? 'dist/cli/main.js') || 'dist/cli/main.js';
      process.stdout.write(
        `node ${cli} exec --relay ${relayUrl} --env ${options.environmentId} --agent-key ${identity.publicIdentity} --token-file ${tokenFile} --key ${clientKeyFile} -- uname -a\n`,
      );
      logger.info(
        { relayUrl, stateDirectory: dir, authorizedClientsFile },
        'quickstart relay and agent running (the agent serves the client key in the state directory; add others with execrelay authorize); press Ctrl-C to stop (the state directory is removed)',
      );
      process.once('SIGINT', () => stop());
      process.once('SIGTERM', () => stop());
    });
}
