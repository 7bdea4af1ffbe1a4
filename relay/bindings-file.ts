import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseKnownEnvironments } from '../src/noise/identity.js';
import { parseBindableIdentity, type BindResult, type EnvironmentBindings } from './environment-bindings.js';

/** Mode of the bindings file (and of its temporary copies). */
const FILE_MODE = 0o600;
/** Mode of a directory created for it. */
const DIRECTORY_MODE = 0o700;
/** How long a writer waits for another process's lock on the file. */
const LOCK_WAIT_MS = 5_000;
/** A lock older than this was left by a process that died while writing: it is broken. */
const STALE_LOCK_MS = 30_000;
const HEADER =
  '# execrelay relay environment bindings: ENVIRONMENT_ID PUBLIC_IDENTITY, written by the relay.\n' +
  '# Release one with: execrelay relay unbind ENVIRONMENT_ID (the relay re-reads this file when it changes).\n';

/** `${XDG_STATE_HOME:-~/.local/state}/execrelay/environment-bindings`. */
export function defaultBindingsFile(env: NodeJS.ProcessEnv = process.env): string {
  const stateHome = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(stateHome, 'execrelay', 'environment-bindings');
}

/**
 * Bindings kept in a state file, lines `ENVIRONMENT_ID PUBLIC_IDENTITY` (the known-environments
 * format): the single relay's store from the CLI. Every change is written atomically (a temporary
 * file renamed over the old one, mode 0600; the directory is created 0700) under a lock file
 * (`FILE.lock`), so the relay and `execrelay relay unbind` in another process never lose each
 * other's changes; changes within this process are serialized. The file is re-read whenever it
 * changed (inode, size or mtime), so an unbind from another process takes effect on the next
 * registration without a restart. At most `maxBindings` environments are bound.
 */
export class BindingsFile implements EnvironmentBindings {
  private bindings = new Map<string, string>();
  /** What the file looked like when last read ('' when it did not exist; null: never read). */
  private stamp: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly maxBindings: number,
  ) {}

  bind(environmentId: string, identity: string): Promise<BindResult> {
    return this.serialized(async () => {
      await this.refresh();
      const known = this.bindings.get(environmentId);
      if (known !== undefined) return known === identity ? 'matches' : 'mismatch';
      if (this.bindings.size >= this.maxBindings) return 'full';
      return this.change((bindings): BindResult => {
        // Read again under the lock: another process may have bound it meanwhile.
        const bound = bindings.get(environmentId);
        if (bound !== undefined) return bound === identity ? 'matches' : 'mismatch';
        if (bindings.size >= this.maxBindings) return 'full';
        bindings.set(environmentId, identity);
        return 'bound';
      });
    });
  }

  unbind(environmentId: string): Promise<string | null> {
    return this.serialized(() =>
      this.change((bindings) => {
        const bound = bindings.get(environmentId) ?? null;
        bindings.delete(environmentId);
        return bound;
      }),
    );
  }

  list(): Promise<Map<string, string>> {
    return this.serialized(async () => {
      await this.refresh();
      return new Map(this.bindings);
    });
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Reads the file again if it changed since it was last read. */
  private async refresh(): Promise<void> {
    const stamp = await this.currentStamp();
    if (stamp === this.stamp) return;
    this.bindings = stamp === '' ? new Map() : await this.read();
    this.stamp = stamp;
  }

  /** Under the lock: reads the file, lets `edit` change the bindings, and writes them back if it did. */
  private async change<T>(edit: (bindings: Map<string, string>) => T): Promise<T> {
    await mkdir(dirname(this.path), { recursive: true, mode: DIRECTORY_MODE });
    const release = await this.lock();
    try {
      this.stamp = null;
      await this.refresh();
      const before = this.serialize(this.bindings);
      const result = edit(this.bindings);
      const after = this.serialize(this.bindings);
      if (after !== before) await this.write(after);
      this.stamp = await this.currentStamp();
      return result;
    } catch (error) {
      this.stamp = null; // read again next time: memory may be ahead of the file
      throw error;
    } finally {
      await release();
    }
  }

  private async read(): Promise<Map<string, string>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw new Error(`cannot read the environment bindings file ${this.path}: ${(error as Error).message}`);
    }
    return parseKnownEnvironments(text, `environment bindings file ${this.path}`, parseBindableIdentity);
  }

  private async write(text: string): Promise<void> {
    const temporary = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await open(temporary, 'wx', FILE_MODE);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    await handle.close();
    try {
      await rename(temporary, this.path);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }

  private serialize(bindings: Map<string, string>): string {
    let text = HEADER;
    for (const [environmentId, identity] of bindings) text += `${environmentId} ${identity}\n`;
    return text;
  }

  private async currentStamp(): Promise<string> {
    try {
      const stats = await stat(this.path);
      return `${stats.ino}:${stats.size}:${stats.mtimeMs}`;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw error;
    }
  }

  /** Takes `FILE.lock` (created exclusively); breaks a lock left behind for longer than STALE_LOCK_MS. */
  private async lock(): Promise<() => Promise<void>> {
    const lockPath = `${this.path}.lock`;
    const giveUpAt = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await open(lockPath, 'wx', FILE_MODE);
        await handle.close();
        return () => unlink(lockPath).catch(() => undefined);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const age = await stat(lockPath).then(
        (stats) => Date.now() - stats.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) {
        await unlink(lockPath).catch(() => undefined);
        continue;
      }
      if (Date.now() > giveUpAt) throw new Error(`the environment bindings file ${this.path} is locked (${lockPath}); remove the lock if no relay or unbind is running`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
