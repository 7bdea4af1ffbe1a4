import type { CommanderError } from 'commander';

/**
 * One line for a usage error of commander's (unknown option, missing argument, unknown command):
 * `execrelay exec: unknown option '-a'`, with what to do next. Forgetting the `--` before a remote
 * command's own options (`execrelay exec laptop ls -a`) is said so, instead of printing the help.
 * The message is written by the caller (`cli/main.ts`), which exits with 255.
 */
export function usageErrorLine(error: CommanderError, args: readonly string[]): string {
  const message = error.message.replace(/^error: /, '');
  const command = args.find((arg) => !arg.startsWith('-'));
  const prefix = command === undefined || error.code === 'commander.unknownCommand' ? 'execrelay' : `execrelay ${command}`;
  if (error.code === 'commander.help' || error.code === 'commander.executeSubCommandAsync') {
    return `${prefix}: give a command (execrelay --help lists them)`;
  }
  if (command === 'exec' && error.code === 'commander.unknownOption' && !args.includes('--')) {
    return `${prefix}: ${message}: put the remote command after --, as in: execrelay exec [options] [ENV] -- ls -a`;
  }
  const help = command === undefined || error.code === 'commander.unknownCommand' ? 'execrelay --help' : `execrelay ${command} --help`;
  return `${prefix}: ${message} (see ${help})`;
}
