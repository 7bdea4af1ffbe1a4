import type { ExecClient } from '../src/client/exec-client.js';
import type { ClientProcessEvent } from '../src/client/process-events.js';
import { connectClient } from './client-connection.js';
import type { ConnectionOptions } from './connection-options.js';
import { describeError, ExitStatus } from './exit-status.js';
import { isCommandNotFound } from '../src/protocol/error-codes.js';
import { splitExecOperands } from './remote-operands.js';
import { tolerateClosedOutput, writeLocal } from './local-output.js';

/** `execrelay exec`'s parsed flags. */
export interface ExecCommandOptions extends ConnectionOptions {
  tty: boolean;
  stdin: boolean;
  cwd?: string;
  setEnv: Record<string, string>;
  cleanEnv: boolean;
}

/** The local reader of the command's output closed its end of the pipe. */
class LocalOutputClosedError extends Error {}

/**
 * Runs `execrelay exec`: the remote command's exit status, or one of ExitStatus. `operands` are the
 * environment (before `--`, see splitExecOperands) and the command; `rawArgs` the command line.
 */
export async function runExec(operands: string[], options: ExecCommandOptions, rawArgs: readonly string[]): Promise<number> {
  let argv: string[];
  let environment: string | undefined;
  try {
    ({ argv, environment } = splitExecOperands(operands, rawArgs));
    if (argv.length === 0) throw new Error('give the command to run after --');
  } catch (error) {
    process.stderr.write(`execrelay exec: ${(error as Error).message}\n`);
    return ExitStatus.ExecrelayFailure;
  }
  const connected = await connectClient('exec', environment === undefined ? options : { ...options, environment });
  if (typeof connected === 'number') return connected;
  const { client, entry } = connected;
  tolerateClosedOutput();
  const forwardStdin = options.stdin || (options.tty && process.stdin.isTTY === true);
  try {
    let handle;
    try {
      handle = await client.exec(argv, {
      cwd: options.cwd ?? entry?.cwd ?? '/',
      env: options.setEnv,
      envPolicy: options.cleanEnv ? { inherit: 'none' } : { inherit: 'all', ignoreDefaultExcludes: true },
      tty: options.tty,
      pipeStdin: forwardStdin && !options.tty,
      collectOutput: false,
      streamEvents: true,
      });
    } catch (error) {
      if (!isCommandNotFound(error)) throw error;
      process.stderr.write(`execrelay exec: ${describeError(error)}\n`);
      return ExitStatus.CommandNotFound;
    }
    const restoreTerminal = forwardStdin ? pumpStdin(handle.processId, client, options.tty) : () => undefined;
    const onSigint = () => void handle.signal('interrupt').catch(() => undefined);
    if (!options.tty) process.on('SIGINT', onSigint);
    try {
      for await (const event of handle.events) await writeEvent(event);
      const completion = await handle.completion;
      return completion.exitCode >= 0 && completion.exitCode <= 255 ? completion.exitCode : ExitStatus.ExecrelayFailure;
    } catch (error) {
      if (!(error instanceof LocalOutputClosedError)) throw error;
      // Like a local pipeline: the writer ends quietly (the remote command is stopped) with 128+SIGPIPE.
      await handle.terminate().catch(() => undefined);
      return ExitStatus.OutputClosed;
    } finally {
      process.off('SIGINT', onSigint);
      restoreTerminal();
    }
  } catch (error) {
    process.stderr.write(`execrelay exec: ${describeError(error)}\n`);
    return ExitStatus.ExecrelayFailure;
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
  if (!(await writeLocal(target, event.chunk))) throw new LocalOutputClosedError(`${event.stream} closed`);
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
