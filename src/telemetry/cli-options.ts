import { Option, type Command } from 'commander';
import { parseMetricsListen } from './metrics-server.js';

/** What `addTelemetryOptions` adds to a command's parsed options. */
export interface TelemetryCommandOptions {
  /** `HOST:PORT` for the agent's `/metrics` listener; absent: no listener. */
  metricsListen?: string;
}

/**
 * Adds `--metrics-listen HOST:PORT` (env `EXECRELAY_METRICS_LISTEN`; off unless given) to the agent
 * command. Tracing needs no flag: it follows the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variables.
 */
export function addTelemetryOptions(command: Command): Command {
  return command.addOption(metricsListenOption());
}

/** The `--metrics-listen` option alone, for a command's `.addOption(...)` chain. */
export function metricsListenOption(): Option {
  return new Option('--metrics-listen <host:port>', 'serve Prometheus /metrics (and /livez, /readyz) on this address, e.g. 127.0.0.1:9464 (off unless given)')
    .env('EXECRELAY_METRICS_LISTEN')
    .argParser((value: string) => {
      parseMetricsListen(value);
      return value;
    });
}
