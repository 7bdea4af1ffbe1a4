/**
 * The agent's authorized clients file (`--authorized-clients FILE`: one public identity per line,
 * parsed by `parseAuthorizedClients`), held as the set the Noise responder asks at each handshake,
 * and re-read when the file changes, without a restart.
 *
 * Change detection: `fs.watch` on the file's directory (editors and `execrelay authorize --remove`
 * replace the file by a rename, which a watch on the file itself would miss), plus a `stat` of the
 * file every `pollIntervalMs` (1 s) comparing inode, size, mtime and ctime, for filesystems and
 * mounts where watching does not report (network filesystems, a Kubernetes ConfigMap's symlink
 * swap). A change is read after `settleMs` (25 ms) so that a burst of writes is read once.
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
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { IdentityError, loadAuthorizedClients } from '../src/noise/identity.js';
import type { AuthorizedClientSet } from '../src/noise/noise-channel.js';
import type { Logger } from '../src/logging/logger.js';

/** Default period of the fallback `stat` of the file. */
export const DEFAULT_AUTHORIZED_CLIENTS_POLL_MS = 1000;
/** Default wait after a change is noticed before the file is read. */
const DEFAULT_SETTLE_MS = 25;
/** The signature of a file that does not exist. */
const MISSING = 'missing';

export interface AuthorizedClientsOptions {
  logger: Logger;
  /** Period of the fallback `stat` of the file. Default 1 s. */
  pollIntervalMs?: number;
  /** Wait after a change is noticed before the file is read. Default 25 ms. */
  settleMs?: number;
}

/** The current authorized client identities from a file that is re-read when it changes. */
export class AuthorizedClients implements AuthorizedClientSet {
  private identities: ReadonlySet<string>;
  /** Of the file as last looked at (before it was read), or MISSING. */
  private signature: string;
  private readonly pollTimer: NodeJS.Timeout;
  private watcher: FSWatcher | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private reloading = false;
  /** The file was found missing on the last re-read. */
  private missing = false;
  private reloadAgain = false;
  private closed = false;
  private readonly changeListeners: Array<() => void> = [];

  /**
   * Reads `filePath` and starts watching it.
   * @throws IdentityError when the path is empty or the file is missing, unreadable or invalid.
   */
  static async open(filePath: string, options: AuthorizedClientsOptions): Promise<AuthorizedClients> {
    if (filePath.trim() === '') throw new IdentityError('the authorized clients file path is empty');
    const absolute = path.resolve(filePath);
    const signature = await signatureOf(absolute);
    const identities = await loadGuarded(absolute);
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
    this.signature = signature;
    this.pollTimer = setInterval(() => void this.poll(), options.pollIntervalMs ?? DEFAULT_AUTHORIZED_CLIENTS_POLL_MS);
    this.pollTimer.unref();
    this.watchDirectory();
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
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.settleTimer);
    this.watcher?.close();
    this.watcher = undefined;
  }

  private watchDirectory(): void {
    const name = path.basename(this.file);
    try {
      this.watcher = watch(path.dirname(this.file), { persistent: false }, (_event, changed) => {
        // Some platforms do not say which entry changed: then any change may be this file's.
        if (changed === null || changed === name) this.scheduleReload();
      });
      this.watcher.on('error', (error) => {
        // E.g. the directory was removed: the poll still notices changes.
        this.options.logger.warn({ err: error.message, file: this.file }, 'cannot watch the authorized clients file; checking it every poll interval only');
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message, file: this.file }, 'cannot watch the authorized clients file; checking it every poll interval only');
    }
  }

  private async poll(): Promise<void> {
    if (this.closed || this.reloading) return;
    if ((await signatureOf(this.file)) !== this.signature) this.scheduleReload();
  }

  private scheduleReload(): void {
    if (this.closed) return;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => void this.reload(), this.options.settleMs ?? DEFAULT_SETTLE_MS);
    this.settleTimer.unref();
  }

  /** Re-reads the file (one read at a time; a change noticed meanwhile reads it again after). */
  private async reload(): Promise<void> {
    if (this.closed) return;
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = true;
    try {
      await this.readOnce();
    } finally {
      this.reloading = false;
    }
    for (const listener of this.changeListeners) listener();
    if (this.reloadAgain) {
      this.reloadAgain = false;
      void this.reload();
    }
  }

  private async readOnce(): Promise<void> {
    const logger = this.options.logger;
    // The signature is taken before reading: a change after it is noticed by the next poll.
    const signature = await signatureOf(this.file);
    this.signature = signature;
    if (signature === MISSING) {
      if (!this.missing) logger.error({ file: this.file }, 'the authorized clients file was removed: every client is refused until it is back');
      this.missing = true;
      this.identities = new Set();
      return;
    }
    let next: Set<string>;
    try {
      next = await loadGuarded(this.file);
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
async function loadGuarded(file: string): Promise<Set<string>> {
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
  return loadAuthorizedClients(file);
}

/** What identifies a version of the file cheaply: inode, size, mtime, ctime; MISSING when absent. */
async function signatureOf(file: string): Promise<string> {
  try {
    const stats = await stat(file, { bigint: true });
    return `${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? MISSING : `error:${code ?? 'unknown'}`;
  }
}
