import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCli } from '../support/cli.js';

/** The relay serving wss:// itself (--tls-cert/--tls-key), with every part a real process. */
describe('relay over TLS', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-tls-'));
  const files = {
    cert: path.join(dir, 'tls.crt'),
    key: path.join(dir, 'tls.key'),
    token: path.join(dir, 'token'),
    agentKey: path.join(dir, 'agent.key'),
    clientKey: path.join(dir, 'client.key'),
    authorizedClients: path.join(dir, 'authorized-clients'),
  };
  // The client's key comes from its environment variable; the agent authorizes it in its file.
  const env = { NODE_EXTRA_CA_CERTS: files.cert, EXECRELAY_LOG_LEVEL: 'warn', EXECRELAY_CLIENT_KEY: files.clientKey };
  let relay: Awaited<ReturnType<typeof startCli>>;
  let agent: Awaited<ReturnType<typeof startCli>>;
  let agentIdentity = '';

  beforeAll(async () => {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', files.key, '-out', files.cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    writeFileSync(files.token, 'tls-test-token-0123456789\n', { mode: 0o600 });
    agentIdentity = (await runCli(['keygen', '--out', files.agentKey])).stdout.trim();
    const clientIdentity = (await runCli(['keygen', '--out', files.clientKey])).stdout.trim();
    expect(await runCli(['authorize', '--authorized-clients', files.authorizedClients, clientIdentity])).toMatchObject({ code: 0 });
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', files.token, '--tls-cert', files.cert, '--tls-key', files.key], env);
    agent = await startCli(['agent', '--relay', relay.firstLine, '--environment-id', 'tls-env', '--key', files.agentKey, '--token-file', files.token, '--authorized-clients', files.authorizedClients], env);
  });
  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves wss:// and carries exec end to end', async () => {
    expect(relay.firstLine).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    expect(agent.firstLine).toBe(agentIdentity);
    const result = await runCli(
      ['exec', '--relay', relay.firstLine, '--env', 'tls-env', '--agent-key', agentIdentity, '--token-file', files.token, '--', 'sh', '-c', 'echo over-tls; exit 4'],
      { env },
    );
    expect(result).toMatchObject({ code: 4, stdout: 'over-tls\n' });
  });

  it('refuses a wrong agent key with a message naming the mismatch', async () => {
    const other = (await runCli(['keygen', '--out', path.join(dir, 'other.key')])).stdout.trim();
    const result = await runCli(['exec', '--relay', relay.firstLine, '--env', 'tls-env', '--agent-key', other, '--token-file', files.token, '--', 'true'], { env });
    expect(result.code).toBe(255);
    expect(result.stderr).toContain(`agent identity did not match: expected ${other}, the agent presented ${agentIdentity}`);
  });

  it('explains missing relay flags', async () => {
    const noKey = await runCli(['exec', '--relay', relay.firstLine, '--env', 'tls-env', '--token-file', files.token, '--', 'true'], { env });
    expect(noKey.code).toBe(255);
    expect(noKey.stderr).toMatch(/environment tls-env has no known identity: it is not in .*known_environments\. Give --agent-key KEY .* or learn it on first contact with --accept-new/);
    const badKey = await runCli(['agent', '--relay', relay.firstLine, '--environment-id', 'x', '--key', path.join(dir, 'missing.key'), '--token-file', files.token], { env });
    expect(badKey.code).toBe(255);
    expect(badKey.stderr).toMatch(/^execrelay: /);
  });
});
