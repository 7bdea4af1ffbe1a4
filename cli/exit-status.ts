import { RpcError } from '../src/protocol/error-codes.js';

/** Exit statuses of execrelay's own outcomes (a remote command's own status passes through as it is). */
export const ExitStatus = {
  /** execrelay itself failed: cannot connect, protocol error (as ssh uses 255). */
  ExecrelayFailure: 255,
  /** The flags are incomplete or inconsistent. */
  Usage: 2,
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
