import type { Dirent } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { FS_LIMITS, type FsWalkEntry, type FsWalkError, type FsWalkOptions, type FsWalkResult } from '../src/protocol/fs.js';
import { invalidInput, osReason, toFsRpcError } from './fs-errors.js';
import type { RootConfinement } from './root-confinement.js';

export interface WalkHooks {
  /** Runs before each directory (its real path) is listed; tests use it to make one vanish. */
  beforeReadDirectory?: (realPath: string) => void | Promise<void>;
}

export interface WalkContext {
  confinement: RootConfinement;
  /** Stops the walk (the connection or session went away). */
  signal?: AbortSignal;
  hooks?: WalkHooks;
  /**
   * Directory listings requested ahead of the one being processed. Each is one request on the
   * libuv thread pool (4 threads by default), so a small number keeps room for other requests.
   */
  readAhead?: number;
}

export const DEFAULT_WALK_READ_AHEAD = 2;

/** The codex checks, messages and code (-32600) for walk limits. */
export function checkWalkLimits(options: FsWalkOptions): void {
  if (options.maxDirectories === 0 || options.maxEntries === 0) {
    throw invalidInput('filesystem walk limits must be greater than zero');
  }
  if (
    options.maxDepth > FS_LIMITS.maxWalkDepth ||
    options.maxDirectories > FS_LIMITS.maxWalkDirectories ||
    options.maxEntries > FS_LIMITS.maxWalkEntries
  ) {
    throw invalidInput(
      `filesystem walk limits exceed maximums: depth=${FS_LIMITS.maxWalkDepth}, directories=${FS_LIMITS.maxWalkDirectories}, entries=${FS_LIMITS.maxWalkEntries}`,
    );
  }
}

type Listing = { ok: true; dirents: Dirent[] } | { ok: false; error: unknown };

interface QueuedDirectory {
  /** Path as the caller sees it (under the walked path; through followed symlinks). */
  display: string;
  uri: string;
  /** Real path (no symlinks): what is listed, and the identity that ends cycles. */
  real: string;
  depth: number;
  listing?: Promise<Listing>;
}

/** Byte order of the UTF-8 names (as codex sorts Rust strings), not UTF-16 code-unit order. */
export function sortByName(dirents: Dirent[]): Dirent[] {
  let sorted = true;
  for (let i = 1; i < dirents.length && sorted; i++) {
    if (compareUtf8(dirents[i - 1]!.name, dirents[i]!.name) > 0) sorted = false;
  }
  if (sorted) return dirents;
  const keyed = dirents.map((dirent) => ({ dirent, key: Buffer.from(dirent.name, 'utf8') }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.dirent);
}

function compareUtf8(a: string, b: string): number {
  // UTF-16 order equals UTF-8 byte order unless a surrogate meets a code unit >= U+E000.
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const surrogateX = x >= 0xd800 && x <= 0xdfff;
    const surrogateY = y >= 0xd800 && y <= 0xdfff;
    if (surrogateX !== surrogateY) return surrogateX ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

const ENVELOPE_BYTES = Buffer.byteLength(JSON.stringify({ entries: [], errors: [], truncated: false }));

/**
 * ASCII characters that a path segment of a walk entry URI percent-encodes: controls, space, DEL,
 * the WHATWG path percent-encode set (`"#<>?\`{}`), `%` and `\`. This is exactly what codex
 * 0.169.0 encodes; Node's `pathToFileURL` also encodes `[]^|~` (same path, different string).
 */
const ENCODED_ASCII = new Set(['"', '#', '%', '<', '>', '?', '`', '{', '}', '\\'].map((c) => c.charCodeAt(0)));
const ASCII_SEGMENT_ENCODING: readonly string[] = Array.from({ length: 128 }, (_, code) =>
  code <= 0x20 || code === 0x7f || ENCODED_ASCII.has(code)
    ? `%${code.toString(16).toUpperCase().padStart(2, '0')}`
    : String.fromCharCode(code),
);

/**
 * One file name as it appears in a walk entry's `file://` URI (as codex writes it), built without
 * a URL object per entry (the walk's hot path). `fileURLToPath` turns it back into the name.
 */
export function encodeUriSegment(name: string): string {
  let out = '';
  let plainFrom = 0;
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code < 128) {
      const encoded = ASCII_SEGMENT_ENCODING[code]!;
      if (encoded.length === 1) continue;
      out += name.slice(plainFrom, i) + encoded;
      plainFrom = i + 1;
      continue;
    }
    // Non-ASCII: UTF-8 bytes, percent-encoded (a whole surrogate pair at once).
    const end = code >= 0xd800 && code <= 0xdbff && i + 1 < name.length ? i + 2 : i + 1;
    let encoded: string;
    try {
      encoded = encodeURIComponent(name.slice(i, end));
    } catch {
      encoded = '%EF%BF%BD'; // a lone surrogate cannot be in a name read from disk; U+FFFD as UTF-8
    }
    out += name.slice(plainFrom, i) + encoded;
    plainFrom = end;
    i = end - 1;
  }
  return plainFrom === 0 ? name : out + name.slice(plainFrom);
}

/** JSON size of `{"path":"<uri>","kind":"<kind>"}` plus a separator: URIs need no JSON escaping. */
function entryBytes(uri: string, kind: string): number {
  return 22 + uri.length + kind.length;
}

/** The `file://` URI of an absolute native path, segments encoded as in walk entries. */
export function walkFileUri(nativePath: string): string {
  return `file://${nativePath.split('/').map(encodeUriSegment).join('/')}`;
}

/** `base` + `/` + `name` for a normalized absolute `base` (which is `/` only for the root). */
function childPath(base: string, name: string): string {
  return base.endsWith('/') ? base + name : `${base}/${name}`;
}

/**
 * `fs/walk`: breadth-first from `rootPath` (not listed itself), each directory's entries sorted by
 * name. Only regular files and directories are listed; symlinks are skipped unless
 * `followDirectorySymlinks` and the target is a directory, and a directory is descended into once
 * per real path, so cycles end. `maxDepth` bounds how deep it goes (0: the root's children only).
 * The directory, entry and response-size caps stop it with `truncated`. A directory that cannot be
 * listed (unreadable, vanished) becomes an `errors` item and the walk goes on.
 *
 * Semantics follow codex 0.169.0: `maxEntries` bounds the directory entries examined (skipped
 * symlinks and special files count, dangling symlinks do not); reaching `maxDirectories` stops
 * queueing directories but lists those already queued; `maxDepth` is the caller's scope, not a
 * cap, so stopping there does not set `truncated`.
 */
export async function walkTree(rootPath: string, options: FsWalkOptions, context: WalkContext): Promise<FsWalkResult> {
  checkWalkLimits(options);
  const { confinement } = context;
  const entries: FsWalkEntry[] = [];
  const errors: FsWalkError[] = [];
  const result: FsWalkResult = { entries, errors, truncated: false };

  let resolvedRoot: string;
  let rootIsDirectory: boolean;
  let rootIsSymlink: boolean;
  let realRoot: string;
  try {
    resolvedRoot = await confinement.resolve(rootPath, { access: 'read', follow: true });
    rootIsDirectory = (await stat(resolvedRoot)).isDirectory();
    rootIsSymlink = (await lstat(rootPath)).isSymbolicLink();
    if (!rootIsDirectory || (rootIsSymlink && !options.followDirectorySymlinks)) return result;
    realRoot = await realpath(resolvedRoot);
  } catch (error) {
    throw toFsRpcError(error);
  }

  const readAhead = Math.max(0, context.readAhead ?? DEFAULT_WALK_READ_AHEAD);
  const queue: Array<QueuedDirectory | undefined> = [{ display: rootPath, uri: walkFileUri(rootPath), real: realRoot, depth: 0 }];
  let head = 0;
  const visited = new Set<string>([realRoot]);
  let directoryCount = 1;
  let entryCount = 0;
  let responseBytes = ENVELOPE_BYTES;

  const startListing = (dir: QueuedDirectory): void => {
    dir.listing ??= (async (): Promise<Listing> => {
      try {
        await context.hooks?.beforeReadDirectory?.(dir.real);
        return { ok: true, dirents: await readdir(dir.real, { withFileTypes: true }) };
      } catch (error) {
        return { ok: false, error };
      }
    })();
  };
  /** Charges `bytes` to the response budget; false (and truncated) when they would not fit. */
  const reserve = (bytes: number): boolean => {
    if (responseBytes + bytes > FS_LIMITS.maxWalkResponseBytes) {
      result.truncated = true;
      return false;
    }
    responseBytes += bytes;
    return true;
  };
  const pushError = (uri: string, message: string): boolean => {
    const item = { path: uri, message };
    if (!reserve(Buffer.byteLength(JSON.stringify(item)) + 1)) return false;
    errors.push(item);
    return true;
  };
  /** Counts one examined entry; false (and truncated) when the entry cap is already reached. */
  const countEntry = (): boolean => {
    if (entryCount === options.maxEntries) {
      result.truncated = true;
      return false;
    }
    entryCount++;
    return true;
  };

  while (head < queue.length) {
    if (context.signal?.aborted) {
      throw new RpcError(ErrorCode.InvalidRequest, `walk aborted: ${String(context.signal.reason ?? 'session detached')}`);
    }
    const dir = queue[head]!;
    queue[head] = undefined;
    head++;
    startListing(dir);
    for (let i = head; i < Math.min(queue.length, head + readAhead); i++) startListing(queue[i]!);
    const listing = await dir.listing!;
    if (!listing.ok) {
      if (!pushError(dir.uri, osReason(listing.error))) return result;
      continue;
    }

    for (const dirent of sortByName(listing.dirents)) {
      const name = dirent.name;
      const childReal = childPath(dir.real, name);
      const childDisplay = childPath(dir.display, name);
      let kind: 'directory' | 'file' | 'symlink' | 'other';
      if (dirent.isDirectory()) kind = 'directory';
      else if (dirent.isFile()) kind = 'file';
      else if (dirent.isSymbolicLink()) kind = 'symlink';
      else if (dirent.isFIFO() || dirent.isSocket() || dirent.isCharacterDevice() || dirent.isBlockDevice()) kind = 'other';
      else {
        // The file system did not say (DT_UNKNOWN): ask. An entry gone by now is an error item.
        try {
          const stats = await lstat(childReal);
          kind = stats.isDirectory() ? 'directory' : stats.isFile() ? 'file' : stats.isSymbolicLink() ? 'symlink' : 'other';
        } catch (error) {
          if (!countEntry() || !pushError(childPath(dir.uri, encodeUriSegment(name)), osReason(error))) return result;
          continue;
        }
      }

      let identity = childReal;
      if (kind === 'symlink') {
        let targetIsDirectory: boolean;
        try {
          targetIsDirectory = (await stat(childReal)).isDirectory();
        } catch {
          continue; // dangling (or a loop): left out and not counted, as codex's listing does
        }
        if (!countEntry()) return result;
        if (!options.followDirectorySymlinks || !targetIsDirectory) continue;
        try {
          identity = await realpath(childReal);
        } catch (error) {
          if (!pushError(childPath(dir.uri, encodeUriSegment(name)), osReason(error))) return result;
          continue;
        }
        if (!confinement.allowsReal(identity)) {
          if (!pushError(childPath(dir.uri, encodeUriSegment(name)), 'not followed: the symbolic link leads outside the configured roots')) return result;
          continue;
        }
        kind = 'directory';
      } else if (!countEntry()) {
        return result;
      }
      if (kind === 'other') continue;

      const entry: FsWalkEntry = { path: childPath(dir.uri, encodeUriSegment(name)), kind };
      if (!reserve(entryBytes(entry.path, kind))) return result;
      entries.push(entry);
      if (kind !== 'directory' || dir.depth >= options.maxDepth || visited.has(identity)) continue;
      visited.add(identity);
      if (directoryCount === options.maxDirectories) {
        result.truncated = true;
        continue;
      }
      directoryCount++;
      queue.push({ display: childDisplay, uri: entry.path, real: identity, depth: dir.depth + 1 });
    }
  }
  return result;
}
