import { Command, Option } from 'commander';
import { insecureTokenPermissionsOption } from './option-parsers.js';
import { DEFAULT_CLIENT_KEY_DISPLAY } from './client-key-path.js';
import { proxyOption } from './proxy-option.js';
import { DEFAULT_CONFIG_DISPLAY, DEFAULT_KNOWN_ENVIRONMENTS_DISPLAY } from './user-config-paths.js';

/**
 * How a client command reaches the agent: directly (`--url`), through a relay (`--relay --env`), or
 * as a named environment of the config file (`environment`, from the command's ENV operand), whose
 * settings the flags override.
 */
export interface ConnectionOptions {
  /** The config entry named by the command's operand (`laptop`, `laptop:/srv`); not a flag. */
  environment?: string;
  config?: string;
  acceptNew?: boolean;
  url?: string;
  relay?: string;
  env?: string;
  agentKey?: string;
  acceptRelayKey?: boolean;
  knownEnvironments?: string;
  key?: string;
  tokenFile?: string;
  agentTokenFile?: string;
  token?: string;
  allowInsecureTokenPermissions?: boolean;
  proxy?: string;
}

/** Adds the connection flags shared by every client command (`exec`, `fs`, `mcp`, ...). */
export function addConnectionOptions<C extends Command>(command: C): C {
  command
    .addOption(new Option('--url <url>', 'agent WebSocket URL for a direct connection (ws://HOST:PORT)').env('EXECRELAY_URL'))
    .addOption(new Option('--relay <url>', 'relay URL (ws:// or wss://): reach the environment through it, end-to-end encrypted').env('EXECRELAY_RELAY'))
    .addOption(new Option('--env <id>', 'environment to reach through the relay').env('EXECRELAY_ENVIRONMENT_ID'))
    .addOption(
      new Option(
        '--agent-key <identity>',
        "the agent's public identity (12D3KooW...), or a codex executor's hybrid key fingerprint (hyb1:..., reached over the codex wire); the connection is refused if the agent presents another",
      ).env('EXECRELAY_AGENT_KEY'),
    )
    .addOption(
      new Option(
        '--accept-relay-key',
        "reach a codex executor (codex exec-server --remote) over the codex wire and trust the executor key the relay names (a codex executor makes a new key at every start); its hyb1: fingerprint is printed to stderr. --key is then a hybrid key (execrelay keygen --hybrid)",
      ).env('EXECRELAY_ACCEPT_RELAY_KEY'),
    )
    .addOption(
      new Option(
        '--known-environments <file>',
        `file of "ENVIRONMENT_ID PUBLIC_IDENTITY" lines to look the agent key up in (default ${DEFAULT_KNOWN_ENVIRONMENTS_DISPLAY})`,
      ).env('EXECRELAY_KNOWN_ENVIRONMENTS'),
    )
    .addOption(
      new Option('--accept-new', 'on first contact with an environment that has no known identity, record the one its agent proves (a changed identity is still refused)').env(
        'EXECRELAY_ACCEPT_NEW',
      ),
    )
    .addOption(new Option('--config <file>', `client config file of named environments (default ${DEFAULT_CONFIG_DISPLAY})`).env('EXECRELAY_CONFIG'))
    .addOption(
      new Option(
        '--key <file>',
        `this client's identity key for --relay (default ${DEFAULT_CLIENT_KEY_DISPLAY}, under $XDG_CONFIG_HOME if set; create it with \`execrelay keygen\`); ` +
          'the agent serves only the client identities it authorizes',
      ).env('EXECRELAY_CLIENT_KEY'),
    )
    .addOption(new Option('--token-file <file>', 'bearer token for the relay (first token in the file)').env('EXECRELAY_TOKEN_FILE'))
    .addOption(new Option('--token <token>').env('EXECRELAY_TOKEN').hideHelp())
    .addOption(
      // Its own flag, so that a relay token (often set in the environment) never goes to a direct agent.
      new Option('--agent-token-file <file>', 'bearer token for a direct agent (--url) started with --listen-token-file (first token in the file)').env(
        'EXECRELAY_AGENT_TOKEN_FILE',
      ),
    )
    .addOption(insecureTokenPermissionsOption())
    .addOption(proxyOption());
  return command;
}
