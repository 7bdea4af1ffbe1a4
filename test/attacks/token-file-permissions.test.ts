import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCli } from '../support/cli.js';

/**
 * Token files readable by group or others are refused, like key files: by the relay (`--token-file`),
 * the agent (`--token-file`, `--listen-token-file`) and the client (`--token-file`), unless
 * `--allow-insecure-token-permissions` says otherwise (with a warning).
 */
describe('token file permissions', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-token-perms-'));
  const secure = path.join(dir, 'secure.token');
  const open = path.join(dir, 'open.token');
  const agentKey = path.join(dir, 'agent.key');
  const clientKey = path.join(dir, 'client.key');
  const token = 'perm-test-token-0123456789abcdef';
  let relay: Awaited<ReturnType<typeof startCli>> | undefined;
  let agent: Awaited<ReturnType<typeof startCli>> | undefined;
  let agentIdentity = '';
  const started: Awaited<ReturnType<typeof startCli>>[] = [];

  beforeAll(async () => {
    writeFileSync(secure, `${token}\n`, { mode: 0o600 });
    writeFileSync(open, `${token}\n`);
    chmodSync(open, 0o644);
    agentIdentity = (await runCli(['keygen', '--out', agentKey])).stdout.trim();
    await runCli(['keygen', '--out', clientKey]);
  });
  afterAll(async () => {
    for (const child of started) await child.stop();
    await agent?.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const refusal = new RegExp(`token file ${open.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has mode 0644; it must not be accessible by group or others \\(run: chmod 600 `);

  it('the relay refuses a 0644 --token-file, naming the file and the fix', async () => {
    const result = await runCli(['relay', '--listen', '127.0.0.1:0', '--token-file', open]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(refusal);
    expect(result.stderr).toMatch(/--allow-insecure-token-permissions/);
  });

  it('the agent refuses a 0644 --token-file and a 0644 --listen-token-file', async () => {
    const viaRelay = await runCli(['agent', '--relay', 'ws://127.0.0.1:1', '--environment-id', 'perm', '--key', agentKey, '--token-file', open]);
    expect(viaRelay.code).not.toBe(0);
    expect(viaRelay.stderr).toMatch(refusal);
    const listening = await runCli(['agent', '--listen', 'ws://0.0.0.0:0', '--listen-token-file', open]);
    expect(listening.code).not.toBe(0);
    expect(listening.stdout).toBe('');
    expect(listening.stderr).toMatch(refusal);
  });

  it('0600 works end to end: relay, agent and client', async () => {
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', secure], { EXECRELAY_LOG_LEVEL: 'warn' });
    agent = await startCli(['agent', '--relay', relay.firstLine, '--environment-id', 'perm', '--key', agentKey, '--token-file', secure, '--allow-any-client'], { EXECRELAY_LOG_LEVEL: 'warn' });
    expect(agent.firstLine).toBe(agentIdentity);
    const result = await runCli(['exec', '--relay', relay.firstLine, '--env', 'perm', '--agent-key', agentIdentity, '--key', clientKey, '--token-file', secure, '--', 'echo', 'secure-ok']);
    expect(result).toMatchObject({ code: 0, stdout: 'secure-ok\n' });
  });

  it('the client refuses a 0644 --token-file, through a relay and directly', async () => {
    const viaRelay = await runCli(['exec', '--relay', relay!.firstLine, '--env', 'perm', '--agent-key', agentIdentity, '--key', clientKey, '--token-file', open, '--', 'echo', 'nope']);
    expect(viaRelay.code).not.toBe(0);
    expect(viaRelay.stdout).toBe('');
    expect(viaRelay.stderr).toMatch(refusal);
    const direct = await runCli(['exec', '--url', 'ws://127.0.0.1:1', '--agent-token-file', open, '--', 'echo', 'nope']);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(refusal);
  });

  it('--allow-insecure-token-permissions accepts a 0644 file, with a warning, in the relay, the agent and the client', async () => {
    const insecureRelay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', open, '--allow-insecure-token-permissions'], { EXECRELAY_LOG_LEVEL: 'warn' });
    started.push(insecureRelay);
    const insecureAgent = await startCli(
      ['agent', '--relay', insecureRelay.firstLine, '--environment-id', 'perm-insecure', '--key', agentKey, '--token-file', open, '--allow-insecure-token-permissions', '--allow-any-client'],
      { EXECRELAY_LOG_LEVEL: 'warn' },
    );
    started.push(insecureAgent);
    const result = await runCli(
      ['exec', '--relay', insecureRelay.firstLine, '--env', 'perm-insecure', '--agent-key', agentIdentity, '--key', clientKey, '--token-file', open, '--allow-insecure-token-permissions', '--', 'echo', 'insecure-ok'],
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('insecure-ok\n');
    const warning = /token file .* has mode 0644 .*accepted because of --allow-insecure-token-permissions/;
    expect(result.stderr).toMatch(warning);
    expect(insecureRelay.stderr()).toMatch(warning);
    expect(insecureAgent.stderr()).toMatch(warning);
    // The environment variable works as the flag does.
    const viaEnv = await runCli(['exec', '--relay', insecureRelay.firstLine, '--env', 'perm-insecure', '--agent-key', agentIdentity, '--key', clientKey, '--token-file', open, '--', 'true'], {
      env: { EXECRELAY_ALLOW_INSECURE_TOKEN_PERMISSIONS: '1' },
    });
    expect(viaEnv.code).toBe(0);
  });
});
