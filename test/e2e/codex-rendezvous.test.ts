import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RelayServer } from '../../relay/relay-server.js';
import { RelayCredentials } from '../../relay/relay-credentials.js';
import { createLogger } from '../../src/logging/logger.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { ACCEPT_RELAY_KEY } from '../../src/client/codex-rendezvous-target.js';
import { generateHybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { loadHybridKeyFile } from '../../src/noise-hybrid/hybrid-key-file.js';
import { ensureCodexInstalled } from '../support/codex-exec-server.js';
import { startCodexRendezvous, type CodexRendezvousFixture } from '../support/codex-rendezvous-fixture.js';
import { RENDEZVOUS_CONNECTED_LOG, startCodexRemoteExecutor } from '../support/codex-remote-executor.js';
import { runCli } from '../support/cli.js';
import { parseExposition, sumOf } from '../support/prometheus-exposition.js';
import { spawnRelay } from '../support/resilience-helpers.js';
import { TEST_TOKEN } from '../support/relay-harness.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { hasTinyproxy, startTinyproxy } from '../support/tinyproxy.js';

/**
 * The real `codex exec-server --remote` 0.169.0 registers with an execrelay relay (its bearer from
 * stdin) and execrelay's CLI and library run commands on it through the relay: the codex registry
 * (`/cloud/environment/{id}/register|connect|validate`), the signed rendezvous WebSocket, hybrid
 * Noise IK end to end. Fails (does not skip) when the binary cannot be installed.
 */

const ENV = 'codex-e2e';
const EXECUTOR_TOKEN = 'codex-executor-token-0123456789';
const CLIENT_TOKEN = 'codex-client-token-0123456789ab';
const TOKENS = `${EXECUTOR_TOKEN} executor codex-*\n${CLIENT_TOKEN} client codex-*\n`;

describe('a real codex executor behind an execrelay relay', () => {
  let fixture: CodexRendezvousFixture;
  let proxy: TcpProxy;
  let tokenFile: string;
  let keyFile: string;
  let fingerprint: string;
  let workDir: string;
  const through = (relay: string) => ['--relay', relay, '--env', ENV, '--token-file', tokenFile, '--key', keyFile];

  beforeAll(async () => {
    await ensureCodexInstalled();
    fixture = await startCodexRendezvous({ tokens: TOKENS, environmentId: ENV, executorToken: EXECUTOR_TOKEN });
    proxy = await startTcpProxy(Number(new URL(fixture.url).port));
    tokenFile = fixture.tokenFile('client.token', CLIENT_TOKEN);
    keyFile = path.join(fixture.dir, 'client-hybrid.key');
    const keygen = await runCli(['keygen', '--hybrid', '--out', keyFile]);
    expect(keygen.code, keygen.stderr).toBe(0);
    fingerprint = keygen.stdout.trim();
    expect(fingerprint).toMatch(/^hyb1:[a-z2-7]{32}$/);
    workDir = path.join(fixture.dir, 'tree');
    mkdirSync(path.join(workDir, 'sub'), { recursive: true });
    writeFileSync(path.join(workDir, 'hello.txt'), 'hello from the codex executor\n');
    writeFileSync(path.join(workDir, 'sub', 'deep.txt'), 'deep\n');
  }, 600_000);
  afterAll(async () => {
    await proxy?.close();
    await fixture?.stop();
  });

  it('exec prints both lines on the right streams and exits with the command status; the relay names the key it vouches for', async () => {
    const result = await runCli(['exec', ...through(fixture.url), '--accept-relay-key', '--', 'sh', '-c', 'echo hi; echo err >&2; exit 3'], { timeoutMs: 60_000 });
    expect(result.stdout).toBe('hi\n');
    expect(result.stderr).toMatch(/^execrelay exec: environment codex-e2e is a codex executor with key hyb1:[a-z2-7]{32} \(as the relay names it; pin it with --agent-key\)\nerr\n$/);
    expect(result.code).toBe(3);
  });

  it('the relay counts codex streams and their traffic under security_profile="pq_hybrid", none under "classical"', async () => {
    const before = parseExposition(await fixture.metrics.expose());
    const result = await runCli(['exec', ...through(fixture.url), '--accept-relay-key', '--', 'true'], { timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    const after = parseExposition(await fixture.metrics.expose());
    const grew = (name: string, labels: Record<string, string>) => sumOf(after, name, labels) - sumOf(before, name, labels);
    const pq = { security_profile: 'pq_hybrid' };
    const classical = { security_profile: 'classical' };
    expect(grew('execrelay_relay_stream_opens_total', pq)).toBe(1);
    expect(grew('execrelay_relay_streams_accepted_total', pq)).toBe(1);
    expect(grew('execrelay_relay_stream_handshake_duration_seconds_count', pq)).toBe(1);
    expect(grew('execrelay_relay_frames_routed_total', { ...pq, direction: 'client_to_executor' })).toBeGreaterThan(0);
    expect(grew('execrelay_relay_bytes_routed_total', { ...pq, direction: 'executor_to_client' })).toBeGreaterThan(0);
    // Nothing classical happened on this relay: its series exist, at 0.
    for (const name of ['execrelay_relay_stream_opens_total', 'execrelay_relay_streams_accepted_total', 'execrelay_relay_frames_routed_total', 'execrelay_relay_bytes_routed_total', 'execrelay_relay_stream_handshake_duration_seconds_count']) {
      expect(after.some((s) => s.name === name && s.labels.security_profile === 'classical'), name).toBe(true);
      expect(sumOf(after, name, classical), name).toBe(0);
    }
    // The stream's end is counted once the client's close reaches the relay.
    await expect.poll(() => fixture.metrics.expose().then((text) => sumOf(parseExposition(text), 'execrelay_relay_stream_closes_total', pq) - sumOf(before, 'execrelay_relay_stream_closes_total', pq))).toBe(1);
  });

  it('pushed events complete the command: the library client issues no process/read', async () => {
    const client = await ExecClient.connectCodex({ relay: fixture.url, environmentId: ENV, token: CLIENT_TOKEN, hybridKey: await loadHybridKeyFile(keyFile), executorKey: ACCEPT_RELAY_KEY });
    try {
      const handle = await client.exec(['sh', '-c', 'echo hi; echo err >&2; exit 3'], { cwd: workDir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      const completion = await handle.completion;
      expect({ exitCode: completion.exitCode, stdout: completion.stdout.toString(), stderr: completion.stderr.toString() }).toEqual({ exitCode: 3, stdout: 'hi\n', stderr: 'err\n' });
      expect(client.readsIssued).toBe(0);
      expect(client.agentIdentity).toMatch(/^hyb1:/);
    } finally {
      client.close();
    }
  });

  it('a pinned executor key (--agent-key hyb1:...) is used; another pinned key is refused before the executor is contacted', async () => {
    const probe = await runCli(['exec', ...through(fixture.url), '--accept-relay-key', '--', 'true'], { timeoutMs: 60_000 });
    expect(probe.code, probe.stderr).toBe(0);
    const executorKey = /key (hyb1:[a-z2-7]{32})/.exec(probe.stderr)![1]!;
    const pinned = await runCli(['exec', ...through(fixture.url), '--agent-key', executorKey, '--', 'echo', 'pinned'], { timeoutMs: 60_000 });
    expect(pinned).toMatchObject({ code: 0, stdout: 'pinned\n', stderr: '' });
    const handshakesBefore = (fixture.executor.log().match(/Noise executor handshake completed/g) ?? []).length;
    const wrong = await runCli(['exec', ...through(fixture.url), '--agent-key', fingerprint, '--', 'echo', 'never'], { timeoutMs: 60_000 });
    expect(wrong.code).toBe(255);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toContain(`the relay names executor key ${executorKey} for this environment, not the pinned ${fingerprint}: refused`);
    expect((fixture.executor.log().match(/Noise executor handshake completed|noise_reason/g) ?? []).length).toBe(handshakesBefore);
  });

  it('walk and cat work on the codex executor', async () => {
    const cat = await runCli(['cat', ...through(fixture.url), '--accept-relay-key', path.join(workDir, 'hello.txt')], { timeoutMs: 60_000 });
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout).toBe('hello from the codex executor\n');
    const walk = await runCli(['walk', ...through(fixture.url), '--accept-relay-key', workDir], { timeoutMs: 60_000 });
    expect(walk.code, walk.stderr).toBe(0);
    expect(walk.stdout).toContain('hello.txt');
    expect(walk.stdout).toContain(path.join('sub', 'deep.txt'));
  });

  it('a file larger than a Noise record and megabytes of output arrive intact', async () => {
    const { randomBytes, createHash } = await import('node:crypto');
    const blob = randomBytes(300 * 1024);
    writeFileSync(path.join(workDir, 'blob.bin'), blob);
    // The one entry point: ExecClient.connect takes a codex target as it takes a native one.
    const client = await ExecClient.connect({ relay: fixture.url, environmentId: ENV, token: CLIENT_TOKEN, hybridKey: await loadHybridKeyFile(keyFile), executorKey: ACCEPT_RELAY_KEY });
    try {
      // fs/readFile answers in one JSON-RPC message of ≈ 400 KB: several records, reassembled.
      const read = await client.fs.readFile(path.join(workDir, 'blob.bin'));
      expect(createHash('sha256').update(read).digest('hex')).toBe(createHash('sha256').update(blob).digest('hex'));
      // The same command run here (the executor is on this machine) says what must arrive.
      const command = 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do cat blob.bin; done | od -An -tx1 | head -c 4000000';
      const expected = execFileSync('sh', ['-c', command], { cwd: workDir, maxBuffer: 16 * 1024 * 1024 });
      const handle = await client.exec(['sh', '-c', command], { cwd: workDir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      const completion = await handle.completion;
      expect(completion.exitCode).toBe(0);
      expect(completion.stdout.length).toBe(4_000_000);
      expect(completion.stdout.equals(expected)).toBe(true);
      expect(client.readsIssued).toBe(0);
    } finally {
      client.close();
    }
  }, 60_000);

  it('24 concurrent streams run at once through the one executor socket', async () => {
    const key = generateHybridKeyPair();
    const clients = await Promise.all(
      Array.from({ length: 24 }, () => ExecClient.connectCodex({ relay: fixture.url, environmentId: ENV, token: CLIENT_TOKEN, hybridKey: key, executorKey: ACCEPT_RELAY_KEY, handshakeTimeoutMs: 30_000 })),
    );
    try {
      // Every command waits until all 24 have started: they really run at the same time.
      const barrier = path.join(fixture.dir, 'barrier');
      mkdirSync(barrier);
      const results = await Promise.all(
        clients.map(async (client, index) => {
          const handle = await client.exec(['sh', '-c', `touch ${barrier}/${index}; while [ $(ls ${barrier} | wc -l) -lt 24 ]; do sleep 0.05; done; echo stream-${index}`], {
            cwd: workDir,
            env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          });
          return (await handle.completion).stdout.toString();
        }),
      );
      expect(results).toEqual(clients.map((_, index) => `stream-${index}\n`));
      expect(clients.map((client) => client.readsIssued)).toEqual(clients.map(() => 0));
    } finally {
      for (const client of clients) client.close();
    }
  }, 120_000);

  it('--proxy and HTTP_PROXY: the registry call and the rendezvous socket go through an HTTP CONNECT proxy (tinyproxy logs both); a refusing proxy is named', async () => {
    if (process.env.CI && !hasTinyproxy()) throw new Error('CI is set but tinyproxy is not installed; install with: apt-get install -y tinyproxy');
    const proxy = await startTinyproxy();
    // Tunnels only to 443: a CONNECT to the relay's port is refused 403.
    const refusing = await startTinyproxy({ connectPorts: [443] });
    try {
      const port = new URL(fixture.url).port;
      const connects = () => proxy.log().split(`CONNECT 127.0.0.1:${port} HTTP/1.1`).length - 1;
      const flag = await runCli(['exec', ...through(fixture.url), '--accept-relay-key', '--proxy', proxy.url, '--', 'echo', 'via-proxy'], { timeoutMs: 60_000 });
      expect(flag.code, flag.stderr).toBe(0);
      expect(flag.stdout).toBe('via-proxy\n');
      expect(connects()).toBe(2);
      const fromEnv = await runCli(['exec', ...through(fixture.url), '--accept-relay-key', '--', 'echo', 'via-proxy'], { timeoutMs: 60_000, env: { HTTP_PROXY: proxy.url, http_proxy: '', NO_PROXY: '', no_proxy: '' } });
      expect(fromEnv.code, fromEnv.stderr).toBe(0);
      expect(fromEnv.stdout).toBe('via-proxy\n');
      expect(connects()).toBe(4);
      const refused = await runCli(['exec', ...through(fixture.url), '--accept-relay-key', '--proxy', refusing.url, '--', 'echo', 'never'], { timeoutMs: 60_000 });
      expect(refused.code).toBe(255);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toBe(`execrelay exec: proxy ${refusing.url} refused to connect to relay 127.0.0.1:${port}: HTTP 403 Access violation\n`);
    } finally {
      await proxy.stop();
      await refusing.stop();
    }
  });

  it('a byte capture between client and relay holds neither the output nor method names', async () => {
    const canary = 'canary-output-6d2f91c4';
    const result = await runCli(['exec', ...through(proxy.url), '--accept-relay-key', '--', 'sh', '-c', `echo ${canary}`], { timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${canary}\n`);
    const seen = Buffer.concat([proxy.captured('upstream'), proxy.captured('downstream')]);
    // The capture did see this exchange: the registry call and the rendezvous upgrade went through it.
    expect(seen.includes('/cloud/environment/codex-e2e/connect')).toBe(true);
    expect(seen.includes('/cloud/rendezvous')).toBe(true);
    expect(seen.length).toBeGreaterThan(7000);
    for (const plaintext of [canary, 'process/start', 'process/output', 'process/exited', 'initialize', 'sh -c']) expect(seen.includes(plaintext), plaintext).toBe(false);
  });
});

describe('a relay restart', () => {
  it('the codex executor registers again by itself (its signed URL is refused by the new relay) and serves clients again', async () => {
    const start = (port: number) => {
      const relay = new RelayServer({ credentials: RelayCredentials.parse(TOKENS, 'tokens').credentials, logger: createLogger('test-relay', 'silent') });
      return relay.listen('127.0.0.1', port).then((url) => ({ relay, url }));
    };
    let { relay, url } = await start(0);
    const executor = await startCodexRemoteExecutor({ registry: url.replace('ws:', 'http:'), environmentId: 'codex-restart', bearer: EXECUTOR_TOKEN });
    try {
      await executor.waitForLog(RENDEZVOUS_CONNECTED_LOG);
      const run = async () => {
        const client = await ExecClient.connectCodex({ relay: url, environmentId: 'codex-restart', token: CLIENT_TOKEN, hybridKey: generateHybridKeyPair(), executorKey: ACCEPT_RELAY_KEY });
        try {
          return (await (await client.exec(['echo', 'served'], { cwd: '/', env: {} })).completion).stdout.toString();
        } finally {
          client.close();
        }
      };
      expect(await run()).toBe('served\n');
      const registrations = () => (executor.log().match(/Noise executor registration completed/g) ?? []).length;
      expect(registrations()).toBe(1);
      const port = Number(new URL(url).port);
      await relay.close();
      ({ relay, url } = await start(port));
      await executor.waitForLog(/Noise executor registration completed[\s\S]*Noise executor registration completed[\s\S]*Noise executor connected to rendezvous/, 60_000);
      expect(registrations()).toBe(2);
      expect(executor.log()).toMatch(/invalid_signature/);
      expect(await run()).toBe('served\n');
    } finally {
      await executor.stop();
      await relay.close();
    }
  }, 120_000);
});

describe('the execrelay relay command (its bindings file)', () => {
  it('binds the codex environment to its key across a relay restart; a restarted executor (a new key) is refused until the operator unbinds', async () => {
    const env = 'codex-cli-relay';
    const state = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-state-'));
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-cli-relay-'));
    const tokenFile = path.join(scratch, 'token');
    writeFileSync(tokenFile, `${TEST_TOKEN}\n`, { mode: 0o600 });
    const keyFile = path.join(scratch, 'client-hybrid.key');
    expect((await runCli(['keygen', '--hybrid', '--out', keyFile])).code).toBe(0);
    const stateEnv = { XDG_STATE_HOME: state };
    let relay = await spawnRelay(0, [], stateEnv);
    const executors: Array<Awaited<ReturnType<typeof startCodexRemoteExecutor>>> = [];
    const startExecutor = async () => {
      const executor = await startCodexRemoteExecutor({ registry: relay.url.replace('ws:', 'http:'), environmentId: env, bearer: TEST_TOKEN });
      executors.push(executor);
      return executor;
    };
    const exec = () => runCli(['exec', '--relay', relay.url, '--env', env, '--token-file', tokenFile, '--key', keyFile, '--accept-relay-key', '--', 'echo', 'served'], { timeoutMs: 60_000 });
    try {
      const first = await startExecutor();
      await first.waitForLog(RENDEZVOUS_CONNECTED_LOG);
      expect((await exec()).stdout).toBe('served\n');
      const bindings = await runCli(['relay', 'bindings'], { env: stateEnv });
      const bound = new RegExp(`^${env} (hyb1:[a-z2-7]{32})$`, 'm').exec(bindings.stdout)?.[1];
      expect(bound, bindings.stdout + bindings.stderr).toBeDefined();

      await relay.kill('SIGTERM');
      relay = await spawnRelay(relay.port, [], stateEnv);
      await first.waitForLog(/Noise executor registration completed[\s\S]*Noise executor registration completed[\s\S]*Noise executor connected to rendezvous/, 60_000);
      const served = await exec();
      expect(served.stdout, served.stderr).toBe('served\n');
      expect(served.stderr).toContain(bound!);

      await first.stop();
      const second = await startExecutor();
      expect(await second.exited).toBe(1);
      expect(second.log()).toMatch(/environment registry authentication error.*403 Forbidden/);
      const unbind = await runCli(['relay', 'unbind', env], { env: stateEnv });
      expect(unbind.code, unbind.stderr).toBe(0);
      const third = await startExecutor();
      await third.waitForLog(RENDEZVOUS_CONNECTED_LOG);
      const again = await exec();
      expect(again.stdout, again.stderr).toBe('served\n');
      expect(again.stderr).not.toContain(bound!);
    } finally {
      for (const executor of executors) await executor.stop();
      await relay.kill('SIGTERM');
    }
  }, 180_000);
});
