import { realpathSync, statSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { errorCode } from './fs-errors.js';

/** `ro`: reads only. `rw`: reads and writes. */
export type RootAccess = 'ro' | 'rw';

/** One `--root PATH[:ro|:rw]` as configured. */
export interface RootSpec {
  path: string;
  access: RootAccess;
}

/** A configured root with its real path (symlinks resolved) fixed at startup. */
export interface ResolvedRoot {
  readonly given: string;
  readonly real: string;
  readonly access: RootAccess;
}

/** What an operation does with a path. */
export type PathAccess = 'read' | 'write';

export interface ResolveOptions {
  access: PathAccess;
  /**
   * Resolve a final symlink too (reading or writing through it). False for operations on the
   * entry itself (remove, copying a symlink): then only the parent directory is resolved.
   */
  follow: boolean;
}

/** Why a path was refused, in the error's `data.confinement`. */
export type ConfinementRefusal = 'outsideRoots' | 'readOnlyRoot' | 'rootRemoval';

/** Parses `PATH`, `PATH:ro` or `PATH:rw` (default `rw`). PATH must be absolute. */
export function parseRootSpec(value: string): RootSpec {
  const match = /^(.*):(ro|rw)$/.exec(value);
  const rootPath = match ? match[1]! : value;
  const access: RootAccess = match ? (match[2] as RootAccess) : 'rw';
  if (rootPath === '' || !path.isAbsolute(rootPath)) {
    throw new Error(`invalid root "${value}": expected an absolute PATH, PATH:ro or PATH:rw`);
  }
  return { path: path.resolve(rootPath), access };
}

/** True when `child` is `parent` or lies under it (both absolute and normalized). */
export function isInside(child: string, parent: string): boolean {
  if (child === parent) return true;
  const prefix = parent.endsWith(path.sep) ? parent : parent + path.sep;
  return child.startsWith(prefix);
}

export function refusal(message: string, reason: ConfinementRefusal): RpcError {
  return new RpcError(ErrorCode.Internal, `permission denied: ${message}`, { confinement: reason });
}

/**
 * Confines fs paths and process working directories to the configured roots. With no roots it
 * allows everything the agent's user can reach and resolves nothing.
 *
 * A path is allowed when it lies (as written) under a root and, after resolving every symlink in
 * it, still lies under a root; writes need that root to be `rw` (the most specific root decides).
 * Callers must operate on the resolved path this returns, never on the path as given, so a
 * symlink is not followed again after the check. Operations that walk a tree (recursive copy,
 * recursive remove) check each entry they touch with `checkReal` / `checkRemoval`. What is not
 * covered: another local process swapping a directory for a symlink between the check and the
 * operation.
 */
export class RootConfinement {
  readonly roots: readonly ResolvedRoot[];

  constructor(specs: readonly RootSpec[]) {
    this.roots = specs.map((spec) => {
      let real: string;
      try {
        real = realpathSync(spec.path);
      } catch (error) {
        throw new Error(`root ${spec.path} cannot be used: ${(error as Error).message}`);
      }
      if (!statSync(real).isDirectory()) throw new Error(`root ${spec.path} is not a directory`);
      return { given: spec.path, real, access: spec.access };
    });
  }

  get enabled(): boolean {
    return this.roots.length > 0;
  }

  /** One line for the startup log. */
  describe(): string {
    if (!this.enabled) return 'no --root configured: fs methods and process cwd reach the whole filesystem this user can';
    return `fs methods and process cwd confined to ${this.roots.map((r) => `${r.given}${r.real === r.given ? '' : ` (${r.real})`} [${r.access}]`).join(', ')}`;
  }

  /** The most specific root whose real path contains `realPath`, if any. */
  rootOfReal(realPath: string): ResolvedRoot | undefined {
    let best: ResolvedRoot | undefined;
    for (const root of this.roots) {
      if (isInside(realPath, root.real) && (!best || root.real.length > best.real.length)) best = root;
    }
    return best;
  }

  /** True when `realPath` (already free of symlinks) may be read. Always true without roots. */
  allowsReal(realPath: string): boolean {
    return !this.enabled || this.rootOfReal(realPath) !== undefined;
  }

  /** True when `realPath` is one of the roots itself. */
  isRoot(realPath: string): boolean {
    return this.roots.some((root) => root.real === realPath);
  }

  /**
   * Checks `nativePath` (absolute, normalized) and returns the path to operate on: the real path
   * when roots are configured (symlinks resolved as `follow` says), `nativePath` unchanged
   * otherwise. Throws an RpcError (-32603, `permission denied: ...`) for an escape.
   */
  async resolve(nativePath: string, options: ResolveOptions): Promise<string> {
    if (!this.enabled) return nativePath;
    const lexical = this.roots.some((root) => isInside(nativePath, root.given) || isInside(nativePath, root.real));
    if (!lexical) throw refusal(`${nativePath} is outside the configured roots`, 'outsideRoots');
    const real = await this.realPathOf(nativePath, options.follow);
    this.checkReal(real, options.access, nativePath);
    return real;
  }

  /**
   * Checks a path already free of symlinks (`realPath`) for `access`: it must lie under a root,
   * and a write needs the most specific root containing it to be `rw`. `shown` is the path the
   * refusal names (the one the client knows). Does nothing without roots.
   */
  checkReal(realPath: string, access: PathAccess, shown: string = realPath): void {
    if (!this.enabled) return;
    const root = this.rootOfReal(realPath);
    if (!root) throw refusal(`${shown} resolves to a location outside the configured roots`, 'outsideRoots');
    if (access === 'write' && root.access !== 'rw') {
      throw refusal(`${shown} is in a read-only root (${root.given})`, 'readOnlyRoot');
    }
  }

  /**
   * Refuses removing the tree at `realPath` (free of symlinks) when a configured root lies inside
   * it: removing the tree would remove that root, and a read-only root's files with it.
   */
  checkRemoval(realPath: string, shown: string): void {
    for (const root of this.roots) {
      if (root.real === realPath) throw refusal(`${shown} is a configured root and cannot be removed`, 'rootRemoval');
      if (!isInside(root.real, realPath)) continue;
      if (root.access !== 'rw') throw refusal(`${shown} contains the read-only root ${root.given}`, 'readOnlyRoot');
      throw refusal(`${shown} contains the configured root ${root.given}, which cannot be removed`, 'rootRemoval');
    }
  }

  private async realPathOf(nativePath: string, follow: boolean): Promise<string> {
    if (follow) return resolveExisting(nativePath);
    const root = this.roots.find((r) => r.given === nativePath || r.real === nativePath);
    if (root) return root.real;
    return path.join(await resolveExisting(path.dirname(nativePath)), path.basename(nativePath));
  }
}

/**
 * The real path of `nativePath`: its longest existing prefix with every symlink resolved, plus
 * the components that do not exist yet. A dangling symlink in the middle of the path is refused
 * as not found (it would lead wherever it points once something creates its target).
 */
export async function resolveExisting(nativePath: string): Promise<string> {
  const missing: string[] = [];
  let current = nativePath;
  for (;;) {
    try {
      const real = await realpath(current);
      return missing.length === 0 ? real : path.join(real, ...missing.reverse());
    } catch (error) {
      const code = errorCode(error);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
      if (code === 'ENOENT' && missing.length > 0 && (await isSymlink(current))) throw error;
      const parent = path.dirname(current);
      if (parent === current) throw error;
      missing.push(path.basename(current));
      current = parent;
    }
  }
}

async function isSymlink(nativePath: string): Promise<boolean> {
  try {
    return (await lstat(nativePath)).isSymbolicLink();
  } catch {
    return false;
  }
}

const confinements = new WeakMap<object, RootConfinement>();

/**
 * The confinement for an agent configuration (built once per configuration object, so handlers
 * that only see the configuration share it).
 */
export function confinementFor(config: { readonly roots: readonly RootSpec[] }): RootConfinement {
  let confinement = confinements.get(config);
  if (!confinement) {
    confinement = new RootConfinement(config.roots);
    confinements.set(config, confinement);
  }
  return confinement;
}
