/**
 * Attacks on `http/request` destinations by a client with a session (issue "Trust model", finding
 * 10), replayed against a real agent on loopback and a real upstream HTTP server on 127.0.0.1: by
 * default the agent must refuse loopback, link-local (cloud metadata), private, unique-local and
 * unspecified addresses — by IP, by a name that resolves to one, through a redirect, in IPv4-mapped
 * IPv6 form — before any connection, with an error naming the class; an explicit `--http-allow`
 * of the address or range (or `--http-allow-private`) lets the same request through; an allowed
 * *name* does not let a private address through. The address checked is the one connected to
 * (one resolution per hop, through an injected resolver where the test needs a name to resolve
 * to something of its choosing).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/protocol/error-codes.js';
import { classifyAddress, parseHttpAllow } from '../../executor-agent/http-destination-policy.js';
import type { HttpHandlerOptions } from '../../executor-agent/http-handlers.js';
import { RawRpcClient, type RawMessage } from '../support/raw-rpc-client.js';
import { startGuardedServer, startHttpAgent, upstreamApp, type GuardedServer, type HttpAgent } from '../support/mcp-executor-harness.js';

let upstream: GuardedServer;
let other: GuardedServer;
let nextId = 0;
const rid = () => `d${++nextId}`;

beforeAll(async () => {
  const app = upstreamApp();
  upstream = await startGuardedServer(app.handler);
  other = await startGuardedServer(app.handler);
});

afterAll(async () => {
  await upstream?.close();
  await other?.close();
});

/** A resolver for the agent that knows a few test names (and nothing else). */
function fakeResolver(names: Record<string, string[]>, calls: string[] = []): NonNullable<HttpHandlerOptions['resolve']> {
  return async (hostname) => {
    calls.push(hostname);
    const addresses = names[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

/** An agent with these handler options (no `allow`: the agent's default) and a raw peer on it. */
async function withAgent(options: HttpHandlerOptions, body: (raw: RawRpcClient, agent: HttpAgent) => Promise<void>): Promise<void> {
  const agent = await startHttpAgent({ allow: [], ...options });
  const raw = await RawRpcClient.connect(agent.url);
  try {
    await raw.initialize();
    await body(raw, agent);
  } finally {
    raw.close();
    await agent.stop();
  }
}

function get(raw: RawRpcClient, url: string, extra: Record<string, unknown> = {}): Promise<RawMessage> {
  return raw.request('http/request', { requestId: rid(), method: 'GET', url, ...extra });
}

/** Connections and requests both upstream servers have seen so far. */
function upstreamTraffic(): number[] {
  return [upstream.sockets.length, upstream.served.length, upstream.violations.length, other.sockets.length, other.served.length, other.violations.length];
}

/** The reply is the default-deny refusal for `destination`, naming `addressClass`; nothing was sent. */
function expectDenied(reply: RawMessage, destination: string, addressClass: string): void {
  expect(reply.error, `${destination} must be refused`).toBeDefined();
  expect(reply.error!.code).toBe(ErrorCode.InvalidRequest);
  const escaped = destination.replace(/[.[\]]/g, '\\$&');
  expect(reply.error!.message).toMatch(
    new RegExp(`^http/request to ${escaped} refused: .*${addressClass} addresses are denied by default \\(allow with --http-allow `),
  );
  expect(reply.error!.data).toMatchObject({ reason: 'destinationDenied', destination, addressClass });
}

describe('http/request default deny (finding 10)', () => {
  it('refuses loopback, link-local, private, unique-local and unspecified addresses by IP, before any connection', async () => {
    await withAgent({}, async (raw, agent) => {
      const before = upstreamTraffic();
      const p = upstream.port;
      const cases: Array<[string, string, string]> = [
        [`http://127.0.0.1:${p}/echo`, `127.0.0.1:${p}`, 'loopback'],
        [`http://127.1.2.3:${p}/echo`, `127.1.2.3:${p}`, 'loopback'],
        [`http://[::1]:${p}/echo`, `[::1]:${p}`, 'loopback'],
        // IPv4-mapped IPv6 (the URL parser shows it as [::ffff:7f00:1]).
        [`http://[::ffff:127.0.0.1]:${p}/echo`, `[::ffff:7f00:1]:${p}`, 'loopback'],
        [`http://0.0.0.0:${p}/echo`, `0.0.0.0:${p}`, 'unspecified'],
        [`http://[::]:${p}/echo`, `[::]:${p}`, 'unspecified'],
        ['http://169.254.169.254/latest/meta-data/', '169.254.169.254:80', 'link-local'],
        ['http://[::ffff:169.254.169.254]/latest/meta-data/', '[::ffff:a9fe:a9fe]:80', 'link-local'],
        ['http://[fe80::1]/', '[fe80::1]:80', 'link-local'],
        ['http://10.0.0.1/', '10.0.0.1:80', 'private'],
        ['https://172.16.0.1/', '172.16.0.1:443', 'private'],
        ['http://192.168.1.1:8080/', '192.168.1.1:8080', 'private'],
        ['http://[fd00::1]/', '[fd00::1]:80', 'unique-local'],
        // Decimal and hex IPv4 spellings are normalised by the URL parser: still loopback.
        [`http://2130706433:${p}/echo`, `127.0.0.1:${p}`, 'loopback'],
        [`http://0x7f.1:${p}/echo`, `127.0.0.1:${p}`, 'loopback'],
      ];
      for (const [url, destination, addressClass] of cases) expectDenied(await get(raw, url), destination, addressClass);
      expect(agent.requests).toEqual([]);
      expect(upstreamTraffic()).toEqual(before);
    });
  });

  it('refuses names that resolve to loopback: localhost (the real resolver) and a name of the test resolver', async () => {
    await withAgent({ resolve: fakeResolver({ 'upstream.test': ['127.0.0.1'] }) }, async (raw, agent) => {
      const before = upstreamTraffic();
      const viaName = await get(raw, `http://upstream.test:${upstream.port}/echo`);
      expectDenied(viaName, `upstream.test:${upstream.port}`, 'loopback');
      expect(viaName.error!.message).toContain('upstream.test resolves to 127.0.0.1');
      expect(viaName.error!.data).toMatchObject({ address: '127.0.0.1' });
      expect(agent.requests).toEqual([]);
      expect(upstreamTraffic()).toEqual(before);
    });
    await withAgent({}, async (raw, agent) => {
      const before = upstreamTraffic();
      const localhost = await get(raw, `http://localhost:${upstream.port}/echo`);
      expectDenied(localhost, `localhost:${upstream.port}`, 'loopback');
      expect(localhost.error!.message).toMatch(/localhost resolves to (127\.0\.0\.1|::1)/);
      expect(agent.requests).toEqual([]);
      expect(upstreamTraffic()).toEqual(before);
    });
  });

  it('refuses a name when any of its addresses is denied (a public address first, loopback second)', async () => {
    const calls: string[] = [];
    await withAgent({ resolve: fakeResolver({ 'mixed.test': ['203.0.113.7', '127.0.0.1'] }, calls) }, async (raw, agent) => {
      const before = upstreamTraffic();
      const reply = await get(raw, `http://mixed.test:${upstream.port}/echo`);
      expectDenied(reply, `mixed.test:${upstream.port}`, 'loopback');
      expect(reply.error!.message).toContain('mixed.test resolves to 127.0.0.1');
      expect(calls).toEqual(['mixed.test']);
      expect(agent.requests).toEqual([]);
      expect(upstreamTraffic()).toEqual(before);
    });
  });

  it('connects to the address it checked: a second resolution (DNS rebinding) is never made', async () => {
    // First answer public, any later one loopback: an agent that resolved again to connect would
    // reach the loopback upstream.
    const calls: string[] = [];
    const rebinding: NonNullable<HttpHandlerOptions['resolve']> = async (hostname) => {
      calls.push(hostname);
      return [{ address: calls.length === 1 ? '203.0.113.7' : '127.0.0.1', family: 4 }];
    };
    await withAgent({ resolve: rebinding }, async (raw) => {
      const before = upstreamTraffic();
      const reply = await get(raw, `http://rebind.test:${upstream.port}/echo`, { timeoutMs: 2000 });
      expect(reply.error?.code).toBe(ErrorCode.Internal); // 203.0.113.7 (TEST-NET-3) is not reachable from here
      expect(reply.error?.message).not.toContain('127.0.0.1');
      expect(calls).toEqual(['rebind.test']);
      expect(upstreamTraffic()).toEqual(before);
    });
    // The other way round, with loopback allowed: the first (checked) answer is the one used.
    const calls2: string[] = [];
    const rebinding2: NonNullable<HttpHandlerOptions['resolve']> = async (hostname) => {
      calls2.push(hostname);
      return [{ address: calls2.length === 1 ? '127.0.0.1' : '203.0.113.7', family: 4 }];
    };
    await withAgent({ resolve: rebinding2, allow: parseHttpAllow(['rebind.test', '127.0.0.1']) }, async (raw) => {
      const reply = await get(raw, `http://rebind.test:${upstream.port}/echo`, { timeoutMs: 5000 });
      expect(reply.error).toBeUndefined();
      expect(reply.result.status).toBe(200);
      expect(calls2).toEqual(['rebind.test']);
      // The Host header stays the name.
      const echoed = JSON.parse(Buffer.from(reply.result.bodyBase64 as string, 'base64').toString()) as { headers: string[] };
      const host = echoed.headers[echoed.headers.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'host') + 1];
      expect(host).toBe(`rebind.test:${upstream.port}`);
    });
  });

  it('checks every redirect hop: an allowed upstream redirecting to a loopback name is refused', async () => {
    const allow = parseHttpAllow([`127.0.0.1:${upstream.port}`, 'localhost', 'upstream.test']);
    await withAgent({ allow, resolve: fakeResolver({ 'upstream.test': ['127.0.0.1'] }) }, async (raw, agent) => {
      const before = upstreamTraffic();
      const start = `${upstream.url}/redirect?status=302&to=`;
      const toName = await get(raw, `${start}${encodeURIComponent(`http://upstream.test:${other.port}/echo`)}`);
      expectDenied(toName, `upstream.test:${other.port}`, 'loopback');
      expect(toName.error!.message).toMatch(new RegExp(`\\(redirect from 127\\.0\\.0\\.1:${upstream.port}\\)$`));
      // Only the first hop went out (to the allowed upstream); the loopback hop was not sent.
      expect(agent.requests.map((r) => r.url)).toEqual([`${start}${encodeURIComponent(`http://upstream.test:${other.port}/echo`)}`]);
      expect(upstream.served.length).toBe(before[1]! + 1);
      expect([other.sockets.length, other.served.length]).toEqual([before[3], before[4]]);
    });
  });

  it('lets the same requests through when the address or range is allowed explicitly', async () => {
    await withAgent({ allow: parseHttpAllow(['127.0.0.1']) }, async (raw) => {
      const reply = await get(raw, `${upstream.url}/echo`);
      expect(reply.result?.status).toBe(200);
    });
    const names = fakeResolver({ 'upstream.test': ['127.0.0.1'] });
    await withAgent({ allow: parseHttpAllow(['upstream.test', `127.0.0.0/8:${upstream.port}`]), resolve: names }, async (raw) => {
      expect((await get(raw, `${upstream.url}/echo`)).result?.status).toBe(200);
      expect((await get(raw, `http://upstream.test:${upstream.port}/echo`)).result?.status).toBe(200);
      // The range names a port: the allowed name on another port is still refused at its address.
      expectDenied(await get(raw, `http://upstream.test:${other.port}/echo`), `upstream.test:${other.port}`, 'loopback');
    });
    await withAgent({ allowPrivate: true, resolve: fakeResolver({ 'upstream.test': ['127.0.0.1'] }) }, async (raw) => {
      expect((await get(raw, `${upstream.url}/echo`)).result?.status).toBe(200);
      expect((await get(raw, `http://upstream.test:${upstream.port}/echo`)).result?.status).toBe(200);
    });
  });

  it('an allowed name that resolves to loopback is refused unless the address is allowed too', async () => {
    const names = { 'upstream.test': ['127.0.0.1'] };
    await withAgent({ allow: parseHttpAllow(['upstream.test']), resolve: fakeResolver(names) }, async (raw, agent) => {
      const before = upstreamTraffic();
      const reply = await get(raw, `http://upstream.test:${upstream.port}/echo`);
      expectDenied(reply, `upstream.test:${upstream.port}`, 'loopback');
      expect(agent.requests).toEqual([]);
      expect(upstreamTraffic()).toEqual(before);
    });
    await withAgent({ allow: parseHttpAllow(['upstream.test', '127.0.0.1']), resolve: fakeResolver(names) }, async (raw) => {
      expect((await get(raw, `http://upstream.test:${upstream.port}/echo`)).result?.status).toBe(200);
    });
  });
});

describe('address classes and allow entries', () => {
  it('classifies addresses, IPv4-mapped IPv6 by the address it maps', () => {
    const cases: Array<[string, string | null]> = [
      ['127.0.0.1', 'loopback'],
      ['127.255.255.254', 'loopback'],
      ['::1', 'loopback'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['169.254.169.254', 'link-local'],
      ['fe80::1', 'link-local'],
      ['febf::1', 'link-local'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.0.1', 'private'],
      ['::ffff:10.0.0.1', 'private'],
      ['fc00::1', 'unique-local'],
      ['fdff::1', 'unique-local'],
      ['172.32.0.1', null],
      ['8.8.8.8', null],
      ['203.0.113.7', null],
      ['2001:db8::1', null],
      ['fec0::1', null],
    ];
    for (const [address, addressClass] of cases) expect(classifyAddress(address), address).toBe(addressClass);
  });

  it('parses address ranges in --http-allow and rejects bad ones', () => {
    expect(parseHttpAllow(['10.0.0.0/8', '127.0.0.0/8:8080', '[fc00::]/7', 'fd00::/8'])).toEqual([
      { host: '10.0.0.0', port: null, subdomains: false, prefixLength: 8 },
      { host: '127.0.0.0', port: 8080, subdomains: false, prefixLength: 8 },
      { host: '[fc00::]', port: null, subdomains: false, prefixLength: 7 },
      { host: '[fd00::]', port: null, subdomains: false, prefixLength: 8 },
    ]);
    expect(() => parseHttpAllow(['10.0.0.0/33'])).toThrow(/prefix length/);
    expect(() => parseHttpAllow(['example.com/8'])).toThrow(/range needs an address/);
    expect(() => parseHttpAllow(['http://example.com'])).toThrow(/not a URL/);
  });
});
