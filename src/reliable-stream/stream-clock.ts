/**
 * Time source of a reliable stream: the current time and one-shot timers. Injectable so that tests
 * can drive retransmission and delayed acks on a virtual clock.
 */
export interface StreamClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Runs `callback` once after `delayMs`. Real timers must not keep the process alive. */
  setTimeout(callback: () => void, delayMs: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock: `performance.now()` and unref'd Node timers. */
export const systemClock: StreamClock = {
  now: () => performance.now(),
  setTimeout: (callback, delayMs) => {
    const handle = setTimeout(callback, delayMs);
    handle.unref();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * A single re-armable timer on a {@link StreamClock}. `ensureBy` keeps an earlier deadline, so
 * callers can ask "fire no later than t" repeatedly without churning timers.
 */
export class StreamTimer {
  private handle: unknown = undefined;
  private deadline = Number.POSITIVE_INFINITY;

  constructor(
    private readonly clock: StreamClock,
    private readonly onFire: () => void,
  ) {}

  /** True while the timer is armed. */
  get pending(): boolean {
    return this.handle !== undefined;
  }

  /** Arms the timer to fire at `deadline` (clock time) unless it already fires at or before it. */
  ensureBy(deadline: number): void {
    if (this.handle !== undefined && this.deadline <= deadline) return;
    this.cancel();
    this.deadline = deadline;
    const delay = Math.max(0, deadline - this.clock.now());
    this.handle = this.clock.setTimeout(() => {
      this.handle = undefined;
      this.deadline = Number.POSITIVE_INFINITY;
      this.onFire();
    }, delay);
  }

  /** Arms the timer to fire within `delayMs` unless it already fires sooner. */
  ensureWithin(delayMs: number): void {
    this.ensureBy(this.clock.now() + delayMs);
  }

  /** Disarms the timer. */
  cancel(): void {
    if (this.handle === undefined) return;
    this.clock.clearTimeout(this.handle);
    this.handle = undefined;
    this.deadline = Number.POSITIVE_INFINITY;
  }
}
