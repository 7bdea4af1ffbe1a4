/**
 * Interop: `ExecClient` (its `fs` methods and `walk`) against the real codex exec-server 0.169.0
 * and against the execrelay agent, on the same trees, must give equivalent results.
 *
 * Known, deliberate differences (docs/fs.md): `createdAtMs` (codex reports 0 here), readDirectory
 * order (codex: directory order; execrelay: name order), wording of -32602 validation messages
 * and of the bad-base64 detail, the handle limit saying "per session", and names containing a tab
 * or newline (codex cannot build their URI and reports an error; execrelay lists them).
 */
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTree, treeModel } from '../support/fs-tree.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { RpcError } from '../../src/protocol/error-codes.js';
import type { FsWalkOptionsInput, FsWalkResult } from '../../src/protocol/fs.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { startCodexExecServer, type CodexExecServer } from '../support/codex-exec-server.js';

type Outcome = { ok: unknown } | { code: number; message: string };

async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: await run() };
  } catch (error) {
    if (error instanceof RpcError) return { code: error.code, message: error.message };
    throw error;
  }
}

/** Which path root a result refers to, so results from two copies of a tree can be compared. */
function relativize(value: unknown, root: string): unknown {
  return JSON.parse(JSON.stringify(value ?? null).split(root).join('<root>'));
}

const PUNCTUATION = ['amp&', "apos'", 'at@', 'back\\slash', 'bang!', 'brace{}', 'brack[et]', 'caret^', 'colon:', 'comma,', 'dollar$', 'eq=', 'hash#', 'lt<gt>', 'paren()', 'pct%25', 'pipe|', 'plus+', 'q?mark', 'quote"', 'semi;colon', 'star*', 'tick`', 'tilde~', 'trail ', 'ctl\u0001y', 'del\u007f'];

describe('fs interop with the codex exec-server 0.169.0', () => {
  let scratch: string;
  let tree: string;
  let codex: CodexExecServer;
  let agent: RunningAgent;
  let theirs: ExecClient;
  let ours: ExecClient;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-fs-interop-'));
    tree = path.join(scratch, 'tree');
    await mkdir(tree);
    await buildTree(tree, treeModel({ withLocked: false }));
    const punctuation = path.join(tree, 'punctuation');
    await mkdir(punctuation);
    for (const name of [...PUNCTUATION, 'tab\tx', 'nl\nx']) await writeFile(path.join(punctuation, name), name);
    [codex, agent] = await Promise.all([startCodexExecServer(), startAgent()]);
    [theirs, ours] = await Promise.all([ExecClient.connect(codex.url), ExecClient.connect(agent.url)]);
  }, 600_000);

  afterAll(async () => {
    theirs?.close();
    ours?.close();
    await Promise.all([codex?.stop(), agent?.stop()]);
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const both = async (run: (client: ExecClient) => Promise<unknown>): Promise<[Outcome, Outcome]> => [await outcome(() => run(theirs)), await outcome(() => run(ours))];

  it('walk gives identical results (entry URIs, order, truncation) for every option set', async () => {
    const cases: FsWalkOptionsInput[] = [
      { maxDepth: 64, maxDirectories: 10_000, maxEntries: 50_000, followDirectorySymlinks: false },
      { maxDepth: 64, maxDirectories: 10_000, maxEntries: 50_000, followDirectorySymlinks: true },
      { maxDepth: 0, maxDirectories: 10_000, maxEntries: 50_000, followDirectorySymlinks: false },
      { maxDepth: 3, maxDirectories: 10_000, maxEntries: 50_000, followDirectorySymlinks: true },
      { maxDepth: 64, maxDirectories: 10_000, maxEntries: 1, followDirectorySymlinks: false },
      { maxDepth: 64, maxDirectories: 10_000, maxEntries: 9, followDirectorySymlinks: false },
      { maxDepth: 64, maxDirectories: 10_000, maxEntries: 4_321, followDirectorySymlinks: true },
      { maxDepth: 64, maxDirectories: 1, maxEntries: 50_000, followDirectorySymlinks: false },
      { maxDepth: 64, maxDirectories: 37, maxEntries: 50_000, followDirectorySymlinks: true },
    ];
    for (const options of cases) {
      const [a, b] = await both((c) => c.fs.walk(tree, options));
      expect('ok' in a && 'ok' in b, JSON.stringify(options)).toBe(true);
      const codexWalk = (a as { ok: FsWalkResult }).ok;
      const oursWalk = (b as { ok: FsWalkResult }).ok;
      // The punctuation directory is compared separately (codex fails on names with a tab or newline).
      const strip = (r: FsWalkResult) => ({
        entries: r.entries.filter((e) => !/\/punctuation\/(tab|nl)/.test(e.path)),
        errors: r.errors.filter((e) => !/\/punctuation\/(tab|nl)/.test(e.path)),
        truncated: r.truncated,
      });
      expect(strip(oursWalk), JSON.stringify(options)).toEqual(strip(codexWalk));
    }
    const full = await ours.fs.walk(tree);
    expect(full.entries.length).toBeGreaterThan(20_000);
  });

  it('walk encodes names exactly like codex, and lists names with a tab or newline that codex cannot', async () => {
    const dir = path.join(tree, 'punctuation');
    const [a, b] = await both((c) => c.fs.walk(dir, { maxDepth: 0, maxDirectories: 1, maxEntries: 100 }));
    const codexWalk = (a as { ok: FsWalkResult }).ok;
    const oursWalk = (b as { ok: FsWalkResult }).ok;
    const plain = oursWalk.entries.filter((e) => !/\/(tab|nl)%/.test(e.path));
    expect(plain).toEqual(codexWalk.entries);
    expect(plain.map((e) => path.basename(fileURLToPath(e.path))).sort()).toEqual([...PUNCTUATION].sort());
    expect(oursWalk.entries.map((e) => path.basename(fileURLToPath(e.path)))).toEqual(expect.arrayContaining(['tab\tx', 'nl\nx']));
    expect(oursWalk.errors).toEqual([]);
    expect(codexWalk.errors.map((e) => e.message)).toEqual(['No such file or directory (os error 2)', 'No such file or directory (os error 2)']);
  });

  it('read-only methods give the same results', async () => {
    const samples = ['name with spaces.txt', 'readme link', 'bulk/g001/📁emoji-004', 'deep/l01/leaf 0.txt', 'ünïcödé/ß.txt'];
    for (const sample of samples) {
      const file = path.join(tree, sample);
      const [a, b] = await both(async (c) => (await c.fs.readFile(file)).toString('base64'));
      expect(b).toEqual(a);
    }
    for (const sample of ['name with spaces.txt', 'readme link', 'bulk-link', 'bulk', 'pipe', 'self']) {
      const [a, b] = await both(async (c) => ({ ...(await c.fs.getMetadata(path.join(tree, sample))), createdAtMs: 'ignored' }));
      expect(b, sample).toEqual(a);
    }
    for (const sample of ['', 'bulk/g002', 'deep/l01', 'bulk-link']) {
      const [a, b] = await both(async (c) => (await c.fs.readDirectory(path.join(tree, sample))).sort((x, y) => (x.fileName < y.fileName ? -1 : 1)));
      expect(b, sample).toEqual(a);
    }
    const [a, b] = await both(async (c) => {
      const handle = await c.fs.open(path.join(tree, 'deep', 'l01', 'leaf 1.txt'), 'interop-handle');
      const blocks = [await c.fs.readBlock(handle, 0, 4), await c.fs.readBlock(handle, 4, 100), await c.fs.readBlock(handle, 1000, 10)];
      await c.fs.close(handle);
      await c.fs.close(handle);
      return blocks.map((block) => ({ chunk: block.chunk.toString(), eof: block.eof }));
    });
    expect(b).toEqual(a);
  });

  it('errors carry the same codes (and, for OS and codex-worded errors, the same messages)', async () => {
    const t = (...parts: string[]) => path.join(tree, ...parts);
    const uri = (p: string) => `file://${p.split('/').map(encodeURIComponent).join('/')}`;
    const sameMessage: Array<[string, (c: ExecClient) => Promise<unknown>]> = [
      ['readFile missing', (c) => c.fs.readFile(t('missing'))],
      ['readFile directory', (c) => c.fs.readFile(t('bulk'))],
      ['readFile under a file', (c) => c.fs.readFile(t('name with spaces.txt', 'x'))],
      ['readFile dangling', (c) => c.fs.readFile(t('dangling'))],
      ['getMetadata missing', (c) => c.fs.getMetadata(t('missing'))],
      ['readDirectory file', (c) => c.fs.readDirectory(t('name with spaces.txt'))],
      ['readDirectory missing', (c) => c.fs.readDirectory(t('missing'))],
      ['writeFile no parent', (c) => c.fs.writeFile(t('no', 'parent.txt'), 'x')],
      ['writeFile directory', (c) => c.fs.writeFile(t('bulk'), 'x')],
      ['createDirectory existing', (c) => c.fs.createDirectory(t('bulk'), { recursive: false })],
      ['createDirectory over a file', (c) => c.fs.createDirectory(t('name with spaces.txt'))],
      ['createDirectory missing parent', (c) => c.fs.createDirectory(t('no', 'parent'), { recursive: false })],
      ['remove missing without force', (c) => c.fs.remove(t('missing'), { force: false })],
      ['remove non-empty without recursive', (c) => c.fs.remove(t('deep'), { recursive: false })],
      ['copy directory without recursive', (c) => c.fs.copy(t('deep'), t('deep-copy'))],
      ['copy into itself', (c) => c.fs.copy(t('deep'), t('deep', 'l01', 'inside'), { recursive: true })],
      ['copy a FIFO', (c) => c.fs.copy(t('pipe'), t('pipe-copy'), { recursive: true })],
      ['copy missing source', (c) => c.fs.copy(t('missing'), t('x'), { recursive: true })],
      ['copy a file onto a directory', (c) => c.fs.copy(t('name with spaces.txt'), t('bulk'))],
      ['walk missing', (c) => c.fs.walk(t('missing'))],
      ['walk zero entries', (c) => c.fs.walk(tree, { maxEntries: 0 })],
      ['walk over the depth cap', (c) => c.fs.walk(tree, { maxDepth: 65 })],
      ['open a directory', (c) => c.fs.open(t('bulk'), 'dir-handle')],
      ['open missing', (c) => c.fs.open(t('missing'), 'missing-handle')],
      ['readBlock unknown handle', (c) => c.fs.readBlock('never-opened', 0, 10)],
      ['readBlock of zero bytes', async (c) => {
        const handle = await c.fs.open(t('name with spaces.txt'), 'zero-len');
        try {
          return await c.fs.readBlock(handle, 0, 0);
        } finally {
          await c.fs.close(handle);
        }
      }],
      ['open twice', async (c) => {
        const handle = await c.fs.open(t('name with spaces.txt'), 'twice');
        try {
          return await c.fs.open(t('name with spaces.txt'), 'twice');
        } finally {
          await c.fs.close(handle);
        }
      }],
    ];
    for (const [name, run] of sameMessage) {
      const [a, b] = await both(run);
      expect('code' in a, `${name}: codex should fail`).toBe(true);
      expect(b, name).toEqual(a);
    }
    const sameCode: Array<[string, string, unknown]> = [
      ['native path', 'fs/readFile', { path: t('name with spaces.txt') }],
      ['relative path', 'fs/getMetadata', { path: 'name with spaces.txt' }],
      ['missing path', 'fs/readFile', {}],
      ['bad base64', 'fs/writeFile', { path: uri(t('never.txt')), dataBase64: '***' }],
      ['copy without recursive', 'fs/copy', { sourcePath: uri(t('readme link')), destinationPath: uri(t('never')) }],
      ['walk without options', 'fs/walk', { path: uri(tree) }],
      ['walk with a negative depth', 'fs/walk', { path: uri(tree), options: { maxDepth: -1, maxDirectories: 1, maxEntries: 1, followDirectorySymlinks: false } }],
    ];
    for (const [name, method, params] of sameCode) {
      const [a, b] = await both((c) => c.request(method, params));
      expect('code' in a && 'code' in b, name).toBe(true);
      expect((b as { code: number }).code, name).toBe((a as { code: number }).code);
    }
  });

  it('writing methods leave identical trees behind', async () => {
    const roots = [path.join(scratch, 'codex-copy'), path.join(scratch, 'ours-copy')] as const;
    for (const root of roots) {
      await cp(path.join(tree, 'deep'), root, { recursive: true, verbatimSymlinks: true });
      await symlink('l01/leaf 0.txt', path.join(root, 'leaf-link'));
    }
    const script = async (c: ExecClient, root: string): Promise<unknown[]> => {
      const at = (...parts: string[]) => path.join(root, ...parts);
      const steps: Array<() => Promise<unknown>> = [
        () => c.fs.writeFile(at('new file.txt'), 'created'),
        () => c.fs.writeFile(at('new file.txt'), 'replaced'),
        () => c.fs.writeFile(at('leaf-link'), 'through the link'),
        () => c.fs.createDirectory(at('made', 'nested', 'dirs')),
        () => c.fs.createDirectory(at('made')),
        () => c.fs.copy(at('new file.txt'), at('made', 'copy.txt')),
        () => c.fs.copy(at('l01'), at('made', 'l01-copy'), { recursive: true }),
        () => c.fs.copy(at('l01'), at('made', 'l01-copy'), { recursive: true }),
        () => c.fs.copy(at('leaf-link'), at('made', 'link-copy')),
        () => c.fs.remove(at('l01', 'l02', 'l03')),
        () => c.fs.remove(at('made', 'nested'), { recursive: false }),
        () => c.fs.remove(at('missing')),
        () => c.fs.createDirectory(at('made', 'nested', 'dirs'), { recursive: false }),
      ];
      const results: unknown[] = [];
      for (const step of steps) results.push(relativize(await outcome(step), root));
      results.push(relativize(await c.fs.walk(root, { followDirectorySymlinks: false }), root));
      const walk = await c.fs.walk(root);
      for (const entry of walk.entries.filter((e) => e.kind === 'file')) {
        results.push([relativize(entry.path, root), (await c.fs.readFile(fileURLToPath(entry.path))).toString()]);
      }
      results.push(await outcome(() => c.fs.getMetadata(at('made', 'link-copy')))); // a copied relative link now dangles
      const link = await c.fs.getMetadata(at('leaf-link'));
      results.push({ ...link, createdAtMs: 'ignored', modifiedAtMs: 'ignored' });
      return results;
    };
    const codexResults = await script(theirs, roots[0]);
    const ourResults = await script(ours, roots[1]);
    expect(ourResults).toEqual(codexResults);
    expect(codexResults.length).toBeGreaterThan(20);
  });
});
