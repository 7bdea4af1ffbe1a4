import { describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_RECOVERY, resumeWithRetries, SessionRecoveryError } from '../../../../src/client/session-resume-retries.js';

const quick = { timeoutMs: 1000, backoff: { initialMs: 20, maxMs: 80 } };

describe('resumeWithRetries', () => {
  it('tries at once, retries transient failures with growing delays, and returns the first success', async () => {
    const times: number[] = [];
    const start = Date.now();
    const value = await resumeWithRetries(
      async () => {
        times.push(Date.now() - start);
        if (times.length < 4) throw new Error('relay unreachable');
        return 'resumed';
      },
      () => false,
      quick,
    );
    expect(value).toBe('resumed');
    expect(times).toHaveLength(4);
    expect(times[0]).toBeLessThan(15);
    // Jittered backoff: each gap is at least half of its ceiling (20, 40, 80 ms).
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(9);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(19);
    expect(times[3]! - times[2]!).toBeGreaterThanOrEqual(39);
  });

  it('stops at the first permanent failure, naming it', async () => {
    let attempts = 0;
    const refusal = new Error('HTTP 403 environment_not_in_scope');
    const error = await resumeWithRetries(
      async () => {
        attempts++;
        throw attempts === 1 ? new Error('socket closed') : refusal;
      },
      (e) => e === refusal,
      quick,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionRecoveryError);
    expect((error as SessionRecoveryError).message).toBe('cannot resume the session: HTTP 403 environment_not_in_scope');
    expect((error as SessionRecoveryError).attempts).toBe(2);
    expect((error as SessionRecoveryError).cause).toBe(refusal);
  });

  it('gives up once the window has passed, with the attempts and the last error; each attempt is told the time left', async () => {
    const left: number[] = [];
    const start = Date.now();
    const error = await resumeWithRetries(
      async (remainingMs) => {
        left.push(remainingMs);
        throw new Error(`attempt ${left.length} failed`);
      },
      () => false,
      { timeoutMs: 300, backoff: { initialMs: 20, maxMs: 80 } },
    ).catch((e: unknown) => e as SessionRecoveryError);
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(1000);
    expect(error.message).toBe(`cannot resume the session within 0.3 s (${left.length} attempts); last: attempt ${left.length} failed`);
    expect(left.length).toBeGreaterThan(2);
    expect(left[0]).toBeLessThanOrEqual(300);
    for (let i = 1; i < left.length; i++) expect(left[i]).toBeLessThan(left[i - 1]!);
  });

  it('the default window is inside codex\'s 30 s retention of a detached session', () => {
    expect(DEFAULT_SESSION_RECOVERY.timeoutMs).toBe(25_000);
    expect(DEFAULT_SESSION_RECOVERY.backoff).toEqual({ initialMs: 500, maxMs: 5000 });
  });
});
