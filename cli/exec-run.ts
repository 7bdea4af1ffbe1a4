import type { ExecClient, ProcessHandle } from '../src/client/exec-client.js';
import type { ClientProcessEvent } from '../src/client/process-events.js';
import { connectClient } from './client-connection.js';
import type { ConnectionOptions } from './connection-options.js';
import { describeError, ExitStatus } from './exit-status.js';
import { isCommandNotFound } from '../src/protocol/error-codes.js';
import { splitExecOperands } from './remote-operands.js';
import { tolerateClosedOutput, writeLocal } from './local-output.js';
import { LocalTerminal } from './local-terminal.js';

/** How long a signalled `exec -t` waits for the remote hangup to be sent before it exits. */
const HANGUP_SEND_MS = 1000;

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
  let handle: ProcessHandle | undefined;
  // With -t on a local terminal: raw mode (every key goes to the remote pty), restored on every way out.
  const terminal = options.tty
    ? LocalTerminal.enterRawMode((exitStatus) => {
        const hangup = handle?.signal('hangup').catch(() => undefined);
        void Promise.race([hangup, new Promise((resolve) => setTimeout(resolve, HANGUP_SEND_MS))]).finally(() => process.exit(exitStatus));
      })
    : undefined;
  try {
    const ptySize = terminal?.size();
    if (terminal && !client.supportsPtyResize) {
      process.stderr.write('execrelay exec: the executor does not offer terminal resizing (capability ptyResize): its terminal stays at its own size (80x24) and does not follow this window\n');
    }
    try {
      handle = await client.exec(argv, {
      cwd: options.cwd ?? entry?.cwd ?? '/',
      env: options.setEnv,
      // Every member spelled out: a codex exec-server requires them all (`missing field `exclude``).
      envPolicy: { inherit: options.cleanEnv ? 'none' : 'all', ignoreDefaultExcludes: true, exclude: [], set: {}, includeOnly: [] },
      tty: options.tty,
      ...(ptySize ? { ptySize } : {}),
      pipeStdin: forwardStdin && !options.tty,
      collectOutput: false,
      streamEvents: true,
      });
    } catch (error) {
      if (!isCommandNotFound(error)) throw error;
      terminal?.restore();
      process.stderr.write(`execrelay exec: ${describeError(error)}\n`);
      return ExitStatus.CommandNotFound;
    }
    const started = handle;
    if (terminal && client.supportsPtyResize) terminal.onResize((size) => void started.resizePty(size).catch(() => undefined));
    const stopStdin = forwardStdin ? pumpStdin(started.processId, client, options.tty) : () => undefined;
    const onSigint = () => void started.signal('interrupt').catch(() => undefined);
    if (!options.tty) process.on('SIGINT', onSigint);
    try {
      for await (const event of started.events) await writeEvent(event);
      const completion = await started.completion;
      return completion.exitCode >= 0 && completion.exitCode <= 255 ? completion.exitCode : ExitStatus.ExecrelayFailure;
    } catch (error) {
      if (!(error instanceof LocalOutputClosedError)) throw error;
      // Like a local pipeline: the writer ends quietly (the remote command is stopped) with 128+SIGPIPE.
      await started.terminate().catch(() => undefined);
      return ExitStatus.OutputClosed;
    } finally {
      process.off('SIGINT', onSigint);
      stopStdin();
    }
  } catch (error) {
    terminal?.restore();
    process.stderr.write(`execrelay exec: ${describeError(error)}\n`);
    return ExitStatus.ExecrelayFailure;
  } finally {
    terminal?.restore();
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

/** Forwards local stdin to the process; returns a function that stops forwarding. */
function pumpStdin(processId: string, client: ExecClient, tty: boolean): () => void {
  const stdin = process.stdin;
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
    stdin.pause();
  };
}
