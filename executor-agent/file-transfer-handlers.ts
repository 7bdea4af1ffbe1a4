import { chmod, stat, utimes } from 'node:fs/promises';
import { FsCommitWriteParams, FsGetAttributesParams, FsOpenWriteParams, FsSetAttributesParams, FsWriteBlockBytesParams, FsWriteBlockParams, type FsGetAttributesResult } from '../src/protocol/fs.js';
import { FsMethod } from '../src/protocol/methods.js';
import { base64Bytes, parseOrThrow } from '../src/protocol/validation.js';
import { invalidInput } from './fs-errors.js';
import type { HandlerContext, MethodHandler } from './handler-table.js';
import { confinementFor } from './root-confinement.js';

/**
 * The `fileTransfer` extension's handlers (offered at `initialize`): streaming atomic writes
 * (`fs/openWrite`, `fs/writeBlock`, `fs/commitWrite`; `fs/close` discards) and a path's permission
 * bits and mtime (`fs/getAttributes`, `fs/setAttributes`). Wrapped by fs-handlers.ts's OS-error
 * translation and listed in its table.
 */

async function openWriteHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsOpenWriteParams, rawParams);
  const resolved = await confinementFor(context.config).resolve(params.path, { access: 'write', follow: true });
  await context.session.writeHandles.open(params.handleId, resolved, params.path);
  return { handleId: params.handleId };
}

/**
 * `fs/writeBlock` from JSON (`chunk` in base64) or from a binary message (`binaryFileBlocks`: `chunk`
 * already bytes, a Buffer, which no JSON message can produce): one path to the write handle, with
 * the same checks and errors.
 */
async function writeBlockHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const { handleId, offset, bytes } = writeBlockOf(rawParams);
  await context.session.writeHandles.write(handleId, offset, bytes);
  return {};
}

function writeBlockOf(rawParams: unknown): { handleId: string; offset: number; bytes: Buffer } {
  if (rawParams !== null && typeof rawParams === 'object' && Buffer.isBuffer((rawParams as { chunk?: unknown }).chunk)) {
    const params = parseOrThrow(FsWriteBlockBytesParams, rawParams);
    return { handleId: params.handleId, offset: params.offset, bytes: params.chunk };
  }
  const params = parseOrThrow(FsWriteBlockParams, rawParams);
  const decoded = base64Bytes.safeParse(params.chunk);
  if (!decoded.success) throw invalidInput('fs/writeBlock requires valid base64 chunk: not valid base64');
  return { handleId: params.handleId, offset: params.offset, bytes: decoded.data };
}

async function commitWriteHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsCommitWriteParams, rawParams);
  await context.session.writeHandles.commit(params.handleId, { mode: params.mode, modifiedAtMs: params.modifiedAtMs });
  return {};
}

async function getAttributesHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsGetAttributesParams, rawParams);
  const resolved = await confinementFor(context.config).resolve(params.path, { access: 'read', follow: true });
  const stats = await stat(resolved);
  const result: FsGetAttributesResult = { mode: stats.mode & 0o777, modifiedAtMs: Math.max(0, Math.round(stats.mtimeMs)) };
  return result;
}

async function setAttributesHandler(rawParams: unknown, context: HandlerContext): Promise<unknown> {
  const params = parseOrThrow(FsSetAttributesParams, rawParams);
  const resolved = await confinementFor(context.config).resolve(params.path, { access: 'write', follow: true });
  if (params.mode !== undefined && params.mode !== null) await chmod(resolved, params.mode);
  if (params.modifiedAtMs !== undefined && params.modifiedAtMs !== null) {
    const stats = await stat(resolved);
    await utimes(resolved, stats.atime, new Date(params.modifiedAtMs));
  }
  return {};
}

/** The extension's handlers by method (each wrapped by the caller). */
export const fileTransferHandlers: Readonly<Record<string, MethodHandler>> = {
  [FsMethod.OpenWrite]: openWriteHandler,
  [FsMethod.WriteBlock]: writeBlockHandler,
  [FsMethod.CommitWrite]: commitWriteHandler,
  [FsMethod.GetAttributes]: getAttributesHandler,
  [FsMethod.SetAttributes]: setAttributesHandler,
};
