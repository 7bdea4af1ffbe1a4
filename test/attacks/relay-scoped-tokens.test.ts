import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { clientConnectPath } from '../../src/relay-control/relay-endpoints.js';
import { connectProvenExecutor } from '../support/proven-executor.js';
import { connectRelaySocket, RelayRefusedError } from '../../src/relay-link/relay-socket.js';
import { freePort } from '../support/loopback-port.js';
import { eventually, sleep, spawnRelay, type RelayProcess } from '../support/resilience-helpers.js';

/**
 * The relay's token file gives each token a role and an environment scope, and is re-read when
 * it changes or on SIGHUP: a client token cannot register an executor, an executor token scoped
 * `laptop-*` cannot register `desk-1`, a revoked token is refused (and its live sockets closed)
 * without a restart, and a bad re-read keeps the previous tokens.
 */

const EXECUTOR = 'executor-token-0123456789abcdef';
const CLIENT = 'client-token-0123456789abcdef';
const BARE = 'bare-token-0123456789abcdef';
const NEW = 'new-token-0123456789abcdef';

const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-scoped-'));
const tokenFile = path.join(dir, 'relay.tokens');
const write = (lines: string[]) => {
  // Written next to it and renamed over it, as an operator's tooling would: the watch sees the rename.
  const next = path.join(dir, 'relay.tokens.next');
  writeFileSync(next, lines.join('\n') + '\n', { mode: 0o600 });
  renameSync(next, tokenFile);
};

let relay: RelayProcess;
const sockets: WebSocket[] = [];

async function refusal(connect: Promise<WebSocket>): Promise<string> {
  try {
    const socket = await connect;
    sockets.push(socket);
    return 'accepted';
  } catch (error) {
    return error instanceof RelayRefusedError ? `${error.status} ${error.reason}` : `error: ${(error as Error).message}`;
  }
}
const executor = (token: string, environmentId: string) => refusal(connectProvenExecutor(relay.url, environmentId, token));
const client = (token: string, environmentId: string) => refusal(connectRelaySocket(`${relay.url}${clientConnectPath(environmentId)}`, token, 5000));

beforeAll(async () => {
  write([`# comment`, `${EXECUTOR} executor laptop-*,build.1`, `${CLIENT} client laptop-*`, BARE]);
  relay = await spawnRelay(0, ['--token-file', tokenFile]);
}, 30_000);
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.terminate();
});
afterAll(async () => {
  await relay?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe('scoped relay tokens', () => {
  it('a bare token line is accepted with a warning naming its line, never the token', () => {
    expect(relay.stderr()).toMatch(/line 4: a bare token is accepted for executors and clients of every environment/);
    expect(relay.stderr()).not.toContain(BARE);
  });

  it('a client token cannot register an executor; an executor token cannot connect a client (403 forbidden_role)', async () => {
    expect(await executor(CLIENT, 'laptop-1')).toBe('403 forbidden_role');
    expect(await executor(EXECUTOR, 'laptop-1')).toBe('accepted');
    expect(await client(EXECUTOR, 'laptop-1')).toBe('403 forbidden_role');
    expect(await client(CLIENT, 'laptop-1')).toBe('accepted');
  });

  it('an executor token scoped laptop-* cannot register desk-1 (403 environment_not_in_scope); ids and globs both match', async () => {
    expect(await executor(EXECUTOR, 'desk-1')).toBe('403 environment_not_in_scope');
    expect(await executor(EXECUTOR, 'build.1')).toBe('accepted');
    expect(await executor(EXECUTOR, 'buildx1')).toBe('403 environment_not_in_scope'); // "." is literal
    expect(await executor(BARE, 'desk-1')).toBe('accepted');
    expect(await client(CLIENT, 'desk-1')).toBe('403 environment_not_in_scope');
    expect(await client(BARE, 'desk-1')).toBe('accepted');
  });

  it('an unknown token is 401 whatever it asks for, and a bad environment id with a good token is 400', async () => {
    expect(await executor('unknown-token-0123456789abcdef', 'laptop-1')).toBe('401 unauthorized');
    expect(await client('unknown-token-0123456789abcdef', 'laptop-1')).toBe('401 unauthorized');
    expect(await executor(EXECUTOR, 'bad%20id')).toBe('400 invalid_environment_id');
  });
});

describe('token file re-read', () => {
  it('on change: a revoked token is refused at once and its live sockets are closed (4003); a new token is accepted', async () => {
    expect(await executor(EXECUTOR, 'laptop-2')).toBe('accepted');
    const live = sockets[0]!;
    const closed = new Promise<number>((resolve) => live.once('close', (code) => resolve(code)));
    live.resume();
    expect(await client(NEW, 'laptop-2')).toBe('401 unauthorized');
    write([`${CLIENT} client laptop-*`, `${NEW} client *`, BARE]);
    expect(await closed).toBe(4003);
    expect(await executor(EXECUTOR, 'laptop-2')).toBe('401 unauthorized');
    expect(await client(NEW, 'desk-9')).not.toBe('401 unauthorized'); // known now (no executor there: 404)
    expect(await client(NEW, 'desk-9')).toBe('404 executor_unavailable');
  });

  it('a re-read that fails (a bad line, then bad permissions) keeps the previous tokens and logs an error', async () => {
    writeFileSync(tokenFile, `${CLIENT} client laptop-*\n${NEW} owner *\n`, { mode: 0o600 });
    await eventually(async () => (/token file re-read failed; keeping the previous tokens/.test(relay.stderr()) ? true : null), 5000, 'the error');
    expect(relay.stderr()).toMatch(/line 2: role must be /);
    expect(await client(NEW, 'desk-9')).toBe('404 executor_unavailable');
    const before = relay.stderr().length;
    writeFileSync(tokenFile, `${CLIENT} client laptop-*\n`, { mode: 0o600 });
    chmodSync(tokenFile, 0o644);
    await eventually(async () => (/has mode 0644/.test(relay.stderr().slice(before)) ? true : null), 5000, 'the permission error');
    expect(await client(NEW, 'desk-9')).toBe('404 executor_unavailable');
    chmodSync(tokenFile, 0o600);
  });

  it('on SIGHUP: a change the watch cannot see (the file behind a symbolic link in another directory) is read', async () => {
    const realDir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-scoped-real-'));
    const linkDir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-scoped-link-'));
    const real = path.join(realDir, 'tokens');
    writeFileSync(real, `${CLIENT} client laptop-*\n`, { mode: 0o600 });
    symlinkSync(real, path.join(linkDir, 'tokens'));
    const hup = await spawnRelay(0, ['--token-file', path.join(linkDir, 'tokens')]);
    try {
      expect(await refusal(connectProvenExecutor(hup.url, 'laptop-5', EXECUTOR))).toBe('401 unauthorized');
      writeFileSync(real, `${CLIENT} client laptop-*\n${EXECUTOR} executor laptop-*\n`, { mode: 0o600 });
      await sleep(500);
      expect(await refusal(connectProvenExecutor(hup.url, 'laptop-5', EXECUTOR))).toBe('401 unauthorized'); // not seen yet
      hup.child.kill('SIGHUP');
      await eventually(async () => ((await refusal(connectProvenExecutor(hup.url, 'laptop-5', EXECUTOR))) === 'accepted' ? true : null), 5000, 'the new token accepted');
      expect(hup.child.exitCode).toBeNull(); // SIGHUP does not stop the relay
    } finally {
      await hup.kill('SIGTERM');
      rmSync(realDir, { recursive: true, force: true });
      rmSync(linkDir, { recursive: true, force: true });
    }
  });
});

describe('--metrics-listen', () => {
  it('serves /metrics on its own listener, and the relay port no longer does', async () => {
    const port = await freePort();
    const ownFile = path.join(dir, 'metrics.tokens');
    writeFileSync(ownFile, `${CLIENT} client *\n`, { mode: 0o600 });
    const withListener = await spawnRelay(0, ['--token-file', ownFile, '--metrics-listen', `127.0.0.1:${port}`]);
    try {
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(/^execrelay_relay_executors_registered 0$/m);
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${withListener.port}/metrics`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${withListener.port}/livez`)).status).toBe(200);
      // Without the flag, the relay port serves it (as before).
      expect((await fetch(`http://127.0.0.1:${relay.port}/metrics`)).status).toBe(200);
    } finally {
      await withListener.kill('SIGTERM');
    }
  });
});
