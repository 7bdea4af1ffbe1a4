import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { generateIdentity } from '../../src/noise/identity.js';
import { runCli, startCli } from '../support/cli.js';
import { relayTarget, startRelay, startRemoteAgent } from '../support/relay-harness.js';

type AuditLine = Record<string, unknown> & { time: string; event: string };

async function readLines(file: string): Promise<AuditLine[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as AuditLine);
}

/** Waits until the file holds a line matching `match` (the agent writes asynchronously). */
async function waitForLine(file: string, match: (line: AuditLine) => boolean, what: string): Promise<AuditLine[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = await readLines(file).catch(() => [] as AuditLine[]);
    if (lines.some(match)) return lines;
    if (Date.now() > deadline) throw new Error(`timed out waiting for audit line: ${what}; have ${JSON.stringify(lines)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('audit log: a real agent process records sessions, processes and fs changes (never on stdout)', () => {
  let scratch: string;
  let auditFile: string;
  let agent: Awaited<ReturnType<typeof startCli>>;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-'));
    auditFile = path.join(scratch, 'logs', 'agent-audit.jsonl');
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log', auditFile]);
  });
  afterAll(async () => {
    await agent?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('writes one line per session, process start and exit, and fs write/createDirectory/copy/remove, in a 0600 file', async () => {
    expect(agent.firstLine).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    const work = path.join(scratch, 'work');
    const exec = await runCli(['exec', '--url', agent.firstLine, '--', 'sh', '-c', `mkdir -p ${work} && printf 'hello audit' && exit 7`]);
    expect(exec).toMatchObject({ code: 7, stdout: 'hello audit' });
    const put = await runCli(['put', '-', path.join(work, 'put.txt'), '--url', agent.firstLine], { input: 'put by the cli\n' });
    expect(put.code).toBe(0);

    const client = await ExecClient.connect(agent.firstLine);
    try {
      await client.fs.createDirectory(path.join(work, 'dir'), { recursive: true });
      await client.fs.copy(path.join(work, 'put.txt'), path.join(work, 'dir', 'copy.txt'));
      await client.fs.remove(path.join(work, 'put.txt'));
      await expect(client.fs.remove(path.join(work, 'no-such-file'), { force: false })).rejects.toThrow();
    } finally {
      client.close();
    }

    const lines = await waitForLine(auditFile, (l) => l.event === 'fs.remove' && l.ok === false, 'the failed remove');
    for (const line of lines) {
      expect(Number.isNaN(Date.parse(line.time)), line.time).toBe(false);
      expect(line.client).toBe('local');
    }
    const start = lines.find((l) => l.event === 'process.start')!;
    expect(start).toMatchObject({ family: 'process', ok: true, tty: false, argv: ['sh', '-c', expect.stringContaining('hello audit')] });
    expect(typeof start.session).toBe('string');
    expect(start.cwd).toEqual(expect.any(String));
    const exit = lines.find((l) => l.event === 'process.exit')!;
    expect(exit).toMatchObject({ family: 'process', session: start.session, processId: start.processId, exitCode: 7, outputBytes: 'hello audit'.length });
    expect(exit.durationMs).toEqual(expect.any(Number));
    // Each client command is its own session, opened before its work.
    const sessions = lines.filter((l) => l.event === 'session.open');
    expect(sessions.length).toBe(3);
    expect(sessions[0]).toMatchObject({ family: 'session', session: start.session, transport: 'websocket', resumed: false });

    const fsLines = lines.filter((l) => l.family === 'fs').map(({ event, method, path: p, sourcePath, destinationPath, ok }) => ({ event, method, p, sourcePath, destinationPath, ok }));
    const uri = (p: string) => pathToFileURL(p).href;
    expect(fsLines).toEqual([
      // put streams to this agent (fileTransfer): its write is recorded when the file is opened.
      { event: 'fs.openWrite', method: 'fs/openWrite', p: uri(path.join(work, 'put.txt')), sourcePath: undefined, destinationPath: undefined, ok: true },
      { event: 'fs.createDirectory', method: 'fs/createDirectory', p: uri(path.join(work, 'dir')), sourcePath: undefined, destinationPath: undefined, ok: true },
      { event: 'fs.copy', method: 'fs/copy', p: undefined, sourcePath: uri(path.join(work, 'put.txt')), destinationPath: uri(path.join(work, 'dir', 'copy.txt')), ok: true },
      { event: 'fs.remove', method: 'fs/remove', p: uri(path.join(work, 'put.txt')), sourcePath: undefined, destinationPath: undefined, ok: true },
      { event: 'fs.remove', method: 'fs/remove', p: uri(path.join(work, 'no-such-file')), sourcePath: undefined, destinationPath: undefined, ok: false },
    ]);
    expect(lines.find((l) => l.event === 'fs.remove' && l.ok === false)).toMatchObject({ errorCode: expect.any(Number), error: expect.any(String) });
    // Reads are not audited.
    expect(lines.some((l) => String(l.method ?? '').startsWith('fs/read'))).toBe(false);

    expect((await stat(auditFile)).mode & 0o777).toBe(0o600);
    // Never on stdout: the agent's stdout is its URL line only, and the client's the command's output.
    expect(agent.firstLine).not.toContain('{');
    expect(exec.stdout).toBe('hello audit');
  });

  it('records a streamed cp upload as fs.openWrite per file, and fs.setAttributes for a directory with -r -p, with their paths', async () => {
    const work = path.join(scratch, 'cp-work');
    const tree = path.join(scratch, 'cp-tree');
    await mkdir(tree, { recursive: true });
    await writeFile(path.join(tree, 'a.txt'), 'copied by cp\n');
    const made = await runCli(['exec', '--url', agent.firstLine, '--', 'mkdir', '-p', work]);
    expect(made.code).toBe(0);
    const cp = await runCli(['cp', '-r', '-p', '--url', agent.firstLine, tree, `:${work}/`]);
    expect(cp).toMatchObject({ code: 0 });
    const file = pathToFileURL(path.join(work, 'cp-tree', 'a.txt')).href;
    const directory = pathToFileURL(path.join(work, 'cp-tree')).href;
    const lines = await waitForLine(auditFile, (l) => l.event === 'fs.setAttributes', 'the cp -p attributes');
    const cpSession = lines.find((l) => l.event === 'fs.openWrite' && l.path === file)?.session;
    expect(lines.filter((l) => l.event === 'fs.openWrite' && l.session === cpSession)).toEqual([
      expect.objectContaining({ family: 'fs', method: 'fs/openWrite', path: file, ok: true, client: 'local' }),
    ]);
    expect(lines.filter((l) => l.event === 'fs.setAttributes')).toEqual([expect.objectContaining({ method: 'fs/setAttributes', path: directory, ok: true })]);
  });
});

describe('audit log: http/request always, fs reads only with --audit-log-reads (a real agent process)', () => {
  let scratch: string;
  let server: http.Server;
  let serverPort = 0;
  const started: Array<Awaited<ReturnType<typeof startCli>>> = [];

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-http-'));
    server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(req.url?.startsWith('/missing') ? 404 : 200, { 'content-type': 'text/plain' }).end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    serverPort = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const agent of started) await agent.stop();
    await new Promise((resolve) => server?.close(resolve));
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  async function session(auditFile: string, ...flags: string[]): Promise<AuditLine[]> {
    const agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log', auditFile, ...flags]);
    started.push(agent);
    const file = path.join(scratch, 'read-me.txt');
    await writeFile(file, 'to be read');
    const client = await ExecClient.connect(agent.firstLine);
    try {
      const ok = await client.fetch(`http://127.0.0.1:${serverPort}/api/items?access_token=SECRET-QUERY-TOKEN`, { method: 'POST', body: 'SECRET-BODY', headers: { authorization: 'Bearer SECRET-HEADER' } });
      expect(ok.status).toBe(200);
      await ok.arrayBuffer();
      expect((await client.fetch(`http://127.0.0.1:${serverPort}/missing`)).status).toBe(404);
      await expect(client.fetch('http://localhost:1/unreachable')).rejects.toThrow();
      await client.fs.readFile(file);
      await client.fs.readDirectory(scratch);
      await client.fs.walk(scratch);
      const handle = await client.fs.open(file);
      await client.fs.close(handle);
      await expect(client.fs.readFile(path.join(scratch, 'no-such-file'))).rejects.toThrow();
      await client.fs.writeFile(path.join(scratch, 'last.txt'), 'x'); // the last line, to wait for
    } finally {
      client.close();
    }
    return waitForLine(auditFile, (l) => l.event === 'fs.write', 'the last write');
  }

  it('records where each http/request went (method, scheme, host, port, status; refused ones too), never its path, query, headers or body; no reads by default', async () => {
    const auditFile = path.join(scratch, 'default.jsonl');
    const lines = await session(auditFile, '--http-allow-private');
    const httpLines = lines.filter((l) => l.family === 'http').map(({ event, method, httpMethod, scheme, host, port, status, ok, errorCode }) => ({ event, method, httpMethod, scheme, host, port, status, ok, errorCode }));
    expect(httpLines).toEqual([
      { event: 'http.request', method: 'http/request', httpMethod: 'POST', scheme: 'http', host: '127.0.0.1', port: serverPort, status: 200, ok: true, errorCode: undefined },
      { event: 'http.request', method: 'http/request', httpMethod: 'GET', scheme: 'http', host: '127.0.0.1', port: serverPort, status: 404, ok: true, errorCode: undefined },
      { event: 'http.request', method: 'http/request', httpMethod: 'GET', scheme: 'http', host: 'localhost', port: 1, status: undefined, ok: false, errorCode: expect.any(Number) },
    ]);
    const text = await readFile(auditFile, 'utf8');
    for (const secret of ['SECRET-QUERY-TOKEN', 'SECRET-BODY', 'SECRET-HEADER', '/api/items']) expect(text).not.toContain(secret);
    expect(lines.filter((l) => l.family === 'fs').map((l) => l.event)).toEqual(['fs.write']);
  });

  it('with --audit-log-reads (or EXECRELAY_AUDIT_LOG_READS=1) records fs/readFile, fs/readDirectory, fs/walk and fs/open with their paths, failed ones too', async () => {
    const auditFile = path.join(scratch, 'reads.jsonl');
    const lines = await session(auditFile, '--http-allow-private', '--audit-log-reads');
    const uri = (p: string) => pathToFileURL(p).href;
    const fsLines = lines.filter((l) => l.family === 'fs').map(({ event, method, path: p, ok }) => ({ event, method, p, ok }));
    expect(fsLines).toEqual([
      { event: 'fs.read', method: 'fs/readFile', p: uri(path.join(scratch, 'read-me.txt')), ok: true },
      { event: 'fs.readDirectory', method: 'fs/readDirectory', p: uri(scratch), ok: true },
      { event: 'fs.walk', method: 'fs/walk', p: uri(scratch), ok: true },
      { event: 'fs.open', method: 'fs/open', p: uri(path.join(scratch, 'read-me.txt')), ok: true },
      { event: 'fs.read', method: 'fs/readFile', p: uri(path.join(scratch, 'no-such-file')), ok: false },
      { event: 'fs.write', method: 'fs/writeFile', p: uri(path.join(scratch, 'last.txt')), ok: true },
    ]);
    for (const line of lines.filter((l) => l.family === 'fs')) expect(line.client).toBe('local');
    // The same through the variable, read strictly like every boolean flag's.
    const fromEnv = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log', path.join(scratch, 'env.jsonl')], { EXECRELAY_AUDIT_LOG_READS: '1' });
    started.push(fromEnv);
    const client = await ExecClient.connect(fromEnv.firstLine);
    try {
      await client.fs.readDirectory(scratch);
    } finally {
      client.close();
    }
    await waitForLine(path.join(scratch, 'env.jsonl'), (l) => l.event === 'fs.readDirectory', 'the read through EXECRELAY_AUDIT_LOG_READS');
  });

  it('refuses --audit-log-reads without --audit-log, and a bad EXECRELAY_AUDIT_LOG_READS, before serving', async () => {
    const alone = await runCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log-reads']);
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toContain('--audit-log-reads (EXECRELAY_AUDIT_LOG_READS) needs --audit-log FILE');
    expect(alone.stdout).toBe('');
    const bad = await runCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log', path.join(scratch, 'bad.jsonl')], { env: { EXECRELAY_AUDIT_LOG_READS: 'maybe' } });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('EXECRELAY_AUDIT_LOG_READS must be one of');
    expect(bad.stdout).toBe('');
  });
});

describe('audit log: rotation by size', () => {
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-rot-'));
  });
  afterAll(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('rotates past --audit-log-max-bytes, keeps --audit-log-keep files, each 0600, and loses no line of the kept ones', async () => {
    const auditFile = path.join(scratch, 'audit.jsonl');
    const agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log', auditFile, '--audit-log-max-bytes', '2048', '--audit-log-keep', '2']);
    try {
      const client = await ExecClient.connect(agent.firstLine);
      try {
        // ~30 fs writes of ~200-byte lines: 6 KB, three times the size.
        for (let i = 0; i < 30; i++) await client.fs.writeFile(path.join(scratch, `file-${String(i).padStart(2, '0')}-${'x'.repeat(40)}`), 'x');
      } finally {
        client.close();
      }
      await waitForLine(auditFile, (l) => String(l.path).includes('file-29-'), 'the last write');
    } finally {
      await agent.stop();
    }
    const files = (await readdir(scratch)).filter((name) => name.startsWith('audit.jsonl')).sort();
    expect(files).toEqual(['audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2']);
    for (const name of files) {
      const info = await stat(path.join(scratch, name));
      expect(info.mode & 0o777, name).toBe(0o600);
      // Rotation happens once a write reaches the size: a file is at most the size plus one line.
      expect(info.size, name).toBeLessThan(2048 + 400);
    }
    // The newest lines are in the live file, the ones before in .1 then .2, in order, none lost between them.
    const kept = [...(await readLines(path.join(scratch, 'audit.jsonl.2'))), ...(await readLines(path.join(scratch, 'audit.jsonl.1'))), ...(await readLines(auditFile))];
    const numbers = kept.filter((l) => l.event === 'fs.write').map((l) => Number(/file-(\d+)-/.exec(String(l.path))![1]));
    expect(numbers.at(-1)).toBe(29);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));
    expect(numbers[0]).toBeGreaterThan(0); // the oldest lines were rotated away
  });

  it('tightens an existing file to 0600 and appends to it', async () => {
    const file = path.join(scratch, 'existing.jsonl');
    const fs = await import('node:fs/promises');
    await fs.writeFile(file, '{"event":"before"}\n', { mode: 0o644 });
    await fs.chmod(file, 0o644);
    const log = await AuditLog.open({ file });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    log.record({ event: 'after', n: 1 });
    await log.close();
    expect((await readLines(file)).map((l) => l.event)).toEqual(['before', 'after']);
  });

  it('refuses a size below the minimum and an unwritable path with a clear error, before serving', async () => {
    const small = await runCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log', path.join(scratch, 'a.jsonl'), '--audit-log-max-bytes', '10']);
    expect(small.code).not.toBe(0);
    expect(small.stderr).toContain('--audit-log');
    expect(small.stderr).toContain('1024');
    expect(small.stdout).toBe('');
    // The same through the environment variables.
    const fromEnv = await runCli(['agent', '--listen', 'ws://127.0.0.1:0'], {
      env: { EXECRELAY_AUDIT_LOG: path.join(scratch, 'b.jsonl'), EXECRELAY_AUDIT_LOG_MAX_BYTES: '10' },
    });
    expect(fromEnv.code).not.toBe(0);
    expect(fromEnv.stderr).toContain('--audit-log');
    expect(fromEnv.stderr).toContain('1024');
    const emptyEnv = await runCli(['agent', '--listen', 'ws://127.0.0.1:0'], { env: { EXECRELAY_AUDIT_LOG: ' ' } });
    expect(emptyEnv.code).not.toBe(0);
    expect(emptyEnv.stderr).toContain('--audit-log (EXECRELAY_AUDIT_LOG) is empty');
    const blocked = path.join(scratch, 'not-a-dir');
    await import('node:fs/promises').then((fs) => fs.writeFile(blocked, 'file'));
    const unwritable = await runCli(['agent', '--listen', 'ws://127.0.0.1:0', '--audit-log', path.join(blocked, 'audit.jsonl')]);
    expect(unwritable.code).not.toBe(0);
    expect(unwritable.stderr).toContain('--audit-log');
    expect(unwritable.stdout).toBe('');
  });
});

describe('audit log: a relay client is recorded by its Noise identity', () => {
  it('names the client by the identity it proved in the handshake', async () => {
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-relay-'));
    const auditFile = path.join(scratch, 'audit.jsonl');
    const auditLog = await AuditLog.open({ file: auditFile });
    const relay = await startRelay();
    const remote = await startRemoteAgent(relay.url, 'audit-env', { auditLog });
    const identity = await generateIdentity();
    try {
      const client = await ExecClient.connect(relayTarget(relay.url, remote, { identity }));
      try {
        const proc = await client.exec(['sh', '-c', 'echo via-relay'], { cwd: scratch });
        await expect(proc.completion).resolves.toMatchObject({ exitCode: 0 });
      } finally {
        client.close();
      }
      const lines = await waitForLine(auditFile, (l) => l.event === 'process.exit', 'the relay process exit');
      expect(lines.map((l) => l.event)).toEqual(['session.open', 'process.start', 'process.exit']);
      for (const line of lines) expect(line.client).toBe(identity.publicIdentity);
      expect(lines[0]).toMatchObject({ transport: 'relay' });
      expect(lines[2]).toMatchObject({ exitCode: 0, outputBytes: 'via-relay\n'.length });
    } finally {
      remote.stop();
      await relay.stop();
      await auditLog.close();
      await rm(scratch, { recursive: true, force: true });
    }
  });
});

describe('audit log: a relay client the agent refuses is recorded (channel.refused)', () => {
  it('names the refused identity with client_not_authorized; an authorized client opens its session as usual', async () => {
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-refused-'));
    const auditFile = path.join(scratch, 'audit.jsonl');
    const auditLog = await AuditLog.open({ file: auditFile });
    const relay = await startRelay();
    const allowed = await generateIdentity();
    const stranger = await generateIdentity();
    const remote = await startRemoteAgent(relay.url, 'audit-refused-env', { auditLog, authorizedClients: new Set([allowed.publicIdentity]) });
    try {
      await expect(ExecClient.connect(relayTarget(relay.url, remote, { identity: stranger }))).rejects.toThrow(/refused this client/);
      const refused = await waitForLine(auditFile, (l) => l.event === 'channel.refused', 'the refused client');
      expect(refused).toEqual([expect.objectContaining({ event: 'channel.refused', family: 'channel', client: stranger.publicIdentity, reason: 'client_not_authorized' })]);
      const client = await ExecClient.connect(relayTarget(relay.url, remote, { identity: allowed }));
      client.close();
      const lines = await waitForLine(auditFile, (l) => l.event === 'session.open', 'the allowed client');
      expect(lines.map((l) => [l.event, l.client])).toEqual([
        ['channel.refused', stranger.publicIdentity],
        ['session.open', allowed.publicIdentity],
      ]);
    } finally {
      remote.stop();
      await relay.stop();
      await auditLog.close();
      await rm(scratch, { recursive: true, force: true });
    }
  });
});

describe('audit log: a real relay process records registrations and refusals (auth failures included)', () => {
  it('writes executor.registered, executor.refused and client.refused lines with reason, token line, environment and address', async () => {
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-relay-proc-'));
    const fs = await import('node:fs/promises');
    const tokens = path.join(scratch, 'tokens');
    const executorToken = path.join(scratch, 'executor-token');
    const clientToken = path.join(scratch, 'client-token');
    const wrongToken = path.join(scratch, 'wrong-token');
    await fs.writeFile(tokens, '# relay tokens\naudit-executor-token-0123456789abcdef executor audit-env\naudit-client-token-0123456789abcdef client audit-*\n', { mode: 0o600 });
    await fs.writeFile(executorToken, 'audit-executor-token-0123456789abcdef\n', { mode: 0o600 });
    await fs.writeFile(clientToken, 'audit-client-token-0123456789abcdef\n', { mode: 0o600 });
    await fs.writeFile(wrongToken, 'not-a-token-of-this-relay-0123456789\n', { mode: 0o600 });
    const agentKey = path.join(scratch, 'agent.key');
    const agentIdentity = (await runCli(['keygen', '--out', agentKey])).stdout.trim();
    const clientKey = path.join(scratch, 'client.key');
    await runCli(['keygen', '--out', clientKey]);
    const auditFile = path.join(scratch, 'relay-audit.jsonl');
    const relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', tokens, '--audit-log', auditFile], { EXECRELAY_LOG_LEVEL: 'warn' });
    const agent = await startCli(
      ['agent', '--relay', relay.firstLine, '--environment-id', 'audit-env', '--key', agentKey, '--token-file', executorToken, '--allow-any-client'],
      { EXECRELAY_LOG_LEVEL: 'warn' },
    );
    try {
      const exec = (env: string, token: string) =>
        runCli(['exec', '--relay', relay.firstLine, '--env', env, '--agent-key', agentIdentity, '--token-file', token, '--key', clientKey, '--', 'echo', 'hi']);
      expect(await exec('audit-env', clientToken)).toMatchObject({ code: 0, stdout: 'hi\n' });
      expect((await exec('audit-env', wrongToken)).code).toBe(255);
      expect((await exec('audit-env', executorToken)).code).toBe(255); // an executor token, as a client
      expect((await exec('audit-nobody', clientToken)).code).toBe(255); // no executor there
      // An executor token out of its scope.
      const outOfScope = await runCli(['agent', '--relay', relay.firstLine, '--environment-id', 'elsewhere', '--key', agentKey, '--token-file', executorToken, '--allow-any-client'], {
        env: { EXECRELAY_LOG_LEVEL: 'warn' },
        timeoutMs: 20_000,
      });
      expect(outOfScope.code).not.toBe(0);
      // Another key for the environment the first agent's key holds.
      const otherKey = path.join(scratch, 'other-agent.key');
      const otherIdentity = (await runCli(['keygen', '--out', otherKey])).stdout.trim();
      const mismatch = await runCli(['agent', '--relay', relay.firstLine, '--environment-id', 'audit-env', '--key', otherKey, '--token-file', executorToken, '--allow-any-client'], {
        env: { EXECRELAY_LOG_LEVEL: 'warn' },
        timeoutMs: 20_000,
      });
      expect(mismatch.code).not.toBe(0);

      const lines = await waitForLine(auditFile, (l) => l.reason === 'environment_key_mismatch', 'the key mismatch');
      const shape = lines.map(({ event, environmentId, tokenLine, reason, authFailure, agentIdentity: agent }) => ({ event, environmentId, tokenLine, reason, authFailure, agent }));
      expect(shape).toEqual([
        { event: 'executor.registered', environmentId: 'audit-env', tokenLine: 2, reason: undefined, authFailure: undefined, agent: agentIdentity },
        { event: 'client.refused', environmentId: 'audit-env', tokenLine: null, reason: 'unauthorized', authFailure: true, agent: undefined },
        { event: 'client.refused', environmentId: 'audit-env', tokenLine: null, reason: 'forbidden_role', authFailure: true, agent: undefined },
        { event: 'client.refused', environmentId: 'audit-nobody', tokenLine: 3, reason: 'executor_unavailable', authFailure: false, agent: undefined },
        { event: 'executor.refused', environmentId: 'elsewhere', tokenLine: null, reason: 'environment_not_in_scope', authFailure: true, agent: agentIdentity },
        { event: 'executor.refused', environmentId: 'audit-env', tokenLine: 2, reason: 'environment_key_mismatch', authFailure: true, agent: otherIdentity },
      ]);
      for (const line of lines) expect(line.remoteAddress).toBe('127.0.0.1');
      const text = await readFile(auditFile, 'utf8');
      expect(text).not.toContain('token-0123456789abcdef');
      expect(text).not.toContain('not-a-token');
      expect((await stat(auditFile)).mode & 0o777).toBe(0o600);
      expect(relay.firstLine).toMatch(/^ws:\/\//);
    } finally {
      await agent.stop();
      await relay.stop();
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
