/**
 * `--root` confinement on a real agent: every escape (`..`, symlink out, absolute path elsewhere)
 * is refused, read-only roots refuse writes, and nothing outside the roots leaks — not through fs
 * methods, walks, directory listings or a process cwd.
 */
import { mkdir, mkdtemp, readFile, lstat, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInside, parseRootSpec } from '../../executor-agent/root-confinement.js';
import type { ExecClient } from '../../src/client/exec-client.js';
import { startAgentWithClients, type AgentWithClients } from '../support/agent-harness.js';
import { runCli, startCli } from '../support/cli.js';
import type { RawMessage, RawRpcClient } from '../support/raw-rpc-client.js';

const uri = (p: string) => pathToFileURL(p).href;

let scratch: string;
let rw: string;
let ro: string;
let outside: string;
let agent: AgentWithClients | undefined;
let raw: RawRpcClient;
let client: ExecClient;

async function call(method: string, params: unknown): Promise<RawMessage> {
  return raw.request(method, params);
}

/** The request is refused as an escape: -32603, `permission denied: ... outside the configured roots`. */
async function expectEscape(method: string, params: unknown): Promise<RawMessage['error']> {
  const reply = await call(method, params);
  expect(reply.error, `${method} ${JSON.stringify(params)} must be refused`).toBeDefined();
  expect(reply.error).toMatchObject({ code: -32603, data: { confinement: 'outsideRoots' } });
  expect(reply.error!.message).toMatch(/^permission denied: .* outside the configured roots$/);
  return reply.error;
}

async function expectReadOnly(method: string, params: unknown): Promise<void> {
  const reply = await call(method, params);
  expect(reply.error, `${method} ${JSON.stringify(params)} must be refused`).toMatchObject({ code: -32603, data: { confinement: 'readOnlyRoot' } });
  expect(reply.error!.message).toMatch(/^permission denied: .* is in a read-only root/);
}

async function expectOk(method: string, params: unknown): Promise<any> {
  const reply = await call(method, params);
  expect(reply.error, `${method} ${JSON.stringify(params)}: ${JSON.stringify(reply.error)}`).toBeUndefined();
  return reply.result;
}

beforeAll(async () => {
  scratch = await realpath(await mkdtemp(path.join(os.tmpdir(), 'execrelay-fs-confine-')));
  rw = path.join(scratch, 'rw');
  ro = path.join(scratch, 'ro');
  outside = path.join(scratch, 'outside');
  for (const d of [path.join(rw, 'sub'), path.join(ro, 'inner'), path.join(outside, 'dir')]) await mkdir(d, { recursive: true });
  await writeFile(path.join(rw, 'file.txt'), 'inside');
  await writeFile(path.join(ro, 'ro.txt'), 'read only');
  await writeFile(path.join(outside, 'secret.txt'), 'SECRET');
  await writeFile(path.join(outside, 'dir', 'deeper-secret.txt'), 'SECRET');
  await symlink('../outside/secret.txt', path.join(rw, 'link-out-file'));
  await symlink('../outside', path.join(rw, 'link-out-dir'));
  await symlink(outside, path.join(rw, 'sub', 'abs-link-out'));
  await symlink('../outside/not-yet', path.join(rw, 'dangling-out'));
  await symlink('../outside/not-yet-dir', path.join(rw, 'dangling-out-dir'));
  await symlink('file.txt', path.join(rw, 'link-in'));
  await symlink('../ro', path.join(rw, 'link-to-ro'));
  agent = await startAgentWithClients({ roots: [parseRootSpec(rw), parseRootSpec(`${ro}:ro`)] });
  ({ raw, client } = agent);
});

afterAll(async () => {
  await agent?.stop();
  await rm(scratch, { recursive: true, force: true });
});

describe('escapes are refused', () => {
  it('an absolute path elsewhere, for every fs method', async () => {
    const secret = uri(path.join(outside, 'secret.txt'));
    await expectEscape('fs/readFile', { path: secret });
    await expectEscape('fs/readFile', { path: 'file:///etc/hostname' });
    await expectEscape('fs/writeFile', { path: uri(path.join(outside, 'new.txt')), dataBase64: 'eA==' });
    await expectEscape('fs/createDirectory', { path: uri(path.join(outside, 'newdir')) });
    await expectEscape('fs/getMetadata', { path: secret });
    await expectEscape('fs/readDirectory', { path: uri(outside) });
    await expectEscape('fs/readDirectory', { path: 'file:///' });
    await expectEscape('fs/remove', { path: secret });
    await expectEscape('fs/copy', { sourcePath: secret, destinationPath: uri(path.join(rw, 'stolen.txt')), recursive: false });
    await expectEscape('fs/copy', { sourcePath: uri(path.join(rw, 'file.txt')), destinationPath: uri(path.join(outside, 'planted.txt')), recursive: false });
    await expectEscape('fs/copy', { sourcePath: uri(rw), destinationPath: uri(path.join(outside, 'rwcopy')), recursive: true });
    await expectEscape('fs/walk', { path: uri(outside), options: { maxDepth: 5, maxDirectories: 10, maxEntries: 10 } });
    await expectEscape('fs/walk', { path: 'file:///', options: { maxDepth: 0, maxDirectories: 1, maxEntries: 10 } });
    await expectEscape('fs/open', { handleId: 'h', path: secret });
    // Nothing happened outside.
    await expect(stat(path.join(outside, 'new.txt'))).rejects.toThrow();
    await expect(stat(path.join(outside, 'planted.txt'))).rejects.toThrow();
    await expect(stat(path.join(rw, 'stolen.txt'))).rejects.toThrow();
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('SECRET');
  });

  it('`..` (plain and percent-encoded) cannot climb out of a root', async () => {
    await expectEscape('fs/readFile', { path: `${uri(rw)}/../outside/secret.txt` });
    await expectEscape('fs/readFile', { path: `${uri(rw)}/%2e%2e/outside/secret.txt` });
    await expectEscape('fs/readFile', { path: `${uri(rw)}/sub/../../outside/secret.txt` });
    await expectEscape('fs/writeFile', { path: `${uri(rw)}/../outside/x.txt`, dataBase64: 'eA==' });
    // `..` that stays inside is fine.
    const inside = await expectOk('fs/readFile', { path: `${uri(rw)}/sub/../file.txt` });
    expect(Buffer.from(inside.dataBase64, 'base64').toString()).toBe('inside');
  });

  it('a symlink that leads out (as the final component or in the middle, relative or absolute)', async () => {
    await expectEscape('fs/readFile', { path: uri(path.join(rw, 'link-out-file')) });
    await expectEscape('fs/getMetadata', { path: uri(path.join(rw, 'link-out-file')) });
    await expectEscape('fs/open', { handleId: 'h', path: uri(path.join(rw, 'link-out-file')) });
    await expectEscape('fs/readDirectory', { path: uri(path.join(rw, 'link-out-dir')) });
    await expectEscape('fs/readFile', { path: uri(path.join(rw, 'link-out-dir', 'secret.txt')) });
    await expectEscape('fs/readFile', { path: uri(path.join(rw, 'sub', 'abs-link-out', 'secret.txt')) });
    await expectEscape('fs/writeFile', { path: uri(path.join(rw, 'link-out-file')), dataBase64: 'eA==' });
    await expectEscape('fs/writeFile', { path: uri(path.join(rw, 'link-out-dir', 'planted.txt')), dataBase64: 'eA==' });
    await expectEscape('fs/createDirectory', { path: uri(path.join(rw, 'link-out-dir', 'newdir')) });
    await expectEscape('fs/remove', { path: uri(path.join(rw, 'link-out-dir', 'secret.txt')) });
    await expectEscape('fs/copy', { sourcePath: uri(path.join(rw, 'file.txt')), destinationPath: uri(path.join(rw, 'link-out-dir', 'planted.txt')), recursive: false });
    await expectEscape('fs/walk', { path: uri(path.join(rw, 'link-out-dir')), options: { maxDepth: 5, maxDirectories: 10, maxEntries: 10, followDirectorySymlinks: true } });
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('SECRET');
    await expect(stat(path.join(outside, 'planted.txt'))).rejects.toThrow();
    await expect(stat(path.join(outside, 'newdir'))).rejects.toThrow();
  });

  it('copying a symlink that points out copies the link (as codex), and reading through the copy is still refused', async () => {
    await client.fs.copy(path.join(rw, 'link-out-dir'), path.join(rw, 'copied-link'), { recursive: true });
    expect((await lstat(path.join(rw, 'copied-link'))).isSymbolicLink()).toBe(true);
    await expectEscape('fs/readFile', { path: uri(path.join(rw, 'copied-link', 'secret.txt')) });
    await expectEscape('fs/readDirectory', { path: uri(path.join(rw, 'copied-link')) });
    await client.fs.remove(path.join(rw, 'copied-link'));
  });

  it('gives the same answer whether or not the outside path exists (no existence oracle)', async () => {
    const existing = await expectEscape('fs/getMetadata', { path: uri(path.join(rw, 'link-out-dir', 'secret.txt')) });
    const missing = await expectEscape('fs/getMetadata', { path: uri(path.join(rw, 'link-out-dir', 'no-such-file')) });
    expect(existing!.message.replace('secret.txt', 'X')).toBe(missing!.message.replace('no-such-file', 'X'));
  });

  it('a dangling link that points out is replaced, never written through, and cannot be created through', async () => {
    await client.fs.writeFile(path.join(rw, 'dangling-out'), 'stays inside');
    await expect(stat(path.join(outside, 'not-yet'))).rejects.toThrow();
    expect((await lstat(path.join(rw, 'dangling-out'))).isFile()).toBe(true);
    const through = await call('fs/createDirectory', { path: uri(path.join(rw, 'dangling-out-dir', 'child')) });
    expect(through.error).toMatchObject({ code: -32004 });
    await expect(stat(path.join(outside, 'not-yet-dir'))).rejects.toThrow();
  });

  it('removing a symlink that points out removes the link only', async () => {
    await symlink('../outside/secret.txt', path.join(rw, 'to-remove'));
    await client.fs.remove(path.join(rw, 'to-remove'));
    await expect(lstat(path.join(rw, 'to-remove'))).rejects.toThrow();
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('SECRET');
  });

  it('a process cwd outside the roots, or reached through a link out, is refused', async () => {
    const start = (cwd: string, processId: string) => call('process/start', { processId, argv: ['pwd'], cwd, env: {}, tty: false });
    for (const [cwd, id] of [
      [uri(outside), 'p1'],
      [uri(path.join(rw, 'link-out-dir')), 'p2'],
      [`${uri(rw)}/../outside`, 'p3'],
      ['file:///', 'p4'],
    ] as const) {
      const reply = await start(cwd, id);
      expect(reply.error, cwd).toMatchObject({ code: -32603, data: { confinement: 'outsideRoots' } });
    }
    const handle = await client.exec(['pwd'], { cwd: path.join(rw, 'sub') });
    expect((await handle.completion).stdout.toString()).toBe(`${path.join(rw, 'sub')}\n`);
    const inRo = await client.exec(['pwd'], { cwd: ro });
    expect((await inRo.completion).exitCode).toBe(0);
  });
});

describe('read-only roots', () => {
  it('refuse every write, directly or through a link from a rw root', async () => {
    await expectReadOnly('fs/writeFile', { path: uri(path.join(ro, 'new.txt')), dataBase64: 'eA==' });
    await expectReadOnly('fs/writeFile', { path: uri(path.join(ro, 'ro.txt')), dataBase64: 'eA==' });
    await expectReadOnly('fs/writeFile', { path: uri(path.join(rw, 'link-to-ro', 'ro.txt')), dataBase64: 'eA==' });
    await expectReadOnly('fs/createDirectory', { path: uri(path.join(ro, 'newdir')) });
    await expectReadOnly('fs/remove', { path: uri(path.join(ro, 'ro.txt')) });
    await expectReadOnly('fs/remove', { path: uri(path.join(ro, 'inner')) });
    await expectReadOnly('fs/copy', { sourcePath: uri(path.join(rw, 'file.txt')), destinationPath: uri(path.join(ro, 'copied.txt')), recursive: false });
    expect(await readFile(path.join(ro, 'ro.txt'), 'utf8')).toBe('read only');
    await expect(stat(path.join(ro, 'new.txt'))).rejects.toThrow();
    await expect(stat(path.join(ro, 'newdir'))).rejects.toThrow();
  });

  it('allow reads, walks and copying out into a rw root', async () => {
    expect((await client.fs.readFile(path.join(ro, 'ro.txt'))).toString()).toBe('read only');
    expect((await client.fs.readFile(path.join(rw, 'link-to-ro', 'ro.txt'))).toString()).toBe('read only');
    expect((await client.fs.walk(ro)).entries.map((e) => path.basename(fileURLToPath(e.path)))).toEqual(['inner', 'ro.txt']);
    await client.fs.copy(path.join(ro, 'ro.txt'), path.join(rw, 'from-ro.txt'));
    expect(await readFile(path.join(rw, 'from-ro.txt'), 'utf8')).toBe('read only');
  });

  it('a root itself cannot be removed', async () => {
    const reply = await call('fs/remove', { path: uri(rw) });
    expect(reply.error).toMatchObject({ code: -32603, data: { confinement: 'rootRemoval' } });
    expect((await stat(rw)).isDirectory()).toBe(true);
  });
});

describe('nothing outside the roots leaks', () => {
  it('a walk that follows symlinks yields only entries inside the roots, and says which links it did not follow', async () => {
    const result = await client.fs.walk(rw, { followDirectorySymlinks: true });
    const real = async (p: string) => realpath(p).catch(() => p);
    for (const entry of result.entries) {
      const native = fileURLToPath(entry.path);
      expect(isInside(native, rw), native).toBe(true);
      const resolved = await real(native);
      expect(isInside(resolved, rw) || isInside(resolved, ro), `${native} -> ${resolved}`).toBe(true);
    }
    const names = result.entries.map((e) => path.relative(rw, fileURLToPath(e.path)));
    expect(names).toContain('link-to-ro/ro.txt'); // a link into another root is followed
    expect(names.some((n) => n.includes('secret'))).toBe(false);
    expect(result.errors).toEqual([
      { path: uri(path.join(rw, 'link-out-dir')), message: 'not followed: the symbolic link leads outside the configured roots' },
      { path: uri(path.join(rw, 'sub', 'abs-link-out')), message: 'not followed: the symbolic link leads outside the configured roots' },
    ]);
  });

  it('a directory listing names a link that points out but says nothing about its target', async () => {
    const entries = await client.fs.readDirectory(rw);
    expect(entries.find((e) => e.fileName === 'link-out-dir')).toEqual({ fileName: 'link-out-dir', isDirectory: false, isFile: false });
    expect(entries.find((e) => e.fileName === 'link-out-file')).toEqual({ fileName: 'link-out-file', isDirectory: false, isFile: false });
    expect(entries.find((e) => e.fileName === 'link-in')).toEqual({ fileName: 'link-in', isDirectory: false, isFile: true });
  });
});

describe('--root on the command line', () => {
  it('parses PATH, PATH:ro and PATH:rw and refuses relative paths', () => {
    expect(parseRootSpec('/srv/a')).toEqual({ path: '/srv/a', access: 'rw' });
    expect(parseRootSpec('/srv/a:ro')).toEqual({ path: '/srv/a', access: 'ro' });
    expect(parseRootSpec('/srv/a:b:rw')).toEqual({ path: '/srv/a:b', access: 'rw' });
    expect(() => parseRootSpec('srv:ro')).toThrow(/absolute/);
  });

  it('logs the roots at startup, or that the whole filesystem is served', async () => {
    const confined = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--root', rw, '--root', `${ro}:ro`], { EXECRELAY_LOG_LEVEL: 'info' });
    const open = await startCli(['agent', '--listen', 'ws://127.0.0.1:0'], { EXECRELAY_LOG_LEVEL: 'info' });
    const fromEnv = await startCli(['agent', '--listen', 'ws://127.0.0.1:0'], { EXECRELAY_LOG_LEVEL: 'info', EXECRELAY_ROOTS: `${rw},${ro}:ro` });
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(confined.stderr()).toContain(`fs methods and process cwd confined to ${rw} [rw], ${ro} [ro]`);
      expect(fromEnv.stderr()).toContain(`fs methods and process cwd confined to ${rw} [rw], ${ro} [ro]`);
      expect(open.stderr()).toContain('no --root configured: fs methods and process cwd reach the whole filesystem');
      const refused = await runCli(['cat', '--url', confined.firstLine, path.join(outside, 'secret.txt')]);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toMatch(/permission denied: .*outside the configured roots \(code -32603\)/);
      const allowed = await runCli(['cat', '--url', open.firstLine, path.join(outside, 'secret.txt')]);
      expect(allowed.stdout).toBe('SECRET');
    } finally {
      await Promise.all([confined.stop(), open.stop(), fromEnv.stop()]);
    }
  });

  it('refuses to start with a root that does not exist', async () => {
    const result = await runCli(['agent', '--listen', 'ws://127.0.0.1:0', '--root', path.join(scratch, 'missing')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/root .*missing cannot be used/);
  });
});
