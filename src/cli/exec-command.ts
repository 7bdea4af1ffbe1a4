import { Command, Option } from 'commander';
import { once } from 'node:events';
import { ExecClient } from '../client/exec-client.js';
import type { ClientProcessEvent } from '../client/process-events.js';
import { RpcError } from '../protocol/error-codes.js';
import { keyValue } from './option-parsers.js';
import type { RelayTarget } from '../client/relay-channel.js';
import { resolveToken } from '../auth/bearer-tokens.js';
import { loadIdentityFile, loadKnownEnvironments, parsePublicIdentity } from '../noise/identity.js';

interface ExecCommandOptions {
  url?: string;
  relay?: string;
  env?: string;
  agentKey?: string;
  knownEnvironments?: string;
  key?: string;
  tokenFile?: string;
  token?: string;
  tty: boolean;
  stdin: boolean;
  cwd: string;
  setEnv: Record<string, string>;
  cleanEnv: boolean;
}

/** Exit status when execrelay itself fails (cannot connect, protocol error), as ssh uses 255. */
export const EXIT_EXECRELAY_FAILURE = 255;

export function registerExecCommand(program: Command): void {
  program
    .command('exec')
    .description('run a command on the executor, streaming its output and exiting with its exit code')
    .addOption(new Option('--url <url>', 'agent WebSocket URL for a direct connection (ws://HOST:PORT)').env('EXECRELAY_URL'))
    .addOption(new Option('--relay <url>', 'relay URL (ws:// or wss://): reach the environment through it, end-to-end encrypted').env('EXECRELAY_RELAY'))
    .addOption(new Option('--env <id>', 'environment to reach through the relay').env('EXECRELAY_ENVIRONMENT_ID'))
    .addOption(new Option('--agent-key <identity>', 'the agent\'s public identity; the connection is refused if the agent presents another').env('EXECRELAY_AGENT_KEY'))
    .addOption(new Option('--known-environments <file>', 'file of "ENVIRONMENT_ID PUBLIC_IDENTITY" lines to look the agent key up in').env('EXECRELAY_KNOWN_ENVIRONMENTS'))
    .addOption(new Option('--key <file>', 'this client\'s identity key (for agents that restrict clients); a fresh one otherwise').env('EXECRELAY_CLIENT_KEY'))
    .addOption(new Option('--token-file <file>', 'bearer token for the relay (first token in the file)').env('EXECRELAY_TOKEN_FILE'))
    .addOption(new Option('--token <token>').env('EXECRELAY_TOKEN').hideHelp())
    .option('-t, --tty', 'run the command in a pseudo-terminal', false)
    .option('-i, --stdin', 'forward local stdin to the command (EOF closes its stdin)', false)
    .addOption(new Option('--cwd <dir>', 'working directory on the executor (absolute)').env('EXECRELAY_CWD').default('/'))
    .option('-e, --set-env <KEY=VALUE>', 'set a variable in the command environment (repeatable)', keyValue, {})
    .option('--clean-env', 'start from an empty environment instead of the agent\'s own', false)
    .argument('<command...>', 'command and arguments (put them after --)')
    .addHelpText('after', '\nExample:\n  execrelay exec --relay ws://relay.example:7700 --env laptop --agent-key 12D3KooW... --token-file token -- uname -a\n  execrelay exec --url ws://127.0.0.1:7777 -- sh -c "uname -a"\n\nExit status: the remote exit code (128+N when killed by signal N), or 255 when execrelay itself fails.')
    .action(async (argv: string[], options: ExecCommandOptions) => {
      process.exitCode = await runExec(argv, options);
    });
}

async function runExec(argv: string[], options: ExecCommandOptions): Promise<number> {
  if (!options.url && !options.relay) {
    process.stderr.write('execrelay exec: give --relay URL --env ID --agent-key KEY (or --url URL for a direct agent)\n');
    return 2;
  }
  let target: string | RelayTarget;
  try {
    target = options.relay ? await relayTarget(options) : options.url!;
  } catch (error) {
    process.stderr.write(`execrelay exec: ${(error as Error).message}\n`);
    return 2;
  }
  let client: ExecClient;
  try {
    client = await ExecClient.connect(target, { clientName: 'execrelay-cli' });
  } catch (error) {
    process.stderr.write(`execrelay exec: ${(error as Error).message}\n`);
    return EXIT_EXECRELAY_FAILURE;
  }
  const forwardStdin = options.stdin || (options.tty && process.stdin.isTTY === true);
  try {
    const handle = await client.exec(argv, {
      cwd: options.cwd,
      env: options.setEnv,
      envPolicy: options.cleanEnv ? { inherit: 'none' } : { inherit: 'all', ignoreDefaultExcludes: true },
      tty: options.tty,
      pipeStdin: forwardStdin && !options.tty,
      collectOutput: false,
      streamEvents: true,
    });
    const restoreTerminal = forwardStdin ? pumpStdin(handle.processId, client, options.tty) : () => undefined;
    const onSigint = () => void handle.signal('interrupt').catch(() => undefined);
    if (!options.tty) process.on('SIGINT', onSigint);
    try {
      for await (const event of handle.events) await writeEvent(event);
      const completion = await handle.completion;
      return completion.exitCode >= 0 && completion.exitCode <= 255 ? completion.exitCode : EXIT_EXECRELAY_FAILURE;
    } finally {
      process.off('SIGINT', onSigint);
      restoreTerminal();
    }
  } catch (error) {
    const message = error instanceof RpcError ? `${error.message} (code ${error.code})` : (error as Error).message;
    process.stderr.write(`execrelay exec: ${message}\n`);
    return EXIT_EXECRELAY_FAILURE;
  } finally {
    client.close();
  }
}

/** The relay target from flags: environment, pinned agent key (given or from known environments), token. */
async function relayTarget(options: ExecCommandOptions): Promise<RelayTarget> {
  if (!options.env) throw new Error('--relay needs --env ENVIRONMENT_ID');
  let agentKey = options.agentKey;
  if (!agentKey && options.knownEnvironments) {
    agentKey = (await loadKnownEnvironments(options.knownEnvironments)).get(options.env);
    if (!agentKey) throw new Error(`environment ${options.env} is not in ${options.knownEnvironments}`);
  }
  if (!agentKey) throw new Error('--relay needs the agent\'s public identity: --agent-key KEY or --known-environments FILE');
  parsePublicIdentity(agentKey);
  const token = await resolveToken(options.token, options.tokenFile, '--relay');
  const identity = options.key ? await loadIdentityFile(options.key) : undefined;
  return { relay: options.relay!, environmentId: options.env, agentKey, token, ...(identity ? { identity } : {}) };
}

async function writeEvent(event: ClientProcessEvent): Promise<void> {
  if (event.type !== 'output') return;
  const target = event.stream === 'stderr' ? process.stderr : process.stdout;
  if (!target.write(event.chunk)) await once(target, 'drain');
}

/** Forwards local stdin to the process; returns a function that restores the terminal. */
function pumpStdin(processId: string, client: ExecClient, tty: boolean): () => void {
  const stdin = process.stdin;
  const raw = tty && stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  let chain = Promise.resolve();
  const onData = (data: Buffer) => {
    stdin.pause();
    chain = chain
      .then(() => client.writeStdin(processId, data))
      .then(() => undefined, () => undefined)
      .finally(() => stdin.resume());
  };
  const onEnd = () => {
    chain = chain.then(() => client.writeStdin(processId, '', { closeStdin: !tty }).then(() => undefined, () => undefined));
  };
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  return () => {
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  };
}
