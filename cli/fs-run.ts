import { open, type FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ExecClient } from '../src/client/exec-client.js';
import { FileTooLargeForPeerError, ONE_MESSAGE_WRITE_MAX_BYTES, TRANSFER_BLOCK_BYTES, uploadStream } from '../src/client/file-transfer.js';
import { toRemoteUri, type FsClient } from '../src/client/fs-client.js';
import { connectClient } from './client-connection.js';
import type { ConnectionOptions } from './connection-options.js';
import { describeError, ExitStatus } from './exit-status.js';
import { parseRemoteOperand } from './remote-operands.js';
import { tolerateClosedOutput, writeLocal } from './local-output.js';

/** `execrelay walk`'s parsed flags. */
export interface WalkCommandOptions extends ConnectionOptions {
  maxDepth: number;
  maxDirectories: number;
  maxEntries: number;
  followSymlinks: boolean;
  json: boolean;
}

/** Files up to this size are fetched with one `fs/readFile`; larger ones are streamed. */
export const CAT_INLINE_MAX_BYTES = 1024 * 1024;

/**
 * Connects (to the environment `ENV:PATH` names, if it does), runs `body` with the session's fs
 * client and the remote path, reports failures naming the path; returns the exit code: 1 when the
 * file operation fails, 255 for a relative path and when execrelay cannot connect.
 */
async function withFs(
  name: string,
  operand: string,
  connection: ConnectionOptions,
  body: (fs: FsClient, remotePath: string, client: ExecClient) => Promise<number>,
): Promise<number> {
  const { environment, path } = parseRemoteOperand(operand);
  try {
    toRemoteUri(path);
  } catch (error) {
    // A relative path is a usage error, told before connecting.
    process.stderr.write(`execrelay ${name}: ${(error as Error).message}\n`);
    return ExitStatus.ExecrelayFailure;
  }
  const connected = await connectClient(name, environment === undefined ? connection : { ...connection, environment });
  if (typeof connected === 'number') return connected;
  const { client } = connected;
  tolerateClosedOutput();
  try {
    return await body(client.fs, path, client);
  } catch (error) {
    const message = describeError(error);
    const where = shown(path);
    process.stderr.write(`execrelay ${name}: ${message.includes(where) ? message : `${where}: ${message}`}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** Native path for display; a URI that is not a local file URI is shown as is. */
function shown(uri: string): string {
  try {
    return fileURLToPath(uri);
  } catch {
    return uri;
  }
}

/** `execrelay walk ROOT`: one path per line (or JSON); 1 with per-path errors or when truncated. */
export function runWalk(root: string, options: WalkCommandOptions): Promise<number> {
  return withFs('walk', root, options, async (fs, remoteRoot) => {
    const result = await fs.walk(remoteRoot, {
      maxDepth: options.maxDepth,
      maxDirectories: options.maxDirectories,
      maxEntries: options.maxEntries,
      followDirectorySymlinks: options.followSymlinks,
    });
    if (options.json) {
      await writeLocal(process.stdout, `${JSON.stringify(result)}\n`);
    } else {
      let batch = '';
      for (const entry of result.entries) {
        batch += `${shown(entry.path)}${entry.kind === 'directory' ? '/' : ''}\n`;
        if (batch.length > 64 * 1024) {
          if (!(await writeLocal(process.stdout, batch))) return 1;
          batch = '';
        }
      }
      if (batch !== '' && !(await writeLocal(process.stdout, batch))) return 1;
    }
    for (const error of result.errors) process.stderr.write(`execrelay walk: ${shown(error.path)}: ${error.message}\n`);
    if (result.truncated) process.stderr.write('execrelay walk: truncated: a limit (directories, entries or response size) stopped the walk\n');
    return result.errors.length > 0 || result.truncated ? 1 : 0;
  });
}

/** `execrelay cat FILE`: the file's bytes on stdout (streamed past CAT_INLINE_MAX_BYTES). */
export function runCat(file: string, options: ConnectionOptions): Promise<number> {
  return withFs('cat', file, options, async (fs, remoteFile) => {
    const metadata = await fs.getMetadata(remoteFile);
    if (metadata.isDirectory) throw new Error('is a directory');
    if (metadata.size <= CAT_INLINE_MAX_BYTES) {
      return (await writeLocal(process.stdout, await fs.readFile(remoteFile))) ? 0 : 1;
    }
    for await (const chunk of fs.readStream(remoteFile)) {
      if (!(await writeLocal(process.stdout, chunk))) return 1;
    }
    return 0;
  });
}

/** `execrelay put LOCAL REMOTE`: the local file (or stdin) written atomically on the executor. */
export async function runPut(local: string, remote: string, options: ConnectionOptions): Promise<number> {
  // The local side is opened first: a missing or unreadable file is told before connecting.
  let file: FileHandle | null = null;
  if (local !== '-') {
    try {
      file = await open(local, 'r');
      if (!(await file.stat()).isFile()) throw new Error(`${local}: not a regular file`);
    } catch (error) {
      await file?.close();
      const message = (error as Error).message;
      process.stderr.write(`execrelay put: ${message.includes(local) ? message : `${local}: ${message}`}\n`);
      return 1;
    }
  }
  try {
    return await withFs('put', remote, options, async (fs, remotePath, client) => {
      const source = file ? file.createReadStream({ highWaterMark: TRANSFER_BLOCK_BYTES, autoClose: false }) : process.stdin;
      if (client.supportsFileTransfer) {
        // Streamed in blocks, committed atomically: no size cap.
        await uploadStream(fs, source, remotePath);
      } else {
        // A peer without streaming writes (codex): one fs/writeFile, bounded by the message cap.
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of source) {
          size += (chunk as Buffer).length;
          if (size > ONE_MESSAGE_WRITE_MAX_BYTES) throw new FileTooLargeForPeerError(size);
          chunks.push(chunk as Buffer);
        }
        await fs.writeFile(remotePath, Buffer.concat(chunks));
      }
      return 0;
    });
  } finally {
    await file?.close().catch(() => undefined);
  }
}
