import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, open, readdir, readlink, realpath, rename, rm, rmdir, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { FsCloseParams, FsCopyParams, FsCreateDirectoryParams, FsGetMetadataParams, FsOpenParams, FsReadBlockParams, FsReadDirectoryParams, FsReadFileParams, FsRemoveParams, FsWalkParams, FsWriteFileParams, type FsDirectoryEntry, type FsGetMetadataResult } from '../src/protocol/fs.js';
import { FsMethod } from '../src/protocol/methods.js';
import { base64Bytes, parseOrThrow } from '../src/protocol/validation.js';
import { openRegularFile } from './file-handles.js';
import { fileTransferHandlers } from './file-transfer-handlers.js';
import { errorCode, invalidInput, toFsRpcError } from './fs-errors.js';
import { sortByName, walkTree } from './fs-walk.js';
import type { HandlerContext, HandlerTable, MethodHandler } from './handler-table.js';
import { confinementFor, isInside, refusal, resolveExisting, type RootConfinement } from './root-confinement.js';
import { base64ResponseBytes } from './response-budget.js';
import { temporaryPathFor } from '../src/temporary-file-name.js';
import { BinaryResponse } from '../src/jsonrpc/binary-response.js';
import { BINARY_READ_BLOCK_HEADER_BYTES, encodeBinaryReadBlockResult } from '../src/protocol/binary-message.js';

/** Room left for the JSON-RPC envelope when a file's base64 must fit in one message. */
const MESSAGE_ENVELOPE_BYTES = 1024;

/** The largest file `fs/readFile` returns in one message (base64 grows it by 4/3). */
export function maxReadFileBytes(maxMessageBytes: number): number {
  return Math.floor(Math.max(0, maxMessageBytes - MESSAGE_ENVELOPE_BYTES) / 4) * 3;
}

/** Wraps a handler so that every OS error becomes a wire error (-32004 / -32603, never a stack). */
function fsHandler(handler: MethodHandler): MethodHandler {
  return async (params, context) => {
    try {
      return await handler(params, context);
    } catch (error) {
      throw toFsRpcError(error);
    }
  };
}

function confine(context: HandlerContext, nativePath: string, access: 'read' | 'write', follow = true): Promise<string> {
  return confinementFor(context.config).resolve(nativePath, { access, follow });
}

/**
 * Writes `target` atomically: a temporary file in the same directory, flushed, then renamed over
 * it. An existing file keeps its permission bits; a symlink at `target` is written through (its
 * real target is replaced), as a plain write would.
 */
async function writeFileAtomic(target: string, data: Buffer): Promise<void> {
  let finalPath = target;
  let mode = 0o666;
  try {
    finalPath = await realpath(target);
    mode = (await stat(finalPath)).mode & 0o7777;
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
  }
  const temporary = temporaryPathFor(finalPath);
  const handle = await open(temporary, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    if (mode !== 0o666) await chmod(temporary, mode);
    await rename(temporary, finalPath);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

/** Copies one regular file through a temporary file and a rename (never writing through a link at `destination`). */
async function copyRegularFile(source: string, destination: string): Promise<void> {
  const temporary = temporaryPathFor(destination);
  try {
    await copyFile(source, temporary, fsConstants.COPYFILE_EXCL);
    await rename(temporary, destination);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

async function copySymlink(source: string, destination: string): Promise<void> {
  await symlink(await readlink(source), destination);
}

interface TreeCopy {
  confinement: RootConfinement;
  /** Real path of the source tree: the copy never writes inside it. */
  realSource: string;
}

/**
 * `cp -R` as codex does it: directories merged (created if missing), files replaced, symlinks
 * copied as links, special files skipped. `destination` is a checked real path (free of
 * symlinks); `shown` is the same directory as the client named it, for refusals.
 *
 * With roots, every destination entry is checked before it is written (the most specific root
 * containing it must be `rw`), so merging into a tree never writes into a nested read-only root.
 * A symlink already in the destination where a directory is merged is followed only when its real
 * target is a directory the copy may write (not outside the roots, not read-only, not inside the
 * source); otherwise the copy stops there with the confinement refusal.
 */
async function copyDirectoryRecursive(source: string, destination: string, shown: string, copy: TreeCopy): Promise<void> {
  for (const dirent of await readdir(source, { withFileTypes: true })) {
    const from = path.join(source, dirent.name);
    const to = path.join(destination, dirent.name);
    const toShown = path.join(shown, dirent.name);
    if (!dirent.isDirectory() && !dirent.isFile() && !dirent.isSymbolicLink()) continue;
    copy.confinement.checkReal(to, 'write', toShown);
    if (dirent.isDirectory()) await copyDirectoryRecursive(from, await directoryToMergeInto(to, toShown, copy), toShown, copy);
    else if (dirent.isFile()) await copyRegularFile(from, to);
    else await copySymlink(from, to);
  }
}

/** The real directory that `to` (an entry of a checked real directory) stands for, created if missing. */
async function directoryToMergeInto(to: string, shown: string, copy: TreeCopy): Promise<string> {
  let stats;
  try {
    stats = await lstat(to);
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
    await mkdir(to);
    return to;
  }
  if (stats.isDirectory()) return to;
  if (!stats.isSymbolicLink()) {
    await mkdir(to); // EEXIST: a file where the source has a directory
    return to;
  }
  const real = await realpath(to);
  copy.confinement.checkReal(real, 'write', shown);
  if (!(await stat(real)).isDirectory()) await mkdir(to); // EEXIST, as for a file
  if (isInside(real, copy.realSource)) throw invalidInput('fs/copy cannot copy a directory to itself or one of its descendants');
  return real;
}

async function readFileHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsReadFileParams, rawParams);
  const resolved = await confine(context, params.path, 'read');
  const limit = maxReadFileBytes(context.config.maxMessageBytes);
  const handle = await openRegularFile(resolved, params.path);
  try {
    const size = (await handle.stat()).size;
    if (size > limit) {
      throw invalidInput(`file is too large to read in one message: ${size} bytes, limit is ${limit} bytes; use fs/open and fs/readBlock`);
    }
    // Admitted by its size before the file is read (a file that grows meanwhile is capped above).
    await context.admitResponseBytes?.(base64ResponseBytes(size));
    const data = await handle.readFile();
    if (data.length > limit) {
      throw invalidInput(`file is too large to read in one message: limit is ${limit} bytes; use fs/open and fs/readBlock`);
    }
    return { dataBase64: data.toString('base64') };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function writeFileHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsWriteFileParams, rawParams);
  const decoded = base64Bytes.safeParse(params.dataBase64);
  if (!decoded.success) throw invalidInput('fs/writeFile requires valid base64 dataBase64: not valid base64');
  const resolved = await confine(context, params.path, 'write');
  await writeFileAtomic(resolved, decoded.data);
  return {};
}

async function createDirectoryHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsCreateDirectoryParams, rawParams);
  const resolved = await confine(context, params.path, 'write');
  if (params.recursive ?? true) await mkdir(resolved, { recursive: true });
  else await mkdir(resolved);
  return {};
}

async function getMetadataHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsGetMetadataParams, rawParams);
  const entry = await confine(context, params.path, 'read', false);
  const isSymlink = (await lstat(entry)).isSymbolicLink();
  const target = isSymlink ? await confine(context, params.path, 'read', true) : entry;
  const stats = await stat(target);
  const result: FsGetMetadataResult = {
    isDirectory: stats.isDirectory(),
    isFile: stats.isFile(),
    isSymlink,
    size: stats.size,
    createdAtMs: stats.birthtimeMs > 0 ? Math.floor(stats.birthtimeMs) : 0,
    modifiedAtMs: Math.floor(stats.mtimeMs),
  };
  return result;
}

async function readDirectoryHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsReadDirectoryParams, rawParams);
  const resolved = await confine(context, params.path, 'read');
  const confinement = confinementFor(context.config);
  const entries: FsDirectoryEntry[] = [];
  for (const dirent of sortByName(await readdir(resolved, { withFileTypes: true }))) {
    let isDirectory = dirent.isDirectory();
    let isFile = dirent.isFile();
    const known = isDirectory || isFile || dirent.isFIFO() || dirent.isSocket() || dirent.isCharacterDevice() || dirent.isBlockDevice();
    if (!known) {
      // A symlink (followed, as codex does) or an unknown type: ask. Dangling or vanished entries are left out.
      const child = path.join(resolved, dirent.name);
      try {
        if (confinement.enabled && !confinement.allowsReal(await realpath(child))) {
          entries.push({ fileName: dirent.name, isDirectory: false, isFile: false });
          continue;
        }
        const stats = await stat(child);
        isDirectory = stats.isDirectory();
        isFile = stats.isFile();
      } catch {
        continue;
      }
    }
    entries.push({ fileName: dirent.name, isDirectory, isFile });
  }
  return { entries };
}

async function removeHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsRemoveParams, rawParams);
  const resolved = await confine(context, params.path, 'write', false);
  const confinement = confinementFor(context.config);
  if (confinement.isRoot(resolved)) throw refusal(`${params.path} is a configured root and cannot be removed`, 'rootRemoval');
  let stats;
  try {
    stats = await lstat(resolved);
  } catch (error) {
    if (errorCode(error) === 'ENOENT' && (params.force ?? true)) return {};
    throw error;
  }
  if (stats.isDirectory()) {
    // `rm` does not follow symlinks, so the only other roots the tree can hold are nested ones.
    confinement.checkRemoval(resolved, params.path);
    if (params.recursive ?? true) await rm(resolved, { recursive: true, force: false });
    else await rmdir(resolved);
  } else {
    await unlink(resolved);
  }
  return {};
}

async function copyHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsCopyParams, rawParams);
  const source = await confine(context, params.sourcePath, 'read', false);
  const sourceStats = await lstat(source);
  if (sourceStats.isDirectory()) {
    if (!params.recursive) throw invalidInput('fs/copy requires recursive: true when sourcePath is a directory');
    const destination = await confine(context, params.destinationPath, 'write');
    const realSource = await realpath(source);
    const realDestination = await resolveExisting(destination);
    if (isInside(realDestination, realSource)) {
      throw invalidInput('fs/copy cannot copy a directory to itself or one of its descendants');
    }
    await mkdir(realDestination, { recursive: true });
    const confinement = confinementFor(context.config);
    await copyDirectoryRecursive(realSource, realDestination, params.destinationPath, { confinement, realSource });
    return {};
  }
  if (sourceStats.isSymbolicLink()) {
    await copySymlink(source, await confine(context, params.destinationPath, 'write', false));
    return {};
  }
  if (sourceStats.isFile()) {
    let destination = await confine(context, params.destinationPath, 'write');
    try {
      destination = await realpath(destination); // an existing link at the destination is written through
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
    await copyRegularFile(source, destination);
    return {};
  }
  throw invalidInput('fs/copy only supports regular files, directories, and symlinks');
}

async function walkHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsWalkParams, rawParams);
  return walkTree(params.path, params.options, { confinement: confinementFor(context.config), signal: context.detachSignal });
}

async function openHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsOpenParams, rawParams);
  const resolved = await confine(context, params.path, 'read');
  await context.session.fileHandles.open(params.handleId, resolved, params.path);
  return { handleId: params.handleId };
}

/**
 * `fs/readBlock`; on a connection that took `binaryFileBlocks` up, the result goes as one binary
 * message (the raw bytes; JSON only where the request's id cannot be carried).
 */
async function readBlockHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsReadBlockParams, rawParams);
  const binary = context.binaryFileBlocks === true;
  await context.admitResponseBytes?.(binary ? BINARY_READ_BLOCK_HEADER_BYTES + params.len : base64ResponseBytes(params.len));
  const { bytes, eof } = await context.session.fileHandles.read(params.handleId, params.offset, params.len);
  const json = () => ({ chunk: bytes.toString('base64'), eof });
  return binary ? new BinaryResponse((id) => encodeBinaryReadBlockResult(id, eof, bytes), json) : json();
}

async function closeHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsCloseParams, rawParams);
  // A write handle (extension) is discarded, its temporary file removed; otherwise a read handle is closed.
  if (!(await context.session.writeHandles.close(params.handleId))) await context.session.fileHandles.close(params.handleId);
  return {};
}

/** The `fs/*` family. Paths are confined to the agent's roots when it has any. */
export const fsHandlers: HandlerTable = {
  [FsMethod.ReadFile]: fsHandler(readFileHandler),
  [FsMethod.WriteFile]: fsHandler(writeFileHandler),
  [FsMethod.CreateDirectory]: fsHandler(createDirectoryHandler),
  [FsMethod.GetMetadata]: fsHandler(getMetadataHandler),
  [FsMethod.ReadDirectory]: fsHandler(readDirectoryHandler),
  [FsMethod.Remove]: fsHandler(removeHandler),
  [FsMethod.Copy]: fsHandler(copyHandler),
  [FsMethod.Walk]: fsHandler(walkHandler),
  [FsMethod.Open]: fsHandler(openHandler),
  [FsMethod.ReadBlock]: fsHandler(readBlockHandler),
  [FsMethod.Close]: fsHandler(closeHandler),
  ...Object.fromEntries(Object.entries(fileTransferHandlers).map(([method, handler]) => [method, fsHandler(handler)])),
};
