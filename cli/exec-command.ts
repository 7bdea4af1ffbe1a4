import { Command, Option } from 'commander';
import { once } from 'node:events';
import { ExecClient } from '../src/client/exec-client.js';
import type { ClientProcessEvent } from '../src/client/process-events.js';
import { RpcError } from '../src/protocol/error-codes.js';
import { keyValue } from './option-parsers.js';
import type { RelayTarget } from '../src/client/relay-channel.js';
import { addConnectionOptions, resolveConnectionTarget, type ConnectionOptions } from './connection-options.js';

interface ExecCommandOptions extends ConnectionOptions {
  tty: boolean;
  stdin: boolean;
  cwd: string;
  setEnv: Record<string, string>;
  cleanEnv: boolean;
}

/** Exit status when execrelay itself fails (cannot connect, protocol error), as ssh uses 255. */
export const EXIT_EXECRELAY_FAILURE = 255;
/** Exit status when the reader of our stdout or stderr went away (`| head`): 128 + SIGPIPE, as a local pipeline. */
const EXIT_OUTPUT_CLOSED = 128 + 13;

/** The local reader of the command's output closed its end of the pipe. */
class LocalOutputClosedError extends Error {}

export function registerExecCommand(program: Command): void {
  const command = program
    .command('exec')
    .description('run a command on the executor, streaming its output and exiting with its exit code')
    .addOption(new Option('-t, --tty', 'run the command in a pseudo-terminal').env('EXECRELAY_TTY').default(false))
    .addOption(new Option('-i, --stdin', 'forward local stdin to the command (EOF closes its stdin)').env('EXECRELAY_STDIN').default(false))
    .addOption(new Option('--cwd <dir>', 'working directory on the executor (absolute)').env('EXECRELAY_CWD').default('/'))
    .option('-e, --set-env <KEY=VALUE>', 'set a variable in the command environment (repeatable)', keyValue, {})
    .addOption(new Option('--clean-env', 'start from an empty environment instead of the agent\'s own').env('EXECRELAY_CLEAN_ENV').default(false))
    .argument('<command...>', 'command and arguments (put them after --)')
    .addHelpText('after', '\nExample:\n  execrelay exec --relay ws://relay.example:7700 --env laptop --agent-key 12D3KooW... --token-file token -- uname -a\n  execrelay exec --url ws://127.0.0.1:7777 -- sh -c "uname -a"\n\nOutput into a slow pipe makes the remote command wait; nothing is lost.\n\nExit status: the remote exit code (128+N when killed by signal N), 141 when the local reader of the output closed it (| head), or 255 when execrelay itself fails.')
    .action(async (argv: string[], options: ExecCommandOptions) => {
      process.exitCode = await runExec(argv, options);
    });
  addConnectionOptions(command);
}

async function runExec(argv: string[], options: ExecCommandOptions): Promise<number> {
  let target: string | RelayTarget;
  try {
    target = await resolveConnectionTarget(options);
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
  // A write error (EPIPE once the reader left) is seen by writeEvent through `errored`, not thrown here.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
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
    } catch (error) {
      if (!(error instanceof LocalOutputClosedError)) throw error;
      // Like a local pipeline: the writer ends quietly (the remote command is stopped) with 128+SIGPIPE.
      await handle.terminate().catch(() => undefined);
      return EXIT_OUTPUT_CLOSED;
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

/**
 * Writes one output chunk to stdout or stderr and waits for `drain` when the stream's buffer is
 * full: while this waits the event buffer fills and the client stops reading, so a slow reader
 * slows the remote command down instead of output being lost.
 */
async function writeEvent(event: ClientProcessEvent): Promise<void> {
  if (event.type !== 'output') return;
  const target = event.stream === 'stderr' ? process.stderr : process.stdout;
  if (target.errored) throw new LocalOutputClosedError(`${event.stream} closed`);
  try {
    if (target.write(event.chunk)) return;
    await Promise.race([once(target, 'drain'), once(target, 'error').then(([error]) => Promise.reject(error as Error))]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPIPE' || target.errored) throw new LocalOutputClosedError(`${event.stream} closed`);
    throw error;
  }
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
