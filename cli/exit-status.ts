import { RpcError } from '../src/protocol/error-codes.js';

/** Exit statuses of execrelay's own outcomes (a remote command's own status passes through as it is). */
export const ExitStatus = {
  /**
   * execrelay itself failed, as ssh uses 255: a usage error (unknown or missing flags, a bad config
   * file), an unreadable key or token, cannot connect, a refused identity, a protocol error. A script
   * can tell it from the remote command's own statuses.
   */
  ExecrelayFailure: 255,
  /** The remote program does not exist (the agent's spawn failed with ENOENT), as a shell (and ssh) says. */
  CommandNotFound: 127,
  /** The local reader of the output closed it (`| head`): 128 + SIGPIPE, as a local pipeline. */
  OutputClosed: 128 + 13,
} as const;

/** One line for an error: the agent's JSON-RPC errors with their code, others with their cause when it adds something. */
export function describeError(error: unknown): string {
  if (error instanceof RpcError) return `${error.message} (code ${error.code})`;
  if (error instanceof Error) {
    const cause = error.cause instanceof Error && !error.message.includes(error.cause.message) ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
