import type { Agent } from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { getProxyForUrl } from 'proxy-from-env';

/**
 * An HTTP CONNECT proxy on the way to the relay. The relay WebSocket (ws:// or wss://, TLS end to end
 * with the relay) is tunnelled through it; the proxy sees only the relay's host and port.
 */
export interface RelayProxy {
  /** `http://[USER:PASSWORD@]HOST:PORT` or `https://…` (a proxy reached over TLS). */
  url: string;
}

/** Raised when the proxy answers the CONNECT to the relay with anything but 200. */
export class ProxyRefusedError extends Error {
  override readonly name = 'ProxyRefusedError';
  /**
   * `proxy`: the proxy URL as it may be shown (see `redactProxyUrl`); `sentCredentials`: whether the
   * URL held a user or password (sent as `Proxy-Authorization: Basic`), which decides what a 407 means.
   */
  constructor(
    readonly proxy: string,
    readonly status: number,
    statusText: string,
    relayHost: string,
    sentCredentials = false,
  ) {
    super(`proxy ${proxy} refused to connect to relay ${relayHost}: HTTP ${status}${statusText ? ` ${statusText}` : ''}${refusalHint(status, sentCredentials)}`);
  }

  /**
   * The proxy forbids the destination (403) or wants credentials it did not get (407; some proxies,
   * tinyproxy among them, answer wrong credentials with 401): retrying will not help.
   */
  get permanent(): boolean {
    return this.status === 403 || isCredentialsRefusal(this.status);
  }
}

/** A proxy's "credentials missing or wrong": 407, or 401 from proxies that answer bad credentials so. */
function isCredentialsRefusal(status: number): boolean {
  return status === 407 || status === 401;
}

/** What a 407 (or 401) asks of the operator (never the credentials themselves). */
function refusalHint(status: number, sentCredentials: boolean): string {
  if (!isCredentialsRefusal(status)) return '';
  return sentCredentials
    ? ' (it did not accept the user and password in the proxy URL)'
    : ' (it wants credentials: give them in the proxy URL, http://USER:PASSWORD@HOST:PORT, percent-encoded)';
}

/** Whether a proxy URL carries a user or password (sent to the proxy as `Proxy-Authorization: Basic`). */
export function proxyUrlHasCredentials(value: string): boolean {
  try {
    const url = new URL(value);
    return url.username !== '' || url.password !== '';
  } catch {
    return false;
  }
}

/**
 * A proxy URL checked and parsed: http:// or https:// with a host. Throws an Error naming `source`
 * (`--proxy`, `HTTPS_PROXY`, …) for anything else.
 */
export function parseProxyUrl(value: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`${source}: not a URL: ${redactProxyUrl(value)} (expected http://HOST:PORT)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${source}: ${redactProxyUrl(value)}: only http:// and https:// proxies (HTTP CONNECT) are supported`);
  }
  if (url.hostname === '') throw new Error(`${source}: ${redactProxyUrl(value)} has no host`);
  return url;
}

/** The proxy URL without its credentials, for logs and errors. */
export function redactProxyUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.username === '' && url.password === '') return value;
    url.username = '***';
    url.password = '';
    return url.href;
  } catch {
    return value.replace(/\/\/[^/@]*@/, '//***@');
  }
}

/**
 * The proxy to reach `relayUrl` through: `explicit` (`--proxy` / EXECRELAY_PROXY) when given, else
 * the environment as curl reads it: `HTTPS_PROXY` for wss://, `HTTP_PROXY` for ws:// (then
 * `ALL_PROXY`), lower-case names first, skipped for hosts that `NO_PROXY` names. Undefined: dial
 * directly. An explicit empty value means "no proxy" (it overrides the environment).
 */
export function relayProxyFor(relayUrl: string, explicit: string | undefined): RelayProxy | undefined {
  if (explicit !== undefined) {
    if (explicit.trim() === '') return undefined;
    parseProxyUrl(explicit, '--proxy');
    return { url: explicit };
  }
  let target: URL;
  try {
    target = new URL(relayUrl);
  } catch {
    return undefined; // the dial reports the bad relay URL
  }
  // proxy-from-env looks up `<scheme>_proxy`: a WebSocket goes through the proxy of its HTTP scheme.
  const httpScheme = target.protocol === 'wss:' ? 'https:' : target.protocol === 'ws:' ? 'http:' : target.protocol;
  let fromEnv = getProxyForUrl(`${httpScheme}//${target.host}${target.pathname}`);
  if (!fromEnv) return undefined;
  // proxy-from-env gives a bare HOST:PORT the target's scheme; curl (and we) speak plain HTTP to it.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(proxyVariable(httpScheme))) fromEnv = fromEnv.replace(/^https:\/\//, 'http://');
  parseProxyUrl(fromEnv, httpScheme === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY');
  return { url: fromEnv };
}

/** The raw value proxy-from-env reads for `scheme` (same order: lower-case name first, then ALL_PROXY). */
function proxyVariable(scheme: string): string {
  const name = `${scheme.replace(/:$/, '')}_proxy`;
  const read = (key: string) => process.env[key.toLowerCase()] || process.env[key.toUpperCase()] || '';
  return read(name) || read('all_proxy');
}

/**
 * A fresh agent that tunnels one dial through `proxy`: plain TCP to an `http://` proxy, TLS to an
 * `https://` one (its certificate checked like any server's: system CAs plus NODE_EXTRA_CA_CERTS),
 * with `Proxy-Authorization: Basic` when the URL holds credentials (percent-decoded).
 * `onConnectAnswer` is told the proxy's answer to the CONNECT (on anything but 200 the agent hands
 * the proxy's response to the WebSocket as if the relay had sent it, so the caller must tell the
 * two apart).
 */
export function proxyAgent(proxy: RelayProxy, onConnectAnswer: (status: number, statusText: string) => void): Agent {
  const agent = new HttpsProxyAgent(proxy.url);
  agent.on('proxyConnect', (connect: { statusCode: number; statusText: string }) => onConnectAnswer(connect.statusCode, connect.statusText));
  return agent;
}
