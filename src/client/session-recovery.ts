/**
 * Session recovery, the fallback for when the stream itself is gone (not merely its link: on the
 * native wire a dropped link is repaired underneath by the reliable stream's resume, and nothing
 * here is needed then; on the codex wire, which has no reliable stream, a dropped link ends the
 * stream and `ExecClient` recovers by itself through {@link resumeWithRetries}).
 * A stream ends when a bound was passed — the client could not reach the relay within its give-up
 * window, or the relay's grace for the executor or the client ran out — while the agent keeps the
 * session and its processes for its retention window (default 5 min). Recovery opens a new stream,
 * re-initializes with `resumeSessionId`, and reconciles each process with
 * `process/read(afterSeq=last)`: the output the client had not seen, the exit (with
 * `sandboxDenied`), and the close. Output that fell out of the agent's retained window is an
 * {@link OutputLostError}, never a hole.
 */
import type { OutputStream } from '../protocol/process.js';
import { ExecClient, type ExecClientOptions } from './exec-client.js';
import { OutputLostError } from './process-events.js';
import type { RelayTarget } from './relay-channel.js';

/** A process to reconcile and the last seq the client had seen of it (0: nothing). */
export interface ProcessCursor {
  processId: string;
  afterSeq: number;
}

export interface ReconciledProcess {
  processId: string;
  /** Output after the cursor, in seq order. */
  chunks: Array<{ seq: number; stream: OutputStream; chunk: Buffer }>;
  /** The cursor for a further read (last seq covered). */
  lastSeq: number;
  exited: boolean;
  exitCode: number | null;
  /** Carried from the read result; false when a legacy server omits it. */
  sandboxDenied: boolean;
  closed: boolean;
  failure: string | null;
}

export interface ReconcileOptions {
  /** Keep reading (long-polls of `waitMs`) until the process is closed; default true. */
  untilClosed?: boolean;
  /** Give up waiting for the close after this long (the result then has `closed: false`). Default 10 min. */
  timeoutMs?: number;
  /** Bytes per read. Default 1 MiB. */
  maxBytes?: number;
  /** Long-poll per read while waiting. Default 10 s. */
  waitMs?: number;
}

/**
 * Re-attaches session `sessionId` on a new stream (a new connection through the relay, or directly).
 * The agent lets only the identity that opened the session resume it: through a relay, give
 * `target.identity` the identity the first connection used (a target without one gets a fresh
 * identity, to which the session does not exist: -32004).
 */
export function resumeSession(target: string | RelayTarget, sessionId: string, options: ExecClientOptions = {}): Promise<ExecClient> {
  return ExecClient.connect(target, { ...options, resumeSessionId: sessionId });
}

/**
 * Reads one process from its cursor on: every retained chunk after it, then (by default) waits for
 * the exit and the close. Rejects with {@link OutputLostError} when output after the cursor is no
 * longer retained.
 */
export async function reconcileProcess(client: ExecClient, cursor: ProcessCursor, options: ReconcileOptions = {}): Promise<ReconciledProcess> {
  const untilClosed = options.untilClosed ?? true;
  const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
  const result: ReconciledProcess = {
    processId: cursor.processId,
    chunks: [],
    lastSeq: cursor.afterSeq,
    exited: false,
    exitCode: null,
    sandboxDenied: false,
    closed: false,
    failure: null,
  };
  for (;;) {
    const waiting = untilClosed && Date.now() < deadline;
    const read = await client.read(cursor.processId, result.lastSeq, {
      maxBytes: options.maxBytes ?? 1024 * 1024,
      waitMs: waiting ? Math.min(options.waitMs ?? 10_000, Math.max(0, deadline - Date.now())) : 0,
    });
    if (read.evictedThroughSeq != null && read.evictedThroughSeq > result.lastSeq) throw new OutputLostError(result.lastSeq);
    for (const chunk of read.chunks) {
      if (chunk.seq <= result.lastSeq) continue;
      result.chunks.push({ seq: chunk.seq, stream: chunk.stream, chunk: chunk.chunk });
    }
    const progressed = read.nextSeq - 1 > result.lastSeq;
    result.lastSeq = Math.max(result.lastSeq, read.nextSeq - 1);
    result.exited = read.exited;
    result.exitCode = read.exitCode;
    result.sandboxDenied = read.sandboxDenied ?? false;
    result.closed = read.closed;
    result.failure = read.failure;
    if (read.closed) return result;
    if (!progressed && !(untilClosed && Date.now() < deadline)) return result;
  }
}

/**
 * Resumes `sessionId` and reconciles every process in `cursors`. Each entry of `processes` is the
 * reconciled process or the error that stopped it (OutputLostError, or -32004 for a process the
 * agent no longer holds).
 */
export async function recoverSession(
  target: string | RelayTarget,
  sessionId: string,
  cursors: readonly ProcessCursor[],
  options: ExecClientOptions & ReconcileOptions = {},
): Promise<{ client: ExecClient; processes: Map<string, ReconciledProcess | Error> }> {
  const client = await resumeSession(target, sessionId, options);
  const processes = new Map<string, ReconciledProcess | Error>();
  await Promise.all(
    cursors.map(async (cursor) => {
      try {
        processes.set(cursor.processId, await reconcileProcess(client, cursor, options));
      } catch (error) {
        processes.set(cursor.processId, error instanceof Error ? error : new Error(String(error)));
      }
    }),
  );
  return { client, processes };
}
