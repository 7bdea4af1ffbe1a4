/**
 * Telemetry primitives shared by the apps: fixed label sets, histogram buckets, the metrics HTTP
 * server, tracing setup and W3C propagation, the client's request tracing. The agent's and the
 * relay's metrics are their own (executor-agent/telemetry/, relay/telemetry/). See docs/observability.md.
 */
export * from './labels.js';
export * from './histogram-buckets.js';
export * from './metrics-server.js';
export * from './tracing.js';
export * from './propagation.js';
export * from './client-tracing.js';
export * from './runtime-metrics.js';
