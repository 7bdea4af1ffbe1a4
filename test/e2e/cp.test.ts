import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, runCli, startCli } from '../support/cli.js';
import { ONE_MESSAGE_WRITE_MAX_BYTES } from '../../src/client/file-transfer.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { startCodexExecServer, type CodexExecServer } from '../support/codex-exec-server.js';
import { sha256OfFile, temporaryFiles, writeRandomFile } from '../support/file-fixtures.js';
import { startNamedRelayEnvironment, type NamedRelayEnvironment } from '../support/named-relay-environment.js';
import { RawRpcClient } from '../support/raw-rpc-client.js';
import { startUnprivilegedAgent } from '../support/unprivileged-agent.js';

type Running = Awaited<ReturnType<typeof startCli>>;

const MiB = 1024 * 1024;

/**
 * `execrelay cp` with real processes: a relay, an agent registered with it (reached as the named
 * environment `box`), an agent listening directly (reached with `--url` and `:PATH`, confined to
 * `--root work --root ref:ro`), and the built CLI as the client. The 1 GiB copy through the relay
 * with its memory bounds and the 2,000-file tree are long suites: `test/long/cp-1gib.test.ts`,
 * `test/long/cp-tree.test.ts`.
 */
describe('execrelay cp', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-cp-'));
  const work = path.join(dir, 'work');
  const ref = path.join(dir, 'ref');
  const outside = path.join(dir, 'outside');
  const local = path.join(dir, 'local');
  let named: NamedRelayEnvironment;
  let directAgent: Running;
  let env: NodeJS.ProcessEnv;
  let direct: string[];

  beforeAll(async () => {
    for (const directory of [work, ref, outside, local]) mkdirSync(directory);
    named = await startNamedRelayEnvironment(dir, 'box');
    directAgent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--root', work, '--root', `${ref}:ro`, '--session-retention-ms', '500'], {
      EXECRELAY_LOG_LEVEL: 'warn',
    });
    env = named.env;
    direct = ['--url', directAgent.firstLine];
  });

  afterAll(async () => {
    await named?.stop();
    await directAgent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies through the relay and directly into a directory, several sources at once, and replaces an existing file atomically', async () => {
    writeFileSync(path.join(local, 'one.txt'), 'one\n');
    writeFileSync(path.join(local, 'two.txt'), 'two\n');
    const target = path.join(work, 'several');
    mkdirSync(target);
    expect(await runCli(['cp', path.join(local, 'one.txt'), path.join(local, 'two.txt'), `box:${target}`], { env })).toMatchObject({ code: 0, stderr: '' });
    expect(readFileSync(path.join(target, 'two.txt'), 'utf8')).toBe('two\n');
    writeFileSync(path.join(local, 'one.txt'), 'one, again\n');
    chmodSync(path.join(target, 'one.txt'), 0o600);
    expect(await runCli(['cp', ...direct, path.join(local, 'one.txt'), `:${path.join(target, 'one.txt')}`])).toMatchObject({ code: 0, stderr: '' });
    expect(readFileSync(path.join(target, 'one.txt'), 'utf8')).toBe('one, again\n');
    expect(statSync(path.join(target, 'one.txt')).mode & 0o777).toBe(0o600); // an existing file keeps its mode
    const down = path.join(local, 'down');
    mkdirSync(down);
    expect(await runCli(['cp', `box:${path.join(target, 'one.txt')}`, `box:${path.join(target, 'two.txt')}`, down], { env })).toMatchObject({ code: 0, stderr: '' });
    expect(readdirSync(down).sort()).toEqual(['one.txt', 'two.txt']);
    expect(readFileSync(path.join(down, 'one.txt'), 'utf8')).toBe('one, again\n');
  });

  it('names the path in every error and exits 1; copies the other sources', async () => {
    const small = path.join(local, 'small.txt');
    writeFileSync(small, 'small\n');
    writeFileSync(path.join(work, 'file.txt'), 'a file\n');
    mkdirSync(path.join(local, 'a-dir'), { recursive: true });
    const cases: Array<[string[], string]> = [
      [[path.join(local, 'nope'), `:${work}/`], `${path.join(local, 'nope')}: No such file or directory`],
      [[`:${path.join(work, 'nope')}`, local], `:${path.join(work, 'nope')}: No such file or directory (os error 2) (code -32004)`],
      [[small, `:${path.join(work, 'absent', 'x')}`], `:${path.join(work, 'absent', 'x')}: the destination directory :${path.join(work, 'absent')} does not exist`],
      [[`:${path.join(work, 'file.txt')}`, path.join(local, 'absent', 'x')], `${path.join(local, 'absent', 'x')}: the destination directory ${path.join(local, 'absent')} does not exist`],
      [[small, small, `:${path.join(work, 'file.txt')}`], `:${path.join(work, 'file.txt')}: Not a directory (several sources need a directory)`],
      [[small, small, `:${path.join(work, 'missing-dir')}`], `:${path.join(work, 'missing-dir')}: No such file or directory (several sources need an existing directory)`],
      [[small, `:${path.join(work, 'file.txt', 'x')}`], `:${path.join(work, 'file.txt', 'x')}: Not a directory (os error 20) (code -32603)`],
      [['-r', path.join(local, 'a-dir'), `:${path.join(work, 'file.txt')}`], `:${path.join(work, 'file.txt')}: Not a directory (cannot copy a directory onto a file)`],
      [[path.join(local, 'a-dir'), `:${work}`], `${path.join(local, 'a-dir')}: Is a directory (copy a tree with -r)`],
      [[`:${work}`, local], `:${work}: Is a directory (copy a tree with -r)`],
      [[small, `:${path.join(outside, 'x')}`], `:${path.join(outside, 'x')}: permission denied: ${path.join(outside, 'x')} is outside the configured roots (code -32603)`],
      [[small, `:${path.join(ref, 'x')}`], `:${path.join(ref, 'x')}: permission denied: ${path.join(ref, 'x')} is in a read-only root (${ref}) (code -32603)`],
      [[`:${path.join(outside, 'x')}`, local], `:${path.join(outside, 'x')}: permission denied: ${path.join(outside, 'x')} is outside the configured roots (code -32603)`],
    ];
    for (const [operands, message] of cases) {
      const result = await runCli(['cp', ...direct, ...operands]);
      expect({ operands, code: result.code, stderr: result.stderr }).toEqual({ operands, code: 1, stderr: `execrelay cp: ${message}\n` });
    }
    // One failing source does not stop the others.
    const mixed = await runCli(['cp', ...direct, path.join(local, 'nope'), small, `:${work}`]);
    expect(mixed).toMatchObject({ code: 1, stderr: `execrelay cp: ${path.join(local, 'nope')}: No such file or directory\n` });
    expect(readFileSync(path.join(work, 'small.txt'), 'utf8')).toBe('small\n');
    expect(temporaryFiles(work)).toEqual([]);
    expect(readdirSync(ref)).toEqual([]);
    expect(readdirSync(outside)).toEqual([]);
  }, 120_000);

  it('says "Permission denied" naming the path when the agent\'s user may not write there', async () => {
    const locked = path.join(dir, 'locked');
    mkdirSync(locked, { mode: 0o555 });
    chmodSync(locked, 0o555);
    chmodSync(dir, 0o755);
    const agent = await startUnprivilegedAgent();
    try {
      const small = path.join(local, 'small.txt');
      writeFileSync(small, 'small\n');
      const result = await runCli(['cp', '--url', agent.url, small, `:${locked}/`]);
      expect(result).toMatchObject({ code: 1, stderr: `execrelay cp: :${path.join(locked, 'small.txt')}: Permission denied (os error 13) (code -32603)\n` });
      expect(readdirSync(locked)).toEqual([]);
    } finally {
      await agent.stop();
    }
  });

  it('refuses bad command lines and unreachable executors with 255, before copying anything', async () => {
    const small = path.join(local, 'small.txt');
    writeFileSync(small, 'small\n');
    const cases: Array<[string[], NodeJS.ProcessEnv, string | RegExp]> = [
      [['cp', ...direct, `:${work}/a`, `:${work}/b`], {}, `execrelay cp: copying from one executor path to another is not supported (:${work}/a → :${work}/b): copy to a local directory first, or use exec -- cp on the executor\n`],
      [['cp', ...direct, small, path.join(local, 'elsewhere')], {}, `execrelay cp: ${small} and ${path.join(local, 'elsewhere')} are both local: one side must be on the executor (ENV:PATH, or :PATH with --relay/--url)\n`],
      [['cp', ...direct, small, ':relative/path'], {}, 'execrelay cp: :relative/path: remote path must be absolute or a file:// URI: relative/path\n'],
      [['cp', ...direct, small], {}, 'execrelay cp: give at least one SOURCE and a DESTINATION (ENV:PATH on the executor side)\n'],
      [['cp', `box:${work}/a`, `other:${work}/b`, local], env, 'execrelay cp: the sources name different environments (box, other): copy from one at a time\n'],
      [['cp', small, `nowhere:${work}`], env, /^execrelay cp: no environment "nowhere" in .*config\.toml; add an \[environments\.nowhere\] entry, or give --relay URL\n$/],
      [['cp', '--url', 'ws://127.0.0.1:1', small, `:${work}`], {}, /^execrelay cp: .+\n$/],
      [['cp', '--no-such-flag', small, `:${work}`], {}, /^execrelay cp: unknown option '--no-such-flag'/],
    ];
    for (const [args, extraEnv, message] of cases) {
      const result = await runCli(args, { env: extraEnv });
      expect({ args, code: result.code }).toEqual({ args, code: 255 });
      if (typeof message === 'string') expect(result.stderr).toBe(message);
      else expect(result.stderr).toMatch(message);
    }
    expect(existsSync(path.join(work, 'small.txt')) && readFileSync(path.join(work, 'small.txt'), 'utf8')).not.toBe('unexpected');
  });

  it('an interrupted upload never leaves a half file under the final name; the agent removes its temporary file with the session', async () => {
    const source = path.join(local, 'interrupted.bin');
    await writeRandomFile(source, 256 * MiB);
    const target = path.join(work, 'interrupted.bin');
    const child = spawn(process.execPath, [CLI_PATH, 'cp', ...direct, source, `:${target}`], { stdio: 'ignore', env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' } });
    const deadline = Date.now() + 30_000;
    while (temporaryFiles(work).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const during = temporaryFiles(work);
    expect(during).toHaveLength(1);
    expect(during[0]).toMatch(/^\.interrupted\.bin\.execrelay-[0-9a-f]+\.tmp$/);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('close', resolve));
    expect(existsSync(target)).toBe(false);
    // The session is kept for --session-retention-ms (500 ms here), then ended: its write handle is discarded.
    const gone = Date.now() + 10_000;
    while (temporaryFiles(work).length > 0 && Date.now() < gone) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(temporaryFiles(work)).toEqual([]);
    expect(existsSync(target)).toBe(false);
    rmSync(source);
  }, 60_000);

  it('Ctrl-C during a download removes the local temporary file and exits 130', async () => {
    const remoteFile = path.join(work, 'to-interrupt.bin');
    await writeRandomFile(remoteFile, 256 * MiB);
    const into = path.join(local, 'interrupt-into');
    mkdirSync(into);
    const child = spawn(process.execPath, [CLI_PATH, 'cp', ...direct, `:${remoteFile}`, into], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    const deadline = Date.now() + 30_000;
    while (temporaryFiles(into).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(temporaryFiles(into)).toHaveLength(1);
    child.kill('SIGINT');
    expect(await closed).toBe(130);
    expect(stderr).toBe('execrelay cp: interrupted (SIGINT)\n');
    expect(readdirSync(into)).toEqual([]);
    rmSync(remoteFile);
  }, 60_000);

  it('draws a progress bar on a terminal and nothing otherwise', async () => {
    const source = path.join(local, 'progress.bin');
    await writeRandomFile(source, 32 * MiB);
    const log = path.join(dir, 'typescript');
    const command = [process.execPath, CLI_PATH, 'cp', ...direct, source, `:${path.join(work, 'progress.bin')}`].map((word) => `'${word}'`).join(' ');
    // `script` runs the command on a pseudo-terminal and records everything it draws.
    const recorded = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('script', ['-q', '-e', '-c', command, log], { stdio: 'ignore', env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' } });
      child.once('close', (code) => resolve({ code, output: readFileSync(log, 'utf8') }));
    });
    expect(recorded.code).toBe(0);
    expect(recorded.output).toMatch(/\d+% \| [\d.]+ (MiB|KiB|B) \/ 32\.0 MiB \| [\d.]+ (MiB|KiB|B)\/s \| .*progress\.bin/);
    expect(recorded.output).toContain('100% | 32.0 MiB / 32.0 MiB');
    const piped = await runCli(['cp', ...direct, source, `:${path.join(work, 'progress.bin')}`]);
    expect(piped).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await sha256OfFile(path.join(work, 'progress.bin'))).toBe(await sha256OfFile(source));
  });

  it('has --help text and shell completion', async () => {
    const help = await runCli(['cp', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: execrelay cp [options] SOURCE... DEST');
    expect(help.stdout).toContain('-r, --recursive');
    expect(help.stdout).toContain('-p, --preserve');
    expect(help.stdout).toContain('renamed over it once complete');
    const bash = await runCli(['completion', 'bash']);
    expect(bash.stdout).toMatch(/ {4}cp\) opts='[^']*--recursive[^']*--preserve[^']*'; envs=1; ;;/);
  });
});

/**
 * The `fileTransfer` methods on the raw wire, against an in-process agent with roots: the happy
 * path, and each refusal (bad base64, a block over the cap, unknown and duplicate handles, the
 * handle bound, a directory as the target, roots), and that nothing appears under the final name
 * before the commit nor stays behind after a discard.
 */
describe('the fileTransfer methods on the wire', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-file-transfer-'));
  const work = path.join(dir, 'work');
  const ref = path.join(dir, 'ref');
  let agent: RunningAgent;
  let raw: RawRpcClient;
  const uri = (file: string): string => pathToFileURL(file).href;

  beforeAll(async () => {
    mkdirSync(work);
    mkdirSync(ref);
    agent = await startAgent({ roots: [{ path: work, access: 'rw' }, { path: ref, access: 'ro' }], sessionRetentionMs: 100 });
    raw = await RawRpcClient.connect(agent.url);
    const init = await raw.request('initialize', { clientName: 'file-transfer-test' });
    expect(init.result.capabilities).toMatchObject({ fileTransfer: true });
    raw.notify('initialized', {});
  });
  afterAll(async () => {
    raw?.close();
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function ok(method: string, params: unknown): Promise<unknown> {
    const reply = await raw.request(method, params);
    expect(reply.error, `${method}: ${JSON.stringify(reply.error)}`).toBeUndefined();
    return reply.result;
  }
  async function refused(method: string, params: unknown, code: number, message: string | RegExp): Promise<void> {
    const reply = await raw.request(method, params);
    expect(reply.error, `${method} ${JSON.stringify(params).slice(0, 200)} should fail`).toBeDefined();
    expect(reply.error!.code).toBe(code);
    if (typeof message === 'string') expect(reply.error!.message).toBe(message);
    else expect(reply.error!.message).toMatch(message);
  }

  it('writes blocks at their offsets, out of order, and renames at commit with the given mode and mtime', async () => {
    const target = path.join(work, 'written.bin');
    await ok('fs/openWrite', { handleId: 'w1', path: uri(target) });
    expect(existsSync(target)).toBe(false);
    expect(temporaryFiles(work)).toHaveLength(1);
    await ok('fs/writeBlock', { handleId: 'w1', offset: 5, chunk: Buffer.from(' world').toString('base64') });
    await ok('fs/writeBlock', { handleId: 'w1', offset: 0, chunk: Buffer.from('hello').toString('base64') });
    expect(existsSync(target)).toBe(false);
    await ok('fs/commitWrite', { handleId: 'w1', mode: 0o640, modifiedAtMs: Date.UTC(2021, 5, 1) });
    expect(readFileSync(target, 'utf8')).toBe('hello world');
    expect(statSync(target).mode & 0o777).toBe(0o640);
    expect(await ok('fs/getAttributes', { path: uri(target) })).toEqual({ mode: 0o640, modifiedAtMs: Date.UTC(2021, 5, 1) });
    await ok('fs/setAttributes', { path: uri(target), mode: 0o600, modifiedAtMs: Date.UTC(2022, 0, 1) });
    expect(await ok('fs/getAttributes', { path: uri(target) })).toEqual({ mode: 0o600, modifiedAtMs: Date.UTC(2022, 0, 1) });
    expect(temporaryFiles(work)).toEqual([]);
    // The handle is gone after the commit.
    await refused('fs/writeBlock', { handleId: 'w1', offset: 0, chunk: '' }, -32004, 'unknown write handle `w1`');
  });

  it('discards an uncommitted write on fs/close and when the session ends', async () => {
    const target = path.join(work, 'discarded.txt');
    writeFileSync(target, 'old');
    await ok('fs/openWrite', { handleId: 'd1', path: uri(target) });
    await ok('fs/writeBlock', { handleId: 'd1', offset: 0, chunk: Buffer.from('new').toString('base64') });
    await ok('fs/close', { handleId: 'd1' });
    expect(readFileSync(target, 'utf8')).toBe('old');
    expect(temporaryFiles(work)).toEqual([]);
    const other = await RawRpcClient.connect(agent.url);
    await other.initialize();
    expect((await other.request('fs/openWrite', { handleId: 'x', path: uri(path.join(work, 'never.txt')) })).error).toBeUndefined();
    expect(temporaryFiles(work)).toHaveLength(1);
    other.close();
    const deadline = Date.now() + 5_000;
    while (temporaryFiles(work).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(temporaryFiles(work)).toEqual([]);
    expect(existsSync(path.join(work, 'never.txt'))).toBe(false);
  });

  it('refuses bad blocks, unknown and duplicate handles, directories, paths outside the roots, and more than 32 open writes', async () => {
    const target = path.join(work, 'refusals.txt');
    await ok('fs/openWrite', { handleId: 'r1', path: uri(target) });
    await refused('fs/openWrite', { handleId: 'r1', path: uri(target) }, -32600, 'file handle `r1` already exists');
    await refused('fs/writeBlock', { handleId: 'r1', offset: 0, chunk: 'not base64!' }, -32600, 'fs/writeBlock requires valid base64 chunk: not valid base64');
    await refused('fs/writeBlock', { handleId: 'r1', offset: 0, chunk: Buffer.alloc(1024 * 1024 + 1).toString('base64') }, -32600, 'file write block must be at most 1048576 bytes, got 1048577');
    await refused('fs/writeBlock', { handleId: 'r1', offset: -1, chunk: '' }, -32602, /^invalid params: offset: /);
    await refused('fs/commitWrite', { handleId: 'r1', mode: 0o4755 }, -32602, /^invalid params: mode: /);
    await refused('fs/writeBlock', { handleId: 'nope', offset: 0, chunk: '' }, -32004, 'unknown write handle `nope`');
    await refused('fs/commitWrite', { handleId: 'nope' }, -32004, 'unknown write handle `nope`');
    await ok('fs/close', { handleId: 'r1' });
    await refused('fs/openWrite', { handleId: 'r2', path: uri(work) }, -32600, `path \`${work}\` is a directory`);
    await refused('fs/openWrite', { handleId: 'r3', path: uri(path.join(work, 'absent', 'x')) }, -32004, 'No such file or directory (os error 2)');
    await refused('fs/openWrite', { handleId: 'r4', path: uri(path.join(ref, 'x')) }, -32603, /is in a read-only root/);
    await refused('fs/openWrite', { handleId: 'r5', path: uri(path.join(dir, 'x')) }, -32603, /is outside the configured roots/);
    await refused('fs/setAttributes', { path: uri(path.join(ref)), mode: 0o777 }, -32603, /is a configured root|is in a read-only root/);
    await refused('fs/getAttributes', { path: uri(path.join(dir, 'x')) }, -32603, /is outside the configured roots/);
    for (let i = 0; i < 32; i++) await ok('fs/openWrite', { handleId: `many-${i}`, path: uri(path.join(work, `many-${i}`)) });
    await refused('fs/openWrite', { handleId: 'one-too-many', path: uri(path.join(work, 'one-too-many')) }, -32600, 'at most 32 write handles may be open per session');
    for (let i = 0; i < 32; i++) await ok('fs/close', { handleId: `many-${i}` });
    expect(temporaryFiles(work)).toEqual([]);
    expect(readdirSync(ref)).toEqual([]);
  });
});

/**
 * Against the real codex exec-server 0.169.0, which offers no `fileTransfer`: downloads stream with
 * its `fs/open`/`fs/readBlock`, an upload is one `fs/writeFile`, and a file too large for one
 * message is refused clearly before anything is sent.
 */
describe('execrelay cp against a codex exec-server', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-cp-codex-'));
  let codex: CodexExecServer;

  beforeAll(async () => {
    codex = await startCodexExecServer();
  }, 180_000);
  afterAll(async () => {
    await codex?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('uploads by fs/writeFile, refuses a file too large for it, and downloads in blocks', async () => {
    const small = path.join(dir, 'small.bin');
    writeFileSync(small, randomBytes(200_000));
    const remote = path.join(dir, 'remote');
    mkdirSync(remote);
    expect(await runCli(['cp', '--url', codex.url, small, `:${remote}/`])).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await sha256OfFile(path.join(remote, 'small.bin'))).toBe(await sha256OfFile(small));

    const tooLarge = path.join(dir, 'too-large.bin');
    await writeRandomFile(tooLarge, ONE_MESSAGE_WRITE_MAX_BYTES + 1);
    const refusedUpload = await runCli(['cp', '--url', codex.url, tooLarge, `:${remote}/`]);
    expect(refusedUpload).toMatchObject({
      code: 1,
      stderr:
        `execrelay cp: :${path.join(remote, 'too-large.bin')}: ${ONE_MESSAGE_WRITE_MAX_BYTES + 1} bytes is too large for this executor: it does not offer streaming writes ` +
        `(capability fileTransfer; a codex exec-server), and one fs/writeFile carries at most ${ONE_MESSAGE_WRITE_MAX_BYTES} bytes\n`,
    });
    expect(existsSync(path.join(remote, 'too-large.bin'))).toBe(false);
    // put falls back the same way: one fs/writeFile, refused past it before anything is written.
    const smallPut = await runCli(['put', '--url', codex.url, small, path.join(remote, 'put-small.bin')]);
    expect(smallPut).toMatchObject({ code: 0, stderr: '' });
    expect(await sha256OfFile(path.join(remote, 'put-small.bin'))).toBe(await sha256OfFile(small));
    const refusedPut = await runCli(['put', '--url', codex.url, tooLarge, path.join(remote, 'put-large.bin')]);
    expect(refusedPut.code).toBe(1);
    expect(refusedPut.stderr).toMatch(/too large for this executor: it does not offer streaming writes/);
    expect(existsSync(path.join(remote, 'put-large.bin'))).toBe(false);

    // Downloads stream: a file larger than one message comes down in blocks.
    const down = path.join(dir, 'down');
    mkdirSync(down);
    const remoteBig = path.join(remote, 'big.bin');
    await writeRandomFile(remoteBig, 70 * MiB);
    utimesSync(remoteBig, new Date(Date.UTC(2020, 1, 2)), new Date(Date.UTC(2020, 1, 2)));
    const downloaded = await runCli(['cp', '--url', codex.url, '-p', `:${remoteBig}`, down], { timeoutMs: 120_000 });
    expect(downloaded).toMatchObject({
      code: 0,
      stderr: 'execrelay cp: the executor does not report file modes (capability fileTransfer): -p keeps modification times only\n',
    });
    expect(await sha256OfFile(path.join(down, 'big.bin'))).toBe(await sha256OfFile(remoteBig));
    expect(Math.round(statSync(path.join(down, 'big.bin')).mtimeMs)).toBe(Date.UTC(2020, 1, 2));
  }, 180_000);
});
