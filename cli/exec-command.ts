import { Command, InvalidArgumentError, Option } from 'commander';
import path from 'node:path';
import { keyValue } from './option-parsers.js';
import { addConnectionOptions } from './connection-options.js';
import type { ExecCommandOptions } from './exec-run.js';

/** `--cwd`: an absolute path on the executor (a relative one would silently mean the client's directory). */
function absoluteRemotePath(value: string): string {
  if (!path.posix.isAbsolute(value)) throw new InvalidArgumentError(`must be an absolute path on the executor, got "${value}"`);
  return value;
}

export function registerExecCommand(program: Command): void {
  const command = program
    .command('exec')
    .description('run a command on the executor, streaming its output and exiting with its exit code')
    .usage('[options] [ENV] -- COMMAND [ARGS...]')
    .addOption(new Option('-t, --tty', 'run the command in a pseudo-terminal; on a local terminal: raw mode, the window\'s size followed where the agent offers it').env('EXECRELAY_TTY').default(false))
    .addOption(new Option('-i, --stdin', 'forward local stdin to the command (EOF closes its stdin)').env('EXECRELAY_STDIN').default(false))
    .addOption(
      new Option('--cwd <dir>', 'working directory on the executor, absolute (default: the named environment\'s cwd, else /)')
        .env('EXECRELAY_CWD')
        .argParser(absoluteRemotePath),
    )
    .option('-e, --set-env <KEY=VALUE>', 'set a variable in the command environment (repeatable)', keyValue, {})
    .addOption(new Option('--clean-env', 'start from an empty environment instead of the agent\'s own').env('EXECRELAY_CLEAN_ENV').default(false))
    .argument('<command...>', 'the named environment (optional) before --, the command and its arguments after --')
    .addHelpText('after', '\nExamples:\n  execrelay exec laptop -- make test            (laptop: an [environments.laptop] entry of the config file)\n  execrelay exec --relay ws://relay.example:7700 --env laptop --agent-key 12D3KooW... --token-file token -- uname -a\n  execrelay exec --relay wss://relay.example:7700 --env build-box --token-file token --accept-relay-key -- make   (a codex exec-server --remote executor; key: execrelay keygen --hybrid)\n  execrelay exec --url ws://127.0.0.1:7777 -- sh -c "uname -a"\n\nOutput into a slow pipe makes the remote command wait; nothing is lost.\n\nExit status: the remote exit code (128+N when killed by signal N), 141 when the local reader of the output closed it (| head), 127 when the remote program does not exist, or 255 when execrelay itself fails (usage errors included).')
    .action(async (argv: string[], options: ExecCommandOptions) => {
      // Loaded when the command runs, so that `exec --help` does not load the client.
      const { runExec } = await import('./exec-run.js');
      process.exitCode = await runExec(argv, options, process.argv);
    });
  addConnectionOptions(command);
}
