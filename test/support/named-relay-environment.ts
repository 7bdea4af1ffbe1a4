import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCli, startCli } from './cli.js';

type Running = Awaited<ReturnType<typeof startCli>>;

export interface NamedRelayEnvironment {
  relay: Running;
  /** The agent registered with the relay, serving the environment. */
  agent: Running;
  /** The client's environment: XDG_CONFIG_HOME holding `config.toml` with the entry `[environments.NAME]`. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/**
 * Real processes under `dir`: an `execrelay relay`, an `execrelay agent --relay` for environment
 * `name` that authorizes one client key, and a client config file naming the environment (relay,
 * agent key, token file, client key), so that `execrelay cp FILE NAME:/path` works as a user types it.
 */
export async function startNamedRelayEnvironment(dir: string, name: string): Promise<NamedRelayEnvironment> {
  const token = path.join(dir, 'token');
  writeFileSync(token, `${name}-test-token-0123456789abcdef\n`, { mode: 0o600 });
  const agentKey = path.join(dir, 'agent.key');
  const clientKey = path.join(dir, 'client.key');
  const agentIdentity = (await runCli(['keygen', '--out', agentKey])).stdout.trim();
  const clientIdentity = (await runCli(['keygen', '--out', clientKey])).stdout.trim();
  const authorized = path.join(dir, 'authorized-clients');
  writeFileSync(authorized, `${clientIdentity}\n`, { mode: 0o600 });
  const relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', token], { EXECRELAY_LOG_LEVEL: 'warn' });
  const agent = await startCli(
    ['agent', '--relay', relay.firstLine, '--environment-id', name, '--key', agentKey, '--token-file', token, '--authorized-clients', authorized],
    { EXECRELAY_LOG_LEVEL: 'warn' },
  );
  const home = path.join(dir, 'xdg');
  mkdirSync(path.join(home, 'execrelay'), { recursive: true });
  writeFileSync(
    path.join(home, 'execrelay', 'config.toml'),
    `[environments.${name}]\nrelay = "${relay.firstLine}"\nagent_key = "${agentIdentity}"\ntoken_file = "${token}"\nkey = "${clientKey}"\n`,
  );
  return {
    relay,
    agent,
    env: { XDG_CONFIG_HOME: home, EXECRELAY_CLIENT_KEY: undefined, EXECRELAY_CONFIG: undefined },
    async stop() {
      await agent.stop();
      await relay.stop();
    },
  };
}
