/**
 * The `fs/*` family's limits as plain constants (no schema library), so that the CLI's option
 * definitions can use them without loading the protocol's validators. src/protocol/fs.ts
 * re-exports them with the schemas.
 */

/** Bounds on fs requests. The walk caps and the block/handle bounds are the codex exec-server's. */
export const FS_LIMITS = {
  /** `fs/walk` options above these are refused (-32600). */
  maxWalkDepth: 64,
  maxWalkDirectories: 10_000,
  maxWalkEntries: 50_000,
  /** A walk stops (truncated) before its JSON-encoded result would pass this many bytes. */
  maxWalkResponseBytes: 4 * 1024 * 1024,
  /** `fs/readBlock` `len` must be 1..this (-32600 otherwise). */
  maxReadBlockBytes: 1024 * 1024,
  /** Open `fs/open` handles one session may hold at once (-32600 past it). */
  maxOpenFileHandles: 128,
  /** `fs/writeBlock` (extension, capability `fileTransfer`): decoded `chunk` bytes at most (-32600 past it). */
  maxWriteBlockBytes: 1024 * 1024,
  /** Open `fs/openWrite` handles (extension) one session may hold at once (-32600 past it). */
  maxOpenWriteHandles: 32,
} as const;

/** The walk options the client sends when the caller leaves them out: the agent's hard caps. */
export const DEFAULT_WALK_OPTIONS = {
  maxDepth: FS_LIMITS.maxWalkDepth,
  maxDirectories: FS_LIMITS.maxWalkDirectories,
  maxEntries: FS_LIMITS.maxWalkEntries,
  followDirectorySymlinks: false,
} as const;
