/**
 * Every fs method against a real agent over loopback, on real temp files: results, the documented
 * error codes (missing path, file-vs-directory mismatch, bad base64, relative and native paths),
 * atomic writes, file handles, and the walk/cat/put CLI.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../../src/client/exec-client.js';
import { FS_LIMITS } from '../../src/protocol/fs.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { CLI_PATH, runCli } from '../support/cli.js';
import { RawRpcClient, type RawMessage } from '../support/raw-rpc-client.js';
import { startCodexWireAgentWithRelay } from '../support/codex-wire-agent.js';

const uri = (p: string) => pathToFileURL(p).href;
const b64 = (data: string | Buffer) => Buffer.from(data).toString('base64');

let running: RunningAgent;
let raw: RawRpcClient;
let client: ExecClient;
let dir: string;
/** The target agent's process (file descriptors are counted in /proc/PID/fd) and its raw connections. */
let target: { pid: number; connectRaw(): Promise<RawRpcClient> };
const dirs: string[] = [];

/** One request on the raw wire: its result, or its error. */
async function call(method: string, params: unknown): Promise<RawMessage> {
  const reply = await raw.request(method, params);
  if (reply.error) expect(reply.error.message).not.toMatch(/\n\s+at /); // never a stack trace
  return reply;
}

async function expectError(method: string, params: unknown, code: number, message?: string | RegExp): Promise<void> {
  const reply = await call(method, params);
  expect(reply.error, `${method} ${JSON.stringify(params)} should fail`).toBeDefined();
  expect(reply.error!.code).toBe(code);
  if (typeof message === 'string') expect(reply.error!.message).toBe(message);
  else if (message) expect(reply.error!.message).toMatch(message);
}

async function expectResult(method: string, params: unknown): Promise<any> {
  const reply = await call(method, params);
  expect(reply.error, `${method} ${JSON.stringify(params)}: ${JSON.stringify(reply.error)}`).toBeUndefined();
  return reply.result;
}

const ENOENT = 'No such file or directory (os error 2)';

/** Runs the built CLI and returns its raw stdout (the agent lives in this process, so never block it). */
async function cliBytes(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Buffer> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI_PATH, ...args], {
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...env },
    encoding: 'buffer',
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}
const ENOTDIR = 'Not a directory (os error 20)';

/** A fresh tree for one target (the methods below change it). */
async function makeTree(): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'execrelay-fs-methods-'));
  dirs.push(root);
  await writeFile(path.join(root, 'f.txt'), 'hello\n');
  await mkdir(path.join(root, 'd', 'sub'), { recursive: true });
  await writeFile(path.join(root, 'd', 'a.txt'), 'a');
  await writeFile(path.join(root, 'd', 'sub', 'deep.txt'), 'deep');
  await symlink('f.txt', path.join(root, 'link'));
  await symlink('d', path.join(root, 'dlink'));
  await symlink('nowhere', path.join(root, 'dangling'));
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  return root;
}

beforeAll(async () => {
  running = await startAgent({ sessionRetentionMs: 200 });
});

afterAll(async () => {
  await running?.stop();
  for (const root of dirs) await rm(root, { recursive: true, force: true });
});

/** Where the fs methods run: this process's agent on a direct WebSocket, or an `execrelay agent --wire codex` process through the relay. */
const TARGETS: Array<{ name: string; start: () => Promise<{ pid: number; connectRaw(): Promise<RawRpcClient>; connectClient(): Promise<ExecClient>; stop(): Promise<void> }> }> = [
  {
    name: 'direct WebSocket',
    start: async () => ({ pid: process.pid, connectRaw: () => RawRpcClient.connect(running.url), connectClient: () => ExecClient.connect(running.url), stop: async () => undefined }),
  },
  {
    name: 'codex wire through the relay',
    async start() {
      const agent = await startCodexWireAgentWithRelay('fs-methods-codex', ['--session-retention-ms', '200']);
      return { pid: agent.pid, connectRaw: () => agent.connectRaw(), connectClient: () => agent.connectClient(), stop: () => agent.stop() };
    },
  },
];

// The describes below run once per target (left unindented to keep this change small).
describe.each(TARGETS)('fs methods ($name)', ({ start }) => {
let stopTarget: () => Promise<void>;

beforeAll(async () => {
  const started = await start();
  stopTarget = () => started.stop();
  target = started;
  dir = await makeTree();
  raw = await started.connectRaw();
  await raw.initialize();
  client = await started.connectClient();
});

afterAll(async () => {
  raw?.close();
  client?.close();
  await stopTarget?.();
});

describe('paths', () => {
  it('refuses native, relative and non-local paths with -32602 on every method', async () => {
    const native = path.join(dir, 'f.txt');
    const methods: Array<[string, (p: string) => unknown]> = [
      ['fs/readFile', (p) => ({ path: p })],
      ['fs/writeFile', (p) => ({ path: p, dataBase64: 'eA==' })],
      ['fs/createDirectory', (p) => ({ path: p })],
      ['fs/getMetadata', (p) => ({ path: p })],
      ['fs/readDirectory', (p) => ({ path: p })],
      ['fs/remove', (p) => ({ path: p })],
      ['fs/copy', (p) => ({ sourcePath: p, destinationPath: uri(path.join(dir, 'x')), recursive: false })],
      ['fs/walk', (p) => ({ path: p, options: { maxDepth: 1, maxDirectories: 1, maxEntries: 1 } })],
      ['fs/open', (p) => ({ handleId: 'h', path: p })],
    ];
    for (const [method, params] of methods) {
      await expectError(method, params(native), -32602, /expected a file:\/\/ URI, got a native path/);
      await expectError(method, params('f.txt'), -32602, /expected an absolute file:\/\/ URI/);
      await expectError(method, params('file:f.txt'), -32602, /expected an absolute file:\/\/ URI/);
      await expectError(method, params('file://elsewhere/etc/hostname'), -32602, /remote host/);
    }
    await expectError('fs/readFile', {}, -32602, 'invalid params: path: missing required field (expected string)');
  });

  it('accepts file://localhost, percent-encoding, and an ignored sandbox member', async () => {
    await writeFile(path.join(dir, 'sp ace é.txt'), 'spaced');
    const result = await expectResult('fs/readFile', { path: `file://localhost${pathToFileURL(path.join(dir, 'sp ace é.txt')).pathname}`, sandbox: { permissions: 'whatever' } });
    expect(Buffer.from(result.dataBase64, 'base64').toString()).toBe('spaced');
  });
});

describe('fs/readFile', () => {
  it('reads bytes exactly and follows symlinks', async () => {
    const bytes = randomBytes(70_000);
    await writeFile(path.join(dir, 'bin'), bytes);
    expect(Buffer.compare(await client.fs.readFile(path.join(dir, 'bin')), bytes)).toBe(0);
    expect((await client.fs.readFile(path.join(dir, 'link'))).toString()).toBe('hello\n');
    expect((await client.fs.readFile(uri(path.join(dir, 'd', '..', 'f.txt')))).toString()).toBe('hello\n');
  });

  it('gives -32004 for a missing path, -32600 for a directory or FIFO, -32603 under a file', async () => {
    await expectError('fs/readFile', { path: uri(path.join(dir, 'missing')) }, -32004, ENOENT);
    await expectError('fs/readFile', { path: uri(path.join(dir, 'dangling')) }, -32004, ENOENT);
    await expectError('fs/readFile', { path: uri(path.join(dir, 'd')) }, -32600, `path \`${path.join(dir, 'd')}\` is not a file`);
    await expectError('fs/readFile', { path: uri(path.join(dir, 'fifo')) }, -32600, /is not a file/); // and does not hang
    await expectError('fs/readFile', { path: uri(path.join(dir, 'f.txt', 'x')) }, -32603, ENOTDIR);
  });

  it('refuses a file too large for one message with -32600, pointing at fs/open', async () => {
    const small = await startAgent({ maxMessageBytes: 64 * 1024 });
    const smallClient = await ExecClient.connect(small.url);
    try {
      await writeFile(path.join(dir, 'big'), Buffer.alloc(60_000));
      await expect(smallClient.fs.readFile(path.join(dir, 'big'))).rejects.toMatchObject({ code: -32600, message: expect.stringMatching(/too large.*fs\/open/) });
      expect((await smallClient.fs.readFile(path.join(dir, 'f.txt'))).toString()).toBe('hello\n');
    } finally {
      smallClient.close();
      await small.stop();
    }
  });
});

describe('fs/writeFile', () => {
  it('creates and replaces files atomically, leaving no temporary file and keeping the mode', async () => {
    const target = path.join(dir, 'w.txt');
    await client.fs.writeFile(target, 'first');
    expect(await readFile(target, 'utf8')).toBe('first');
    await chmod(target, 0o640);
    const before = await stat(target);
    await client.fs.writeFile(target, Buffer.from([0, 1, 2, 255]));
    const after = await stat(target);
    expect([...(await readFile(target))]).toEqual([0, 1, 2, 255]);
    expect(after.ino).not.toBe(before.ino); // replaced by rename, not rewritten in place
    expect(after.mode & 0o777).toBe(0o640);
    expect((await readdir(dir)).filter((n) => n.includes('.execrelay-'))).toEqual([]);
  });

  it('writes through a symlink to its target, keeping the link', async () => {
    await writeFile(path.join(dir, 'target.txt'), 'old');
    await symlink('target.txt', path.join(dir, 'to-target'));
    await client.fs.writeFile(path.join(dir, 'to-target'), 'new');
    expect((await lstat(path.join(dir, 'to-target'))).isSymbolicLink()).toBe(true);
    expect(await readFile(path.join(dir, 'target.txt'), 'utf8')).toBe('new');
  });

  it('refuses bad base64 with -32600 (as codex) and names the missing field with -32602', async () => {
    for (const bad of ['***', 'aGk', 'aG k=', 'aGk=x']) {
      await expectError('fs/writeFile', { path: uri(path.join(dir, 'never.txt')), dataBase64: bad }, -32600, 'fs/writeFile requires valid base64 dataBase64: not valid base64');
    }
    await expectError('fs/writeFile', { path: uri(path.join(dir, 'never.txt')) }, -32602, /dataBase64: missing required field/);
    await expect(stat(path.join(dir, 'never.txt'))).rejects.toThrow();
  });

  it('gives -32004 for a missing parent, -32603 for a directory or a path under a file', async () => {
    await expectError('fs/writeFile', { path: uri(path.join(dir, 'nodir', 'w.txt')), dataBase64: 'eA==' }, -32004, ENOENT);
    await expectError('fs/writeFile', { path: uri(path.join(dir, 'd')), dataBase64: 'eA==' }, -32603, 'Is a directory (os error 21)');
    await expectError('fs/writeFile', { path: uri(path.join(dir, 'f.txt', 'x')), dataBase64: 'eA==' }, -32603, ENOTDIR);
    expect((await readdir(dir)).filter((n) => n.includes('.execrelay-'))).toEqual([]);
  });
});

describe('fs/createDirectory', () => {
  it('is recursive by default and accepts an existing directory', async () => {
    await expectResult('fs/createDirectory', { path: uri(path.join(dir, 'm', 'n', 'o')) });
    expect((await stat(path.join(dir, 'm', 'n', 'o'))).isDirectory()).toBe(true);
    await expectResult('fs/createDirectory', { path: uri(path.join(dir, 'm')) });
    await expectResult('fs/createDirectory', { path: uri(path.join(dir, 'm')), recursive: true });
  });

  it('gives -32603 for an existing entry without recursive or a file, -32004 for a missing parent', async () => {
    await expectError('fs/createDirectory', { path: uri(path.join(dir, 'm')), recursive: false }, -32603, 'File exists (os error 17)');
    await expectError('fs/createDirectory', { path: uri(path.join(dir, 'f.txt')), recursive: true }, -32603, 'File exists (os error 17)');
    await expectError('fs/createDirectory', { path: uri(path.join(dir, 'f.txt')), recursive: false }, -32603, 'File exists (os error 17)');
    await expectError('fs/createDirectory', { path: uri(path.join(dir, 'p', 'q')), recursive: false }, -32004, ENOENT);
    await expectError('fs/createDirectory', { path: uri(path.join(dir, 'f.txt', 'sub')), recursive: true }, -32603, ENOTDIR);
  });
});

describe('fs/getMetadata', () => {
  it('describes files, directories, symlinks (followed) and special files', async () => {
    const fileStats = await stat(path.join(dir, 'f.txt'));
    expect(await client.fs.getMetadata(path.join(dir, 'f.txt'))).toEqual({
      isDirectory: false,
      isFile: true,
      isSymlink: false,
      size: 6,
      createdAtMs: fileStats.birthtimeMs > 0 ? Math.floor(fileStats.birthtimeMs) : 0,
      modifiedAtMs: Math.floor(fileStats.mtimeMs),
    });
    expect(await client.fs.getMetadata(path.join(dir, 'd'))).toMatchObject({ isDirectory: true, isFile: false, isSymlink: false });
    expect(await client.fs.getMetadata(path.join(dir, 'link'))).toMatchObject({ isDirectory: false, isFile: true, isSymlink: true, size: 6 });
    expect(await client.fs.getMetadata(path.join(dir, 'dlink'))).toMatchObject({ isDirectory: true, isFile: false, isSymlink: true });
    expect(await client.fs.getMetadata(path.join(dir, 'fifo'))).toMatchObject({ isDirectory: false, isFile: false, isSymlink: false, size: 0 });
  });

  it('gives -32004 for a missing path or dangling link, -32603 under a file', async () => {
    await expectError('fs/getMetadata', { path: uri(path.join(dir, 'missing')) }, -32004, ENOENT);
    await expectError('fs/getMetadata', { path: uri(path.join(dir, 'dangling')) }, -32004, ENOENT);
    await expectError('fs/getMetadata', { path: uri(path.join(dir, 'f.txt', 'x')) }, -32603, ENOTDIR);
  });
});

describe('fs/readDirectory', () => {
  it('lists entries with symlinks followed and dangling links left out', async () => {
    const listing = readdirSync(path.join(dir, 'd'));
    expect((await client.fs.readDirectory(path.join(dir, 'd'))).map((e) => e.fileName).sort()).toEqual(listing.sort());
    const top = await client.fs.readDirectory(dir);
    const byName = new Map(top.map((e) => [e.fileName, e]));
    expect(byName.get('link')).toEqual({ fileName: 'link', isDirectory: false, isFile: true });
    expect(byName.get('dlink')).toEqual({ fileName: 'dlink', isDirectory: true, isFile: false });
    expect(byName.get('fifo')).toEqual({ fileName: 'fifo', isDirectory: false, isFile: false });
    expect(byName.has('dangling')).toBe(false);
    expect((await client.fs.readDirectory(path.join(dir, 'dlink'))).map((e) => e.fileName).sort()).toEqual(['a.txt', 'sub']);
  });

  it('gives -32603 for a file and -32004 for a missing path', async () => {
    await expectError('fs/readDirectory', { path: uri(path.join(dir, 'f.txt')) }, -32603, ENOTDIR);
    await expectError('fs/readDirectory', { path: uri(path.join(dir, 'missing')) }, -32004, ENOENT);
  });
});

describe('fs/remove', () => {
  it('is recursive and forced by default, and removes a symlink rather than its target', async () => {
    await mkdir(path.join(dir, 'r', 'x'), { recursive: true });
    await writeFile(path.join(dir, 'r', 'x', 'y'), 'y');
    await expectResult('fs/remove', { path: uri(path.join(dir, 'r')) });
    await expect(stat(path.join(dir, 'r'))).rejects.toThrow();
    await expectResult('fs/remove', { path: uri(path.join(dir, 'r')) });
    await symlink('d', path.join(dir, 'dlink2'));
    await client.fs.remove(path.join(dir, 'dlink2'));
    expect(await readFile(path.join(dir, 'd', 'a.txt'), 'utf8')).toBe('a');
  });

  it('gives -32004 without force, -32603 for a non-empty directory without recursive or a path under a file', async () => {
    await expectError('fs/remove', { path: uri(path.join(dir, 'missing')), force: false }, -32004, ENOENT);
    await expectError('fs/remove', { path: uri(path.join(dir, 'd')), recursive: false }, -32603, 'Directory not empty (os error 39)');
    await expectError('fs/remove', { path: uri(path.join(dir, 'f.txt', 'x')), force: true }, -32603, ENOTDIR);
    await mkdir(path.join(dir, 'empty'));
    await expectResult('fs/remove', { path: uri(path.join(dir, 'empty')), recursive: false });
  });
});

describe('fs/copy', () => {
  it('copies and overwrites files, copies directories recursively with symlinks as links', async () => {
    await client.fs.copy(path.join(dir, 'f.txt'), path.join(dir, 'copy.txt'));
    await client.fs.copy(path.join(dir, 'd', 'a.txt'), path.join(dir, 'copy.txt'));
    expect(await readFile(path.join(dir, 'copy.txt'), 'utf8')).toBe('a');
    await symlink('../f.txt', path.join(dir, 'd', 'uplink'));
    await client.fs.copy(path.join(dir, 'd'), path.join(dir, 'dcopy'), { recursive: true });
    expect(await readFile(path.join(dir, 'dcopy', 'sub', 'deep.txt'), 'utf8')).toBe('deep');
    expect(await readlink(path.join(dir, 'dcopy', 'uplink'))).toBe('../f.txt');
    await client.fs.copy(path.join(dir, 'link'), path.join(dir, 'linkcopy'));
    expect(await readlink(path.join(dir, 'linkcopy'))).toBe('f.txt');
  });

  it('refuses a directory without recursive or into itself with -32600', async () => {
    const params = (to: string, recursive: boolean) => ({ sourcePath: uri(path.join(dir, 'd')), destinationPath: uri(to), recursive });
    await expectError('fs/copy', params(path.join(dir, 'd2'), false), -32600, 'fs/copy requires recursive: true when sourcePath is a directory');
    for (const into of [path.join(dir, 'd'), path.join(dir, 'd', 'sub', 'inner'), path.join(dir, 'dlink', 'inner')]) {
      await expectError('fs/copy', params(into, true), -32600, 'fs/copy cannot copy a directory to itself or one of its descendants');
    }
    await expect(stat(path.join(dir, 'd', 'sub', 'inner'))).rejects.toThrow();
  });

  it('gives -32004 for a missing source or parent, -32603 onto a directory, -32600 for a FIFO, -32602 without recursive', async () => {
    const copy = (from: string, to: string, recursive = false) => ({ sourcePath: uri(from), destinationPath: uri(to), recursive });
    await expectError('fs/copy', copy(path.join(dir, 'missing'), path.join(dir, 'x'), true), -32004, ENOENT);
    await expectError('fs/copy', copy(path.join(dir, 'f.txt'), path.join(dir, 'nodir', 'x')), -32004, ENOENT);
    await expectError('fs/copy', copy(path.join(dir, 'f.txt'), path.join(dir, 'd')), -32603, 'Is a directory (os error 21)');
    await expectError('fs/copy', copy(path.join(dir, 'fifo'), path.join(dir, 'fifo2'), true), -32600, 'fs/copy only supports regular files, directories, and symlinks');
    await expectError('fs/copy', { sourcePath: uri(path.join(dir, 'f.txt')), destinationPath: uri(path.join(dir, 'c2')) }, -32602, /recursive: missing required field/);
  });
});

describe('fs/open, fs/readBlock, fs/close', () => {
  it('reads blocks with codex eof semantics', async () => {
    await expectResult('fs/open', { handleId: 'h1', path: uri(path.join(dir, 'f.txt')) });
    expect(await expectResult('fs/readBlock', { handleId: 'h1', offset: 1, len: 3 })).toEqual({ chunk: b64('ell'), eof: false });
    expect(await expectResult('fs/readBlock', { handleId: 'h1', offset: 3, len: 100 })).toEqual({ chunk: b64('lo\n'), eof: true });
    expect(await expectResult('fs/readBlock', { handleId: 'h1', offset: 0, len: 6 })).toEqual({ chunk: b64('hello\n'), eof: false });
    expect(await expectResult('fs/readBlock', { handleId: 'h1', offset: 100, len: 10 })).toEqual({ chunk: '', eof: true });
    await expectError('fs/readBlock', { handleId: 'h1', offset: 0, len: 0 }, -32600, 'file read block length must be between 1 and 1048576');
    await expectError('fs/readBlock', { handleId: 'h1', offset: 0, len: FS_LIMITS.maxReadBlockBytes + 1 }, -32600, /between 1 and 1048576/);
    await expectError('fs/readBlock', { handleId: 'h1', offset: -1, len: 3 }, -32602, /offset/);
    await expectError('fs/open', { handleId: 'h1', path: uri(path.join(dir, 'f.txt')) }, -32600, 'file handle `h1` already exists');
    await expectResult('fs/close', { handleId: 'h1' });
    await expectResult('fs/close', { handleId: 'h1' });
    await expectError('fs/readBlock', { handleId: 'h1', offset: 0, len: 3 }, -32004, 'unknown file handle `h1`');
  });

  it('refuses directories and FIFOs with -32600, missing files with -32004', async () => {
    await expectError('fs/open', { handleId: 'hd', path: uri(path.join(dir, 'd')) }, -32600, /is not a file/);
    await expectError('fs/open', { handleId: 'hf', path: uri(path.join(dir, 'fifo')) }, -32600, /is not a file/);
    await expectError('fs/open', { handleId: 'hm', path: uri(path.join(dir, 'missing')) }, -32004, ENOENT);
    await expectError('fs/open', { path: uri(path.join(dir, 'f.txt')) }, -32602, /handleId/);
  });

  it('streams a large file exactly with readStream', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(path.join(dir, 'large.bin'), bytes);
    const chunks: Buffer[] = [];
    for await (const chunk of client.fs.readStream(path.join(dir, 'large.bin'))) chunks.push(chunk);
    expect(chunks.length).toBe(4);
    expect(Buffer.compare(Buffer.concat(chunks), bytes)).toBe(0);
  });

  it('bounds open handles per session and closes them when the session ends', async () => {
    const fdCount = () => readdirSync(`/proc/${target.pid}/fd`).length;
    const baseline = fdCount();
    const session = await target.connectRaw();
    await session.initialize();
    for (let i = 0; i < FS_LIMITS.maxOpenFileHandles; i++) {
      const reply = await session.request('fs/open', { handleId: `h${i}`, path: uri(path.join(dir, 'f.txt')) });
      expect(reply.error).toBeUndefined();
    }
    const over = await session.request('fs/open', { handleId: 'one-more', path: uri(path.join(dir, 'f.txt')) });
    expect(over.error).toEqual({ code: -32600, message: 'at most 128 file handles may be open per session' });
    expect(fdCount()).toBeGreaterThanOrEqual(baseline + FS_LIMITS.maxOpenFileHandles);
    session.close(); // the session ends after the 200 ms retention
    const deadline = Date.now() + 5_000;
    while (fdCount() > baseline + 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fdCount()).toBeLessThanOrEqual(baseline + 5);
  });
});

});

describe('execrelay walk, cat and put', () => {
  it('cat writes small and streamed large files byte for byte', async () => {
    const small = randomBytes(1000);
    await writeFile(path.join(dir, 'small.bin'), small);
    const out = await cliBytes(['cat', '--url', running.url, path.join(dir, 'small.bin')]);
    expect(Buffer.compare(out, small)).toBe(0);
    const large = randomBytes(2 * 1024 * 1024 + 5);
    await writeFile(path.join(dir, 'large2.bin'), large);
    const streamed = await cliBytes(['cat', path.join(dir, 'large2.bin')], { EXECRELAY_URL: running.url });
    expect(Buffer.compare(streamed, large)).toBe(0);
    const missing = await runCli(['cat', '--url', running.url, path.join(dir, 'missing')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`execrelay cat: ${path.join(dir, 'missing')}: No such file or directory (os error 2) (code -32004)\n`);
  });

  it('put writes a local file or stdin', async () => {
    await writeFile(path.join(dir, 'local.txt'), 'from a file');
    expect((await runCli(['put', '--url', running.url, path.join(dir, 'local.txt'), path.join(dir, 'put1.txt')])).code).toBe(0);
    expect(await readFile(path.join(dir, 'put1.txt'), 'utf8')).toBe('from a file');
    const viaStdin = await runCli(['put', '-', uri(path.join(dir, 'put2.txt'))], { input: 'from stdin', env: { EXECRELAY_URL: running.url } });
    expect(viaStdin.code).toBe(0);
    expect(await readFile(path.join(dir, 'put2.txt'), 'utf8')).toBe('from stdin');
    const relative = await runCli(['put', '--url', running.url, '-', 'relative.txt'], { input: 'x' });
    expect(relative.code).toBe(255);
    expect(relative.stderr).toMatch(/must be absolute/);
    const intoMissing = path.join(dir, 'no-such-dir', 'put3.txt');
    const missingDirectory = await runCli(['put', '--url', running.url, '-', intoMissing], { input: 'x' });
    expect(missingDirectory.code).toBe(1);
    expect(missingDirectory.stderr).toMatch(new RegExp(`^execrelay put: ${intoMissing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*No such file or directory`));
    const missingLocal = await runCli(['put', '--url', running.url, path.join(dir, 'no-such-local'), path.join(dir, 'put4.txt')]);
    expect(missingLocal.code).toBe(1);
    expect(missingLocal.stderr).toMatch(new RegExp(`^execrelay put: .*${path.join(dir, 'no-such-local').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('put streams a file larger than one message (the old 64 MiB cap), from a file and from stdin', async () => {
    const big = randomBytes(70 * 1024 * 1024 + 3);
    await writeFile(path.join(dir, 'big-local.bin'), big);
    const fromFile = await runCli(['put', '--url', running.url, path.join(dir, 'big-local.bin'), path.join(dir, 'big-put1.bin')], { timeoutMs: 120_000 });
    expect(fromFile).toMatchObject({ code: 0, stderr: '' });
    expect(Buffer.compare(await readFile(path.join(dir, 'big-put1.bin')), big)).toBe(0);
    const fromStdin = await runCli(['put', '--url', running.url, '-', path.join(dir, 'big-put2.bin')], { input: big, timeoutMs: 120_000 });
    expect(fromStdin).toMatchObject({ code: 0, stderr: '' });
    expect(Buffer.compare(await readFile(path.join(dir, 'big-put2.bin')), big)).toBe(0);
    const empty = await runCli(['put', '--url', running.url, '-', path.join(dir, 'empty-put.bin')], { input: '' });
    expect(empty.code).toBe(0);
    expect((await readFile(path.join(dir, 'empty-put.bin'))).length).toBe(0);
  }, 180_000);

  it('walk prints one path per line, honours its flags and env vars, and reports truncation', async () => {
    const result = await runCli(['walk', '--url', running.url, path.join(dir, 'd')]);
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n').filter(Boolean)).toEqual([
      path.join(dir, 'd', 'a.txt'),
      path.join(dir, 'd', 'sub') + '/',
      path.join(dir, 'd', 'sub', 'deep.txt'),
    ]);
    const shallow = await runCli(['walk', path.join(dir, 'd')], { env: { EXECRELAY_URL: running.url, EXECRELAY_WALK_MAX_DEPTH: '0' } });
    expect(shallow.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    const truncated = await runCli(['walk', '--url', running.url, '--max-entries', '1', '--json', path.join(dir, 'd')]);
    expect(truncated.code).toBe(1);
    expect(JSON.parse(truncated.stdout)).toMatchObject({ truncated: true, entries: [{ path: uri(path.join(dir, 'd', 'a.txt')), kind: 'file' }] });
    expect(truncated.stderr).toMatch(/truncated/);
  });
});
