import { Command, InvalidArgumentError, Option } from 'commander';
import { addConnectionOptions, type ConnectionOptions } from './connection-options.js';
import type { WalkCommandOptions } from './fs-run.js';
import { DEFAULT_WALK_OPTIONS, FS_LIMITS } from '../src/protocol/fs-limits.js';

function wholeNumber(max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a whole number');
    const parsed = Number(value);
    if (parsed > max) throw new InvalidArgumentError(`expected a whole number from 0 to ${max}`);
    return parsed;
  };
}



/** Adds `execrelay walk`, `execrelay cat` and `execrelay put`. */
export function registerFsCommands(program: Command): void {
  const before = new Set(program.commands);
  program
    .command('walk')
    .description('list a directory tree on the executor, breadth-first, each directory sorted by name')
    .addOption(
      new Option('--max-depth <n>', 'how deep to go (0: the directory\'s own entries only)')
        .env('EXECRELAY_WALK_MAX_DEPTH')
        .argParser(wholeNumber(FS_LIMITS.maxWalkDepth))
        .default(DEFAULT_WALK_OPTIONS.maxDepth),
    )
    .addOption(
      new Option('--max-directories <n>', 'directories to read at most (walk root included)')
        .env('EXECRELAY_WALK_MAX_DIRECTORIES')
        .argParser(wholeNumber(FS_LIMITS.maxWalkDirectories))
        .default(DEFAULT_WALK_OPTIONS.maxDirectories),
    )
    .addOption(
      new Option('--max-entries <n>', 'directory entries to examine at most')
        .env('EXECRELAY_WALK_MAX_ENTRIES')
        .argParser(wholeNumber(FS_LIMITS.maxWalkEntries))
        .default(DEFAULT_WALK_OPTIONS.maxEntries),
    )
    .addOption(new Option('--follow-symlinks', 'descend into symbolic links to directories (each real directory once)').env('EXECRELAY_WALK_FOLLOW_SYMLINKS').default(false))
    .addOption(new Option('--json', 'print the fs/walk result as JSON instead of one path per line').env('EXECRELAY_WALK_JSON').default(false))
    .argument('<path>', 'absolute path (or file:// URI) on the executor; ENV:PATH for a named environment')
    .addHelpText(
      'after',
      '\nPrints one path per line, directories with a trailing "/". Per-path errors go to stderr.\nExit status: 0 complete, 1 with per-path errors or when a limit truncated the walk, 255 when execrelay itself fails (usage errors, cannot connect).',
    )
    .action(async (root: string, options: WalkCommandOptions) => {
      const { runWalk } = await import('./fs-run.js');
      process.exitCode = await runWalk(root, options);
    });

  program
    .command('cat')
    .description('write a file from the executor to stdout, byte for byte (large files are streamed)')
    .argument('<path>', 'absolute path (or file:// URI) on the executor; ENV:PATH for a named environment')
    .addHelpText('after', '\nExit status: 0, 1 when the file cannot be read (the message names it), 255 when execrelay itself fails.')
    .action(async (file: string, options: ConnectionOptions) => {
      const { runCat } = await import('./fs-run.js');
      process.exitCode = await runCat(file, options);
    });

  program
    .command('put')
    .description('write a local file (or stdin) to a file on the executor, replacing it atomically')
    .argument('<local>', 'local file to send, or "-" for stdin')
    .argument('<path>', 'absolute destination path (or file:// URI) on the executor; ENV:PATH for a named environment')
    .addHelpText(
      'after',
      '\nStreamed in 64 KiB blocks to an agent that offers streaming writes (no size cap); the file appears under its name only once complete.\n' +
        'A peer without them (a codex exec-server) gets one message: at most about 48 MiB.\n' +
        'Exit status: 0, 1 when the file cannot be read or written (the message names it), 255 when execrelay itself fails.',
    )
    .action(async (local: string, remote: string, options: ConnectionOptions) => {
      const { runPut } = await import('./fs-run.js');
      process.exitCode = await runPut(local, remote, options);
    });
  for (const command of program.commands) if (!before.has(command)) addConnectionOptions(command);
}
