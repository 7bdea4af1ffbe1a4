/**
 * The one reconnect loop of session recovery (new stream, new handshake, session resume), with its
 * bounds. `ExecClient` runs it when a stream that cannot be repaired underneath (the codex wire's)
 * ends; reconciling each process afterwards is the process tracker's catch-up read.
 */
import { Backoff, CLIENT_BACKOFF, type BackoffSettings } from '../relay-link/backoff.js';
import type { MessageTransport } from '../transport/message-transport.js';

/**
 * How long a client keeps trying to resume its session after its stream ended, and how it spaces
 * the attempts. 25 s: inside the 30 s for which a codex exec-server keeps a detached session (the
 * client and the server start their clocks independently), as codex's own harness does.
 */
export interface SessionRecoveryPolicy {
  /** Give up this long after the stream ended. 0 disables recovery. */
  timeoutMs: number;
  /** Between attempts: the first immediately, then jittered exponential backoff. */
  backoff: BackoffSettings;
}

export const DEFAULT_SESSION_RECOVERY: SessionRecoveryPolicy = { timeoutMs: 25_000, backoff: CLIENT_BACKOFF };

/** The session could not be resumed: a permanent refusal, or the recovery window ran out. */
export class SessionRecoveryError extends Error {
  override readonly name = 'SessionRecoveryError';
  constructor(
    message: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The one reconnect loop of session recovery: calls `attempt` (a new stream, a new handshake,
 * `initialize {resumeSessionId}`) with the time left, first at once, then after each failure with
 * jittered backoff, until it succeeds, `isPermanent` says an error will not change by retrying, or
 * `policy.timeoutMs` has passed, or `signal` aborts (the client was closed: no further attempt, and
 * no wait). Rejects with a {@link SessionRecoveryError} naming the last error.
 */
export async function resumeWithRetries<T>(
  attempt: (remainingMs: number) => Promise<T>,
  isPermanent: (error: unknown) => boolean,
  policy: SessionRecoveryPolicy = DEFAULT_SESSION_RECOVERY,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + policy.timeoutMs;
  const backoff = new Backoff(policy.backoff.initialMs, policy.backoff.maxMs);
  let attempts = 0;
  for (;;) {
    if (signal?.aborted) throw new SessionRecoveryError('the session was not resumed: the client was closed', attempts);
    attempts++;
    try {
      return await attempt(Math.max(1, deadline - Date.now()));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (isPermanent(error)) throw new SessionRecoveryError(`cannot resume the session: ${reason}`, attempts, { cause: error });
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new SessionRecoveryError(`cannot resume the session within ${Number((policy.timeoutMs / 1000).toFixed(1))} s (${attempts} attempts); last: ${reason}`, attempts, { cause: error });
      }
      await pause(Math.min(backoff.next(), left), signal);
    }
  }
}

/**
 * How a client whose stream cannot be repaired underneath (the codex wire) gets a new one: `reopen`
 * opens a new stream with a new handshake within the time given, `isPermanent` says which of its
 * failures retrying will not change.
 */
export interface StreamReopener {
  reopen(remainingMs: number): Promise<MessageTransport>;
  isPermanent(error: unknown): boolean;
  policy: SessionRecoveryPolicy;
}

/** Waits `ms`, or less if `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
