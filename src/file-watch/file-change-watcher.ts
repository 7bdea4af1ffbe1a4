/**
 * Notices when one file changes and runs a re-read of it, the one mechanism behind every
 * configuration file execrelay re-reads without a restart (the agent's authorized clients, the
 * relay's token file).
 *
 * Change detection: `fs.watch` on the file's directory (editors and atomic rewrites replace the file
 * by a rename, which a watch on the file itself would miss), plus a `stat` of the file every
 * `pollIntervalMs` comparing inode, size, mtime and ctime, for filesystems and mounts where watching
 * does not report (network filesystems, a Kubernetes ConfigMap's symlink swap). A change is read
 * after `settleMs`, so a burst of writes is read once. Re-reads run one at a time, in order; a change
 * noticed during one runs another after it, which reads the file as it is by then.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

/** Default period of the fallback `stat` of the file. */
export const DEFAULT_FILE_POLL_MS = 1000;
/** Default wait after a change is noticed before the file is read. */
export const DEFAULT_FILE_SETTLE_MS = 25;
/** The signature of a file that does not exist. */
const MISSING = 'missing';

export interface FileChangeWatcherOptions {
  /**
   * Re-reads the file; `missing` says it did not exist when the change was noticed. Errors are the
   * callback's to report: a rejection is swallowed so the watcher keeps going.
   */
  onChange: (missing: boolean) => Promise<void> | void;
  /** Period of the fallback `stat` of the file. Default 1 s. */
  pollIntervalMs?: number;
  /** Wait after a change is noticed before the file is read. Default 25 ms. */
  settleMs?: number;
  /** The directory cannot be watched (it was removed, or the platform refuses): polling goes on. */
  onWatchError?: (error: Error) => void;
}

export class FileChangeWatcher {
  /** The file as last looked at (before it was read), or MISSING. */
  private signature: string;
  private readonly pollTimer: NodeJS.Timeout;
  private watcher: FSWatcher | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  /** The last re-read started or queued. */
  private tail: Promise<void> = Promise.resolve();
  /** A re-read queued behind the running one and not started yet (it will see any later change). */
  private queued: Promise<void> | null = null;
  private closed = false;

  /** Starts watching `file`, whose version as read by the caller is `signature` (see {@link signatureOf}). */
  constructor(
    readonly file: string,
    signature: string,
    private readonly options: FileChangeWatcherOptions,
  ) {
    this.signature = signature;
    this.pollTimer = setInterval(() => void this.poll(), options.pollIntervalMs ?? DEFAULT_FILE_POLL_MS);
    this.pollTimer.unref();
    this.watchDirectory();
  }

  /** The signature of `file` now; take it before the first read and hand it to the constructor. */
  static async signatureOf(file: string): Promise<string> {
    try {
      const stats = await stat(file, { bigint: true });
      return `${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return code === 'ENOENT' || code === 'ENOTDIR' ? MISSING : `error:${code ?? 'unknown'}`;
    }
  }

  /** Re-reads the file now (SIGHUP), after any re-read in progress; resolves when it is done. */
  reread(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.queued) return this.queued;
    const run = this.tail.then(async () => {
      this.queued = null;
      if (this.closed) return;
      // The signature is taken before reading: a change after it is noticed by the next poll.
      this.signature = await FileChangeWatcher.signatureOf(this.file);
      try {
        await this.options.onChange(this.signature === MISSING);
      } catch {
        /* reported by onChange itself */
      }
    });
    this.queued = run;
    this.tail = run;
    return run;
  }

  /** Stops watching and polling; a re-read in progress finishes. */
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
        if (changed === null || changed.toString() === name) this.scheduleReread();
      });
      this.watcher.on('error', (error) => {
        this.watcher?.close();
        this.watcher = undefined;
        this.options.onWatchError?.(error);
      });
    } catch (error) {
      this.options.onWatchError?.(error as Error);
    }
  }

  private async poll(): Promise<void> {
    if (this.closed || this.queued) return;
    if ((await FileChangeWatcher.signatureOf(this.file)) !== this.signature) this.scheduleReread();
  }

  private scheduleReread(): void {
    if (this.closed) return;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => void this.reread(), this.options.settleMs ?? DEFAULT_FILE_SETTLE_MS);
    this.settleTimer.unref();
  }
}
