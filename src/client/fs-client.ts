import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { z } from 'zod';
import { ErrorCode } from '../protocol/error-codes.js';
import { FS_LIMITS, FsEmptyResult, FsGetAttributesResult, FsGetMetadataResult, FsOpenResult, FsOpenWriteResult, FsReadBlockResult, FsReadDirectoryResult, FsReadFileResult, FsWalkResult, type FsDirectoryEntry, type FsWalkOptionsInput } from '../protocol/fs.js';
import { FsMethod } from '../protocol/methods.js';
import { toFileUri } from '../protocol/path-uri.js';
import { parseOrThrow } from '../protocol/validation.js';
import type { JsonRpcConnection } from '../jsonrpc/connection.js';
import { DEFAULT_WALK_OPTIONS } from '../protocol/fs-limits.js';
import { encodeBinaryWriteBlock } from '../protocol/binary-message.js';

/** A path on the agent: a native absolute path (`/srv/x`) or a `file://` URI. */
export type RemotePath = string;

export { DEFAULT_WALK_OPTIONS };

/** Block size `readStream` asks for (the largest `fs/readBlock` allows). */
export const DEFAULT_READ_BLOCK_BYTES = FS_LIMITS.maxReadBlockBytes;

/** The wire form of a remote path; relative paths are refused (the agent's cwd is not the caller's). */
export function toRemoteUri(remotePath: RemotePath): string {
  if (remotePath.startsWith('file://')) return remotePath;
  if (!path.posix.isAbsolute(remotePath)) throw new Error(`remote path must be absolute or a file:// URI: ${remotePath}`);
  return toFileUri(remotePath);
}

/** A fresh handle id: 32 hex characters (a codex exec-server refuses ids over 32 bytes, so not a 36-character UUID). */
function newHandleId(): string {
  return randomUUID().replaceAll('-', '');
}

/** A file read block: its bytes and whether the end of the file was reached. */
export interface ReadBlock {
  chunk: Buffer;
  eof: boolean;
}

/** What FsClient calls through: a JSON-RPC connection (`requestBinary` for the `binaryFileBlocks` path). */
export type FsConnection = Pick<JsonRpcConnection, 'request'> & Partial<Pick<JsonRpcConnection, 'requestBinary'>>;

export interface FsClientOptions {
  /**
   * Whether the session took `binaryFileBlocks` up (`ExecClient.usesBinaryFileBlocks`): `writeBlock`
   * then sends raw bytes in a binary message, and `readBlock` results come as one.
   */
  binaryFileBlocks?: () => boolean;
}

/** A `fs/readBlock` result that came as a binary message (its chunk already bytes, which no JSON result can be). */
function isBinaryReadBlock(result: unknown): result is ReadBlock {
  return result !== null && typeof result === 'object' && Buffer.isBuffer((result as { chunk?: unknown }).chunk);
}

/** Typed `fs/*` calls on an ExecClient's session (its connection). Every method rejects with the agent's RpcError. */
export class FsClient {
  constructor(
    private readonly client: FsConnection,
    private readonly options: FsClientOptions = {},
  ) {}

  private async call<S extends z.ZodType>(method: string, params: Record<string, unknown>, schema: S): Promise<z.output<S>> {
    const raw = await this.client.request(method, params);
    return parseOrThrow(schema, raw, ErrorCode.Internal, `invalid ${method} result`);
  }

  async readFile(file: RemotePath): Promise<Buffer> {
    const result = await this.call(FsMethod.ReadFile, { path: toRemoteUri(file) }, FsReadFileResult);
    return Buffer.from(result.dataBase64, 'base64');
  }

  /** Replaces the file atomically (the agent writes a temporary file, then renames it). */
  async writeFile(file: RemotePath, data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await this.call(FsMethod.WriteFile, { path: toRemoteUri(file), dataBase64: bytes.toString('base64') }, FsEmptyResult);
  }

  /** `recursive` (default true) creates missing parents and accepts an existing directory. */
  async createDirectory(directory: RemotePath, options: { recursive?: boolean } = {}): Promise<void> {
    await this.call(FsMethod.CreateDirectory, { path: toRemoteUri(directory), recursive: options.recursive ?? true }, FsEmptyResult);
  }

  getMetadata(target: RemotePath): Promise<FsGetMetadataResult> {
    return this.call(FsMethod.GetMetadata, { path: toRemoteUri(target) }, FsGetMetadataResult);
  }

  async readDirectory(directory: RemotePath): Promise<FsDirectoryEntry[]> {
    return (await this.call(FsMethod.ReadDirectory, { path: toRemoteUri(directory) }, FsReadDirectoryResult)).entries;
  }

  /** `recursive` and `force` default to true, as on the agent. */
  async remove(target: RemotePath, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    await this.call(
      FsMethod.Remove,
      { path: toRemoteUri(target), recursive: options.recursive ?? true, force: options.force ?? true },
      FsEmptyResult,
    );
  }

  /** A directory source needs `recursive: true`; copying a directory into itself is refused. */
  async copy(source: RemotePath, destination: RemotePath, options: { recursive?: boolean } = {}): Promise<void> {
    await this.call(
      FsMethod.Copy,
      { sourcePath: toRemoteUri(source), destinationPath: toRemoteUri(destination), recursive: options.recursive ?? false },
      FsEmptyResult,
    );
  }

  /**
   * Breadth-first listing under `root` (entries as `file://` URIs, each directory sorted by name),
   * with per-path errors and `truncated` when a cap stopped it. Options default to the hard caps.
   */
  walk(root: RemotePath, options: Partial<FsWalkOptionsInput> = {}): Promise<FsWalkResult> {
    return this.call(FsMethod.Walk, { path: toRemoteUri(root), options: { ...DEFAULT_WALK_OPTIONS, ...options } }, FsWalkResult);
  }

  /** Opens a file for `readBlock`; returns the handle id (random unless given). */
  async open(file: RemotePath, handleId: string = newHandleId()): Promise<string> {
    return (await this.call(FsMethod.Open, { handleId, path: toRemoteUri(file) }, FsOpenResult)).handleId;
  }

  /** Up to `len` bytes at `offset` of a read handle (raw bytes on the `binaryFileBlocks` path, else base64 in JSON). */
  async readBlock(handleId: string, offset: number, len: number = DEFAULT_READ_BLOCK_BYTES): Promise<ReadBlock> {
    const raw = await this.client.request(FsMethod.ReadBlock, { handleId, offset, len });
    if (isBinaryReadBlock(raw)) return raw;
    const result = parseOrThrow(FsReadBlockResult, raw, ErrorCode.Internal, `invalid ${FsMethod.ReadBlock} result`);
    return { chunk: Buffer.from(result.chunk, 'base64'), eof: result.eof };
  }

  /** Closes a read handle, or discards an uncommitted write handle (its temporary file is removed). */
  async close(handleId: string): Promise<void> {
    await this.call(FsMethod.Close, { handleId }, FsEmptyResult);
  }

  /**
   * `fs/openWrite` (extension, capability `fileTransfer`): starts an atomic write of `file`; nothing
   * appears under its name before `commitWrite`. Returns the handle id (random unless given).
   */
  async openWrite(file: RemotePath, handleId: string = newHandleId()): Promise<string> {
    return (await this.call(FsMethod.OpenWrite, { handleId, path: toRemoteUri(file) }, FsOpenWriteResult)).handleId;
  }

  /**
   * Writes `chunk` (at most `FS_LIMITS.maxWriteBlockBytes`) at `offset` of a write handle: on the
   * `binaryFileBlocks` path one binary message with the raw bytes (no base64, no JSON text), else
   * JSON with base64.
   */
  async writeBlock(handleId: string, offset: number, chunk: Uint8Array): Promise<void> {
    const asJson = () => ({ handleId, offset, chunk: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('base64') });
    const raw =
      this.client.requestBinary && this.options.binaryFileBlocks?.() === true
        ? await this.client.requestBinary(FsMethod.WriteBlock, (id) => encodeBinaryWriteBlock(id, handleId, offset, chunk), asJson)
        : await this.client.request(FsMethod.WriteBlock, asJson());
    parseOrThrow(FsEmptyResult, raw, ErrorCode.Internal, `invalid ${FsMethod.WriteBlock} result`);
  }

  /** Renames the written file over its target, with `mode` (permission bits) and `modifiedAtMs` when given. */
  async commitWrite(handleId: string, attributes: { mode?: number; modifiedAtMs?: number } = {}): Promise<void> {
    await this.call(FsMethod.CommitWrite, { handleId, ...attributes }, FsEmptyResult);
  }

  /** A path's permission bits and modification time (extension, capability `fileTransfer`). */
  getAttributes(target: RemotePath): Promise<FsGetAttributesResult> {
    return this.call(FsMethod.GetAttributes, { path: toRemoteUri(target) }, FsGetAttributesResult);
  }

  /** Sets what is given of a path's permission bits and modification time (extension, capability `fileTransfer`). */
  async setAttributes(target: RemotePath, attributes: { mode?: number; modifiedAtMs?: number }): Promise<void> {
    await this.call(FsMethod.SetAttributes, { path: toRemoteUri(target), ...attributes }, FsEmptyResult);
  }

  /**
   * Streams a file of any size with `fs/open` + `fs/readBlock` (one block requested ahead) and
   * closes the handle when done, even when the consumer stops early.
   */
  async *readStream(file: RemotePath, options: { blockSize?: number } = {}): AsyncGenerator<Buffer> {
    const blockSize = options.blockSize ?? DEFAULT_READ_BLOCK_BYTES;
    const handleId = await this.open(file);
    let offset = 0;
    let pending: Promise<ReadBlock> | undefined = this.readBlock(handleId, offset, blockSize);
    try {
      while (pending) {
        const block: ReadBlock = await pending;
        offset += block.chunk.length;
        pending = block.eof || block.chunk.length === 0 ? undefined : this.readBlock(handleId, offset, blockSize);
        if (block.chunk.length > 0) yield block.chunk;
      }
    } finally {
      if (pending) await pending.catch(() => undefined);
      await this.close(handleId).catch(() => undefined);
    }
  }
}
