import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured logs (pino, JSON lines) on stderr; stdout stays for what a command is asked to print.
 * Level from EXECRELAY_LOG_LEVEL (default `info`; `silent` turns logging off).
 */
export function createLogger(component: string, level = process.env.EXECRELAY_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: component, level }, pino.destination({ fd: 2, sync: false }));
}
