/** Metrics, traces and their wiring. See docs/observability.md. */
export * from './labels.js';
export * from './agent-metrics.js';
export * from './agent-telemetry.js';
export * from './relay-metrics.js';
export * from './metrics-server.js';
export * from './tracing.js';
export * from './propagation.js';
export * from './client-tracing.js';
export * from './cli-options.js';
