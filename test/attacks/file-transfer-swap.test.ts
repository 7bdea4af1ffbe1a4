/**
 * Attacks on the `fileTransfer` extension's streaming writes (`fs/openWrite` … `fs/commitWrite`):
 * a write stays open as long as the client likes, so between the open and the commit a process on
 * the agent's host (one the client started, or anyone who can write in the root) may swap the
 * temporary file, or a directory on its path, for a link out of the roots. The commit must then
 * neither change an outside file's mode or time nor put a file outside the roots: it is refused,
 * naming the path, and the file system is checked directly afterwards.
 */
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, chmodSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { RawRpcClient } from '../support/raw-rpc-client.js';

const uri = (file: string): string => pathToFileURL(file).href;
const temporaryFiles = (dir: string): string[] => readdirSync(dir).filter((name) => name.endsWith('.tmp') && name.includes('.execrelay-'));

describe('a streaming write whose temporary file or directory is swapped before the commit', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-write-swap-'));
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  const secret = path.join(outside, 'secret');
  let agent: RunningAgent;
  let raw: RawRpcClient;

  beforeAll(async () => {
    mkdirSync(root);
    mkdirSync(outside);
    agent = await startAgent({ roots: [{ path: root, access: 'rw' }] });
    raw = await RawRpcClient.connect(agent.url);
    expect((await raw.request('initialize', { clientName: 'write-swap-attack' })).result).toMatchObject({ capabilities: { fileTransfer: true } });
    raw.notify('initialized', {});
  });
  afterAll(async () => {
    raw?.close();
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function ok(method: string, params: unknown): Promise<void> {
    const reply = await raw.request(method, params);
    expect(reply.error, `${method}: ${JSON.stringify(reply.error)}`).toBeUndefined();
  }

  it('a temporary file swapped for a link to an outside file: mode and time of that file untouched, nothing renamed', async () => {
    writeFileSync(secret, 'secret\n', { mode: 0o600 });
    chmodSync(secret, 0o600);
    utimesSync(secret, new Date(Date.UTC(2020, 0, 1)), new Date(Date.UTC(2020, 0, 1)));
    const target = path.join(root, 'upload.txt');
    await ok('fs/openWrite', { handleId: 'a1', path: uri(target) });
    await ok('fs/writeBlock', { handleId: 'a1', offset: 0, chunk: Buffer.from('attacker\n').toString('base64') });
    const [temporary] = temporaryFiles(root);
    expect(temporary).toBeDefined();
    // The swap: the temporary name now points outside the root.
    unlinkSync(path.join(root, temporary!));
    symlinkSync(secret, path.join(root, temporary!));

    const reply = await raw.request('fs/commitWrite', { handleId: 'a1', mode: 0o777, modifiedAtMs: Date.UTC(2030, 0, 1) });
    expect(reply.error).toMatchObject({ code: -32600 });
    expect(reply.error!.message).toBe(`path \`${target}\` was moved or replaced while being written; nothing was written`);
    expect(statSync(secret).mode & 0o777).toBe(0o600);
    expect(statSync(secret).mtimeMs).toBe(Date.UTC(2020, 0, 1));
    expect(readFileSync(secret, 'utf8')).toBe('secret\n');
    expect(() => lstatSync(target)).toThrow(/ENOENT/);
    // The handle is gone: a second commit cannot retry the rename.
    expect((await raw.request('fs/commitWrite', { handleId: 'a1' })).error).toMatchObject({ code: -32004 });
    rmSync(path.join(root, temporary!));
  });

  it('the directory swapped for a link out of the root: no file appears outside, the commit is refused', async () => {
    const sub = path.join(root, 'sub');
    mkdirSync(sub);
    const target = path.join(sub, 'upload.txt');
    await ok('fs/openWrite', { handleId: 'b1', path: uri(target) });
    await ok('fs/writeBlock', { handleId: 'b1', offset: 0, chunk: Buffer.from('attacker\n').toString('base64') });
    const [temporary] = temporaryFiles(sub);
    expect(temporary).toBeDefined();
    // The swap: `sub` moves away and a link to the outside directory takes its name; a file of
    // the temporary's name waits there so that a rename by name alone would succeed.
    renameSync(sub, path.join(root, 'moved'));
    symlinkSync(outside, sub);
    writeFileSync(path.join(outside, temporary!), 'planted\n');

    const reply = await raw.request('fs/commitWrite', { handleId: 'b1', mode: 0o777 });
    expect(reply.error).toMatchObject({ code: -32600 });
    expect(reply.error!.message).toContain('was moved or replaced while being written');
    expect(readdirSync(outside).sort()).toEqual([temporary!, 'secret'].sort());
    expect(statSync(path.join(outside, temporary!)).mode & 0o777).not.toBe(0o777);
    expect(readFileSync(path.join(root, 'moved', temporary!), 'utf8')).toBe('attacker\n');
  });

  it('the swap before the first block: the write goes on into the file the agent opened, and the commit is refused', async () => {
    const target = path.join(root, 'early.txt');
    await ok('fs/openWrite', { handleId: 'c1', path: uri(target) });
    const [temporary] = temporaryFiles(root);
    renameSync(path.join(root, temporary!), path.join(root, 'kept-aside'));
    symlinkSync(secret, path.join(root, temporary!));
    await ok('fs/writeBlock', { handleId: 'c1', offset: 0, chunk: Buffer.from('into the open file\n').toString('base64') });
    expect(readFileSync(secret, 'utf8')).toBe('secret\n');
    expect(readFileSync(path.join(root, 'kept-aside'), 'utf8')).toBe('into the open file\n');
    expect((await raw.request('fs/commitWrite', { handleId: 'c1' })).error?.message).toContain('was moved or replaced while being written');
    expect(readFileSync(secret, 'utf8')).toBe('secret\n');
    expect(() => lstatSync(target)).toThrow(/ENOENT/);
  });
});
