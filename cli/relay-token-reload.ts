import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { TokenFileOptions } from '../src/auth/bearer-tokens.js';
import type { Logger } from '../src/logging/logger.js';
import { RelayCredentials } from '../relay/relay-credentials.js';

/** Changes within this long are read once (an editor writes a file in several steps). */
const SETTLE_MS = 200;

export interface TokenFileReload {
  /** Re-reads the file now (SIGHUP). */
  reload(): Promise<void>;
  close(): void;
}

/**
 * Re-reads the relay's token file whenever it changes (watching its directory, so a file replaced
 * by a rename is seen too) and on `reload()`. A re-read that fails (a bad line, bad permissions,
 * a missing file) keeps the previous tokens and logs an error; a good one is handed to `apply`,
 * which returns how many live sockets lost their token.
 */
export function watchRelayTokenFile(
  path: string,
  options: TokenFileOptions,
  apply: (credentials: RelayCredentials) => number,
  logger: Logger,
): TokenFileReload {
  let timer: NodeJS.Timeout | undefined;
  let reading: Promise<void> = Promise.resolve();
  const reload = () => {
    // One re-read at a time, in order: the last one reads the file as it is now.
    reading = reading.then(async () => {
      try {
        const { credentials, warnings } = await RelayCredentials.read(path, options);
        for (const warning of warnings) logger.warn(warning);
        const closed = apply(credentials);
        logger.info({ tokens: credentials.size, revokedSockets: closed }, 'token file re-read');
      } catch (error) {
        logger.error({ err: (error as Error).message }, 'token file re-read failed; keeping the previous tokens');
      }
    });
    return reading;
  };
  const name = basename(path);
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed.toString() !== name) return;
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), SETTLE_MS);
    });
    watcher.on('error', (error) => logger.error({ err: error.message }, 'cannot watch the token file; send SIGHUP to re-read it'));
  } catch (error) {
    logger.error({ err: (error as Error).message }, 'cannot watch the token file; send SIGHUP to re-read it');
  }
  return {
    reload,
    close() {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
