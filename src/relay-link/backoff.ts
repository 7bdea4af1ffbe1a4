/**
 * Exponential reconnect backoff with full jitter: the n-th delay is uniform in
 * [base·2ⁿ/2, base·2ⁿ], capped at `maxMs`. `reset()` after a connection that worked.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** A jittered exponential backoff: the first ceiling and the cap. */
export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
}

/** Executor reconnects: 1 s doubling to 30 s (the codex relay's reference). */
export const EXECUTOR_BACKOFF = { initialMs: 1000, maxMs: 30_000 } as const;
/** Client recovery: 500 ms doubling to 5 s, with jitter. */
export const CLIENT_BACKOFF = { initialMs: 500, maxMs: 5000 } as const;

/**
 * After the relay's `restarting` notice an endpoint re-dials every 50–250 ms (jittered) for up to
 * 15 s instead of backing off: the next relay is expected within a restart, and each endpoint is
 * back as soon as it listens. Past the window the normal backoff applies.
 */
export const RELAY_RESTART_RETRY = { minDelayMs: 50, maxDelayMs: 250, windowMs: 15_000 } as const;

export function restartRetryDelay(random: () => number = Math.random): number {
  return Math.round(RELAY_RESTART_RETRY.minDelayMs + random() * (RELAY_RESTART_RETRY.maxDelayMs - RELAY_RESTART_RETRY.minDelayMs));
}
