/**
 * Attacks on `--root` confinement by a client with a session (issue "Trust model", findings 6
 * and 7), each replayed against a real agent on loopback: the client makes its symlinks with a
 * real `process/start` (`ln -s`), then asks for recursive `fs/copy` / `fs/remove`. Every attack
 * must now be refused with the agent's confinement error, and the file system is checked
 * directly afterwards: nothing written or deleted outside the roots or inside a nested `:ro` root.
 */
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseRootSpec } from '../../executor-agent/root-confinement.js';
import type { ExecClient } from '../../src/client/exec-client.js';
import { startAgentWithClients, type AgentWithClients } from '../support/agent-harness.js';
import type { RawMessage, RawRpcClient } from '../support/raw-rpc-client.js';

const uri = (p: string) => pathToFileURL(p).href;

let scratch: string;
/** The `:rw` root. */
let rw: string;
/** A `:ro` root nested inside `rw` (two levels down, so removing `rw/proj` would take it). */
let nestedRo: string;
/** Not a root. */
let outside: string;
let agent: AgentWithClients | undefined;
let raw: RawRpcClient;
let client: ExecClient;

/** Runs `argv` on the agent through `process/start` (a real child process) and expects exit 0. */
async function run(...argv: string[]): Promise<void> {
  const handle = await client.exec(argv, { cwd: rw });
  const completion = await handle.completion;
  expect(completion.exitCode, `${argv.join(' ')}: ${completion.stderr.toString()}`).toBe(0);
}

type Refusal = 'outsideRoots' | 'readOnlyRoot' | 'rootRemoval';

/** The request is refused by confinement: -32603 `permission denied: ...` naming `names`. */
async function expectRefused(method: string, params: unknown, reason: Refusal, names: string): Promise<NonNullable<RawMessage['error']>> {
  const reply = await raw.request(method, params);
  expect(reply.error, `${method} ${JSON.stringify(params)} must be refused`).toBeDefined();
  expect(reply.error).toMatchObject({ code: -32603, data: { confinement: reason } });
  expect(reply.error!.message).toMatch(/^permission denied: /);
  expect(reply.error!.message).toContain(names);
  return reply.error!;
}

async function expectOk(method: string, params: unknown): Promise<unknown> {
  const reply = await raw.request(method, params);
  expect(reply.error, `${method} ${JSON.stringify(params)}: ${JSON.stringify(reply.error)}`).toBeUndefined();
  return reply.result;
}

const copy = (from: string, to: string) => ({ sourcePath: uri(from), destinationPath: uri(to), recursive: true });

/** Every path under `dir` (relative), directories with a trailing `/`, links as `name -> target`. */
async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const full = path.join(dir, name);
    const stats = await lstat(full);
    if (stats.isSymbolicLink()) out.push(`${prefix}${name} -> ${await readlink(full)}`);
    else if (stats.isDirectory()) out.push(`${prefix}${name}/`, ...(await listTree(full, `${prefix}${name}/`)));
    else out.push(`${prefix}${name}: ${await readFile(full, 'utf8')}`);
  }
  return out;
}

const OUTSIDE_TREE = ['secret.txt: SECRET'];
const NESTED_RO_TREE = ['docs/', 'docs/guide.txt: original guide', 'keep.txt: original'];

async function expectUntouched(): Promise<void> {
  expect(await listTree(outside)).toEqual(OUTSIDE_TREE);
  expect(await listTree(nestedRo)).toEqual(NESTED_RO_TREE);
}

beforeAll(async () => {
  scratch = await realpath(await mkdtemp(path.join(os.tmpdir(), 'execrelay-attack-fs-')));
  rw = path.join(scratch, 'rw');
  nestedRo = path.join(rw, 'proj', 'vendor');
  outside = path.join(scratch, 'outside');
  await resetProtectedTrees();
  await writeFile(path.join(rw, 'proj', 'main.txt'), 'main');
  agent = await startAgentWithClients({ roots: [parseRootSpec(rw), parseRootSpec(`${nestedRo}:ro`)] });
  ({ raw, client } = agent);
});

afterAll(async () => {
  await agent?.stop();
  await rm(scratch, { recursive: true, force: true });
});

/** A fresh payload tree `rw/<name>` for one test: `a.txt`, `d/b.txt`, `d/e/c.txt`. */
async function payload(name: string): Promise<string> {
  const dir = path.join(rw, name);
  await mkdir(path.join(dir, 'd', 'e'), { recursive: true });
  await writeFile(path.join(dir, 'a.txt'), `${name} a`);
  await writeFile(path.join(dir, 'd', 'b.txt'), `${name} b`);
  await writeFile(path.join(dir, 'd', 'e', 'c.txt'), `${name} c`);
  return dir;
}

/**
 * (Re)creates the trees that must never change, so each test starts from them and a test that
 * lets an attack through fails on its own, not the tests after it.
 */
async function resetProtectedTrees(): Promise<void> {
  await rm(outside, { recursive: true, force: true });
  await rm(nestedRo, { recursive: true, force: true });
  await mkdir(outside, { recursive: true });
  await mkdir(path.join(nestedRo, 'docs'), { recursive: true });
  await writeFile(path.join(outside, 'secret.txt'), 'SECRET');
  await writeFile(path.join(nestedRo, 'keep.txt'), 'original');
  await writeFile(path.join(nestedRo, 'docs', 'guide.txt'), 'original guide');
}

beforeEach(async () => {
  await resetProtectedTrees();
});

describe('finding 6: recursive fs/copy cannot write outside the roots through a symlink', () => {
  it('a copy into a symlink that a process made pointing out is refused', async () => {
    const src = await payload('p-into');
    await run('ln', '-s', outside, path.join(rw, 'link-into'));
    await expectRefused('fs/copy', copy(src, path.join(rw, 'link-into')), 'outsideRoots', path.join(rw, 'link-into'));
    await expectRefused('fs/copy', copy(src, path.join(rw, 'link-into', 'sub')), 'outsideRoots', path.join(rw, 'link-into', 'sub'));
    await expectUntouched();
  });

  it('a copy merging into a tree that holds a symlink out (made by a process) is refused at that entry', async () => {
    const src = await payload('p-through');
    await mkdir(path.join(rw, 'merge-target'));
    await run('ln', '-s', outside, path.join(rw, 'merge-target', 'd'));
    const error = await expectRefused('fs/copy', copy(src, path.join(rw, 'merge-target')), 'outsideRoots', path.join(rw, 'merge-target', 'd'));
    expect(error.message).toContain('resolves to a location outside the configured roots');
    await expectUntouched();
    // The link itself is left as it was.
    expect(await readlink(path.join(rw, 'merge-target', 'd'))).toBe(outside);
  });

  it('a tree holding a symlink that escapes is copied as a symlink, and a later copy cannot write through the copy', async () => {
    const src = await payload('p-carrier');
    await rm(path.join(src, 'd'), { recursive: true });
    await run('ln', '-s', '../../outside', path.join(src, 'd'));
    await expectOk('fs/copy', copy(src, path.join(rw, 'carried', 'x')));
    expect(await readlink(path.join(rw, 'carried', 'x', 'd'))).toBe('../../outside');
    // The same with a link whose target is absolute: the copy is a link, and merging a tree through it is refused.
    await run('ln', '-s', outside, path.join(src, 'abs'));
    await expectOk('fs/copy', copy(src, path.join(rw, 'carried', 'y')));
    expect(await readlink(path.join(rw, 'carried', 'y', 'abs'))).toBe(outside);
    const second = await payload('p-second');
    await run('mv', path.join(second, 'd'), path.join(second, 'abs'));
    await expectRefused('fs/copy', copy(second, path.join(rw, 'carried', 'y')), 'outsideRoots', path.join(rw, 'carried', 'y', 'abs'));
    await expectUntouched();
  });

  it('a symlink in the destination tree pointing into the nested read-only root is not written through', async () => {
    const src = await payload('p-to-ro');
    await mkdir(path.join(rw, 'to-ro'));
    await run('ln', '-s', path.join(nestedRo, 'docs'), path.join(rw, 'to-ro', 'd'));
    await expectRefused('fs/copy', copy(src, path.join(rw, 'to-ro')), 'readOnlyRoot', path.join(rw, 'to-ro', 'd'));
    await expectUntouched();
  });
});

describe('finding 7: a read-only root nested in a read-write root is read-only for everything inside it', () => {
  it('a recursive copy into the rw root cannot overwrite files of the nested ro root', async () => {
    const src = path.join(rw, 'p-overwrite');
    await mkdir(path.join(src, 'vendor', 'docs'), { recursive: true });
    await writeFile(path.join(src, 'vendor', 'keep.txt'), 'PWNED');
    await writeFile(path.join(src, 'vendor', 'docs', 'guide.txt'), 'PWNED');
    await writeFile(path.join(src, 'vendor', 'new.txt'), 'PLANTED');
    const error = await expectRefused('fs/copy', copy(src, path.join(rw, 'proj')), 'readOnlyRoot', path.join(rw, 'proj', 'vendor'));
    expect(error.message).toContain(`is in a read-only root (${nestedRo})`);
    await expectUntouched();
  });

  it('a copy straight into the nested ro root, or a file copied over one of its files, is refused', async () => {
    const src = await payload('p-direct');
    await expectRefused('fs/copy', copy(src, nestedRo), 'readOnlyRoot', nestedRo);
    await expectRefused('fs/copy', copy(src, path.join(nestedRo, 'docs', 'new')), 'readOnlyRoot', nestedRo);
    await expectRefused('fs/copy', { ...copy(path.join(src, 'a.txt'), path.join(nestedRo, 'keep.txt')), recursive: false }, 'readOnlyRoot', nestedRo);
    await expectUntouched();
  });

  it('a recursive remove of a rw tree that contains the nested ro root is refused and leaves it intact', async () => {
    const error = await expectRefused('fs/remove', { path: uri(path.join(rw, 'proj')), recursive: true, force: true }, 'readOnlyRoot', path.join(rw, 'proj'));
    expect(error.message).toContain(nestedRo);
    await expectUntouched();
    expect(await readFile(path.join(rw, 'proj', 'main.txt'), 'utf8')).toBe('main');
    // Nor can anything inside it be removed, nor the root itself.
    await expectRefused('fs/remove', { path: uri(path.join(nestedRo, 'docs')), recursive: true }, 'readOnlyRoot', nestedRo);
    await expectRefused('fs/remove', { path: uri(nestedRo), recursive: true }, 'readOnlyRoot', nestedRo);
    await expectUntouched();
  });

  it('a recursive remove of the rw root itself is refused', async () => {
    await expectRefused('fs/remove', { path: uri(rw), recursive: true }, 'rootRemoval', rw);
    await expectUntouched();
  });

  it('a move into or out of the nested ro root (there is no fs/rename: copy then remove) is refused on the side that writes', async () => {
    // There is no rename method on the wire (codex has none either).
    const unknown = await raw.request('fs/rename', { sourcePath: uri(path.join(nestedRo, 'keep.txt')), destinationPath: uri(path.join(rw, 'moved.txt')) });
    expect(unknown.error).toMatchObject({ code: -32601 });
    // Out of it: the copy out is a read and works; removing the source is refused.
    await expectOk('fs/copy', copy(path.join(nestedRo, 'docs'), path.join(rw, 'moved-out')));
    expect(await readFile(path.join(rw, 'moved-out', 'guide.txt'), 'utf8')).toBe('original guide');
    await expectRefused('fs/remove', { path: uri(path.join(nestedRo, 'docs')), recursive: true }, 'readOnlyRoot', nestedRo);
    // Into it: refused before anything is written, and the rw source stays.
    const src = await payload('p-move-in');
    await expectRefused('fs/copy', copy(src, path.join(nestedRo, 'moved-in')), 'readOnlyRoot', nestedRo);
    expect((await stat(src)).isDirectory()).toBe(true);
    await expectUntouched();
  });
});

describe('legitimate recursive copy and remove inside a rw root still work', () => {
  it('copies a tree (merging into an existing one, links copied as links) and removes it', async () => {
    const src = await payload('p-happy');
    await run('ln', '-s', 'a.txt', path.join(src, 'link-in'));
    await mkdir(path.join(rw, 'happy-dest', 'd'), { recursive: true });
    await writeFile(path.join(rw, 'happy-dest', 'd', 'b.txt'), 'old b');
    await writeFile(path.join(rw, 'happy-dest', 'd', 'kept.txt'), 'kept');
    await expectOk('fs/copy', copy(src, path.join(rw, 'happy-dest')));
    expect(await listTree(path.join(rw, 'happy-dest'))).toEqual([
      'a.txt: p-happy a',
      'd/',
      'd/b.txt: p-happy b',
      'd/e/',
      'd/e/c.txt: p-happy c',
      'd/kept.txt: kept',
      'link-in -> a.txt',
    ]);
    // A symlink in the destination that stays inside the rw root is merged through.
    await mkdir(path.join(rw, 'happy-real'));
    await mkdir(path.join(rw, 'happy-linked'));
    await run('ln', '-s', '../happy-real', path.join(rw, 'happy-linked', 'd'));
    await expectOk('fs/copy', copy(src, path.join(rw, 'happy-linked')));
    expect(await listTree(path.join(rw, 'happy-real'))).toEqual(['b.txt: p-happy b', 'e/', 'e/c.txt: p-happy c']);
    // Copying the whole rw tree that holds the ro root into a new rw directory is a read of it.
    await expectOk('fs/copy', copy(path.join(rw, 'proj'), path.join(rw, 'proj-copy')));
    expect(await listTree(path.join(rw, 'proj-copy', 'vendor'))).toEqual(NESTED_RO_TREE);
    for (const dir of ['happy-dest', 'happy-real', 'happy-linked', 'proj-copy', src]) {
      await expectOk('fs/remove', { path: uri(path.isAbsolute(dir) ? dir : path.join(rw, dir)), recursive: true });
      await expect(lstat(path.isAbsolute(dir) ? dir : path.join(rw, dir))).rejects.toThrow();
    }
    await expectUntouched();
  });
});
