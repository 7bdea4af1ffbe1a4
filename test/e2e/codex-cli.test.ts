import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { startRelay, TEST_TOKEN, type RelayFixture } from '../support/relay-harness.js';
import { freePort } from '../support/loopback-port.js';

/**
 * The CLI's side of codex environments without a codex executor: `keygen --hybrid`, and every
 * way `exec --accept-relay-key` / `--agent-key hyb1:…` can be misused, each a clear one-line error
 * and exit 255 (the relay: a real one, with no codex executor registered).
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-cli-'));
const tokenFile = path.join(dir, 'token');
writeFileSync(tokenFile, `${TEST_TOKEN}\n`, { mode: 0o600 });
let relay: RelayFixture;

beforeAll(async () => {
  relay = await startRelay();
});
afterAll(async () => {
  await relay.stop();
});

describe('keygen --hybrid', () => {
  it('creates the default hybrid client key (0600) and prints its fingerprint; --show prints it again; nothing is overwritten', async () => {
    const config = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-cli-config-'));
    const env = { XDG_CONFIG_HOME: config };
    const created = await runCli(['keygen', '--hybrid'], { env });
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^hyb1:[a-z2-7]{32}\n$/);
    const file = path.join(config, 'execrelay', 'client-hybrid.key');
    expect(created.stderr).toContain(`created this client's hybrid key ${file}`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await runCli(['keygen', '--hybrid', '--show', file])).toMatchObject({ code: 0, stdout: created.stdout });
    const again = await runCli(['keygen', '--hybrid'], { env });
    expect(again.code).toBe(255);
    expect(again.stderr).toContain('refusing to overwrite existing file');
    expect(again.stderr).toContain(`(its fingerprint: execrelay keygen --hybrid --show ${file})`);
  });

  it('--show of an Ed25519 key file with --hybrid says what is wrong', async () => {
    const ed = path.join(dir, 'ed.key');
    expect((await runCli(['keygen', '--out', ed])).code).toBe(0);
    const shown = await runCli(['keygen', '--hybrid', '--show', ed]);
    expect(shown.code).toBe(255);
    expect(shown.stderr).toMatch(/^execrelay keygen: .*hybrid key file/);
  });
});

describe('exec towards a codex environment: usage errors', () => {
  const exec = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['exec', '--relay', relay.url, '--env', 'codex-cli', '--token-file', tokenFile, ...args, '--', 'true'], { env });

  it('without a hybrid key: names the default path and how to create it', async () => {
    const config = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-cli-config-'));
    const result = await exec(['--accept-relay-key'], { XDG_CONFIG_HOME: config });
    expect(result.code).toBe(255);
    expect(result.stderr).toBe(
      `execrelay exec: a codex environment needs this client's hybrid key and ${path.join(config, 'execrelay', 'client-hybrid.key')} does not exist: create it with \`execrelay keygen --hybrid\`, or give --key FILE\n`,
    );
  });

  it('an Ed25519 client key where a hybrid key is needed', async () => {
    const ed = path.join(dir, 'client-ed.key');
    expect((await runCli(['keygen', '--out', ed])).code).toBe(0);
    const result = await exec(['--accept-relay-key', '--key', ed]);
    expect(result.code).toBe(255);
    expect(result.stderr).toMatch(/^execrelay exec: .*\(a codex environment needs a hybrid key: execrelay keygen --hybrid --out FILE\)\n$/);
  });

  it('--accept-relay-key with an Ed25519 agent key, and a malformed hyb1: fingerprint', async () => {
    const key = path.join(dir, 'h.key');
    expect((await runCli(['keygen', '--hybrid', '--out', key])).code).toBe(0);
    const ed = await exec(['--accept-relay-key', '--key', key, '--agent-key', '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN']);
    expect(ed.code).toBe(255);
    expect(ed.stderr).toContain('--accept-relay-key reaches a codex executor, whose key is a hybrid fingerprint (hyb1:...)');
    const bad = await exec(['--key', key, '--agent-key', 'hyb1:tooshort']);
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(/^execrelay exec: --agent-key hyb1:tooshort: .+\n$/);
  });

  it('an environment no codex executor serves: the registry says so', async () => {
    const key = path.join(dir, 'h2.key');
    expect((await runCli(['keygen', '--hybrid', '--out', key])).code).toBe(0);
    const result = await exec(['--accept-relay-key', '--key', key]);
    expect(result.code).toBe(255);
    expect(result.stderr).toBe('execrelay exec: the relay refused to connect to environment codex-cli: HTTP 404 executor_unavailable: no codex executor is connected for that environment\n');
  });

  it('--proxy and the *_PROXY variables are used for a codex environment: an unreachable proxy is named; a bad proxy URL is a usage error', async () => {
    const key = path.join(dir, 'h3.key');
    expect((await runCli(['keygen', '--hybrid', '--out', key])).code).toBe(0);
    const deadProxy = `http://127.0.0.1:${await freePort()}`;
    const registry = relay.url.replace('ws:', 'http:');
    const explicit = await exec(['--accept-relay-key', '--key', key, '--proxy', deadProxy]);
    expect(explicit.code).toBe(255);
    expect(explicit.stderr).toMatch(new RegExp(`^execrelay exec: cannot reach the relay's registry at ${registry} through proxy ${deadProxy}: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+\\n$`));
    const fromEnv = await exec(['--accept-relay-key', '--key', key], { HTTP_PROXY: deadProxy, http_proxy: deadProxy, NO_PROXY: '', no_proxy: '' });
    expect(fromEnv.code).toBe(255);
    expect(fromEnv.stderr).toContain(`through proxy ${deadProxy}: connect ECONNREFUSED`);
    const badUrl = await exec(['--accept-relay-key', '--key', key, '--proxy', 'ftp://127.0.0.1:9']);
    expect(badUrl).toMatchObject({ code: 255, stderr: 'execrelay exec: --proxy: ftp://127.0.0.1:9: only http:// and https:// proxies (HTTP CONNECT) are supported\n' });
  });
});
