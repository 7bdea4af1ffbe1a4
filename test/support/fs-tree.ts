/**
 * A generated directory tree for the fs/walk tests and benchmark, described by an in-memory model
 * so the expected walk can be computed without reading the disk.
 *
 * Shape (default ~20,100 files): `bulk/` with 100 groups of 200 files (names with spaces, accents,
 * CJK and an emoji, so sorting by UTF-8 bytes matters), a `deep/` chain nested 12 levels with a
 * few files at each level, a symlink loop (`deep/l01/loop -> ..`), a link to the root (`self ->
 * .`), a dangling link, a link to a file, a link to a directory not yet visited when it is met
 * (`bulk-link -> bulk/g000`), a FIFO, and `locked/`, a directory with mode 000.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export type TreeNode =
  | { kind: 'dir'; children: Map<string, TreeNode>; unreadable?: boolean }
  | { kind: 'file'; content: string }
  /** `resolves`: the real path (relative to the tree root) the link leads to, or null when dangling. */
  | { kind: 'link'; target: string; resolves: string | null }
  | { kind: 'fifo' };

export type DirNode = Extract<TreeNode, { kind: 'dir' }>;

export interface TreeOptions {
  groups?: number;
  filesPerGroup?: number;
  depth?: number;
  /** Leave out the mode-000 directory (for walkers that run as root and would read it anyway). */
  withLocked?: boolean;
  /** Leave out the FIFO (`find` and codex handle it; some tools do not). */
  withFifo?: boolean;
}

const NAME_STYLES = [
  (i: number) => `file ${String(i).padStart(3, '0')}.txt`,
  (i: number) => `fïlé-ü ${String(i).padStart(3, '0')}.dat`,
  (i: number) => `名前-${String(i).padStart(3, '0')}`,
  (i: number) => `Ｚwide-${String(i).padStart(3, '0')}`, // U+FF3A: above the surrogates in UTF-16
  (i: number) => `📁emoji-${String(i).padStart(3, '0')}`, // astral: a surrogate pair in UTF-16
];

function dir(): DirNode {
  return { kind: 'dir', children: new Map() };
}

/** The model of the default tree. */
export function treeModel(options: TreeOptions = {}): DirNode {
  const groups = options.groups ?? 100;
  const filesPerGroup = options.filesPerGroup ?? 200;
  const depth = options.depth ?? 12;
  const root = dir();
  const bulk = dir();
  root.children.set('bulk', bulk);
  for (let g = 0; g < groups; g++) {
    const group = dir();
    bulk.children.set(`g${String(g).padStart(3, '0')}`, group);
    for (let f = 0; f < filesPerGroup; f++) {
      group.children.set(NAME_STYLES[f % NAME_STYLES.length]!(f), { kind: 'file', content: `${g}/${f}\n` });
    }
  }
  let level = dir();
  root.children.set('deep', level);
  let levelPath = 'deep';
  for (let d = 1; d <= depth; d++) {
    const next = dir();
    const name = `l${String(d).padStart(2, '0')}`;
    level.children.set(name, next);
    levelPath = `${levelPath}/${name}`;
    for (let f = 0; f < 3; f++) next.children.set(`leaf ${f}.txt`, { kind: 'file', content: `${levelPath}/${f}\n` });
    level = next;
  }
  const l01 = (root.children.get('deep') as DirNode).children.get('l01') as DirNode;
  l01.children.set('loop', { kind: 'link', target: '..', resolves: 'deep' });
  root.children.set('self', { kind: 'link', target: '.', resolves: '' });
  root.children.set('dangling', { kind: 'link', target: 'does-not-exist', resolves: null });
  root.children.set('readme link', { kind: 'link', target: 'name with spaces.txt', resolves: 'name with spaces.txt' });
  root.children.set('name with spaces.txt', { kind: 'file', content: 'spaces\n' });
  root.children.set('ünïcödé', dir());
  (root.children.get('ünïcödé') as DirNode).children.set('ß.txt', { kind: 'file', content: 'sharp s\n' });
  if (groups > 0) root.children.set('bulk-link', { kind: 'link', target: 'bulk/g000', resolves: 'bulk/g000' });
  if (options.withFifo ?? true) root.children.set('pipe', { kind: 'fifo' });
  if (options.withLocked ?? true) {
    const locked = dir();
    locked.unreadable = true;
    locked.children.set('secret.txt', { kind: 'file', content: 'secret\n' });
    root.children.set('locked', locked);
  }
  return root;
}

/** Counts the regular files in a model. */
export function countFiles(node: TreeNode): number {
  if (node.kind === 'file') return 1;
  if (node.kind !== 'dir') return 0;
  let total = 0;
  for (const child of node.children.values()) total += countFiles(child);
  return total;
}

/** Creates the model under `root` (an existing, empty directory). Unreadable directories get mode 000 last. */
export async function buildTree(root: string, model: DirNode): Promise<void> {
  const locked: string[] = [];
  const build = async (at: string, node: DirNode): Promise<void> => {
    const pending: Promise<void>[] = [];
    for (const [name, child] of node.children) {
      const target = path.join(at, name);
      if (child.kind === 'dir') {
        await mkdir(target, { mode: 0o755 });
        await build(target, child);
        if (child.unreadable) locked.push(target);
      } else if (child.kind === 'file') {
        pending.push(writeFile(target, child.content, { mode: 0o644 }));
      } else if (child.kind === 'link') {
        pending.push(symlink(child.target, target));
      } else {
        execFileSync('mkfifo', [target]);
      }
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  };
  await chmod(root, 0o755);
  await build(root, model);
  for (const target of locked) await chmod(target, 0o000);
}

/** Name order of the walk: UTF-8 bytes. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function nodeAt(root: DirNode, relative: string): TreeNode | undefined {
  let node: TreeNode = root;
  for (const part of relative.split('/').filter((p) => p !== '')) {
    if (node.kind !== 'dir') return undefined;
    const next: TreeNode | undefined = node.children.get(part);
    if (!next) return undefined;
    node = next;
  }
  return node;
}

export interface ModelWalkOptions {
  maxDepth: number;
  maxDirectories: number;
  maxEntries: number;
  followDirectorySymlinks: boolean;
}

export interface ModelWalkResult {
  /** Paths relative to the walked root, directories first-class: `[path, kind]`. */
  entries: Array<[string, 'directory' | 'file']>;
  /** Relative paths of directories that could not be listed. */
  errors: string[];
  truncated: boolean;
}

/**
 * The walk the agent should return for `model`, computed from the model alone (the codex
 * semantics: breadth-first, UTF-8 name order, `maxEntries` counts every examined entry except
 * dangling links, directories identified by their real path). The response-size cap is not modelled.
 */
export function modelWalk(model: DirNode, options: ModelWalkOptions): ModelWalkResult {
  const result: ModelWalkResult = { entries: [], errors: [], truncated: false };
  const queue: Array<{ display: string; real: string; depth: number }> = [{ display: '', real: '', depth: 0 }];
  const visited = new Set<string>(['']);
  let directories = 1;
  let examined = 0;
  const join = (a: string, b: string) => (a === '' ? b : `${a}/${b}`);
  for (let head = 0; head < queue.length; head++) {
    const current = queue[head]!;
    const node = nodeAt(model, current.real) as DirNode;
    if (node.unreadable) {
      result.errors.push(current.display);
      continue;
    }
    for (const name of [...node.children.keys()].sort(compareNames)) {
      const child = node.children.get(name)!;
      let kind: 'directory' | 'file' | 'skip';
      let real = join(current.real, name);
      if (child.kind === 'link') {
        if (child.resolves === null) continue;
        const target = nodeAt(model, child.resolves)!;
        kind = options.followDirectorySymlinks && target.kind === 'dir' ? 'directory' : 'skip';
        real = child.resolves;
      } else {
        kind = child.kind === 'dir' ? 'directory' : child.kind === 'file' ? 'file' : 'skip';
      }
      if (examined === options.maxEntries) {
        result.truncated = true;
        return result;
      }
      examined++;
      if (kind === 'skip') continue;
      const display = join(current.display, name);
      result.entries.push([display, kind]);
      if (kind !== 'directory' || current.depth >= options.maxDepth || visited.has(real)) continue;
      visited.add(real);
      if (directories === options.maxDirectories) {
        result.truncated = true;
        continue;
      }
      directories++;
      queue.push({ display, real, depth: current.depth + 1 });
    }
  }
  return result;
}
