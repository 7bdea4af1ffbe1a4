import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLI_PATH, runCli, startCli } from '../support/cli.js';
import { processName, processTree } from '../support/process-table.js';
import { eventually, sleep } from '../support/resilience-helpers.js';

/**
 * Memory stays bounded when the output is far larger than anything in between and the reader is
 * slow: `head -c 2 GiB /dev/zero` on the agent, through the relay and Noise, into
 * `execrelay exec … | reader` where the reader stops reading twice for 5 s. Client, relay and agent
 * RSS each stay under 200 MiB throughout, and while the reader stops, the producer stops too (its
 * written bytes, `/proc/PID/io` `wchar`, stop growing, and what it wrote beyond what the reader got
 * is a few MiB of windows and queues): output pauses instead of piling up.
 *
 * The whole 2 GiB would take 40–80 s through the relay on two shared cores, more than this test
 * may take, so the reader takes `READ_BYTES` (256 MiB: 2 × 5 s of stall plus ~8–15 s of transfer,
 * 20–30 s in all) and then leaves; what the path holds while the reader stalls is ~8 MiB (windows
 * and queues, `IN_FLIGHT_LIMIT` allows 48), so 256 MiB is far more than anything could buffer.
 */

const OFFERED_BYTES = 2 * 1024 * 1024 * 1024;
/**
 * 256 MiB by default; `SLOW_READER_READ_MIB=2048` reads the whole 2 GiB (by hand: minutes on two
 * shared cores; the test's time bound grows with it).
 */
const READ_BYTES = readMiB() * 1024 * 1024;

function readMiB(): number {
  const raw = process.env.SLOW_READER_READ_MIB;
  if (raw === undefined || raw === '') return 256;
  const mib = Number(raw);
  if (!Number.isInteger(mib) || mib < 256 || mib > 2048) throw new Error(`SLOW_READER_READ_MIB must be an integer from 256 to 2048, not ${raw}`);
  return mib;
}
/** Where the reader stalls: once the transfer is under way, and again well into it. */
const STALL_AT = [32 * 1024 * 1024, 160 * 1024 * 1024];
const STALL_MS = 5000;
const RSS_LIMIT_KIB = 200 * 1024;
/** What the producer may be ahead of the reader while it stalls: windows and queues, not the output. */
const IN_FLIGHT_LIMIT = 48 * 1024 * 1024;
const TOKEN = 'slow-reader-token-0123456789abcdef';

/** Reads stdin in 64 KiB reads; before reading past each STALL_AT offset it prints `stall N` and stops for STALL_MS. */
const READER_SOURCE = String.raw`
import { readSync } from 'node:fs';
const [limit, stallMs, ...stallAt] = process.argv.slice(2).map(Number);
const buffer = Buffer.allocUnsafe(64 * 1024);
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
let bytes = 0;
while (bytes < limit) {
  if (stallAt.length > 0 && bytes >= stallAt[0]) {
    stallAt.shift();
    process.stdout.write('stall ' + bytes + '\n');
    sleep(stallMs);
    process.stdout.write('resume\n');
  }
  let n;
  try {
    n = readSync(0, buffer, 0, Math.min(buffer.length, limit - bytes), null);
  } catch (error) {
    if (error.code === 'EAGAIN') { sleep(1); continue; }
    throw error;
  }
  if (n === 0) break;
  bytes += n;
}
process.stdout.write('done ' + bytes + '\n');
`;

async function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  try {
    const match = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** The processes below `pid` (the agent's commands are children of its spawner) whose name is `name`. */
function descendantsNamed(pid: number, name: string): number[] {
  return processTree(pid).filter((descendant) => descendant !== pid && processName(descendant) === name);
}

/** Bytes a process has written so far (`wchar` of /proc/PID/io). */
async function writtenBytes(pid: number): Promise<number> {
  const match = /^wchar:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/io`, 'utf8'));
  if (!match) throw new Error(`no wchar for ${pid}`);
  return Number(match[1]);
}

describe('a 2 GiB output to a slow reader through the relay: bounded memory, output pauses', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-slow-reader-'));
  const readerPath = path.join(dir, 'reader.mjs');
  const tokenFile = path.join(dir, 'token');
  let relay: Awaited<ReturnType<typeof startCli>>;
  let agent: Awaited<ReturnType<typeof startCli>>;
  let connectArgs: string[] = [];

  beforeAll(async () => {
    writeFileSync(readerPath, READER_SOURCE);
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const keyFile = path.join(dir, 'agent.key');
    const clientKeyFile = path.join(dir, 'client.key');
    const identity = (await runCli(['keygen', '--out', keyFile])).stdout.trim();
    await runCli(['keygen', '--out', clientKeyFile]);
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile]);
    agent = await startCli(['agent', '--relay', relay.firstLine, '--environment-id', 'slow', '--key', keyFile, '--token-file', tokenFile, '--allow-any-client']);
    connectArgs = ['--relay', relay.firstLine, '--env', 'slow', '--agent-key', identity, '--key', clientKeyFile, '--token-file', tokenFile];
  });
  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps client, relay and agent under 200 MiB RSS, and the producer waits while the reader stalls', async () => {
    const reader = spawn(process.execPath, [readerPath, String(READ_BYTES), String(STALL_MS), ...STALL_AT.map(String)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const client: ChildProcess = spawn(process.execPath, [CLI_PATH, 'exec', ...connectArgs, '--', 'head', '-c', String(OFFERED_BYTES), '/dev/zero'], {
      env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' },
      stdio: ['ignore', reader.stdin, 'pipe'],
    });
    reader.stdin!.destroy();
    let clientStderr = '';
    client.stderr!.on('data', (d: Buffer) => (clientStderr += d.toString()));
    const peaks = { client: 0, relay: 0, agent: 0 };
    const sampler = setInterval(() => {
      void statusKiB(client.pid!, 'VmHWM').then((kib) => (peaks.client = Math.max(peaks.client, kib)));
      void statusKiB(relay.child.pid!, 'VmRSS').then((kib) => (peaks.relay = Math.max(peaks.relay, kib)));
      void statusKiB(agent.child.pid!, 'VmRSS').then((kib) => (peaks.agent = Math.max(peaks.agent, kib)));
    }, 100);
    const stalls: Array<{ readerBytes: number; producerEarly: number; producerLate: number }> = [];
    const started = Date.now();
    let producer: number | undefined;
    try {
      producer = await eventually(async () => descendantsNamed(agent.child.pid!, 'head')[0], 10_000, 'head started by the agent');
      let out = '';
      const done = new Promise<number>((resolve, reject) => {
        reader.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          let newline;
          while ((newline = out.indexOf('\n')) !== -1) {
            const line = out.slice(0, newline);
            out = out.slice(newline + 1);
            const stall = /^stall (\d+)$/.exec(line);
            if (stall) {
              // Two readings of the producer late in the stall (the queues have filled), 1.5 s apart.
              void (async () => {
                await sleep(STALL_MS - 2500);
                const producerEarly = await writtenBytes(producer!);
                await sleep(1500);
                stalls.push({ readerBytes: Number(stall[1]), producerEarly, producerLate: await writtenBytes(producer!) });
              })().catch(reject);
            }
            const finished = /^done (\d+)$/.exec(line);
            if (finished) resolve(Number(finished[1]));
          }
        });
        reader.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`reader exited with ${code}`))));
      });
      expect(await done).toBe(READ_BYTES);
      const seconds = (Date.now() - started) / 1000;
      console.log(`slow reader: ${READ_BYTES / 2 ** 20} MiB in ${seconds.toFixed(1)} s; peak RSS KiB ${JSON.stringify(peaks)}; stalls ${JSON.stringify(stalls)}`);

      expect(stalls).toHaveLength(STALL_AT.length);
      for (const stall of stalls) {
        // The producer stopped: nothing (beyond a pipe's worth) written late in the stall…
        expect(stall.producerLate - stall.producerEarly, `producer kept writing during a stall: ${JSON.stringify(stall)}`).toBeLessThanOrEqual(1024 * 1024);
        // …and it got at most the windows and queues ahead of the reader, not the output.
        expect(stall.producerLate - stall.readerBytes, `in flight during a stall: ${JSON.stringify(stall)}`).toBeLessThan(IN_FLIGHT_LIMIT);
        expect(stall.producerLate).toBeGreaterThanOrEqual(stall.readerBytes);
      }
      // The producer was still far from done when the reader left: the test measured a stream, not a
      // buffer. (Reading the whole 2 GiB, the producer is done and gone: the reader's count says it all.)
      if (READ_BYTES < OFFERED_BYTES) expect(await writtenBytes(producer)).toBeLessThan(OFFERED_BYTES);
      for (const [name, kib] of Object.entries(peaks)) {
        expect(kib, `${name} peak RSS`).toBeGreaterThan(0);
        expect(kib, `${name} peak RSS`).toBeLessThan(RSS_LIMIT_KIB);
      }
    } finally {
      clearInterval(sampler);
      client.kill('SIGKILL');
      reader.kill('SIGKILL');
      // The agent keeps a detached session's process for the client to come back to; this one is done.
      if (producer !== undefined) {
        try {
          process.kill(producer, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    expect(clientStderr).not.toContain('no longer retained');
  }, 90_000 * (READ_BYTES / (256 * 1024 * 1024)));
});
