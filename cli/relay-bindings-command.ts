import { Command, Option } from 'commander';
import { connect } from '@nats-io/transport-node';
import { validateEnvironmentId } from '../src/relay-control/relay-endpoints.js';
import { BindingsFile, defaultBindingsFile } from '../relay/bindings-file.js';
import type { EnvironmentBindings } from '../relay/environment-bindings.js';
import { existingBindingsBucket, FleetBindings } from '../relay/fleet-bindings.js';
import { parseNatsUrl } from '../relay/fleet-connection.js';
import { DEFAULT_RELAY_LIMITS } from '../relay/relay-config.js';

/** `--bindings-file`: the single relay's environment bindings (the relay and its operator commands share it). */
export function bindingsFileOption(): Option {
  return new Option('--bindings-file <file>', 'environment bindings of a single relay, ENVIRONMENT_ID PUBLIC_IDENTITY per line (default: ${XDG_STATE_HOME:-~/.local/state}/execrelay/environment-bindings)').env(
    'EXECRELAY_BINDINGS_FILE',
  );
}

interface BindingsCommandOptions {
  bindingsFile?: string;
  nats?: string;
}

/**
 * `execrelay relay unbind ENV` and `execrelay relay bindings`: the operator's view of which agent
 * key each environment is bound to, on the single relay's bindings file or the fleet's NATS KV.
 */
export function registerRelayBindingsCommands(relay: Command): void {
  relay
    .command('unbind')
    .description("release an environment's binding to its agent key, so that the next registration (with any key) binds it anew")
    .argument('<environment-id>')
    .addOption(bindingsFileOption())
    .addOption(natsOption())
    .addHelpText(
      'after',
      '\nAn executor registered now keeps its link until it reconnects. Keys pinned with --environment-keys are not bindings: edit that file instead.',
    )
    .action(async (environmentId: string, options: BindingsCommandOptions) => {
      const invalid = validateEnvironmentId(environmentId);
      if (invalid) throw new Error(`execrelay relay unbind: ${invalid}`);
      await withBindings(options, async (bindings, where) => {
        const previous = await bindings.unbind(environmentId);
        if (previous === null) {
          process.stdout.write(`${environmentId} was not bound (${where}); nothing changed\n`);
          return;
        }
        process.stdout.write(`unbound ${environmentId} from ${previous} (${where}); its next registration binds it to the key it proves\n`);
      });
    });
  relay
    .command('bindings')
    .description('list environment bindings: ENVIRONMENT_ID PUBLIC_IDENTITY per line')
    .addOption(bindingsFileOption())
    .addOption(natsOption())
    .action(async (options: BindingsCommandOptions) => {
      await withBindings(options, async (bindings) => {
        for (const [environmentId, identity] of await bindings.list()) process.stdout.write(`${environmentId} ${identity}\n`);
      });
    });
}

function natsOption(): Option {
  return new Option('--nats <url>', "a fleet's NATS (nats://[user:password@]HOST:PORT): act on the fleet's bindings instead of a file").env('EXECRELAY_NATS_URL');
}

async function withBindings(options: BindingsCommandOptions, work: (bindings: EnvironmentBindings, where: string) => Promise<void>): Promise<void> {
  if (options.nats === undefined) {
    const path = options.bindingsFile ?? defaultBindingsFile();
    await work(new BindingsFile(path, DEFAULT_RELAY_LIMITS.maxBindings), path);
    return;
  }
  if (options.bindingsFile !== undefined) throw new Error('give either --bindings-file (a single relay) or --nats (a fleet), not both');
  const { servers, user, pass, token } = parseNatsUrl(options.nats);
  const nc = await connect({
    servers,
    ...(user !== undefined ? { user } : {}),
    ...(pass !== undefined ? { pass } : {}),
    ...(token !== undefined ? { token } : {}),
    name: 'execrelay relay bindings',
    timeout: 5_000,
  });
  try {
    await work(new FleetBindings(() => ({ nats: nc, connected: true }), existingBindingsBucket, Number.MAX_SAFE_INTEGER), 'the fleet\'s NATS');
  } finally {
    await nc.close();
  }
}
