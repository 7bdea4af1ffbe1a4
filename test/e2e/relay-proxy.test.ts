import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCli } from '../support/cli.js';
import { freePort } from '../support/loopback-port.js';
import { hasTinyproxy, startTinyproxy, type Tinyproxy } from '../support/tinyproxy.js';

/** Skipped only off CI: in CI a missing tinyproxy is a failure (`.ci/run` installs it). */
const skip = !hasTinyproxy() && !process.env.CI;

/** Every proxy variable cleared, so that the host's own settings never leak into a case. */
const NO_PROXY_ENV = { HTTP_PROXY: '', HTTPS_PROXY: '', ALL_PROXY: '', NO_PROXY: '', http_proxy: '', https_proxy: '', all_proxy: '', no_proxy: '' };

/** The agent and the client reach a real relay through a real HTTP CONNECT proxy (tinyproxy) on loopback. */
describe.skipIf(skip)('relay through an HTTP CONNECT proxy', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-proxy-'));
  const files = { token: path.join(dir, 'token'), agentKey: path.join(dir, 'agent.key'), clientKey: path.join(dir, 'client.key'), authorized: path.join(dir, 'authorized-clients') };
  const env = { ...NO_PROXY_ENV, EXECRELAY_LOG_LEVEL: 'warn', EXECRELAY_CLIENT_KEY: files.clientKey };
  let proxy: Tinyproxy;
  let refusingProxy: Tinyproxy;
  let relay: Awaited<ReturnType<typeof startCli>>;
  let agent: Awaited<ReturnType<typeof startCli>>;
  let agentIdentity = '';
  let relayPort = 0;
  const exec = (extraEnv: NodeJS.ProcessEnv, ...flags: string[]) =>
    runCli(['exec', '--relay', relay.firstLine, '--env', 'proxied', '--agent-key', agentIdentity, '--token-file', files.token, ...flags, '--', 'echo', 'via-proxy'], {
      env: { ...env, ...extraEnv },
    });

  beforeAll(async () => {
    if (process.env.CI && !hasTinyproxy()) throw new Error('CI is set but tinyproxy is not installed; install with: apt-get install -y tinyproxy');
    proxy = await startTinyproxy();
    // Tunnels only to 443: a CONNECT to the relay's port is refused 403.
    refusingProxy = await startTinyproxy({ connectPorts: [443] });
    writeFileSync(files.token, 'proxy-test-token-0123456789\n', { mode: 0o600 });
    agentIdentity = (await runCli(['keygen', '--out', files.agentKey])).stdout.trim();
    const clientIdentity = (await runCli(['keygen', '--out', files.clientKey])).stdout.trim();
    expect(await runCli(['authorize', '--authorized-clients', files.authorized, clientIdentity])).toMatchObject({ code: 0 });
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', files.token], env);
    relayPort = Number(new URL(relay.firstLine).port);
    // The agent finds its proxy in the lower-case variable, as curl would.
    agent = await startCli(
      ['agent', '--relay', relay.firstLine, '--environment-id', 'proxied', '--key', files.agentKey, '--token-file', files.token, '--authorized-clients', files.authorized],
      { ...env, http_proxy: proxy.url },
    );
  });
  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
    await proxy?.stop();
    await refusingProxy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers the agent and runs a client command through the proxy, which logs both CONNECTs', async () => {
    expect(agent.firstLine).toBe(agentIdentity);
    const connectLine = `CONNECT 127.0.0.1:${relayPort} HTTP/1.1`;
    expect(proxy.log().split(connectLine).length - 1).toBe(1); // the agent's
    const result = await exec({}, '--proxy', proxy.url);
    expect(result).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
    expect(proxy.log().split(connectLine).length - 1).toBe(2); // and the client's
  });

  it('takes the proxy from HTTP_PROXY for ws:// and from EXECRELAY_PROXY', async () => {
    const before = proxy.log().length;
    expect(await exec({ HTTP_PROXY: proxy.url })).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
    expect(await exec({ EXECRELAY_PROXY: proxy.url })).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
    expect(proxy.log().slice(before).split(`CONNECT 127.0.0.1:${relayPort}`).length - 1).toBe(2);
  });

  it('bypasses the proxy for a host NO_PROXY names, and --proxy "" dials directly', async () => {
    // Nothing listens on the proxy's port: the command works only if the proxy is bypassed.
    const deadProxy = `http://127.0.0.1:${await freePort()}`;
    expect(await exec({ HTTP_PROXY: deadProxy, NO_PROXY: 'localhost,127.0.0.1' })).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
    expect(await exec({ HTTP_PROXY: deadProxy }, '--proxy', '')).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
    const unreachable = await exec({ HTTP_PROXY: deadProxy });
    expect(unreachable.code).toBe(255);
    expect(unreachable.stderr).toContain(`cannot connect to relay ${relay.firstLine}/`);
    expect(unreachable.stderr).toContain(`through proxy ${deadProxy}: connect ECONNREFUSED`);
  });

  it('names the proxy and its answer when the proxy refuses the CONNECT, for the client and the agent', async () => {
    const refused = await exec({}, '--proxy', refusingProxy.url);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain(`proxy ${refusingProxy.url} refused to connect to relay 127.0.0.1:${relayPort}: HTTP 403 Access violation`);
    expect(refusingProxy.log()).toContain(`Refused CONNECT method on port ${relayPort}`);
    // The agent does not retry a proxy that forbids the relay: it exits non-zero, saying why.
    const agentRefused = await runCli(
      ['agent', '--relay', relay.firstLine, '--environment-id', 'proxied-2', '--key', files.agentKey, '--token-file', files.token, '--allow-any-client', '--proxy', refusingProxy.url],
      { env },
    );
    expect(agentRefused.code).toBe(255);
    expect(agentRefused.stderr).toContain(`proxy ${refusingProxy.url} refused to connect to relay 127.0.0.1:${relayPort}: HTTP 403`);
  });

  it('refuses a proxy URL it cannot use, and never prints the proxy password', async () => {
    const bad = await exec({}, '--proxy', 'socks5://127.0.0.1:1080');
    expect(bad.code).toBe(255);
    expect(bad.stderr).toContain('--proxy: socks5://127.0.0.1:1080: only http:// and https:// proxies (HTTP CONNECT) are supported');
    const deadPort = await freePort();
    const withPassword = await exec({ HTTPS_PROXY: '', HTTP_PROXY: `http://user:s3cret@127.0.0.1:${deadPort}` });
    expect(withPassword.code).toBe(255);
    expect(withPassword.stderr).toContain(`through proxy http://***@127.0.0.1:${deadPort}/`);
    expect(withPassword.stderr).not.toContain('s3cret');
  });
});
