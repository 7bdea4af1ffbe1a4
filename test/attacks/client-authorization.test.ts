import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCli } from '../support/cli.js';

type Running = Awaited<ReturnType<typeof startCli>>;

/**
 * Finding 1: a relay-mode agent used to serve any client key unless it had an authorized clients
 * list, so every relay token holder (and the relay operator, who issues tokens) could run commands
 * on every agent; and a replaced agent idled instead of exiting. Every part is a real process: the
 * relay, the agents, `execrelay exec`, `execrelay authorize`.
 */
describe('client authorization (relay mode)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-client-authz-'));
  const token = path.join(dir, 'token');
  const agentKey = path.join(dir, 'agent.key');
  const clientKey = path.join(dir, 'client.key');
  const otherKey = path.join(dir, 'other.key');
  const authorized = path.join(dir, 'authorized-clients');
  let relay: Running;
  let agentIdentity = '';
  let clientIdentity = '';
  let otherIdentity = '';
  const started: Running[] = [];

  async function agent(environmentId: string, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<Running> {
    const running = await startCli(['agent', '--relay', relay.firstLine, '--environment-id', environmentId, '--key', agentKey, '--token-file', token, ...extra], {
      EXECRELAY_LOG_LEVEL: 'warn',
      ...env,
    });
    started.push(running);
    return running;
  }

  function exec(environmentId: string, key: string, words = ['echo', 'hi']) {
    return runCli(['exec', '--relay', relay.firstLine, '--env', environmentId, '--agent-key', agentIdentity, '--token-file', token, '--key', key, '--', ...words]);
  }

  function refusalOf(identity: string): string {
    return (
      `execrelay exec: the agent refused this client (${identity}): not in its authorized clients; ` +
      `on the agent's host run: execrelay authorize --authorized-clients FILE ${identity}\n`
    );
  }

  beforeAll(async () => {
    writeFileSync(token, 'client-authz-token-0123456789abcdef\n', { mode: 0o600 });
    agentIdentity = (await runCli(['keygen', '--out', agentKey])).stdout.trim();
    clientIdentity = (await runCli(['keygen', '--out', clientKey])).stdout.trim();
    otherIdentity = (await runCli(['keygen', '--out', otherKey])).stdout.trim();
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', token], { EXECRELAY_LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    for (const running of started) await running.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without an authorized clients file the agent starts but refuses every client, clearly, exit 255', async () => {
    const bare = await agent('authz-none', []);
    expect(bare.firstLine).toBe(agentIdentity);
    expect(bare.stderr()).toMatch(/no --authorized-clients file: every client is refused/);
    const result = await exec('authz-none', clientKey);
    expect(result).toMatchObject({ code: 255, stdout: '', stderr: refusalOf(clientIdentity) });
    // Nothing ran: the refusal comes before any session.
    expect(bare.stderr()).toMatch(/secure channel refused/);
  }, 60_000);

  it('a one-line authorize lets the refused client in without restarting the agent; --remove shuts it out again', async () => {
    writeFileSync(authorized, `${otherIdentity}  # someone else\n`, { mode: 0o600 });
    const listed = await agent('authz-file', ['--authorized-clients', authorized]);
    expect(await exec('authz-file', clientKey)).toMatchObject({ code: 255, stderr: refusalOf(clientIdentity) });
    expect(await exec('authz-file', otherKey, ['echo', 'other-ok'])).toMatchObject({ code: 0, stdout: 'other-ok\n' });

    const added = await runCli(['authorize', '--authorized-clients', authorized, clientIdentity]);
    expect(added).toMatchObject({ code: 0, stdout: '', stderr: `execrelay authorize: added ${clientIdentity} to ${authorized}\n` });
    // The agent re-reads the file on its own (watch, or its 1 s poll): a bounded retry.
    let result = await exec('authz-file', clientKey);
    for (const deadline = Date.now() + 5000; result.code !== 0 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      result = await exec('authz-file', clientKey);
    }
    expect(result).toMatchObject({ code: 0, stdout: 'hi\n' });
    expect(listed.child.exitCode).toBeNull();

    const removed = await runCli(['authorize', '--remove', '--authorized-clients', authorized, clientIdentity]);
    expect(removed).toMatchObject({ code: 0, stderr: `execrelay authorize: removed ${clientIdentity} from ${authorized}\n` });
    result = await exec('authz-file', clientKey);
    for (const deadline = Date.now() + 5000; result.code === 0 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      result = await exec('authz-file', clientKey);
    }
    expect(result).toMatchObject({ code: 255, stdout: '', stderr: refusalOf(clientIdentity) });
    expect(await exec('authz-file', otherKey, ['echo', 'still-ok'])).toMatchObject({ code: 0, stdout: 'still-ok\n' });
  }, 60_000);

  it('an empty EXECRELAY_AUTHORIZED_CLIENTS, a missing file or an invalid one stops the agent at start (fails closed)', async () => {
    const args = ['agent', '--relay', relay.firstLine, '--environment-id', 'authz-bad', '--key', agentKey, '--token-file', token];
    const empty = await runCli(args, { env: { EXECRELAY_AUTHORIZED_CLIENTS: '' } });
    expect(empty.code).toBe(255);
    expect(empty.stdout).toBe('');
    expect(empty.stderr).toMatch(/execrelay: --authorized-clients \(EXECRELAY_AUTHORIZED_CLIENTS\) is empty/);

    const missingFile = path.join(dir, 'missing-list');
    const missing = await runCli([...args, '--authorized-clients', missingFile]);
    expect(missing.code).toBe(255);
    expect(missing.stderr).toContain(
      `execrelay: --authorized-clients: authorized clients file ${missingFile} does not exist; create it with: execrelay authorize --authorized-clients ${missingFile} CLIENT_IDENTITY`,
    );

    const invalidFile = path.join(dir, 'invalid-list');
    writeFileSync(invalidFile, 'not-an-identity\n');
    const invalid = await runCli([...args, '--authorized-clients', invalidFile]);
    expect(invalid.code).toBe(255);
    expect(invalid.stderr).toMatch(/line 1: invalid public identity "not-an-identity"/);

    const both = await runCli([...args, '--authorized-clients', authorized, '--allow-any-client']);
    expect(both.code).toBe(255);
    expect(both.stderr).toMatch(/give either --authorized-clients FILE or --allow-any-client, not both/);

    // Only clear values count (commander alone would take any value of a boolean's variable, even "0", as on).
    const unclear = await runCli(args, { env: { EXECRELAY_ALLOW_ANY_CLIENT: 'maybe' } });
    expect(unclear.code).toBe(255);
    expect(unclear.stderr).toMatch(/EXECRELAY_ALLOW_ANY_CLIENT must be one of 1, true, yes, on, 0, false, no, off \(or empty\), not "maybe"/);
  }, 60_000);

  it('--allow-any-client (or EXECRELAY_ALLOW_ANY_CLIENT=1) serves a fresh key, with a warning at every start', async () => {
    const freshKey = path.join(dir, 'fresh.key');
    await runCli(['keygen', '--out', freshKey]);
    const open = await agent('authz-any', ['--allow-any-client']);
    expect(open.stderr()).toMatch(/--allow-any-client: every holder of a relay token for this environment .* can run commands here/);
    expect(await exec('authz-any', freshKey, ['echo', 'any-ok'])).toMatchObject({ code: 0, stdout: 'any-ok\n' });

    const viaEnv = await agent('authz-any-env', [], { EXECRELAY_ALLOW_ANY_CLIENT: '1' });
    expect(viaEnv.stderr()).toMatch(/--allow-any-client: every holder/);
    expect(await exec('authz-any-env', freshKey, ['echo', 'env-ok'])).toMatchObject({ code: 0, stdout: 'env-ok\n' });

    const off = await agent('authz-any-off', [], { EXECRELAY_ALLOW_ANY_CLIENT: '0' });
    expect(off.stderr()).toMatch(/no --authorized-clients file: every client is refused/);
    expect((await exec('authz-any-off', freshKey)).code).toBe(255);
  }, 60_000);

  it('a relay client without --key needs the default client key, and says how to create it', async () => {
    const config = path.join(dir, 'xdg');
    const args = ['exec', '--relay', relay.firstLine, '--env', 'authz-any', '--agent-key', agentIdentity, '--token-file', token, '--', 'echo', 'default-key-ok'];
    const missing = await runCli(args, { env: { XDG_CONFIG_HOME: config, EXECRELAY_CLIENT_KEY: undefined } });
    expect(missing.code).toBe(255);
    expect(missing.stderr).toContain(`${path.join(config, 'execrelay', 'client.key')} does not exist: create it with \`execrelay keygen\``);

    const created = await runCli(['keygen'], { env: { XDG_CONFIG_HOME: config, EXECRELAY_KEY_OUT: undefined } });
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^12D3KooW\S+\n$/);
    expect(created.stderr).toContain(`created this client's key ${path.join(config, 'execrelay', 'client.key')}`);
    expect(await runCli(args, { env: { XDG_CONFIG_HOME: config, EXECRELAY_CLIENT_KEY: undefined } })).toMatchObject({ code: 0, stdout: 'default-key-ok\n' });
  }, 60_000);

  it('an agent replaced by another registration of its environment (same key) exits non-zero with an error', async () => {
    const first = await agent('authz-replaced', ['--allow-any-client']);
    const exited = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)));
    await agent('authz-replaced', ['--allow-any-client']);
    const code = await Promise.race([exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
    expect(code).toBe(1);
    expect(first.stderr()).toMatch(/"level":50.*another agent process with this key registered environment authz-replaced with the relay and replaced this one; not reconnecting/);
  }, 60_000);
});
