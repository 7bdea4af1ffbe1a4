import { Command, Option } from 'commander';
import { addConnectionOptions } from './connection-options.js';
import type { CpCommandOptions } from './cp-run.js';

/** Adds `execrelay cp [-r] [-p] SOURCE… DEST` (its run module is loaded only when it runs). */
export function registerCpCommand(program: Command): void {
  const command = program
    .command('cp')
    .description('copy files and trees between this machine and the executor, streamed in blocks, either way')
    .usage('[options] SOURCE... DEST')
    .addOption(new Option('-r, --recursive', 'copy directories and everything in them').env('EXECRELAY_CP_RECURSIVE').default(false))
    .addOption(new Option('-p, --preserve', 'give the copies the permission bits and modification times of the originals').env('EXECRELAY_CP_PRESERVE').default(false))
    .argument('<operands...>', 'SOURCE... DEST: the executor side as ENV:PATH (a named environment), or :PATH for the environment of --relay/--env or --url')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  execrelay cp laptop:/var/log/app.log .            (laptop: an [environments.laptop] entry of the config file)',
        '  execrelay cp -r -p ./site laptop:/srv/www',
        '  execrelay cp --relay ws://relay.example:7700 --env laptop a.txt b.txt :/srv/in/',
        '',
        'One side is local, the other on the executor (executor to executor is refused). DEST is a directory to copy into',
        '(it must exist when there are several sources), or the name of the copy, whose directory must exist. A local',
        'path with a colon before any "/" is written ./a:b. Remote paths are absolute.',
        '',
        'Files travel in 64 KiB blocks, never whole (to a codex exec-server, which cannot take a streamed write, an upload',
        'is one message of at most 50,330,880 bytes), and are written atomically: into a temporary file beside the',
        'destination, renamed over it once complete, so an interrupted copy never leaves a half file under the final',
        'name. Symbolic links inside a tree are not copied (nor followed); a link named as SOURCE is followed.',
        'Without -p a new file gets the receiving side\'s default mode and an existing one keeps its own.',
        'A progress bar is drawn on stderr when it is a terminal; otherwise cp is silent unless something fails.',
        '',
        'Exit status: 0, 1 when a file could not be copied (each named on stderr; the other sources are still copied),',
        '130 (143) when interrupted by Ctrl-C (SIGTERM), after removing the temporary files,',
        '255 when execrelay itself fails (usage errors, cannot connect, connection lost).',
      ].join('\n'),
    )
    .action(async (operands: string[], options: CpCommandOptions) => {
      const { runCp } = await import('./cp-run.js');
      process.exitCode = await runCp(operands, options);
    });
  addConnectionOptions(command);
}
