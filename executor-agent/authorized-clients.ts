/**
 * The agent's authorized clients file (`--authorized-clients FILE`: one public identity per line,
 * parsed by `parseAuthorizedClients`), held as the set the Noise responder asks at each handshake,
 * and re-read when the file changes, without a restart (`FileChangeWatcher`: a watch on its
 * directory plus a 1 s `stat` poll).
 *
 * Failing closed:
 * - at start, a missing, unreadable or invalid file is an error (`AuthorizedClients.open` rejects),
 *   and so is a file that group or others may write, or one in a directory they may write (without
 *   the sticky bit): whoever can write it can authorize themselves;
 * - a file that exists but lists nobody refuses every client (with a warning);
 * - a file that becomes unreadable or invalid later keeps the last good list, with an error logged
 *   on each failed re-read (a half-written file must not lock everyone out, nor let anyone in);
 * - a file that is deleted refuses every client until it is back (with an error logged).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FileChangeWatcher } from '../src/file-watch/file-change-watcher.js';
import { IdentityError, loadAuthorizedClients } from '../src/noise/identity.js';
import type { AuthorizedClientSet } from '../src/noise/noise-channel.js';
import type { Logger } from '../src/logging/logger.js';

export interface AuthorizedClientsOptions {
  logger: Logger;
  /** Period of the fallback `stat` of the file. Default 1 s. */
  pollIntervalMs?: number;
  /**
   * Checks one listed identity and returns its canonical form. Default: an Ed25519 public identity
   * (`12D3KooW…`); a codex-wire agent lists hybrid fingerprints (`parseHybridFingerprint`, `hyb1:…`).
   */
  parseIdentity?: (token: string) => string;
  /** Wait after a change is noticed before the file is read. Default 25 ms. */
  settleMs?: number;
}

/** The current authorized client identities from a file that is re-read when it changes. */
export class AuthorizedClients implements AuthorizedClientSet {
  private identities: ReadonlySet<string>;
  private readonly watcher: FileChangeWatcher;
  /** The file was found missing on the last re-read. */
  private missing = false;
  private readonly changeListeners: Array<() => void> = [];

  /**
   * Reads `filePath` and starts watching it.
   * @throws IdentityError when the path is empty or the file is missing, unreadable or invalid.
   */
  static async open(filePath: string, options: AuthorizedClientsOptions): Promise<AuthorizedClients> {
    if (filePath.trim() === '') throw new IdentityError('the authorized clients file path is empty');
    const absolute = path.resolve(filePath);
    const signature = await FileChangeWatcher.signatureOf(absolute);
    const identities = await loadGuarded(absolute, options.parseIdentity);
    if (identities.size === 0) {
      options.logger.warn({ file: absolute }, 'the authorized clients file lists nobody: every client is refused until an identity is added');
    }
    return new AuthorizedClients(absolute, identities, signature, options);
  }

  private constructor(
    /** The file, as an absolute path. */
    readonly file: string,
    identities: ReadonlySet<string>,
    signature: string,
    private readonly options: AuthorizedClientsOptions,
  ) {
    this.identities = identities;
    this.watcher = new FileChangeWatcher(file, signature, {
      pollIntervalMs: options.pollIntervalMs,
      settleMs: options.settleMs,
      onChange: async (missing) => {
        await this.reread(missing);
        for (const listener of this.changeListeners) listener();
      },
      onWatchError: (error) =>
        options.logger.warn({ err: error.message, file }, 'cannot watch the authorized clients file; checking it every poll interval only'),
    });
  }

  /** Whether `identity` (a canonical public identity) is authorized now. */
  has(identity: string): boolean {
    return this.identities.has(identity);
  }

  /** How many identities are authorized now. */
  get size(): number {
    return this.identities.size;
  }

  /** Calls `listener` after each re-read of the file, whatever came of it (for tests). */
  onReload(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /** Stops watching; the last set stays as it is. */
  close(): void {
    this.watcher.close();
  }

  private async reread(missing: boolean): Promise<void> {
    const logger = this.options.logger;
    if (missing) {
      if (!this.missing) logger.error({ file: this.file }, 'the authorized clients file was removed: every client is refused until it is back');
      this.missing = true;
      this.identities = new Set();
      return;
    }
    let next: Set<string>;
    try {
      next = await loadGuarded(this.file, this.options.parseIdentity);
    } catch (error) {
      logger.error(
        { err: (error as Error).message, file: this.file, kept: this.identities.size },
        'cannot re-read the authorized clients file; keeping the last good list',
      );
      return;
    }
    if (this.missing) logger.info({ file: this.file }, 'the authorized clients file is back');
    this.missing = false;
    const added = [...next].filter((identity) => !this.identities.has(identity)).length;
    const removed = [...this.identities].filter((identity) => !next.has(identity)).length;
    this.identities = next;
    if (added === 0 && removed === 0) return;
    logger.info({ file: this.file, clients: next.size, added, removed }, 'authorized clients reloaded');
    if (next.size === 0) logger.warn({ file: this.file }, 'the authorized clients file lists nobody: every client is refused until an identity is added');
  }
}

/**
 * Loads the file after checking that only its owner can change it: a file writable by group or
 * others, or in a directory they can write without the sticky bit (they could rename another file
 * over it), is refused (not checked on Windows).
 */
async function loadGuarded(file: string, parseIdentity: ((token: string) => string) | undefined): Promise<Set<string>> {
  if (process.platform !== 'win32') {
    const [fileStats, directoryStats] = await Promise.all([stat(file).catch(() => undefined), stat(path.dirname(file)).catch(() => undefined)]);
    if (fileStats && (fileStats.mode & 0o022) !== 0) {
      const mode = (fileStats.mode & 0o777).toString(8).padStart(4, '0');
      throw new IdentityError(
        `authorized clients file ${file} has mode ${mode}: group or others can write it, and so authorize anyone (run: chmod go-w ${file})`,
      );
    }
    if (directoryStats && (directoryStats.mode & 0o022) !== 0 && (directoryStats.mode & 0o1000) === 0) {
      const mode = (directoryStats.mode & 0o7777).toString(8).padStart(4, '0');
      const directory = path.dirname(file);
      throw new IdentityError(
        `the directory of authorized clients file ${file} has mode ${mode}: group or others can replace the file in it (run: chmod go-w ${directory})`,
      );
    }
  }
  return loadAuthorizedClients(file, parseIdentity);
}
