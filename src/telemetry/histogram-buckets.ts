/** Histogram buckets (seconds) shared by the agent's and the relay's metrics. */

/** Request latency: sub-millisecond fs calls up to long-polling reads. */
export const REQUEST_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Process lifetimes: one-shot commands to long-running jobs. */
export const PROCESS_DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Connect, registration and handshake phases. */
export const PHASE_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
