/**
 * fs/walk on a real generated tree (>= 20,000 files, 12 levels deep, a symlink loop, a dangling
 * link, a mode-000 directory, names with spaces, accents, CJK and emoji), through a real agent
 * over loopback.
 *
 * The unreadable directory: these tests usually run as root, and root reads a mode-000 directory
 * anyway. So when running as root the agent is the built CLI started as the unprivileged user
 * `nobody` (uid 65534); the tree is world-readable except that directory. As a normal user the
 * agent runs as that user, for whom mode 000 already means unreadable. Either way the expected
 * result says the directory must fail with EACCES, so a walker (or a user) that can read it makes
 * the test fail.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTree, compareNames, countFiles, modelWalk, treeModel, type DirNode, type ModelWalkOptions } from '../support/fs-tree.js';
import { checkWalkLimits, walkFileUri, walkTree } from '../../executor-agent/fs-walk.js';
import { RootConfinement } from '../../executor-agent/root-confinement.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { RpcError } from '../../src/protocol/error-codes.js';
import { FS_LIMITS, type FsWalkResult } from '../../src/protocol/fs.js';
import { startUnprivilegedAgent, type UnprivilegedAgent } from '../support/unprivileged-agent.js';

const FULL: ModelWalkOptions = { maxDepth: 64, maxDirectories: 10_000, maxEntries: 50_000, followDirectorySymlinks: false };

/** Entries as `[path relative to root, kind]`, checking every path is the URI of a native path under root. */
function relativeEntries(root: string, result: FsWalkResult): Array<[string, string]> {
  return result.entries.map((entry) => {
    const native = fileURLToPath(entry.path);
    expect(new URL(entry.path).href).toBe(entry.path); // canonical, absolute file:// URI
    expect(walkFileUri(native)).toBe(entry.path);
    const relative = path.relative(root, native);
    expect(relative.startsWith('..')).toBe(false);
    return [relative, entry.kind];
  });
}

function expectMatchesModel(root: string, result: FsWalkResult, expected: ReturnType<typeof modelWalk>): void {
  expect(relativeEntries(root, result)).toEqual(expected.entries);
  expect(result.errors.map((e) => [path.relative(root, fileURLToPath(e.path)), e.message])).toEqual(
    expected.errors.map((relative) => [relative, 'Permission denied (os error 13)']),
  );
  expect(result.truncated).toBe(expected.truncated);
}

describe('fs/walk on a generated 20,000-file tree', () => {
  let scratch: string;
  let root: string;
  let model: DirNode;
  let agent: UnprivilegedAgent;
  let client: ExecClient;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-fs-walk-'));
    await chmod(scratch, 0o755);
    root = path.join(scratch, 'tree');
    await mkdir(root);
    model = treeModel();
    await buildTree(root, model);
    agent = await startUnprivilegedAgent();
    client = await ExecClient.connect(agent.url);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    await chmod(path.join(root, 'locked'), 0o755).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  });

  it('the tree has what the issue asks for', () => {
    expect(countFiles(model)).toBeGreaterThanOrEqual(20_000);
    const deepest = modelWalk(model, FULL).entries.map(([p]) => p.split('/').length);
    expect(Math.max(...deepest)).toBeGreaterThanOrEqual(13); // deep/l01/.../l12/leaf: 12 levels below deep/
  });

  it('returns exactly the modelled entries, in breadth-first UTF-8 name order, and the unreadable directory as an error', async () => {
    const result = await client.fs.walk(root, FULL);
    const expected = modelWalk(model, FULL);
    expect(expected.entries.length).toBeGreaterThan(20_000);
    expect(expected.errors).toEqual(['locked']);
    expectMatchesModel(root, result, expected);
    // Spot checks that do not depend on the model: the loop, the dangling link and the FIFO are absent,
    // the 12-deep leaf is present, and an emoji name sorts after a fullwidth one (UTF-8, not UTF-16, order).
    const paths = relativeEntries(root, result).map(([p]) => p);
    for (const absent of ['self', 'dangling', 'readme link', 'pipe', 'deep/l01/loop', 'locked/secret.txt']) expect(paths).not.toContain(absent);
    expect(paths).toContain('deep/l01/l02/l03/l04/l05/l06/l07/l08/l09/l10/l11/l12/leaf 2.txt');
    const g000 = paths.filter((p) => p.startsWith('bulk/g000/'));
    expect(g000.indexOf('bulk/g000/Ｚwide-003')).toBeLessThan(g000.indexOf('bulk/g000/📁emoji-004'));
    expect([...g000].sort(compareNames)).toEqual(g000);
  });

  it('follows directory symlinks once per real directory, so the loop ends', async () => {
    const options = { ...FULL, followDirectorySymlinks: true };
    const result = await client.fs.walk(root, options);
    expectMatchesModel(root, result, modelWalk(model, options));
    const paths = relativeEntries(root, result).map(([p]) => p);
    expect(paths).toContain('self');
    expect(paths).toContain('deep/l01/loop');
    expect(paths.some((p) => p.startsWith('deep/l01/loop/'))).toBe(false);
    expect(paths.some((p) => p.startsWith('self/'))).toBe(false);
    // bulk-link is met before bulk/g000 is read, so g000's files are listed through the link only.
    expect(paths).toContain('bulk-link/file 000.txt');
    expect(paths).toContain('bulk/g000');
    expect(paths).not.toContain('bulk/g000/file 000.txt');
  });

  it('honours maxDepth (a scope, not a cap) and each cap with truncated', async () => {
    const cases: Array<Partial<ModelWalkOptions>> = [
      { maxDepth: 0 },
      { maxDepth: 1 },
      { maxDepth: 11 },
      { maxEntries: 1 },
      { maxEntries: 3 },
      { maxEntries: 7_777 },
      { maxDirectories: 1 },
      { maxDirectories: 2 },
      { maxDirectories: 57 },
      { maxDirectories: 30, maxEntries: 4_000, followDirectorySymlinks: true },
    ];
    for (const overrides of cases) {
      const options = { ...FULL, ...overrides };
      const expected = modelWalk(model, options);
      const result = await client.fs.walk(root, options);
      expectMatchesModel(root, result, expected);
      if (overrides.maxEntries !== undefined || overrides.maxDirectories !== undefined) expect(result.truncated).toBe(true);
      else expect(result.truncated).toBe(false);
      if (overrides.maxEntries !== undefined) expect(result.entries.length).toBeLessThanOrEqual(overrides.maxEntries);
    }
    // maxDepth 0: the root's children only.
    const shallow = await client.fs.walk(root, { ...FULL, maxDepth: 0 });
    expect(relativeEntries(root, shallow).every(([p]) => !p.includes('/'))).toBe(true);
  });

  it('is not truncated when the entry cap is met exactly, and is one below', async () => {
    const small = { ...FULL, maxDepth: 1 };
    let examined = 0;
    // Find the number of examined entries for maxDepth 1 from the model: the smallest cap that is not truncated.
    for (let cap = 1; cap <= 50_000; cap *= 2) {
      if (!modelWalk(model, { ...small, maxEntries: cap }).truncated) {
        let low = cap / 2;
        let high = cap;
        while (high - low > 1) {
          const mid = Math.floor((low + high) / 2);
          if (modelWalk(model, { ...small, maxEntries: mid }).truncated) low = mid;
          else high = mid;
        }
        examined = high;
        break;
      }
    }
    expect(examined).toBeGreaterThan(100);
    const exact = await client.fs.walk(root, { ...small, maxEntries: examined });
    expect(exact.truncated).toBe(false);
    const below = await client.fs.walk(root, { ...small, maxEntries: examined - 1 });
    expect(below.truncated).toBe(true);
    expect(relativeEntries(root, exact).slice(0, below.entries.length)).toEqual(relativeEntries(root, below));
  });

  it('refuses zero and over-cap limits with -32600 and the codex message', async () => {
    const refused = async (options: Record<string, unknown>) => {
      const error = await client.request('fs/walk', { path: pathToFileURL(root).href, options }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RpcError);
      return error as RpcError;
    };
    for (const options of [{ ...FULL, maxEntries: 0 }, { ...FULL, maxDirectories: 0 }]) {
      expect(await refused(options)).toMatchObject({ code: -32600, message: 'filesystem walk limits must be greater than zero' });
    }
    for (const options of [
      { ...FULL, maxDepth: FS_LIMITS.maxWalkDepth + 1 },
      { ...FULL, maxDirectories: FS_LIMITS.maxWalkDirectories + 1 },
      { ...FULL, maxEntries: FS_LIMITS.maxWalkEntries + 1 },
    ]) {
      expect(await refused(options)).toMatchObject({
        code: -32600,
        message: 'filesystem walk limits exceed maximums: depth=64, directories=10000, entries=50000',
      });
    }
    expect(await refused({ maxDepth: 1 })).toMatchObject({ code: -32602 });
    expect(await refused({ ...FULL, maxDepth: -1 })).toMatchObject({ code: -32602 });
  });

  it('answers other requests on the same connection while a walk of the big tree runs', async () => {
    let walkDone = false;
    const walk = client.fs.walk(root, { ...FULL, followDirectorySymlinks: true }).then((r) => {
      walkDone = true;
      return r;
    });
    const answeredDuringWalk: boolean[] = [];
    const metadata = await client.fs.getMetadata(path.join(root, 'name with spaces.txt'));
    answeredDuringWalk.push(!walkDone);
    expect(metadata).toMatchObject({ isFile: true, size: 7 });
    const content = await client.fs.readFile(path.join(root, 'ünïcödé', 'ß.txt'));
    answeredDuringWalk.push(!walkDone);
    expect(content.toString()).toBe('sharp s\n');
    const result = await walk;
    expect(result.entries.length).toBeGreaterThan(20_000);
    expect(answeredDuringWalk).toEqual([true, true]);
  });

  it('rejects a missing root with -32004 and walks a file root to nothing', async () => {
    await expect(client.fs.walk(path.join(root, 'missing'))).rejects.toMatchObject({ code: -32004, message: 'No such file or directory (os error 2)' });
    await expect(client.fs.walk(path.join(root, 'name with spaces.txt'))).resolves.toEqual({ entries: [], errors: [], truncated: false });
    // A symlink to a directory as the root is walked only when following symlinks (codex).
    await expect(client.fs.walk(path.join(root, 'bulk-link'))).resolves.toEqual({ entries: [], errors: [], truncated: false });
    expect((await client.fs.walk(path.join(root, 'bulk-link'), { followDirectorySymlinks: true })).entries).toHaveLength(200);
  });
});

describe('fs/walk response-size cap', () => {
  let scratch: string;
  let root: string;
  let model: DirNode;

  beforeAll(async () => {
    // Long names: 4,500 files x ~1,000-byte URIs is over 4 MiB, well under the entry cap.
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-fs-walk-size-'));
    root = path.join(scratch, 'd'.repeat(200), 'ü'.repeat(60));
    model = { kind: 'dir', children: new Map() };
    for (let i = 0; i < 4_500; i++) model.children.set(`${String(i).padStart(5, '0')}-${'é'.repeat(100)}`, { kind: 'file', content: '' });
    await mkdir(root, { recursive: true });
    await buildTree(root, model);
  }, 60_000);
  afterAll(() => rm(scratch, { recursive: true, force: true }));

  it('stops before the JSON result passes 4 MiB, with truncated, and returns a prefix of the full walk', async () => {
    const result = await walkTree(root, FULL, { confinement: new RootConfinement([]) });
    expect(result.truncated).toBe(true);
    const size = Buffer.byteLength(JSON.stringify(result));
    expect(size).toBeLessThanOrEqual(FS_LIMITS.maxWalkResponseBytes);
    const expected = modelWalk(model, FULL).entries;
    expect(relativeEntries(root, result)).toEqual(expected.slice(0, result.entries.length));
    // The next entry would not have fitted.
    const next = expected[result.entries.length]!;
    const nextEntry = { path: walkFileUri(path.join(root, next[0])), kind: next[1] };
    expect(size + 1 + Buffer.byteLength(JSON.stringify(nextEntry))).toBeGreaterThan(FS_LIMITS.maxWalkResponseBytes);
  });
});

describe('fs/walk when the tree changes under it', () => {
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-fs-walk-vanish-'));
    for (const name of ['a', 'b', 'c']) {
      await mkdir(path.join(scratch, name, 'inner'), { recursive: true });
      await writeFile(path.join(scratch, name, 'inner', 'file.txt'), name);
    }
  });
  afterAll(() => rm(scratch, { recursive: true, force: true }));

  it('records a directory that vanished or turned into a file before it was read, and goes on', async () => {
    const result = await walkTree(scratch, FULL, {
      confinement: new RootConfinement([]),
      readAhead: 0,
      hooks: {
        beforeReadDirectory: async (real) => {
          if (real === path.join(scratch, 'a')) await rm(real, { recursive: true });
          if (real === path.join(scratch, 'b')) {
            await rm(real, { recursive: true });
            await writeFile(real, 'now a file');
          }
        },
      },
    });
    expect(result.errors).toEqual([
      { path: pathToFileURL(path.join(scratch, 'a')).href, message: 'No such file or directory (os error 2)' },
      { path: pathToFileURL(path.join(scratch, 'b')).href, message: 'Not a directory (os error 20)' },
    ]);
    expect(relativeEntries(scratch, result)).toEqual([
      ['a', 'directory'],
      ['b', 'directory'],
      ['c', 'directory'],
      ['c/inner', 'directory'],
      ['c/inner/file.txt', 'file'],
    ]);
    expect(result.truncated).toBe(false);
  });

  it('checks limits before touching the disk', () => {
    expect(() => checkWalkLimits({ ...FULL, maxEntries: 0 })).toThrow(/greater than zero/);
    expect(() => checkWalkLimits({ ...FULL, maxDepth: 0 })).not.toThrow();
  });
});
