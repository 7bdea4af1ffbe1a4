import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCli } from '../support/cli.js';
import { eventually } from '../support/resilience-helpers.js';

/** The agent's `direct listener access` log line (pino writes it asynchronously to stderr). */
function accessLogLine(stderr: () => string): Promise<string> {
  return eventually(async () => stderr().split('\n').find((l) => l.includes('direct listener access')), 5_000, 'the direct listener access log line');
}

/**
 * Attacks on the agent's direct WebSocket listener (`execrelay agent --listen ws://…`): a web page in
 * a browser on the same machine (it sends an Origin header; DNS rebinding makes its own host name
 * resolve to 127.0.0.1), and anyone on the network when the listener is not on loopback.
 */

/** Sends a WebSocket upgrade by hand (so Host and Origin are exactly what an attacker sends) and returns the status code. */
function upgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; response: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname === '0.0.0.0' ? '127.0.0.1' : hostname);
    let response = '';
    const all = { Host: `${hostname}:${port}`, Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13', ...headers };
    socket.on('connect', () => socket.write(`GET / HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`));
    socket.on('data', (d) => {
      response += d.toString('latin1');
      if (response.includes('\r\n\r\n')) {
        socket.destroy();
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0), response });
      }
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error(`no answer to the upgrade; got ${JSON.stringify(response)}`));
    });
  });
}

describe('direct listener on loopback, without a token', () => {
  let agent: Awaited<ReturnType<typeof startCli>>;
  let port = '';

  beforeAll(async () => {
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--allow-origin', 'http://trusted.example'], { EXECRELAY_LOG_LEVEL: 'debug' });
    port = new URL(agent.firstLine).port;
  });
  afterAll(async () => agent?.stop());

  it('refuses an upgrade that carries a browser Origin with 403, and no session is created', async () => {
    const refused = await upgrade(agent.firstLine, { Origin: 'http://evil.example' });
    expect(refused.status).toBe(403);
    expect(refused.response).toMatch(/origin_not_allowed/);
    // Nothing reached the exec protocol: no session was attached (logged at debug level).
    await new Promise((r) => setTimeout(r, 200));
    expect(agent.stderr()).not.toMatch(/session attached/);
    expect(agent.stderr()).toMatch(/refused a direct connection/);
  });

  it('accepts an Origin named by --allow-origin', async () => {
    expect((await upgrade(agent.firstLine, { Origin: 'http://trusted.example' })).status).toBe(101);
  });

  it('refuses a Host that is not a loopback name (DNS rebinding)', async () => {
    const rebound = await upgrade(agent.firstLine, { Host: `evil.example:${port}` });
    expect(rebound.status).toBe(403);
    expect(rebound.response).toMatch(/host_not_allowed/);
    expect((await upgrade(agent.firstLine, { Host: `localhost:${port}` })).status).toBe(101);
    expect((await upgrade(agent.firstLine, { Host: `127.0.0.1:${port}` })).status).toBe(101);
  });

  it('still serves a client without a token or Origin', async () => {
    const result = await runCli(['exec', '--url', agent.firstLine, '--', 'echo', 'loopback-ok']);
    expect(result).toMatchObject({ code: 0, stdout: 'loopback-ok\n' });
  });

  it('logs its access decision at start', async () => {
    const line = await accessLogLine(agent.stderr);
    expect(JSON.parse(line)).toMatchObject({ auth: 'none (loopback)', allowedOrigins: ['http://trusted.example'], hostCheck: true });
  });
});

describe('direct listener on a non-loopback address', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-listen-token-'));
  const tokenFile = path.join(dir, 'listen.token');
  const wrongFile = path.join(dir, 'wrong.token');
  let agent: Awaited<ReturnType<typeof startCli>> | undefined;

  beforeAll(() => {
    writeFileSync(tokenFile, 'listen-token-0123456789abcdef\n', { mode: 0o600 });
    writeFileSync(wrongFile, 'wrong-token-0123456789abcdef\n', { mode: 0o600 });
  });
  afterAll(async () => {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start without --listen-token-file, saying how to create one', async () => {
    const result = await runCli(['agent', '--listen', 'ws://0.0.0.0:0']);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/not a loopback address/);
    expect(result.stderr).toMatch(/--listen-token-file FILE/);
    expect(result.stderr).toMatch(/umask 077; head -c 32 \/dev\/urandom \| base64 > FILE/);
  });

  it('with --listen-token-file: 401 without the token or with a wrong one, and exec --agent-token-file runs a command', async () => {
    agent = await startCli(['agent', '--listen', 'ws://0.0.0.0:0', '--listen-token-file', tokenFile], { EXECRELAY_LOG_LEVEL: 'info' });
    const url = `ws://127.0.0.1:${new URL(agent.firstLine).port}`;
    expect(JSON.parse(await accessLogLine(agent.stderr))).toMatchObject({ auth: 'bearer token' });

    expect((await upgrade(url)).status).toBe(401);
    expect((await upgrade(url, { Authorization: 'Bearer wrong-token-0123456789abcdef' })).status).toBe(401);
    expect((await upgrade(url, { Authorization: 'Bearer listen-token-0123456789abcdef' })).status).toBe(101);
    // Browser Origins are refused here too, token or not.
    expect((await upgrade(url, { Authorization: 'Bearer listen-token-0123456789abcdef', Origin: 'http://evil.example' })).status).toBe(403);

    const without = await runCli(['exec', '--url', url, '--', 'echo', 'nope']);
    expect(without.code).toBe(255);
    expect(without.stderr).toMatch(/401/);
    const wrong = await runCli(['exec', '--url', url, '--agent-token-file', wrongFile, '--', 'echo', 'nope']);
    expect(wrong.code).toBe(255);
    expect(wrong.stderr).toMatch(/401/);
    // A relay token in the environment is never sent to a direct agent (even one that would accept it).
    const relayToken = await runCli(['exec', '--url', url, '--', 'echo', 'nope'], { env: { EXECRELAY_TOKEN_FILE: tokenFile } });
    expect(relayToken.code).toBe(255);
    expect(relayToken.stderr).toMatch(/401/);
    const ok = await runCli(['exec', '--url', url, '--agent-token-file', tokenFile, '--', 'echo', 'with-token']);
    expect(ok).toMatchObject({ code: 0, stdout: 'with-token\n' });
    const walk = await runCli(['cat', '--url', url, '--agent-token-file', tokenFile, tokenFile]);
    expect(walk).toMatchObject({ code: 0, stdout: 'listen-token-0123456789abcdef\n' });
  });
});
