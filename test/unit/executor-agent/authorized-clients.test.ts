import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, chmodSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { AuthorizedClients } from '../../../executor-agent/authorized-clients.js';
import { generateIdentity } from '../../../src/noise/identity.js';
import type { Logger } from '../../../src/logging/logger.js';

/** A pino logger whose lines the test reads. */
function capturingLogger(): { logger: Logger; lines: () => Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => lines };
}

async function until(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const WARN = 40;
const ERROR = 50;

describe('AuthorizedClients (the agent\'s authorized clients file, reloaded)', () => {
  let alice = '';
  let bob = '';
  let dir = '';
  const opened: AuthorizedClients[] = [];

  beforeAll(async () => {
    alice = (await generateIdentity()).publicIdentity;
    bob = (await generateIdentity()).publicIdentity;
  });
  afterEach(() => {
    for (const file of opened.splice(0)) file.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function fresh(): string {
    dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-authz-unit-'));
    return path.join(dir, 'authorized-clients');
  }

  async function open(file: string, options: { pollIntervalMs?: number; logger?: Logger } = {}): Promise<AuthorizedClients> {
    const clients = await AuthorizedClients.open(file, { logger: options.logger ?? capturingLogger().logger, ...options });
    opened.push(clients);
    return clients;
  }

  it('fails at start on an empty path, a missing file, and an invalid file (nothing is served)', async () => {
    const file = fresh();
    await expect(AuthorizedClients.open('', { logger: capturingLogger().logger })).rejects.toThrow('the authorized clients file path is empty');
    await expect(AuthorizedClients.open(file, { logger: capturingLogger().logger })).rejects.toThrow(`authorized clients file ${file} does not exist`);
    writeFileSync(file, `${alice}\nnot-an-identity\n`);
    await expect(AuthorizedClients.open(file, { logger: capturingLogger().logger })).rejects.toThrow(/line 2: invalid public identity "not-an-identity"/);
  });

  it('refuses a file that group or others can write, or that sits in a directory they can write; a later re-read keeps the last good list', async () => {
    const file = fresh();
    writeFileSync(file, `${alice}\n`);
    chmodSync(file, 0o664);
    await expect(AuthorizedClients.open(file, { logger: capturingLogger().logger })).rejects.toThrow(
      `authorized clients file ${file} has mode 0664: group or others can write it, and so authorize anyone (run: chmod go-w ${file})`,
    );
    chmodSync(file, 0o644);
    chmodSync(dir, 0o777);
    await expect(AuthorizedClients.open(file, { logger: capturingLogger().logger })).rejects.toThrow(/the directory of authorized clients file .* has mode 0777/);
    chmodSync(dir, 0o700);
    const log = capturingLogger();
    const clients = await open(file, { logger: log.logger, pollIntervalMs: 50 });
    let reloads = 0;
    clients.onReload(() => reloads++);
    writeFileSync(file, `${alice}\n${bob}\n`);
    chmodSync(file, 0o666);
    await until(() => reloads >= 1 && log.lines().some((line) => line.level === ERROR && /mode 0666/.test(JSON.stringify(line))), 'the refused re-read');
    expect([clients.has(alice), clients.has(bob)]).toEqual([true, false]);
  });

  it('serves exactly the listed identities; an empty file refuses everyone, with a warning', async () => {
    const file = fresh();
    writeFileSync(file, `# the team\n${alice}  # alice\n`);
    const clients = await open(file);
    expect([clients.has(alice), clients.has(bob), clients.size]).toEqual([true, false, 1]);

    const emptyFile = path.join(dir, 'empty');
    writeFileSync(emptyFile, '# nobody yet\n');
    const log = capturingLogger();
    const empty = await open(emptyFile, { logger: log.logger });
    expect([empty.has(alice), empty.size]).toEqual([false, 0]);
    expect(log.lines()).toContainEqual(expect.objectContaining({ level: WARN, msg: expect.stringContaining('lists nobody') }));
  });

  it('re-reads an appended line at once (fs.watch), without waiting for the poll', async () => {
    const file = fresh();
    writeFileSync(file, `${alice}\n`);
    // A poll far beyond the wait below: only the watch can make this pass.
    const clients = await open(file, { pollIntervalMs: 60_000 });
    appendFileSync(file, `${bob}\n`);
    await until(() => clients.has(bob), 'bob to be authorized', 2000);
    expect(clients.has(alice)).toBe(true);
  });

  it('re-reads a file replaced by a rename (as editors save)', async () => {
    const file = fresh();
    writeFileSync(file, `${alice}\n`);
    const clients = await open(file, { pollIntervalMs: 60_000 });
    const temporary = path.join(dir, '.authorized-clients.swp');
    writeFileSync(temporary, `${bob}\n`);
    renameSync(temporary, file);
    await until(() => clients.has(bob) && !clients.has(alice), 'the replaced list', 2000);
  });

  it('keeps the last good list when the file becomes invalid or unreadable, logging an error on each failed re-read', async () => {
    const file = fresh();
    writeFileSync(file, `${alice}\n`);
    const log = capturingLogger();
    const clients = await open(file, { logger: log.logger, pollIntervalMs: 50 });
    let reloads = 0;
    clients.onReload(() => reloads++);
    writeFileSync(file, `${alice}\n${bob}x\n`);
    await until(() => reloads >= 1, 'the re-read');
    expect([clients.has(alice), clients.has(bob)]).toEqual([true, false]);
    const failures = () => log.lines().filter((line) => line.level === ERROR && line.msg.includes('keeping the last good list')).length;
    expect(failures()).toBe(1);
    writeFileSync(file, `garbage\n`);
    await until(() => failures() === 2, 'a second logged failure');
    expect(clients.has(alice)).toBe(true);
    if (process.getuid?.() !== 0) {
      // Unreadable (root reads anything, so only as another user).
      writeFileSync(file, `${alice}\n${bob}\n`);
      await until(() => clients.has(bob), 'the fixed file');
      // The mode change alone is a change (ctime) the poll notices.
      chmodSync(file, 0o000);
      await until(() => failures() >= 3, 'the unreadable file to be reported');
      expect(clients.has(bob)).toBe(true);
    }
    // Fixed again: served again.
    chmodSync(file, 0o600);
    writeFileSync(file, `${bob}\n`);
    await until(() => clients.has(bob) && !clients.has(alice), 'the fixed file');
  });

  it('refuses everyone while the file is deleted, logs it once, and serves again when it is back', async () => {
    const file = fresh();
    writeFileSync(file, `${alice}\n`);
    const log = capturingLogger();
    const clients = await open(file, { logger: log.logger, pollIntervalMs: 50 });
    unlinkSync(file);
    await until(() => !clients.has(alice), 'alice to be refused');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(log.lines().filter((line) => line.level === ERROR && line.msg.includes('was removed')).length).toBe(1);
    writeFileSync(file, `${alice}\n`);
    await until(() => clients.has(alice), 'alice to be served again');
  });

  it('stops reloading once closed', async () => {
    const file = fresh();
    writeFileSync(file, `${alice}\n`);
    const clients = await open(file, { pollIntervalMs: 20 });
    clients.close();
    writeFileSync(file, `${bob}\n`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect([clients.has(alice), clients.has(bob)]).toEqual([true, false]);
  });
});
