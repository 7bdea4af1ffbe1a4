import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, open, readdir, realpath, rename, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FS_LIMITS } from '../protocol/fs-limits.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../transport/message-transport.js';
import { temporaryPathFor } from '../temporary-file-name.js';
import type { FsClient, RemotePath } from './fs-client.js';

/**
 * Streaming file copy between this machine and an agent, in bounded blocks (never a whole file in
 * memory or in one message): downloads with `fs/open` + `fs/readBlock` (codex has them), uploads
 * with the `fileTransfer` extension (`fs/openWrite` + `fs/writeBlock` + `fs/commitWrite`), or, to a
 * peer without it (codex), one `fs/writeFile` for a file that fits in one message. Both sides write
 * atomically: a temporary file beside the target, renamed over it once complete.
 */

/**
 * Bytes per block. Measured on loopback (256 MiB each way): 64 KiB blocks, 16 in flight, were faster
 * and kept both processes' peak RSS lower than 1 MiB blocks (the most `fs/readBlock` allows): a
 * block's base64 string and JSON then stay below V8's large-object size, so they die young.
 */
export const TRANSFER_BLOCK_BYTES = 64 * 1024;
/** Blocks in flight at once, each way (the agent answers them concurrently): 1 MiB of file data. */
export const TRANSFER_WINDOW_BLOCKS = 16;
/** Room for the JSON-RPC envelope of an `fs/writeFile`. */
const WRITE_FILE_ENVELOPE_BYTES = 1024;
/** The largest file one `fs/writeFile` carries within the default message cap (base64 grows it by 4/3). */
export const ONE_MESSAGE_WRITE_MAX_BYTES = Math.floor((DEFAULT_MAX_MESSAGE_BYTES - WRITE_FILE_ENVELOPE_BYTES) / 4) * 3;

/** A file or tree this module refuses to copy (as opposed to a failure of the connection). */
export class FileTransferError extends Error {
  override name = 'FileTransferError';
}

/** A file too large for a peer without streaming writes (a codex exec-server). */
export class FileTooLargeForPeerError extends FileTransferError {
  override readonly name = 'FileTooLargeForPeerError';
  constructor(size: number) {
    super(
      `${size} bytes is too large for this executor: it does not offer streaming writes (capability fileTransfer; a codex exec-server), ` +
        `and one fs/writeFile carries at most ${ONE_MESSAGE_WRITE_MAX_BYTES} bytes`,
    );
  }
}

/** Permission bits and modification time to give a copied file or directory (`-p`). */
export interface CopiedAttributes {
  mode?: number;
  modifiedAtMs?: number;
}

export interface TransferOptions {
  /** Told the bytes of each block once it is written. */
  onBytes?: (bytes: number) => void;
  /** `-p`: what to give the copy. */
  attributes?: CopiedAttributes;
}

/** Runs `tasks` with at most `window` in flight, in order; the first failure stops it (the rest are awaited). */
class BoundedPipeline {
  private readonly inFlight: Array<Promise<void>> = [];
  constructor(private readonly window: number) {}

  async add(task: Promise<void>): Promise<void> {
    task.catch(() => undefined); // awaited below, in order; never unhandled meanwhile
    this.inFlight.push(task);
    if (this.inFlight.length >= this.window) await this.inFlight.shift();
  }

  async drain(): Promise<void> {
    while (this.inFlight.length > 0) await this.inFlight.shift();
  }

  async settle(): Promise<void> {
    await Promise.allSettled(this.inFlight.splice(0));
  }
}

/**
 * Uploads the local file `localPath` to `remotePath` with the `fileTransfer` extension (see
 * {@link uploadStream}); only a regular file is sent.
 */
export async function uploadFile(fs: FsClient, localPath: string, remotePath: RemotePath, options: TransferOptions = {}): Promise<void> {
  const local = await open(localPath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    if (!(await local.stat()).isFile()) throw new FileTransferError('not a regular file');
    await uploadStream(fs, local.createReadStream({ highWaterMark: TRANSFER_BLOCK_BYTES, autoClose: false }), remotePath, options);
  } finally {
    await local.close().catch(() => undefined);
  }
}

/**
 * Uploads the bytes of `source` (a file's read stream, stdin) to `remotePath` with the
 * `fileTransfer` extension: blocks of TRANSFER_BLOCK_BYTES, TRANSFER_WINDOW_BLOCKS in flight (the
 * source is read no faster than blocks are written), committed (renamed over the target) only once
 * every block is written; on any failure, the source's included, the agent's temporary file is
 * discarded and nothing appears under the target's name.
 */
export async function uploadStream(fs: FsClient, source: AsyncIterable<Uint8Array>, remotePath: RemotePath, options: TransferOptions = {}): Promise<void> {
  const handleId = await fs.openWrite(remotePath);
  const pipeline = new BoundedPipeline(TRANSFER_WINDOW_BLOCKS);
  try {
    let offset = 0;
    for await (const block of blocksOf(source, TRANSFER_BLOCK_BYTES)) {
      const at = offset;
      offset += block.length;
      await pipeline.add(fs.writeBlock(handleId, at, block).then(() => options.onBytes?.(block.length)));
    }
    await pipeline.drain();
    await fs.commitWrite(handleId, options.attributes ?? {});
  } catch (error) {
    await pipeline.settle();
    await fs.close(handleId).catch(() => undefined);
    throw error;
  }
}

/** Regroups `source`'s chunks (any sizes) into blocks of exactly `size` bytes, the last one shorter. */
async function* blocksOf(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let block = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const chunk of source) {
    let used = 0;
    while (used < chunk.length) {
      const take = Math.min(size - filled, chunk.length - used);
      block.set(chunk.subarray(used, used + take), filled);
      filled += take;
      used += take;
      if (filled === size) {
        yield block;
        block = Buffer.allocUnsafe(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield block.subarray(0, filled);
}

/**
 * Uploads to a peer without the `fileTransfer` extension: one `fs/writeFile` (atomic on the agent),
 * for files up to ONE_MESSAGE_WRITE_MAX_BYTES; larger ones are refused before anything is sent.
 */
export async function uploadFileInOneMessage(fs: FsClient, localPath: string, remotePath: RemotePath, options: TransferOptions = {}): Promise<void> {
  const local = await open(localPath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const stats = await local.stat();
    if (!stats.isFile()) throw new FileTransferError('not a regular file');
    if (stats.size > ONE_MESSAGE_WRITE_MAX_BYTES) throw new FileTooLargeForPeerError(stats.size);
    const data = await local.readFile();
    if (data.length > ONE_MESSAGE_WRITE_MAX_BYTES) throw new FileTooLargeForPeerError(data.length);
    await fs.writeFile(remotePath, data);
    options.onBytes?.(data.length);
  } finally {
    await local.close().catch(() => undefined);
  }
}

/**
 * Downloads `remotePath` to the local `localPath` with `fs/open` + `fs/readBlock` (one block, then
 * TRANSFER_WINDOW_BLOCKS requested ahead), into a temporary file beside `localPath` that is renamed over it once complete
 * (an existing link at `localPath` is written through; an existing file keeps its permission bits
 * unless `attributes.mode` is given). On any failure the temporary file is removed.
 */
export async function downloadFile(fs: FsClient, remotePath: RemotePath, localPath: string, options: TransferOptions = {}): Promise<void> {
  let target = localPath;
  let existingMode: number | undefined;
  try {
    target = await realpath(localPath);
    const stats = await stat(target);
    if (stats.isDirectory()) throw Object.assign(new Error('Is a directory'), { code: 'EISDIR' });
    existingMode = stats.mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const handleId = await fs.open(remotePath);
  const temporary = temporaryPathFor(target);
  let local;
  try {
    local = await open(temporary, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o666);
  } catch (error) {
    await fs.close(handleId).catch(() => undefined);
    throw error;
  }
  const requested: Array<Promise<{ chunk: Buffer; eof: boolean }>> = [];
  let nextOffset = 0;
  const request = (): void => {
    const block = fs.readBlock(handleId, nextOffset, TRANSFER_BLOCK_BYTES);
    block.catch(() => undefined); // awaited in order below
    requested.push(block);
    nextOffset += TRANSFER_BLOCK_BYTES;
  };
  try {
    // One block first (most files of a tree fit in it), then the whole window.
    request();
    let written = 0;
    for (;;) {
      const block = await requested.shift()!;
      if (block.chunk.length > 0) {
        let done = 0;
        while (done < block.chunk.length) done += (await local.write(block.chunk, done, block.chunk.length - done, written + done)).bytesWritten;
        written += block.chunk.length;
        options.onBytes?.(block.chunk.length);
      }
      if (block.eof || block.chunk.length < TRANSFER_BLOCK_BYTES) break;
      while (requested.length < TRANSFER_WINDOW_BLOCKS) request();
    }
    await local.datasync();
    await local.close();
    const mode = options.attributes?.mode ?? existingMode;
    if (mode !== undefined) await chmod(temporary, mode);
    if (options.attributes?.modifiedAtMs !== undefined) {
      const when = new Date(options.attributes.modifiedAtMs);
      await utimes(temporary, when, when);
    }
    await rename(temporary, target);
  } catch (error) {
    await local.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    throw error;
  } finally {
    await Promise.allSettled(requested.splice(0));
    await fs.close(handleId).catch(() => undefined);
  }
}

/** One entry of a tree to copy, by its path relative to the tree's root (`/`-separated). */
export interface TreeEntry {
  relative: string;
  kind: 'directory' | 'file' | 'symlink' | 'other';
  /** Local entries only: size, permission bits and mtime (from `lstat`). */
  size?: number;
  mode?: number;
  modifiedAtMs?: number;
}

/**
 * The local tree under `root` (not listed itself), directories before their contents, each
 * directory's entries by name. Symbolic links are listed as `symlink`, never followed.
 */
export async function listLocalTree(root: string): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  const pending: string[] = [''];
  while (pending.length > 0) {
    const relative = pending.shift()!;
    const names = (await readdir(path.join(root, relative))).sort();
    for (const name of names) {
      const child = relative === '' ? name : `${relative}/${name}`;
      const stats = await lstat(path.join(root, child));
      const kind = stats.isDirectory() ? 'directory' : stats.isFile() ? 'file' : stats.isSymbolicLink() ? 'symlink' : 'other';
      entries.push({ relative: child, kind, size: stats.size, mode: stats.mode & 0o777, modifiedAtMs: Math.round(stats.mtimeMs) });
      if (kind === 'directory') pending.push(child);
    }
  }
  return entries;
}

/** The remote tree is larger than one `fs/walk` lists. */
export class RemoteTreeTooLargeError extends FileTransferError {
  override readonly name = 'RemoteTreeTooLargeError';
}

/**
 * The remote tree under `root` (one `fs/walk`, without following links: the agent lists regular
 * files and directories only, so symbolic links and special files are not copied). A walk cut
 * short by its limits, or with an error under the tree, is refused before anything is copied.
 */
export async function listRemoteTree(fs: FsClient, root: RemotePath): Promise<TreeEntry[]> {
  const result = await fs.walk(root);
  const first = result.errors[0];
  if (first) throw new FileTransferError(`${fileUriPath(first.path)}: ${first.message}`);
  if (result.truncated) {
    throw new RemoteTreeTooLargeError(
      `the tree is larger than one listing allows (${FS_LIMITS.maxWalkEntries} entries, ${FS_LIMITS.maxWalkDirectories} directories, depth ${FS_LIMITS.maxWalkDepth}, ` +
        `${FS_LIMITS.maxWalkResponseBytes} bytes): copy its subdirectories one by one`,
    );
  }
  const rootPath = fileUriPath(root).replace(/\/+$/, '');
  return result.entries.map((entry) => {
    const full = fileUriPath(entry.path);
    return { relative: path.posix.relative(rootPath, full), kind: entry.kind };
  });
}

/** The native path of a `file://` URI (a native path is returned as it is). */
function fileUriPath(value: string): string {
  return value.startsWith('file:') ? fileURLToPath(value) : value;
}
