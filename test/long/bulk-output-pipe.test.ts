import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { ExecClient } from '../../src/client/exec-client.js';
import { OutputLostError } from '../../src/client/process-events.js';
import { CLI_PATH, runCli, startCli } from '../support/cli.js';
import { eventually, sleep } from '../support/resilience-helpers.js';

/**
 * Bulk output of `execrelay exec` piped into a real reader process, as a user does (`| wc -c`,
 * `| sha256sum`): 1 GiB, with a fast reader, a slow one and one that stalls for 5 s, directly and
 * through the relay. Backpressure must reach the remote process (it blocks in `write`), so nothing
 * is lost, nothing is read again with `process/read`, and no process's memory grows with the output.
 */

const GIB = 1024 * 1024 * 1024;
const RSS_LIMIT_KIB = 200 * 1024;
const TOKEN = 'bulk-output-token-0123456789abcdef';

/** The reader at the end of the pipe: hashes stdin in 64 KiB reads, paced as its mode says. */
const READER_SOURCE = String.raw`
import { readSync } from 'node:fs';
import { createHash } from 'node:crypto';
const [mode, slowForMs] = [process.argv[2], Number(process.argv[3] ?? 0)];
const buffer = Buffer.allocUnsafe(64 * 1024);
const hash = createHash('sha256');
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
let bytes = 0;
if (mode === 'stalled') sleep(5000);
const started = Date.now();
for (;;) {
  let n;
  try {
    n = readSync(0, buffer, 0, buffer.length, null);
  } catch (error) {
    if (error.code === 'EAGAIN') { sleep(1); continue; }
    if (error.code === 'EOF') break;
    throw error;
  }
  if (n === 0) break;
  hash.update(buffer.subarray(0, n));
  bytes += n;
  if (mode === 'slow' && Date.now() - started < slowForMs) sleep(10);
}
process.stdout.write(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
`;

/** The remote command: 1 GiB of random bytes on stdout, their SHA-256 on stderr, exit 7. */
const REMOTE_COMMAND = ['bash', '-c', `head -c ${GIB} /dev/urandom | tee >(sha256sum >&2) ; exit 7`];

type ReaderMode = 'fast' | 'slow' | 'stalled';

interface PipedRun {
  exitCode: number | null;
  stderr: string;
  reader: { bytes: number; sha256: string };
  clientPeakKiB: number;
  /** Peak VmRSS of the long-running processes sampled during the run. */
  peaksKiB: Record<string, number>;
}

async function vmKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  try {
    const match = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** `execrelay exec ARGS -- REMOTE_COMMAND | node reader.mjs MODE`, as two real processes joined by a pipe. */
async function runPiped(readerPath: string, connectArgs: string[], mode: ReaderMode, watched: Record<string, ChildProcess>): Promise<PipedRun> {
  const reader = spawn(process.execPath, [readerPath, mode, '3000'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const client = spawn(process.execPath, [CLI_PATH, 'exec', ...connectArgs, '--', ...REMOTE_COMMAND], {
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', reader.stdin, 'pipe'],
  });
  // The client holds the pipe's write end now; ours must close so that the reader sees EOF.
  reader.stdin!.destroy();
  let stderr = '';
  client.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let readerOut = '';
  reader.stdout!.on('data', (d: Buffer) => (readerOut += d.toString()));
  const peaksKiB: Record<string, number> = {};
  let clientPeakKiB = 0;
  const sampler = setInterval(() => {
    void vmKiB(client.pid!, 'VmHWM').then((kib) => (clientPeakKiB = Math.max(clientPeakKiB, kib)));
    for (const [name, child] of Object.entries(watched)) {
      void vmKiB(child.pid!, 'VmRSS').then((kib) => (peaksKiB[name] = Math.max(peaksKiB[name] ?? 0, kib)));
    }
  }, 100);
  try {
    const [exitCode] = await Promise.all([
      new Promise<number | null>((resolve) => client.once('exit', (code) => resolve(code))),
      new Promise<void>((resolve) => reader.once('exit', () => resolve())),
    ]);
    return { exitCode, stderr, reader: JSON.parse(readerOut) as PipedRun['reader'], clientPeakKiB, peaksKiB };
  } finally {
    clearInterval(sampler);
    client.kill('SIGKILL');
    reader.kill('SIGKILL');
  }
}

function expectLossless(run: PipedRun): void {
  expect(run.stderr).not.toContain('no longer retained');
  expect(run.exitCode).toBe(7);
  expect(run.reader.bytes).toBe(GIB);
  const remoteSha = /^([0-9a-f]{64}) {2}-$/m.exec(run.stderr)?.[1];
  expect(remoteSha, `remote sha256 on stderr: ${run.stderr}`).toBeDefined();
  expect(run.reader.sha256).toBe(remoteSha);
  expect(run.clientPeakKiB).toBeGreaterThan(0);
  expect(run.clientPeakKiB).toBeLessThan(RSS_LIMIT_KIB);
  for (const [name, kib] of Object.entries(run.peaksKiB)) expect(kib, `${name} RSS`).toBeLessThan(RSS_LIMIT_KIB);
}

/** `exec_server_requests_total{method="process/read"}` summed over results, from the agent's /metrics. */
async function processReads(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('execrelay_exec_server_requests_total{') && line.includes('method="process/read"')) total += Number(line.split(' ').pop());
  }
  return total;
}

/** The metrics URL an agent logs at start (`--metrics-listen 127.0.0.1:0`). */
async function loggedMetricsUrl(stderr: () => string): Promise<string> {
  return eventually(async () => /"url":"(http:\/\/[^"]+\/metrics)"/.exec(stderr())?.[1], 10_000, 'agent metrics URL in its log');
}

describe('bulk output piped from execrelay exec (1 GiB, backpressure end to end)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-bulk-'));
  const readerPath = path.join(dir, 'reader.mjs');
  const tokenFile = path.join(dir, 'token');
  const keyFile = path.join(dir, 'agent.key');
  const clientKeyFile = path.join(dir, 'client.key');
  const agentEnv = { EXECRELAY_LOG_LEVEL: 'info' };
  let relay: Awaited<ReturnType<typeof startCli>>;
  let relayAgent: Awaited<ReturnType<typeof startCli>>;
  let directAgent: Awaited<ReturnType<typeof startCli>>;
  let relayAgentMetrics = '';
  let directAgentMetrics = '';
  let relayArgs: string[] = [];
  let agentIdentity = '';

  beforeAll(async () => {
    writeFileSync(readerPath, READER_SOURCE);
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const identity = (agentIdentity = (await runCli(['keygen', '--out', keyFile])).stdout.trim());
    await runCli(['keygen', '--out', clientKeyFile]);
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile], { EXECRELAY_LOG_LEVEL: 'warn' });
    relayAgent = await startCli(
      ['agent', '--relay', relay.firstLine, '--environment-id', 'bulk', '--key', keyFile, '--token-file', tokenFile, '--allow-any-client', '--metrics-listen', '127.0.0.1:0'],
      agentEnv,
    );
    directAgent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'], agentEnv);
    relayAgentMetrics = await loggedMetricsUrl(relayAgent.stderr);
    directAgentMetrics = await loggedMetricsUrl(directAgent.stderr);
    relayArgs = ['--relay', relay.firstLine, '--env', 'bulk', '--agent-key', identity, '--key', clientKeyFile, '--token-file', tokenFile];
  });
  afterAll(async () => {
    await Promise.all([relayAgent?.stop(), directAgent?.stop()]);
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const modes: ReaderMode[] = ['fast', 'slow', 'stalled'];
  for (const mode of modes) {
    it(`direct: ${mode} reader gets every byte, exit code passed through, 0 process/read`, async () => {
      const readsBefore = await processReads(directAgentMetrics);
      const run = await runPiped(readerPath, ['--url', directAgent.firstLine], mode, { agent: directAgent.child });
      expectLossless(run);
      console.log(`direct, ${mode} reader: client ${run.clientPeakKiB} KiB, ${JSON.stringify(run.peaksKiB)} KiB peak RSS`);
      expect(await processReads(directAgentMetrics)).toBe(readsBefore);
    }, 240_000);

    it(`through the relay: ${mode} reader gets every byte, exit code passed through, 0 process/read`, async () => {
      const readsBefore = await processReads(relayAgentMetrics);
      const run = await runPiped(readerPath, relayArgs, mode, { agent: relayAgent.child, relay: relay.child });
      expectLossless(run);
      console.log(`relay, ${mode} reader: client ${run.clientPeakKiB} KiB, ${JSON.stringify(run.peaksKiB)} KiB peak RSS`);
      expect(await processReads(relayAgentMetrics)).toBe(readsBefore);
    }, 240_000);
  }

  it('a reader that closes the pipe early (| head) stops the remote command: exit 141, no error message', async () => {
    const result = await new Promise<{ code: number | null; stderr: string; head: string }>((resolve) => {
      const head = spawn('head', ['-c', '10'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const client = spawn(process.execPath, [CLI_PATH, 'exec', '--url', directAgent.firstLine, '--', 'yes'], { stdio: ['ignore', head.stdin, 'pipe'] });
      head.stdin!.destroy();
      let stderr = '';
      let out = '';
      client.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      head.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      client.once('exit', (code) => resolve({ code, stderr, head: out }));
    });
    expect(result).toEqual({ code: 141, stderr: '', head: 'y\ny\ny\ny\ny\n' });
  }, 30_000);

  /** An ExecClient whose consumer iterates `events` slowly (10 ms per event for 3 s), then stalls 5 s, then runs fast. */
  async function slowLibraryConsumer(client: ExecClient, watched: Record<string, ChildProcess>): Promise<void> {
    const handle = await client.exec(REMOTE_COMMAND, { cwd: '/', streamEvents: true, collectOutput: false });
    const hash = createHash('sha256');
    let bytes = 0;
    let stderr = '';
    let lost: unknown;
    const peaksKiB: Record<string, number> = {};
    const sampler = setInterval(() => {
      for (const [name, child] of Object.entries(watched)) void vmKiB(child.pid!, 'VmRSS').then((kib) => (peaksKiB[name] = Math.max(peaksKiB[name] ?? 0, kib)));
    }, 100);
    const started = Date.now();
    let stalled = false;
    try {
      for await (const event of handle.events) {
        if (event.type !== 'output') continue;
        if (event.stream === 'stderr') stderr += event.chunk.toString();
        else {
          hash.update(event.chunk);
          bytes += event.chunk.length;
        }
        const elapsed = Date.now() - started;
        if (elapsed < 3000) await sleep(10);
        else if (!stalled) {
          stalled = true;
          await sleep(5000);
        }
      }
    } catch (error) {
      lost = error;
    } finally {
      clearInterval(sampler);
    }
    expect(lost instanceof OutputLostError ? lost.message : lost, 'no OutputLostError, no failure').toBeUndefined();
    const completion = await handle.completion;
    expect(completion.exitCode).toBe(7);
    expect(bytes).toBe(GIB);
    expect(hash.digest('hex')).toBe(/^([0-9a-f]{64}) {2}-$/m.exec(stderr)?.[1]);
    expect(client.readsIssued).toBe(0);
    for (const [name, kib] of Object.entries(peaksKiB)) expect(kib, `${name} RSS`).toBeLessThan(RSS_LIMIT_KIB);
    console.log(`library consumer: ${JSON.stringify(peaksKiB)} KiB peak RSS`);
  }

  it('library: an ExecClient consumer that iterates slowly, then stalls, loses nothing (direct)', async () => {
    const client = await ExecClient.connect(directAgent.firstLine);
    try {
      await slowLibraryConsumer(client, { agent: directAgent.child });
    } finally {
      client.close();
    }
  }, 240_000);

  it('library: an ExecClient consumer that iterates slowly, then stalls, loses nothing (through the relay)', async () => {
    const client = await ExecClient.connect({ relay: relay.firstLine, environmentId: 'bulk', agentKey: agentIdentity, token: TOKEN });
    try {
      await slowLibraryConsumer(client, { agent: relayAgent.child, relay: relay.child });
    } finally {
      client.close();
    }
  }, 240_000);
});
