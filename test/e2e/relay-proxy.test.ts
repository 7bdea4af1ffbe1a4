import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
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
  const files = {
    token: path.join(dir, 'token'),
    agentKey: path.join(dir, 'agent.key'),
    clientKey: path.join(dir, 'client.key'),
    authorized: path.join(dir, 'authorized-clients'),
    proxyCert: path.join(dir, 'proxy.crt'),
    proxyKey: path.join(dir, 'proxy.key'),
  };
  const PROXY_USER = 'relay-user';
  const PROXY_PASSWORD = 'Pr0xy-pass-9f2c';
  const env = { ...NO_PROXY_ENV, EXECRELAY_LOG_LEVEL: 'warn', EXECRELAY_CLIENT_KEY: files.clientKey };
  let proxy: Tinyproxy;
  let refusingProxy: Tinyproxy;
  /** Wants `BasicAuth relay-user Pr0xy-pass-9f2c`: 407 otherwise. */
  let authProxy: Tinyproxy;
  /** Reached over TLS (`https://`), with a self-signed certificate for 127.0.0.1. */
  let tlsProxy: Tinyproxy;
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
    authProxy = await startTinyproxy({ basicAuth: { user: PROXY_USER, password: PROXY_PASSWORD } });
    // prettier-ignore
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', files.proxyKey, '-out', files.proxyCert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    tlsProxy = await startTinyproxy({ tls: { cert: files.proxyCert, key: files.proxyKey } });
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
    await authProxy?.stop();
    await tlsProxy?.stop();
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

  it('sends the credentials of the proxy URL (Proxy-Authorization: Basic) and goes through a proxy that wants them', async () => {
    const withCredentials = authProxy.url.replace('http://', `http://${PROXY_USER}:${PROXY_PASSWORD}@`);
    const result = await exec({}, '--proxy', withCredentials);
    expect(result).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
    expect(authProxy.log()).toContain(`CONNECT 127.0.0.1:${relayPort} HTTP/1.1`);
    expect(result.stderr).not.toContain(PROXY_PASSWORD);
    // The same URL from the environment.
    expect(await exec({ HTTP_PROXY: withCredentials })).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
  });

  it('names the proxy on a 407, says whether credentials were missing or not accepted, and never prints the password', async () => {
    const none = await exec({}, '--proxy', authProxy.url);
    expect(none.code).toBe(255);
    expect(none.stderr).toContain(
      `proxy ${authProxy.url} refused to connect to relay 127.0.0.1:${relayPort}: HTTP 407 Proxy Authentication Required (it wants credentials: give them in the proxy URL, http://USER:PASSWORD@HOST:PORT, percent-encoded)`,
    );
    const wrongPassword = 'not-the-Pa55word';
    const wrong = await exec({}, '--proxy', authProxy.url.replace('http://', `http://${PROXY_USER}:${wrongPassword}@`));
    expect(wrong.code).toBe(255);
    // tinyproxy answers wrong credentials 401 (others 407): either is an authentication refusal.
    expect(wrong.stderr).toContain(
      `proxy ${authProxy.url.replace('http://', 'http://***@')}/ refused to connect to relay 127.0.0.1:${relayPort}: HTTP 401 Unauthorized (it did not accept the user and password in the proxy URL)`,
    );
    expect(wrong.stderr).not.toContain(wrongPassword);
    expect(wrong.stderr).not.toContain(PROXY_USER);
    // The agent takes a 407 as final: it exits at once (255), naming the proxy, not the password.
    const agentRefused = await runCli(
      ['agent', '--relay', relay.firstLine, '--environment-id', 'proxied-3', '--key', files.agentKey, '--token-file', files.token, '--allow-any-client'],
      { env: { ...env, HTTP_PROXY: authProxy.url.replace('http://', `http://${PROXY_USER}:${wrongPassword}@`) } },
    );
    expect(agentRefused.code).toBe(255);
    expect(agentRefused.stderr).toContain(`refused to connect to relay 127.0.0.1:${relayPort}: HTTP 401 Unauthorized (it did not accept`);
    expect(agentRefused.stderr).not.toContain(wrongPassword);
  });

  it('reaches an https:// proxy over TLS, checking its certificate like any server', async () => {
    expect(tlsProxy.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const trusted = await exec({ NODE_EXTRA_CA_CERTS: files.proxyCert }, '--proxy', tlsProxy.url);
    expect(trusted).toMatchObject({ code: 0, stdout: 'via-proxy\n' });
    expect(tlsProxy.log()).toContain(`CONNECT 127.0.0.1:${relayPort} HTTP/1.1`);
    // Without the proxy's CA the TLS handshake to the proxy fails, and the error says so.
    const before = tlsProxy.log().length;
    const untrusted = await exec({}, '--proxy', tlsProxy.url);
    expect(untrusted.code).toBe(255);
    expect(untrusted.stderr).toContain(`cannot connect to relay ${relay.firstLine}/`);
    expect(untrusted.stderr).toMatch(new RegExp(`through proxy ${tlsProxy.url.replaceAll('.', '\\.')}: self[- ]signed certificate`));
    expect(tlsProxy.log().slice(before)).not.toContain('CONNECT 127.0.0.1');
  });
});
