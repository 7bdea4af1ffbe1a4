import type { TokenFileOptions } from '../src/auth/bearer-tokens.js';
import { FileChangeWatcher } from '../src/file-watch/file-change-watcher.js';
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
 * Re-reads the relay's token file whenever it changes (`FileChangeWatcher`: a watch on its
 * directory, so a file replaced by a rename is seen too, plus a `stat` poll) and on `reload()`.
 * A re-read that fails (a bad line, bad permissions, a missing file) keeps the previous tokens and
 * logs an error; a good one is handed to `apply`, which returns how many live sockets lost their token.
 */
export async function watchRelayTokenFile(
  path: string,
  options: TokenFileOptions,
  apply: (credentials: RelayCredentials) => number,
  logger: Logger,
): Promise<TokenFileReload> {
  const signature = await FileChangeWatcher.signatureOf(path);
  const watcher = new FileChangeWatcher(path, signature, {
    settleMs: SETTLE_MS,
    onChange: async () => {
      try {
        const { credentials, warnings } = await RelayCredentials.read(path, options);
        for (const warning of warnings) logger.warn(warning);
        const closed = apply(credentials);
        logger.info({ tokens: credentials.size, revokedSockets: closed }, 'token file re-read');
      } catch (error) {
        logger.error({ err: (error as Error).message }, 'token file re-read failed; keeping the previous tokens');
      }
    },
    onWatchError: (error) =>
      logger.error({ err: error.message }, 'cannot watch the token file; checking it every second, or send SIGHUP to re-read it'),
  });
  return { reload: () => watcher.reread(), close: () => watcher.close() };
}
