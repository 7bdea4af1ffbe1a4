/** JSON-RPC error codes used on the exec protocol wire. Defined here and nowhere else. */
export const ErrorCode = {
  /** Malformed message, message over the size cap, call before `initialize`, bad notification. */
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  /** Params failed validation; the message names the offending field. */
  InvalidParams: -32602,
  /** Everything else, with the OS reason where there is one. Never a stack trace. */
  Internal: -32603,
  /** The named process, session, file or handle does not exist. */
  NotFound: -32004,
  /**
   * The agent is draining (shutting down): it takes no new session or process; running ones finish.
   * Retry against the restarted (or another) agent.
   */
  Draining: -32005,
  /**
   * codex: `initialize {resumeSessionId}` for a session still attached to another stream (the
   * executor has not yet seen the old one end). Retried by a resuming client.
   */
  SessionAlreadyAttached: -32010,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The JSON-RPC `error` member. */
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * An error that handlers throw to answer a request with a specific code. Anything else a handler
 * throws becomes -32603 with the error's message only.
 */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }

  toObject(): RpcErrorObject {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/**
 * The `data` of the error that answers `process/start` when the program does not exist (the spawn
 * failed with ENOENT, or no executable of that name is on PATH), so that a client can say
 * "command not found" (the CLI exits 127, as a shell and ssh do) without parsing the message.
 */
export const COMMAND_NOT_FOUND_DATA = { reason: 'command_not_found' } as const;

/** Whether `error` is the agent's "command not found" answer to `process/start` (see COMMAND_NOT_FOUND_DATA). */
export function isCommandNotFound(error: unknown): boolean {
  if (!(error instanceof RpcError)) return false;
  const data = error.data as { reason?: unknown } | null | undefined;
  return typeof data === 'object' && data !== null && data.reason === COMMAND_NOT_FOUND_DATA.reason;
}
