import { lstat, mkdir, stat, utimes, chmod } from 'node:fs/promises';
import path from 'node:path';
import type { ExecClient } from '../src/client/exec-client.js';
import { toRemoteUri, type FsClient } from '../src/client/fs-client.js';
import {
  downloadFile,
  FileTransferError,
  listLocalTree,
  listRemoteTree,
  uploadFile,
  uploadFileInOneMessage,
  type CopiedAttributes,
  type TreeEntry,
} from '../src/client/file-transfer.js';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { connectClient } from './client-connection.js';
import type { ConnectionOptions } from './connection-options.js';
import { copyProgress, type CopyProgress } from './cp-progress.js';
import { describeError, ExitStatus } from './exit-status.js';
import { parseRemoteOperand } from './remote-operands.js';

/** `execrelay cp`'s parsed flags. */
export interface CpCommandOptions extends ConnectionOptions {
  recursive: boolean;
  preserve: boolean;
}

/** One operand: a local path, or a path on the executor (`ENV:PATH`, or `:PATH` for the environment of the flags). */
interface Operand {
  shown: string;
  remote: boolean;
  environment?: string;
  path: string;
}

export function parseCpOperand(raw: string): Operand {
  if (raw.startsWith(':')) return { shown: raw, remote: true, path: raw.slice(1) };
  const { environment, path: operandPath } = parseRemoteOperand(raw);
  if (environment !== undefined) return { shown: raw, remote: true, environment, path: operandPath };
  return { shown: raw, remote: false, path: raw };
}

/** A refusal of the command line itself: exit 255 before connecting. */
class CpUsageError extends Error {}

/** A failure that concerns one path (the message names it): exit 1, the other sources go on. */
class CopyFailure extends Error {
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`${where}: ${reason}`);
  }
}

/** strerror wording for local errors (Node's `ENOENT: no such file or directory, stat '/x'` names the path twice). */
const LOCAL_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EEXIST: 'File exists',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ELOOP: 'Too many levels of symbolic links',
};

/** Whether `error` is about a file (the agent answered, or the local file system refused), not about execrelay itself. */
function isFileError(error: unknown): boolean {
  if (error instanceof CopyFailure || error instanceof RpcError || error instanceof FileTransferError) return true;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code in LOCAL_REASONS;
}

function reasonOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (!(error instanceof RpcError) && typeof code === 'string' && code in LOCAL_REASONS) return LOCAL_REASONS[code]!;
  return describeError(error);
}

/** Runs `operation`; a file error becomes a CopyFailure naming `where` (unless the agent's message names it already). */
async function at<T>(where: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof CopyFailure || !isFileError(error)) throw error;
    const reason = reasonOf(error);
    throw new CopyFailure(where, reason);
  }
}

/** Files of a tree copied at once (their round trips and the receiving side's flushes overlap). */
const TREE_FILES_IN_FLIGHT = 8;

/**
 * Runs `copy` on every item, at most `limit` at once, in order of start. After the first failure no
 * new one starts; the ones running finish, then that failure is thrown.
 */
async function eachConcurrently<T>(items: readonly T[], limit: number, copy: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await copy(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}

type Kind = 'directory' | 'file' | 'other' | 'missing';

async function localKind(localPath: string): Promise<Kind> {
  try {
    const stats = await stat(localPath);
    return stats.isDirectory() ? 'directory' : stats.isFile() ? 'file' : 'other';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
}

async function remoteKind(fs: FsClient, remotePath: string): Promise<Kind> {
  try {
    const metadata = await fs.getMetadata(remotePath);
    return metadata.isDirectory ? 'directory' : metadata.isFile ? 'file' : 'other';
  } catch (error) {
    if (error instanceof RpcError && error.code === ErrorCode.NotFound) return 'missing';
    throw error;
  }
}

/** How one side of the copy names and inspects its paths. */
interface Side {
  join(directory: string, name: string): string;
  dirname(target: string): string;
  kind(target: string): Promise<Kind>;
  /** The path as the user would write it (`laptop:/srv/x` on the executor). */
  shown(target: string): string;
}

/** Where one source lands: in DEST when DEST is a directory, else as DEST (whose directory must exist). */
async function targetFor(source: string, sourceIsDirectory: boolean, destination: string, destinationKind: Kind, side: Side): Promise<string> {
  const name = path.posix.basename(source.replace(/\/+$/, '')) || '.';
  if (destinationKind === 'directory') return side.join(destination, name);
  if (destinationKind === 'missing') {
    const parent = side.dirname(destination.replace(/\/+$/, '') || '/');
    const parentKind = await at(side.shown(parent), () => side.kind(parent));
    if (parentKind === 'missing') throw new CopyFailure(side.shown(destination), `the destination directory ${side.shown(parent)} does not exist`);
    if (parentKind !== 'directory') throw new CopyFailure(side.shown(parent), 'Not a directory');
    if (destination.endsWith('/') && !sourceIsDirectory) throw new CopyFailure(side.shown(destination), 'No such file or directory');
    return destination;
  }
  if (sourceIsDirectory) throw new CopyFailure(side.shown(destination), 'Not a directory (cannot copy a directory onto a file)');
  if (destinationKind !== 'file') throw new CopyFailure(side.shown(destination), 'not a regular file or directory');
  return destination;
}

interface Copier {
  fs: FsClient;
  client: ExecClient;
  options: CpCommandOptions;
  progress: CopyProgress;
  remote: Side;
  local: Side;
}

/** -p: directories get their attributes once their contents are in (writing into one changes its mtime), deepest first. */
interface DirectoryAttributes {
  target: string;
  attributes: CopiedAttributes;
}

function attributesOf(entry: { mode?: number; modifiedAtMs?: number }): CopiedAttributes {
  return { ...(entry.mode !== undefined ? { mode: entry.mode } : {}), ...(entry.modifiedAtMs !== undefined ? { modifiedAtMs: entry.modifiedAtMs } : {}) };
}

async function uploadOne(copier: Copier, localPath: string, remotePath: string, attributes: CopiedAttributes | undefined): Promise<void> {
  const { fs, client, progress } = copier;
  progress.file(localPath);
  const options = { onBytes: (bytes: number) => progress.advance(bytes), ...(attributes ? { attributes } : {}) };
  await at(copier.remote.shown(remotePath), async () => {
    if (client.supportsFileTransfer) await uploadFile(fs, localPath, remotePath, options);
    else await uploadFileInOneMessage(fs, localPath, remotePath, options);
  });
}

/** Local → executor, one source. */
async function upload(copier: Copier, source: Operand, destination: Operand, destinationKind: Kind): Promise<void> {
  const { fs, options, progress } = copier;
  const stats = await at(source.shown, () => stat(source.path));
  const isDirectory = stats.isDirectory();
  if (isDirectory && !options.recursive) throw new CopyFailure(source.shown, 'Is a directory (copy a tree with -r)');
  if (!isDirectory && !stats.isFile()) throw new CopyFailure(source.shown, 'not a regular file or directory');
  const target = await targetFor(source.path, isDirectory, destination.path, destinationKind, copier.remote);
  const own = options.preserve ? { mode: stats.mode & 0o777, modifiedAtMs: Math.round(stats.mtimeMs) } : undefined;
  if (!isDirectory) {
    progress.addTotal(stats.size);
    await uploadOne(copier, source.path, target, own);
    return;
  }
  const entries = await at(source.shown, () => listLocalTree(source.path));
  progress.addTotal(entries.reduce((sum, entry) => sum + (entry.kind === 'file' ? (entry.size ?? 0) : 0), 0));
  await at(copier.remote.shown(target), () => fs.createDirectory(target, { recursive: true }));
  const directories: DirectoryAttributes[] = own ? [{ target, attributes: own }] : [];
  // Directories first (listed before their contents), then the files, several at once.
  for (const entry of entries) {
    const from = path.join(source.path, entry.relative);
    const to = path.posix.join(target, entry.relative);
    if (entry.kind === 'directory') {
      await at(copier.remote.shown(to), () => fs.createDirectory(to, { recursive: false }).catch(async (error: unknown) => {
        // An existing directory is merged into.
        if ((await remoteKind(fs, to)) !== 'directory') throw error;
      }));
      if (options.preserve) directories.push({ target: to, attributes: attributesOf(entry) });
    } else if (entry.kind !== 'file') {
      skipped(copier, from, entry);
    }
  }
  await eachConcurrently(entries.filter((entry) => entry.kind === 'file'), TREE_FILES_IN_FLIGHT, (entry) =>
    uploadOne(copier, path.join(source.path, entry.relative), path.posix.join(target, entry.relative), options.preserve ? attributesOf(entry) : undefined),
  );
  await applyDirectoryAttributes(directories, (directory) =>
    at(copier.remote.shown(directory.target), async () => {
      if (copier.client.supportsFileTransfer) await fs.setAttributes(directory.target, directory.attributes);
    }),
  );
}

function skipped(copier: Copier, shown: string, entry: TreeEntry): void {
  copier.progress.log(`execrelay cp: skipped ${entry.kind === 'symlink' ? 'symbolic link' : 'special file'} ${shown} (only regular files and directories are copied)`);
}

async function applyDirectoryAttributes(directories: DirectoryAttributes[], apply: (directory: DirectoryAttributes) => Promise<void>): Promise<void> {
  for (const directory of directories.reverse()) await apply(directory);
}

/** The attributes `-p` gives a downloaded file: mode and mtime with the `fileTransfer` capability, else the mtime of `fs/getMetadata`. */
async function remoteAttributes(copier: Copier, remotePath: string, metadataMtime?: number): Promise<CopiedAttributes | undefined> {
  if (!copier.options.preserve) return undefined;
  if (copier.client.supportsFileTransfer) return copier.fs.getAttributes(remotePath);
  const modifiedAtMs = metadataMtime ?? (await copier.fs.getMetadata(remotePath)).modifiedAtMs;
  return { modifiedAtMs };
}

async function downloadOne(copier: Copier, remotePath: string, localPath: string, attributes: CopiedAttributes | undefined): Promise<void> {
  const { fs, progress } = copier;
  progress.file(copier.remote.shown(remotePath));
  await at(copier.remote.shown(remotePath), () => downloadFile(fs, remotePath, localPath, { onBytes: (bytes) => progress.advance(bytes), ...(attributes ? { attributes } : {}) }));
}

/** Executor → local, one source. */
async function download(copier: Copier, source: Operand, destination: Operand, destinationKind: Kind): Promise<void> {
  const { fs, options, progress } = copier;
  const shownSource = copier.remote.shown(source.path);
  const metadata = await at(shownSource, () => fs.getMetadata(source.path));
  if (metadata.isDirectory && !options.recursive) throw new CopyFailure(shownSource, 'Is a directory (copy a tree with -r)');
  if (!metadata.isDirectory && !metadata.isFile) throw new CopyFailure(shownSource, 'not a regular file or directory');
  const target = await targetFor(source.path, metadata.isDirectory, destination.path, destinationKind, copier.local);
  if (!metadata.isDirectory) {
    progress.addTotal(metadata.size);
    const attributes = await at(shownSource, () => remoteAttributes(copier, source.path, metadata.modifiedAtMs));
    await downloadOne(copier, source.path, target, attributes);
    return;
  }
  const entries = await at(shownSource, () => listRemoteTree(fs, source.path));
  await at(target, () => mkdir(target).catch(async (error: unknown) => {
    if ((await localKind(target)) !== 'directory') throw error;
  }));
  const directories: DirectoryAttributes[] = [];
  const rootAttributes = await at(shownSource, () => remoteAttributes(copier, source.path, metadata.modifiedAtMs));
  if (rootAttributes) directories.push({ target, attributes: rootAttributes });
  // Directories first (listed before their contents), then the files, several at once.
  for (const entry of entries) {
    if (entry.kind !== 'directory') continue;
    const from = path.posix.join(source.path, entry.relative);
    const to = path.join(target, entry.relative);
    await at(to, () => mkdir(to).catch(async (error: unknown) => {
      if ((await lstat(to)).isDirectory()) return;
      throw error;
    }));
    const attributes = await at(copier.remote.shown(from), () => remoteAttributes(copier, from));
    if (attributes) directories.push({ target: to, attributes });
  }
  await eachConcurrently(entries.filter((entry) => entry.kind === 'file'), TREE_FILES_IN_FLIGHT, async (entry) => {
    const from = path.posix.join(source.path, entry.relative);
    const attributes = await at(copier.remote.shown(from), () => remoteAttributes(copier, from));
    await downloadOne(copier, from, path.join(target, entry.relative), attributes);
  });
  await applyDirectoryAttributes(directories, (directory) =>
    at(directory.target, async () => {
      if (directory.attributes.mode !== undefined) await chmod(directory.target, directory.attributes.mode);
      if (directory.attributes.modifiedAtMs !== undefined) {
        const when = new Date(directory.attributes.modifiedAtMs);
        await utimes(directory.target, when, when);
      }
    }),
  );
}

/** Checks the operands: one side remote (one environment), the other local, remote paths absolute. */
function planOperands(raw: readonly string[]): { sources: Operand[]; destination: Operand } {
  if (raw.length < 2) throw new CpUsageError('give at least one SOURCE and a DESTINATION (ENV:PATH on the executor side)');
  const operands = raw.map(parseCpOperand);
  const destination = operands[operands.length - 1]!;
  const sources = operands.slice(0, -1);
  const remoteSources = sources.filter((operand) => operand.remote);
  if (destination.remote && remoteSources.length > 0) {
    throw new CpUsageError(`copying from one executor path to another is not supported (${remoteSources[0]!.shown} → ${destination.shown}): copy to a local directory first, or use exec -- cp on the executor`);
  }
  if (!destination.remote && remoteSources.length < sources.length) {
    const local = sources.find((operand) => !operand.remote)!;
    throw new CpUsageError(`${local.shown} and ${destination.shown} are both local: one side must be on the executor (ENV:PATH, or :PATH with --relay/--url)`);
  }
  const remote = destination.remote ? [destination] : sources;
  const environments = new Set(remote.map((operand) => operand.environment ?? ''));
  if (environments.size > 1) throw new CpUsageError(`the sources name different environments (${[...environments].map((name) => name || '(flags)').join(', ')}): copy from one at a time`);
  for (const operand of remote) {
    if (operand.path === '') throw new CpUsageError(`${operand.shown}: give a path after the colon`);
    try {
      toRemoteUri(operand.path);
    } catch (error) {
      throw new CpUsageError(`${operand.shown}: ${(error as Error).message}`);
    }
  }
  return { sources, destination };
}

/**
 * `execrelay cp [-r] [-p] SOURCE… DEST`: 0 when everything was copied, 1 when a file could not be
 * (each failure named on stderr; the other sources are still copied), 255 when execrelay itself
 * fails (usage, cannot connect, the connection lost).
 */
export async function runCp(raw: readonly string[], options: CpCommandOptions): Promise<number> {
  const say = (text: string): unknown => process.stderr.write(`execrelay cp: ${text}\n`);
  let plan: ReturnType<typeof planOperands>;
  try {
    plan = planOperands(raw);
  } catch (error) {
    say((error as Error).message);
    return ExitStatus.ExecrelayFailure;
  }
  const { sources, destination } = plan;
  const uploading = destination.remote;
  const environment = (uploading ? destination : sources[0]!).environment;
  const connected = await connectClient('cp', environment === undefined ? options : { ...options, environment });
  if (typeof connected === 'number') return connected;
  const { client } = connected;
  const remoteShown = (target: string): string => (environment === undefined ? `:${target}` : `${environment}:${target}`);
  const progress = copyProgress();
  const copier: Copier = {
    fs: client.fs,
    client,
    options,
    progress,
    remote: { join: path.posix.join, dirname: path.posix.dirname, kind: (target) => remoteKind(client.fs, target), shown: remoteShown },
    local: { join: path.join, dirname: path.dirname, kind: localKind, shown: (target) => target },
  };
  let status = 0;
  // Ctrl-C (or SIGTERM): the connection is closed, so every transfer fails now and removes its
  // temporary file (the agent discards its own with the session); then 128 + the signal, as a shell.
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted ??= signal;
    client.close();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (uploading && options.preserve && !client.supportsFileTransfer) {
      progress.log('execrelay cp: the executor does not offer file modes and times (capability fileTransfer): -p is ignored for uploads');
    }
    if (!uploading && options.preserve && !client.supportsFileTransfer) {
      progress.log('execrelay cp: the executor does not report file modes (capability fileTransfer): -p keeps modification times only');
    }
    const destinationKind = await at(destination.shown, () => (uploading ? copier.remote : copier.local).kind(destination.path));
    if (sources.length > 1 && destinationKind !== 'directory') {
      throw new CopyFailure(destination.shown, destinationKind === 'missing' ? 'No such file or directory (several sources need an existing directory)' : 'Not a directory (several sources need a directory)');
    }
    for (const source of sources) {
      try {
        if (uploading) await upload(copier, source, destination, destinationKind);
        else await download(copier, source, destination, destinationKind);
      } catch (error) {
        if (interrupted || !(error instanceof CopyFailure)) throw error;
        progress.log(`execrelay cp: ${error.message}`);
        status = 1;
      }
    }
    return status;
  } catch (error) {
    if (interrupted) {
      progress.log(`execrelay cp: interrupted (${interrupted})`);
      return 128 + (interrupted === 'SIGINT' ? 2 : 15);
    }
    if (error instanceof CopyFailure) {
      progress.log(`execrelay cp: ${error.message}`);
      return 1;
    }
    progress.log(`execrelay cp: ${describeError(error)}`);
    return ExitStatus.ExecrelayFailure;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress.stop();
    client.close();
  }
}
