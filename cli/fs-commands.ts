import { Command, InvalidArgumentError, Option } from 'commander';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { addConnectionOptions, resolveConnectionTarget, type ConnectionOptions } from './connection-options.js';
import type { RelayTarget } from '../src/client/relay-channel.js';
import { ExecClient } from '../src/client/exec-client.js';
import { DEFAULT_WALK_OPTIONS, type FsClient } from '../src/client/fs-client.js';
import { RpcError } from '../src/protocol/error-codes.js';
import { FS_LIMITS } from '../src/protocol/fs.js';

/** Exit status when execrelay itself fails (cannot connect), as `exec` uses. */
const EXIT_CONNECT_FAILURE = 255;
/** Files up to this size are fetched with one `fs/readFile`; larger ones are streamed. */
export const CAT_INLINE_MAX_BYTES = 1024 * 1024;

function wholeNumber(max: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a whole number');
    const parsed = Number(value);
    if (parsed > max) throw new InvalidArgumentError(`expected a whole number from 0 to ${max}`);
    return parsed;
  };
}


function describe(error: unknown): string {
  return error instanceof RpcError ? `${error.message} (code ${error.code})` : (error as Error).message;
}

/** Connects, runs `body` with the session's fs client, reports failures; returns the exit code. */
async function withFs(name: string, connection: ConnectionOptions, body: (fs: FsClient) => Promise<number>): Promise<number> {
  let target: string | RelayTarget;
  try {
    target = await resolveConnectionTarget(connection);
  } catch (error) {
    process.stderr.write(`execrelay ${name}: ${(error as Error).message}\n`);
    return 2;
  }
  process.stdout.on('error', () => undefined); // EPIPE (e.g. `| head`): writeOut sees stdout gone and stops
  let client: ExecClient;
  try {
    client = await ExecClient.connect(target, { clientName: `execrelay-${name}` });
  } catch (error) {
    process.stderr.write(`execrelay ${name}: ${(error as Error).message}\n`);
    return EXIT_CONNECT_FAILURE;
  }
  try {
    return await body(client.fs);
  } catch (error) {
    process.stderr.write(`execrelay ${name}: ${describe(error)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** Writes to stdout honouring backpressure; resolves false once stdout is gone (EPIPE). */
async function writeOut(chunk: Buffer | string): Promise<boolean> {
  if (process.stdout.destroyed) return false;
  if (!process.stdout.write(chunk)) {
    await Promise.race([once(process.stdout, 'drain'), once(process.stdout, 'close')]);
  }
  return !process.stdout.destroyed;
}

/** Native path for display; a URI that is not a local file URI is shown as is. */
function shown(uri: string): string {
  try {
    return fileURLToPath(uri);
  } catch {
    return uri;
  }
}

interface WalkCommandOptions extends ConnectionOptions {
  maxDepth: number;
  maxDirectories: number;
  maxEntries: number;
  followSymlinks: boolean;
  json: boolean;
}

async function readAllStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function readLocal(localPath: string): Promise<Buffer> {
  if (localPath === '-') return readAllStdin();
  const chunks: Buffer[] = [];
  for await (const chunk of createReadStream(localPath)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
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
    .argument('<path>', 'absolute path (or file:// URI) on the executor')
    .addHelpText(
      'after',
      '\nPrints one path per line, directories with a trailing "/". Per-path errors go to stderr.\nExit status: 0 complete, 1 with per-path errors or when a limit truncated the walk, 255 when the agent cannot be reached.',
    )
    .action(async (root: string, options: WalkCommandOptions) => {
      process.exitCode = await withFs('walk', options, async (fs) => {
        const result = await fs.walk(root, {
          maxDepth: options.maxDepth,
          maxDirectories: options.maxDirectories,
          maxEntries: options.maxEntries,
          followDirectorySymlinks: options.followSymlinks,
        });
        if (options.json) {
          await writeOut(`${JSON.stringify(result)}\n`);
        } else {
          let batch = '';
          for (const entry of result.entries) {
            batch += `${shown(entry.path)}${entry.kind === 'directory' ? '/' : ''}\n`;
            if (batch.length > 64 * 1024) {
              if (!(await writeOut(batch))) return 1;
              batch = '';
            }
          }
          if (batch !== '' && !(await writeOut(batch))) return 1;
        }
        for (const error of result.errors) process.stderr.write(`execrelay walk: ${shown(error.path)}: ${error.message}\n`);
        if (result.truncated) process.stderr.write('execrelay walk: truncated: a limit (directories, entries or response size) stopped the walk\n');
        return result.errors.length > 0 || result.truncated ? 1 : 0;
      });
    });

  program
    .command('cat')
    .description('write a file from the executor to stdout, byte for byte (large files are streamed)')
    .argument('<path>', 'absolute path (or file:// URI) on the executor')
    .action(async (file: string, options: ConnectionOptions) => {
      process.exitCode = await withFs('cat', options, async (fs) => {
        const metadata = await fs.getMetadata(file);
        if (metadata.isDirectory) throw new Error(`${file}: is a directory`);
        if (metadata.size <= CAT_INLINE_MAX_BYTES) {
          return (await writeOut(await fs.readFile(file))) ? 0 : 1;
        }
        for await (const chunk of fs.readStream(file)) {
          if (!(await writeOut(chunk))) return 1;
        }
        return 0;
      });
    });

  program
    .command('put')
    .description('write a local file (or stdin) to a file on the executor, replacing it atomically')
    .argument('<local>', 'local file to send, or "-" for stdin')
    .argument('<path>', 'absolute destination path (or file:// URI) on the executor')
    .addHelpText('after', '\nThe file travels in one message, so it is bounded by the message size limit (64 MiB by default, about 48 MiB of data).')
    .action(async (local: string, remote: string, options: ConnectionOptions) => {
      let data: Buffer;
      try {
        data = await readLocal(local);
      } catch (error) {
        process.stderr.write(`execrelay put: ${(error as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      process.exitCode = await withFs('put', options, async (fs) => {
        await fs.writeFile(remote, data);
        return 0;
      });
    });
  for (const command of program.commands) if (!before.has(command)) addConnectionOptions(command);
}
