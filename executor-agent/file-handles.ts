import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { FS_LIMITS } from '../src/protocol/fs.js';
import { invalidInput } from './fs-errors.js';

/**
 * Opens `nativePath` for reading without blocking on a FIFO (O_NONBLOCK) and refuses anything but
 * a regular file with the codex message. The caller closes the handle.
 */
export async function openRegularFile(nativePath: string, shownPath = nativePath): Promise<FileHandle> {
  const handle = await open(nativePath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw invalidInput(`path \`${shownPath}\` is not a file`);
    return handle;
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/**
 * A session's open `fs/open` handles, by caller-chosen id: bounded in number and all closed when
 * the session ends.
 */
export class FileHandleTable {
  private readonly handles = new Map<string, FileHandle>();
  /** Ids whose open is in progress, so a concurrent duplicate is refused and the bound holds. */
  private readonly opening = new Set<string>();
  private closed = false;

  constructor(readonly limit: number = FS_LIMITS.maxOpenFileHandles) {}

  get size(): number {
    return this.handles.size;
  }

  async open(handleId: string, nativePath: string, shownPath = nativePath): Promise<void> {
    if (this.closed) throw invalidInput('the session has ended');
    if (this.handles.has(handleId) || this.opening.has(handleId)) throw invalidInput(`file handle \`${handleId}\` already exists`);
    if (this.handles.size + this.opening.size >= this.limit) {
      throw invalidInput(`at most ${this.limit} file handles may be open per session`);
    }
    this.opening.add(handleId);
    try {
      const handle = await openRegularFile(nativePath, shownPath);
      if (this.closed) {
        await handle.close().catch(() => undefined);
        throw invalidInput('the session has ended');
      }
      this.handles.set(handleId, handle);
    } finally {
      this.opening.delete(handleId);
    }
  }

  /** Reads up to `len` bytes at `offset`; `eof` when fewer than `len` came back (codex semantics). */
  async read(handleId: string, offset: number, len: number): Promise<{ bytes: Buffer; eof: boolean }> {
    if (len < 1 || len > FS_LIMITS.maxReadBlockBytes) {
      throw invalidInput(`file read block length must be between 1 and ${FS_LIMITS.maxReadBlockBytes}`);
    }
    const handle = this.handles.get(handleId);
    if (!handle) throw new RpcError(ErrorCode.NotFound, `unknown file handle \`${handleId}\``);
    const buffer = Buffer.allocUnsafe(len);
    let filled = 0;
    while (filled < len) {
      const { bytesRead } = await handle.read(buffer, filled, len - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { bytes: buffer.subarray(0, filled), eof: filled < len };
  }

  /** Closing an unknown handle is not an error (codex). */
  async close(handleId: string): Promise<void> {
    const handle = this.handles.get(handleId);
    if (!handle) return;
    this.handles.delete(handleId);
    await handle.close();
  }

  /** Closes every handle; further opens are refused. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map((handle) => handle.close().catch(() => undefined)));
  }
}
