import { z } from 'zod';
import { callerId, fileUri, nonNegativeInt } from './validation.js';
import { FS_LIMITS } from './fs-limits.js';

/**
 * The `fs/*` method family: params/result schemas (names in methods.ts, limits in fs-limits.ts).
 * Defined here and nowhere else. Shapes follow the codex exec-server 0.169.0 wire (see docs/fs.md for the differences).
 */

export { FS_LIMITS };

/**
 * The codex `sandbox` member each fs request may carry. execrelay accepts it and ignores it: the
 * agent's own confinement (`--root`) is what applies.
 */
const sandbox = z.unknown().optional();

export const FsReadFileParams = z.object({ path: fileUri, sandbox });
export type FsReadFileParams = z.output<typeof FsReadFileParams>;
export const FsReadFileResult = z.object({ dataBase64: z.string() });
export type FsReadFileResult = z.output<typeof FsReadFileResult>;

/**
 * `dataBase64` is checked by the handler, not here: as in codex, bad base64 is -32600
 * (`fs/writeFile requires valid base64 dataBase64: ...`), not -32602.
 */
export const FsWriteFileParams = z.object({ path: fileUri, dataBase64: z.string(), sandbox });
export type FsWriteFileParams = z.output<typeof FsWriteFileParams>;

/** `recursive` defaults to true (codex: an omitted `recursive` behaves like `mkdir -p`). */
export const FsCreateDirectoryParams = z.object({ path: fileUri, recursive: z.boolean().nullish(), sandbox });
export type FsCreateDirectoryParams = z.output<typeof FsCreateDirectoryParams>;

export const FsGetMetadataParams = z.object({ path: fileUri, sandbox });
export type FsGetMetadataParams = z.output<typeof FsGetMetadataParams>;
/** Follows a final symlink for everything but `isSymlink`. Times are ms since the epoch, 0 when unknown. */
export const FsGetMetadataResult = z.object({
  isDirectory: z.boolean(),
  isFile: z.boolean(),
  isSymlink: z.boolean(),
  size: nonNegativeInt,
  createdAtMs: z.number().int(),
  modifiedAtMs: z.number().int(),
});
export type FsGetMetadataResult = z.output<typeof FsGetMetadataResult>;

export const FsReadDirectoryParams = z.object({ path: fileUri, sandbox });
export type FsReadDirectoryParams = z.output<typeof FsReadDirectoryParams>;
export const FsDirectoryEntry = z.object({ fileName: z.string(), isDirectory: z.boolean(), isFile: z.boolean() });
export type FsDirectoryEntry = z.output<typeof FsDirectoryEntry>;
/** Entries in the order the OS lists them (as codex); symlinks are followed, dangling ones left out. */
export const FsReadDirectoryResult = z.object({ entries: z.array(FsDirectoryEntry) });
export type FsReadDirectoryResult = z.output<typeof FsReadDirectoryResult>;

/** Both default to true (codex). A symlink is removed itself, never its target. */
export const FsRemoveParams = z.object({
  path: fileUri,
  recursive: z.boolean().nullish(),
  force: z.boolean().nullish(),
  sandbox,
});
export type FsRemoveParams = z.output<typeof FsRemoveParams>;

/** `recursive` is required (codex); a directory source needs `recursive: true`. */
export const FsCopyParams = z.object({
  sourcePath: fileUri,
  destinationPath: fileUri,
  recursive: z.boolean(),
  sandbox,
});
export type FsCopyParams = z.output<typeof FsCopyParams>;

/** Walk limits. Zero directories/entries or any value over `FS_LIMITS` is -32600 (checked by the agent). */
export const FsWalkOptions = z.object({
  maxDepth: nonNegativeInt,
  maxDirectories: nonNegativeInt,
  maxEntries: nonNegativeInt,
  followDirectorySymlinks: z.boolean().default(false),
});
export type FsWalkOptions = z.output<typeof FsWalkOptions>;
export type FsWalkOptionsInput = z.input<typeof FsWalkOptions>;

export const FsWalkParams = z.object({ path: fileUri, options: FsWalkOptions, sandbox });
export type FsWalkParams = z.output<typeof FsWalkParams>;

export const FsWalkEntryKind = z.enum(['directory', 'file']);
export type FsWalkEntryKind = z.output<typeof FsWalkEntryKind>;
/** `path` is an absolute `file://` URI under the walked path (as codex). */
export const FsWalkEntry = z.object({ path: z.string(), kind: FsWalkEntryKind });
export type FsWalkEntry = z.output<typeof FsWalkEntry>;
export const FsWalkError = z.object({ path: z.string(), message: z.string() });
export type FsWalkError = z.output<typeof FsWalkError>;
export const FsWalkResult = z.object({
  entries: z.array(FsWalkEntry),
  errors: z.array(FsWalkError),
  truncated: z.boolean(),
});
export type FsWalkResult = z.output<typeof FsWalkResult>;

export const FsOpenParams = z.object({ handleId: callerId, path: fileUri, sandbox });
export type FsOpenParams = z.output<typeof FsOpenParams>;
export const FsOpenResult = z.object({ handleId: z.string() });
export type FsOpenResult = z.output<typeof FsOpenResult>;

/** `len` out of 1..`FS_LIMITS.maxReadBlockBytes` is -32600 (checked by the agent, as codex). */
export const FsReadBlockParams = z.object({ handleId: callerId, offset: nonNegativeInt, len: nonNegativeInt });
export type FsReadBlockParams = z.output<typeof FsReadBlockParams>;
/** `eof` is set when fewer than `len` bytes were read (so a read ending exactly at the end says false). */
export const FsReadBlockResult = z.object({ chunk: z.string(), eof: z.boolean() });
export type FsReadBlockResult = z.output<typeof FsReadBlockResult>;

/** Closing an unknown (or already closed) handle succeeds. */
export const FsCloseParams = z.object({ handleId: callerId });
export type FsCloseParams = z.output<typeof FsCloseParams>;

/** Every fs method without a payload answers `{}`. */
export const FsEmptyResult = z.object({});

/** Permission bits a transfer carries (`fs/commitWrite`, `fs/setAttributes`): never setuid, setgid or sticky. */
const permissionBits = z.number().int().min(0).max(0o777);
/** A modification time in whole ms since the epoch (as `modifiedAtMs` of `fs/getMetadata`). */
const timeMs = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * `fs/openWrite` (extension, capability `fileTransfer`): starts an atomic write of `path`. The agent
 * creates a temporary file beside the target (the target's real directory) and writes nothing under
 * the final name until `fs/commitWrite`; `fs/close` (or the session's end) discards it.
 */
export const FsOpenWriteParams = z.object({ handleId: callerId, path: fileUri });
export type FsOpenWriteParams = z.output<typeof FsOpenWriteParams>;
export const FsOpenWriteResult = z.object({ handleId: z.string() });
export type FsOpenWriteResult = z.output<typeof FsOpenWriteResult>;

/** `chunk` is base64 of at most `FS_LIMITS.maxWriteBlockBytes` bytes, written at `offset` (-32600 otherwise). */
export const FsWriteBlockParams = z.object({ handleId: callerId, offset: nonNegativeInt, chunk: z.string() });
export type FsWriteBlockParams = z.output<typeof FsWriteBlockParams>;
/**
 * `fs/writeBlock` as the agent gets it from a binary message (`binaryFileBlocks`,
 * `src/protocol/binary-message.ts`): the same params with `chunk` as raw bytes (which no JSON can be).
 */
export const FsWriteBlockBytesParams = FsWriteBlockParams.extend({ chunk: z.instanceof(Buffer) });
export type FsWriteBlockBytesParams = z.output<typeof FsWriteBlockBytesParams>;

/**
 * Flushes the temporary file, gives it `mode` (else an existing target's permission bits, else the
 * agent's default) and `modifiedAtMs` when given, and renames it over the target. The handle is gone.
 */
export const FsCommitWriteParams = z.object({ handleId: callerId, mode: permissionBits.nullish(), modifiedAtMs: timeMs.nullish() });
export type FsCommitWriteParams = z.output<typeof FsCommitWriteParams>;

/** A file's or directory's permission bits and modification time (a final symlink is followed). */
export const FsGetAttributesParams = z.object({ path: fileUri });
export type FsGetAttributesParams = z.output<typeof FsGetAttributesParams>;
export const FsGetAttributesResult = z.object({ mode: permissionBits, modifiedAtMs: timeMs });
export type FsGetAttributesResult = z.output<typeof FsGetAttributesResult>;

/** Sets what is given of the permission bits and the modification time (a final symlink is followed). */
export const FsSetAttributesParams = z.object({ path: fileUri, mode: permissionBits.nullish(), modifiedAtMs: timeMs.nullish() });
export type FsSetAttributesParams = z.output<typeof FsSetAttributesParams>;
