import { constants as fsConstants } from 'node:fs';
import { lstat, open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { FS_LIMITS } from '../src/protocol/fs.js';
import { errorCode, invalidInput } from './fs-errors.js';
import { temporaryPathFor } from '../src/temporary-file-name.js';

/** One write in progress: the temporary file and the target it replaces at commit. */
interface PendingWrite {
  handle: FileHandle;
  temporary: string;
  /** The target's real path (an existing link at the path is written through, as `fs/writeFile` does). */
  target: string;
  /** The target's permission bits when it existed at open (kept unless the commit gives a mode). */
  existingMode: number | undefined;
  /** The path as the client named it, for errors. */
  shownPath: string;
}

/** What `commit` applies to the file before it takes the target's name. */
export interface CommitAttributes {
  mode?: number | null | undefined;
  modifiedAtMs?: number | null | undefined;
}

/**
 * A session's `fs/openWrite` handles (extension, capability `fileTransfer`): each writes a
 * temporary file beside its target, which takes the target's name only at `commit` (a rename in
 * the same directory), so an interrupted transfer never leaves a half file under the final name.
 * A handle closed without commit, and every handle when the session ends, removes its temporary
 * file. Bounded in number per session.
 */
export class WriteHandleTable {
  private readonly writes = new Map<string, PendingWrite>();
  /** Ids whose open is in progress, so a concurrent duplicate is refused and the bound holds. */
  private readonly opening = new Set<string>();
  private closed = false;

  constructor(readonly limit: number = FS_LIMITS.maxOpenWriteHandles) {}

  get size(): number {
    return this.writes.size;
  }

  has(handleId: string): boolean {
    return this.writes.has(handleId);
  }

  /** Starts a write of `nativePath` (already confined for writing); `shownPath` is the path as the client named it. */
  async open(handleId: string, nativePath: string, shownPath: string): Promise<void> {
    if (this.closed) throw invalidInput('the session has ended');
    if (this.writes.has(handleId) || this.opening.has(handleId)) throw invalidInput(`file handle \`${handleId}\` already exists`);
    if (this.writes.size + this.opening.size >= this.limit) {
      throw invalidInput(`at most ${this.limit} write handles may be open per session`);
    }
    this.opening.add(handleId);
    try {
      let target = nativePath;
      let existingMode: number | undefined;
      try {
        target = await realpath(nativePath);
        const stats = await stat(target);
        if (stats.isDirectory()) throw invalidInput(`path \`${shownPath}\` is a directory`);
        if (!stats.isFile()) throw invalidInput(`path \`${shownPath}\` is not a regular file`);
        existingMode = stats.mode & 0o777;
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') throw error;
      }
      // The directory as confinement saw it, by its real path: temporary file and target are named in it.
      target = path.join(await realpath(path.dirname(target)), path.basename(target));
      const temporary = temporaryPathFor(target);
      const handle = await open(temporary, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
      const pending: PendingWrite = { handle, temporary, target, existingMode, shownPath };
      if (!(await stillInPlace(pending))) {
        await handle.close().catch(() => undefined);
        throw movedAway(shownPath);
      }
      if (this.closed) {
        await discard(pending);
        throw invalidInput('the session has ended');
      }
      this.writes.set(handleId, pending);
    } finally {
      this.opening.delete(handleId);
    }
  }

  /** Writes all of `bytes` at `offset` of the temporary file. */
  async write(handleId: string, offset: number, bytes: Buffer): Promise<void> {
    if (bytes.length > FS_LIMITS.maxWriteBlockBytes) {
      throw invalidInput(`file write block must be at most ${FS_LIMITS.maxWriteBlockBytes} bytes, got ${bytes.length}`);
    }
    if (offset + bytes.length > Number.MAX_SAFE_INTEGER) throw invalidInput('file write block ends past the largest file offset');
    const pending = this.pendingWrite(handleId);
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await pending.handle.write(bytes, written, bytes.length - written, offset + written);
      written += bytesWritten;
    }
  }

  /**
   * Flushes the temporary file, applies `attributes` through its descriptor (the permission bits
   * default to the replaced file's, else the agent's default for a new file), and renames it over
   * the target — refused when the temporary file or its directory was swapped since the open. The
   * handle is gone afterwards, whether this succeeds or not (a failed commit removes the file).
   */
  async commit(handleId: string, attributes: CommitAttributes): Promise<void> {
    const pending = this.pendingWrite(handleId);
    this.writes.delete(handleId);
    try {
      await pending.handle.datasync();
      // Mode and time go through the open file, never its name: a name swapped for a link since
      // the open cannot point them at another file.
      await pending.handle.chmod(attributes.mode ?? pending.existingMode ?? 0o666 & ~process.umask());
      if (attributes.modifiedAtMs !== undefined && attributes.modifiedAtMs !== null) {
        const when = new Date(attributes.modifiedAtMs);
        await pending.handle.utimes(when, when);
      }
      // The client chooses how long a write stays open; renaming by name is safe only while the
      // temporary name is still this file, in the directory confinement checked.
      if (!(await stillInPlace(pending))) throw movedAway(pending.shownPath);
      await rename(pending.temporary, pending.target);
    } catch (error) {
      await discard(pending);
      throw error;
    }
    // Flushed above; the file has its name now whatever closing the descriptor says.
    await pending.handle.close().catch(() => undefined);
  }

  /** Discards an uncommitted write (its temporary file is removed); true when `handleId` was one. */
  async close(handleId: string): Promise<boolean> {
    const pending = this.writes.get(handleId);
    if (!pending) return false;
    this.writes.delete(handleId);
    await discard(pending);
    return true;
  }

  /** Discards every uncommitted write; further opens are refused. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const pending = [...this.writes.values()];
    this.writes.clear();
    await Promise.all(pending.map(discard));
  }

  private pendingWrite(handleId: string): PendingWrite {
    const pending = this.writes.get(handleId);
    if (!pending) throw new RpcError(ErrorCode.NotFound, `unknown write handle \`${handleId}\``);
    return pending;
  }
}

async function discard(pending: PendingWrite): Promise<void> {
  const removable = await stillInPlace(pending);
  await pending.handle.close().catch(() => undefined);
  if (removable) await unlink(pending.temporary).catch(() => undefined);
}

/**
 * Whether the temporary name still is the file the write has open (same device and inode, not a
 * link), in a directory whose real path is the one it was opened in: false once a process swapped
 * the file, or a directory on its path, for a link or another entry.
 */
async function stillInPlace(pending: PendingWrite): Promise<boolean> {
  try {
    const [opened, named] = await Promise.all([pending.handle.stat(), lstat(pending.temporary)]);
    if (!named.isFile() || opened.dev !== named.dev || opened.ino !== named.ino) return false;
    const directory = path.dirname(pending.temporary);
    return (await realpath(directory)) === directory;
  } catch {
    return false;
  }
}

function movedAway(shownPath: string): RpcError {
  return invalidInput(`path \`${shownPath}\` was moved or replaced while being written; nothing was written`);
}
