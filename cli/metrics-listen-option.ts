import { Option } from 'commander';
import { parseMetricsListen } from '../src/telemetry/metrics-server.js';

/**
 * `--metrics-listen HOST:PORT` (env `EXECRELAY_METRICS_LISTEN`; off unless given) for the agent and the relay.
 * Tracing needs no flag: it follows the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables.
 */
export function metricsListenOption(): Option {
  return new Option('--metrics-listen <host:port>', 'serve Prometheus /metrics (and /livez, /readyz) on this address, e.g. 127.0.0.1:9464 (off unless given)')
    .env('EXECRELAY_METRICS_LISTEN')
    .argParser((value: string) => {
      parseMetricsListen(value);
      return value;
    });
}
