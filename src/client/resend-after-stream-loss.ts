/**
 * Which calls a client sends again when the stream they went out on ends before their answer and
 * the session is resumed on a new stream (the codex wire, which has no reliable stream underneath;
 * see `ExecClient`'s recovery). The executor may or may not have received such a call, so only a
 * call whose second arrival does no harm is sent again; any other fails with
 * {@link CallInterruptedError}, which says that it may have taken effect.
 *
 * - Reads of every kind, and writes that land at a fixed place with fixed bytes (`fs/writeBlock`
 *   at its offset, `fs/writeFile`'s atomic replacement, attributes): done twice is done once.
 * - `process/write` carries its `writeId`, which the executor remembers (it does not write twice).
 * - `process/terminate` and `process/resizePty` have the same effect twice (a second terminate may
 *   answer `running: false` for a process the first one killed).
 * - `process/start` names its process: a second arrival is refused as a duplicate id, and that
 *   refusal, answering a call sent again, means the first one started it ({@link isStartedAlready}).
 * - `fs/createDirectory` only with `recursive` (an existing directory is then no error), `fs/remove`
 *   only with `force` (a missing path is then no error).
 * - Never: `process/signal` (a second interrupt is a second interrupt), `fs/copy`, the handle
 *   calls that create or end a handle (`fs/open`, `fs/openWrite`, `fs/commitWrite`, `fs/close`),
 *   `http/request`, and any method not named here.
 */
import { FsMethod, Method } from '../protocol/methods.js';
import { ErrorCode, RpcError } from '../protocol/error-codes.js';

const ALWAYS = new Set<string>([
  Method.ProcessRead,
  Method.ProcessWrite,
  Method.ProcessTerminate,
  Method.ProcessResizePty,
  Method.ProcessStart,
  FsMethod.ReadFile,
  FsMethod.WriteFile,
  FsMethod.GetMetadata,
  FsMethod.ReadDirectory,
  FsMethod.Walk,
  FsMethod.ReadBlock,
  FsMethod.WriteBlock,
  FsMethod.GetAttributes,
  FsMethod.SetAttributes,
]);

function flag(params: unknown, name: string): boolean {
  return params !== null && typeof params === 'object' && (params as Record<string, unknown>)[name] === true;
}

/** Whether `method` with `params` may be sent again on the resumed session's stream. */
export function mayResend(method: string, params: unknown): boolean {
  if (ALWAYS.has(method)) return true;
  if (method === FsMethod.CreateDirectory) return flag(params, 'recursive');
  if (method === FsMethod.Remove) return flag(params, 'force');
  return false;
}

/**
 * Whether `error`, answering a `process/start` of `processId` that was sent again, is the
 * executor's duplicate-id refusal: codex says `process ID already exists`, an execrelay agent
 * `duplicate processId: ID` (both -32600).
 */
export function isStartedAlready(error: unknown, processId: string): boolean {
  if (!(error instanceof RpcError) || error.code !== ErrorCode.InvalidRequest) return false;
  return error.message === `process ${processId} already exists` || error.message === `duplicate processId: ${processId}`;
}

/** A call that was not sent again: its stream ended before the answer, so it may or may not have taken effect. */
export class CallInterruptedError extends Error {
  constructor(
    readonly method: string,
    cause: Error,
  ) {
    super(`${method}: the stream to the executor ended before its answer (${cause.message}); it may or may not have taken effect, and is not sent again (the session is resumed for the calls after it)`, { cause });
    this.name = 'CallInterruptedError';
  }
}
