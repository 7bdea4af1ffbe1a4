import { afterEach, describe, expect, it } from 'vitest';
import { parseProxyUrl, ProxyRefusedError, proxyUrlHasCredentials, redactProxyUrl, relayProxyFor } from '../../../../src/relay-link/relay-proxy.js';

const VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'all_proxy', 'no_proxy'];

describe('relayProxyFor', () => {
  const saved = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]));
  const setEnv = (values: Record<string, string>) => {
    for (const name of VARIABLES) delete process.env[name];
    Object.assign(process.env, values);
  };
  afterEach(() => {
    for (const name of VARIABLES) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('takes HTTPS_PROXY for wss:// and HTTP_PROXY for ws://, lower-case first, then ALL_PROXY', () => {
    setEnv({ HTTPS_PROXY: 'http://secure:3128', HTTP_PROXY: 'http://plain:3128' });
    expect(relayProxyFor('wss://relay.example.com', undefined)).toEqual({ url: 'http://secure:3128' });
    expect(relayProxyFor('ws://relay.example.com:7700', undefined)).toEqual({ url: 'http://plain:3128' });
    setEnv({ https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' });
    expect(relayProxyFor('wss://relay.example.com', undefined)).toEqual({ url: 'http://lower:1' });
    setEnv({ ALL_PROXY: 'http://all:3' });
    expect(relayProxyFor('wss://relay.example.com', undefined)).toEqual({ url: 'http://all:3' });
    setEnv({});
    expect(relayProxyFor('wss://relay.example.com', undefined)).toBeUndefined();
  });

  it('skips the hosts NO_PROXY names: a host, a domain suffix, host:port, *', () => {
    setEnv({ HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'localhost,.internal.example,relay.example.com:8443' });
    expect(relayProxyFor('wss://relay.internal.example', undefined)).toBeUndefined();
    expect(relayProxyFor('wss://localhost:7700', undefined)).toBeUndefined();
    expect(relayProxyFor('wss://relay.example.com:8443', undefined)).toBeUndefined();
    expect(relayProxyFor('wss://relay.example.com', undefined)).toEqual({ url: 'http://proxy:3128' });
    setEnv({ HTTPS_PROXY: 'http://proxy:3128', no_proxy: '*' });
    expect(relayProxyFor('wss://relay.example.com', undefined)).toBeUndefined();
  });

  it('lets --proxy win over the environment; --proxy "" dials directly', () => {
    setEnv({ HTTPS_PROXY: 'http://env:3128', NO_PROXY: 'relay.example.com' });
    expect(relayProxyFor('wss://relay.example.com', 'http://flag:8080')).toEqual({ url: 'http://flag:8080' });
    expect(relayProxyFor('wss://other.example.com', '')).toBeUndefined();
  });

  it('refuses proxies it cannot speak to, naming where the value came from', () => {
    setEnv({});
    expect(() => relayProxyFor('wss://relay.example.com', 'socks5://p:1080')).toThrow('--proxy: socks5://p:1080: only http:// and https:// proxies (HTTP CONNECT) are supported');
    expect(() => relayProxyFor('wss://relay.example.com', 'not a url')).toThrow('--proxy: not a URL: not a url');
    setEnv({ HTTPS_PROXY: 'socks5://p:1080' });
    expect(() => relayProxyFor('wss://relay.example.com', undefined)).toThrow(/^HTTPS_PROXY: /);
    // A bare host:port is taken as a proxy of the URL's scheme, as curl does.
    setEnv({ HTTP_PROXY: 'proxy.corp:3128' });
    expect(relayProxyFor('ws://relay.example.com', undefined)).toEqual({ url: 'http://proxy.corp:3128' });
    setEnv({ HTTPS_PROXY: 'proxy.corp:3128' });
    expect(relayProxyFor('wss://relay.example.com', undefined)).toEqual({ url: 'http://proxy.corp:3128' });
    setEnv({ HTTPS_PROXY: 'https://tls-proxy.corp:443' });
    expect(relayProxyFor('wss://relay.example.com', undefined)).toEqual({ url: 'https://tls-proxy.corp:443' });
    expect(parseProxyUrl('https://p:443', 'x').protocol).toBe('https:');
  });
});

describe('proxy credentials and refusals', () => {
  it('never shows the password', () => {
    expect(redactProxyUrl('http://user:s3cret@proxy:3128')).toBe('http://***@proxy:3128/');
    expect(redactProxyUrl('http://proxy:3128')).toBe('http://proxy:3128');
    expect(redactProxyUrl('weird//user:s3cret@x')).not.toContain('s3cret');
  });

  it('takes 403, 407 and 401 as final, other answers as passing', () => {
    expect(new ProxyRefusedError('http://p:1', 403, 'Forbidden', 'relay:443').permanent).toBe(true);
    expect(new ProxyRefusedError('http://p:1', 407, '', 'relay:443').permanent).toBe(true);
    expect(new ProxyRefusedError('http://p:1', 401, 'Unauthorized', 'relay:443').permanent).toBe(true);
    expect(new ProxyRefusedError('http://p:1', 502, 'Bad Gateway', 'relay:443').permanent).toBe(false);
    expect(new ProxyRefusedError('http://p:1', 403, 'Forbidden', 'relay:443').message).toBe('proxy http://p:1 refused to connect to relay relay:443: HTTP 403 Forbidden');
  });

  it('says on a 407 or 401 whether credentials were missing or not accepted', () => {
    expect(new ProxyRefusedError('http://p:1', 407, 'Proxy Authentication Required', 'relay:443').message).toBe(
      'proxy http://p:1 refused to connect to relay relay:443: HTTP 407 Proxy Authentication Required (it wants credentials: give them in the proxy URL, http://USER:PASSWORD@HOST:PORT, percent-encoded)',
    );
    expect(new ProxyRefusedError('http://***@p:1/', 401, 'Unauthorized', 'relay:443', true).message).toBe(
      'proxy http://***@p:1/ refused to connect to relay relay:443: HTTP 401 Unauthorized (it did not accept the user and password in the proxy URL)',
    );
    expect(new ProxyRefusedError('http://p:1', 502, 'Bad Gateway', 'relay:443', true).message).not.toContain('(');
  });

  it('tells a proxy URL with credentials from one without', () => {
    expect(proxyUrlHasCredentials('http://user:pw@p:1')).toBe(true);
    expect(proxyUrlHasCredentials('http://user@p:1')).toBe(true);
    expect(proxyUrlHasCredentials('http://:pw@p:1')).toBe(true);
    expect(proxyUrlHasCredentials('http://p:1')).toBe(false);
    expect(proxyUrlHasCredentials('not a url')).toBe(false);
  });
});
