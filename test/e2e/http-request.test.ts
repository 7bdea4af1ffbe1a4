/**
 * `http/request` on the raw wire against a real agent: buffered and streamed bodies, redirects
 * (follow/stop), timeouts, send failures, validation errors, duplicate ids, the concurrency
 * bound, `--http-allow` (first URL and redirect hops), failing upstream bodies and cancel. The
 * upstream server answers only the agent's source address.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/protocol/error-codes.js';
import { parseHttpAllow } from '../../executor-agent/http-destination-policy.js';
import { RawRpcClient, type RawMessage } from '../support/raw-rpc-client.js';
import { patternBytes, startGuardedServer, startHttpAgent, upstreamApp, type GuardedServer, type HttpAgent, type UpstreamState } from '../support/mcp-executor-harness.js';

let upstream: GuardedServer;
let other: GuardedServer;
let state: UpstreamState;
let agent: HttpAgent;
let raw: RawRpcClient;
let nextId = 0;
const rid = () => `r${++nextId}`;

function deltas(requestId: string): RawMessage[] {
  return raw.received.filter((m) => m.method === 'http/request/bodyDelta' && m.params?.requestId === requestId);
}

async function streamedBody(requestId: string): Promise<{ body: Buffer; last: RawMessage }> {
  const last = await raw.waitFor((m) => m.method === 'http/request/bodyDelta' && m.params?.requestId === requestId && m.params.done === true, 20_000);
  const all = deltas(requestId);
  all.forEach((m, i) => expect(m.params.seq).toBe(i + 1));
  expect(all.at(-1)).toBe(last);
  return { body: Buffer.concat(all.map((m) => Buffer.from(m.params.deltaBase64 as string, 'base64'))), last };
}

beforeAll(async () => {
  const app = upstreamApp();
  state = app.state;
  upstream = await startGuardedServer(app.handler);
  other = await startGuardedServer(app.handler);
  agent = await startHttpAgent();
  raw = await RawRpcClient.connect(agent.url);
  await raw.initialize();
});

afterAll(async () => {
  raw?.close();
  await agent?.stop();
  await upstream?.close();
  await other?.close();
});

describe('http/request on the wire', () => {
  it('answers a buffered request: status, lower-cased repeated headers, body; the request arrives as sent', async () => {
    const reply = await raw.request('http/request', {
      requestId: rid(),
      method: 'POST',
      url: `${upstream.url}/echo?q=1`,
      headers: [
        { name: 'X-Test', value: 'v' },
        { name: 'X-Dup', value: '1' },
        { name: 'X-Dup', value: '2' },
      ],
      bodyBase64: Buffer.from('payload').toString('base64'),
    });
    expect(reply.error).toBeUndefined();
    expect(reply.result.status).toBe(200);
    const names = (reply.result.headers as Array<{ name: string; value: string }>).map((h) => h.name);
    expect(names.every((n) => n === n.toLowerCase())).toBe(true);
    expect(reply.result.headers.filter((h: { name: string }) => h.name === 'x-multi').map((h: { value: string }) => h.value)).toEqual(['a', 'b']);
    const echoed = JSON.parse(Buffer.from(reply.result.bodyBase64, 'base64').toString());
    expect(echoed.method).toBe('POST');
    expect(echoed.url).toBe('/echo?q=1');
    expect(Buffer.from(echoed.body, 'base64').toString()).toBe('payload');
    const rawHeaders = echoed.headers as string[];
    const pairs = rawHeaders.flatMap((v, i) => (i % 2 === 0 ? [[v.toLowerCase(), rawHeaders[i + 1]]] : []));
    expect(pairs).toContainEqual(['x-test', 'v']);
    expect(pairs.filter(([n]) => n === 'x-dup').map(([, v]) => v)).toEqual(['1', '2']);
    expect(pairs).toContainEqual(['content-length', '7']);
    // It was the agent that sent it, from its own address.
    expect(upstream.served.at(-1)).toMatchObject({ method: 'POST', path: '/echo?q=1', remoteAddress: '127.0.0.3' });
    expect(upstream.violations).toEqual([]);
  });

  it('streams a body as bodyDelta notifications after the result: seq from 1, each ≤ 1 MiB, terminal done', async () => {
    const requestId = rid();
    const size = 3 * 1024 * 1024 + 123;
    const reply = await raw.request('http/request', { requestId, method: 'GET', url: `${upstream.url}/bytes?n=${size}&seed=7`, streamResponse: true });
    expect(reply.result).toMatchObject({ status: 200, bodyBase64: '' });
    expect(reply.result.headers).toContainEqual({ name: 'content-length', value: String(size) });
    const { body, last } = await streamedBody(requestId);
    expect(last.params).toMatchObject({ done: true, error: null, deltaBase64: '' });
    expect(createHash('sha256').update(body).digest('hex')).toBe(createHash('sha256').update(patternBytes(size, 7)).digest('hex'));
    for (const m of deltas(requestId)) expect(Buffer.from(m.params.deltaBase64, 'base64').length).toBeLessThanOrEqual(1024 * 1024);
    // The result came before the first delta.
    const resultIndex = raw.received.indexOf(reply);
    expect(raw.received.indexOf(deltas(requestId)[0]!)).toBeGreaterThan(resultIndex);
  });

  it('follows redirects by default (303 turns POST into GET) and returns the 3xx untouched with redirectPolicy stop', async () => {
    const followed = await raw.request('http/request', {
      requestId: rid(),
      method: 'POST',
      url: `${upstream.url}/redirect?status=303&to=${encodeURIComponent(`${other.url}/echo?from=redirect`)}`,
      headers: [{ name: 'content-type', value: 'text/plain' }, { name: 'authorization', value: 'Bearer secret' }],
      bodyBase64: Buffer.from('x').toString('base64'),
    });
    expect(followed.result.status).toBe(200);
    expect(followed.result.url).toBe(`${other.url}/echo?from=redirect`);
    const echoed = JSON.parse(Buffer.from(followed.result.bodyBase64, 'base64').toString());
    expect(echoed.method).toBe('GET');
    const sent = (echoed.headers as string[]).map((h) => h.toLowerCase());
    expect(sent).not.toContain('authorization'); // another origin
    expect(sent).not.toContain('content-type'); // the body was dropped

    const before = other.served.length;
    const stopped = await raw.request('http/request', {
      requestId: rid(),
      method: 'GET',
      url: `${upstream.url}/redirect?status=302&to=${encodeURIComponent('/echo?x=1#frag')}`,
      redirectPolicy: 'stop',
    });
    expect(stopped.result.status).toBe(302);
    expect(stopped.result.headers).toContainEqual({ name: 'location', value: '/echo?x=1#frag' });
    expect(other.served.length).toBe(before);

    const bad = await raw.request('http/request', { requestId: rid(), method: 'GET', url: `${upstream.url}/echo`, redirectPolicy: 'bogus' });
    expect(bad.error?.code).toBe(ErrorCode.InvalidParams);
  });

  it('times out after timeoutMs (whole exchange) and has no timeout when it is omitted or null', async () => {
    const started = Date.now();
    const timedOut = await raw.request('http/request', { requestId: rid(), method: 'GET', url: `${upstream.url}/slow?ms=5000`, timeoutMs: 200 });
    expect(timedOut.error?.code).toBe(ErrorCode.Internal);
    expect(timedOut.error?.message).toMatch(/^http\/request failed: timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(4000);
    const patient = await raw.request('http/request', { requestId: rid(), method: 'GET', url: `${upstream.url}/slow?ms=300`, timeoutMs: null });
    expect(patient.result.status).toBe(200);
    const omitted = await raw.request('http/request', { requestId: rid(), method: 'GET', url: `${upstream.url}/slow?ms=300` });
    expect(Buffer.from(omitted.result.bodyBase64, 'base64').toString()).toBe('slow');
  });

  it('answers a send failure with -32603 and the reason', async () => {
    const reply = await raw.request('http/request', { requestId: rid(), method: 'GET', url: 'http://127.0.0.1:1/' });
    expect(reply.error?.code).toBe(ErrorCode.Internal);
    expect(reply.error?.message).toMatch(/^http\/request failed: error sending request for url \(http:\/\/127\.0\.0\.1:1\/\): connect ECONNREFUSED/);
  });

  it('fails a body the server breaks off: -32603 when buffered, a terminal delta with error when streamed', async () => {
    const buffered = await raw.request('http/request', { requestId: rid(), method: 'GET', url: `${upstream.url}/fail` });
    expect(buffered.error?.code).toBe(ErrorCode.Internal);
    expect(buffered.error?.message).toMatch(/^http\/request failed: /);
    const requestId = rid();
    const streamed = await raw.request('http/request', { requestId, method: 'GET', url: `${upstream.url}/fail`, streamResponse: true });
    expect(streamed.result.status).toBe(200);
    const { last } = await streamedBody(requestId);
    expect(last.params.done).toBe(true);
    expect(last.params.error).toMatch(/^response body failed: /);
  });

  it('rejects invalid params with -32602: scheme, URL, method, header name and value, missing requestId', async () => {
    const cases: Array<[unknown, RegExp | string]> = [
      [{ requestId: rid(), method: 'GET', url: 'ftp://127.0.0.1/x' }, 'http/request only supports http and https URLs, got ftp'],
      [{ requestId: rid(), method: 'GET', url: 'not a url' }, /url/],
      [{ requestId: rid(), method: 'GE T', url: `${upstream.url}/echo` }, /method: not a valid HTTP method/],
      [{ requestId: rid(), method: 'CONNECT', url: `${upstream.url}/echo` }, /CONNECT/],
      [{ requestId: rid(), method: 'GET', url: `${upstream.url}/echo`, headers: [{ name: 'Bad Header', value: 'x' }] }, /headers\.0\.name: not a valid HTTP header name/],
      [{ requestId: rid(), method: 'GET', url: `${upstream.url}/echo`, headers: [{ name: 'X-Inject', value: 'a\r\nX-Evil: 1' }] }, /headers\.0\.value/],
      [{ requestId: rid(), method: 'GET', url: `${upstream.url}/echo`, bodyBase64: 'not base64!!' }, /bodyBase64/],
      [{ method: 'GET', url: `${upstream.url}/echo` }, /requestId/],
    ];
    const served = upstream.served.length;
    for (const [params, message] of cases) {
      const reply = await raw.request('http/request', params);
      expect(reply.error?.code, JSON.stringify(params)).toBe(ErrorCode.InvalidParams);
      if (typeof message === 'string') expect(reply.error?.message).toBe(message);
      else expect(reply.error?.message).toMatch(message);
    }
    expect(upstream.served.length).toBe(served);
  });

  it('refuses a duplicate active requestId with -32602, and accepts the id again once it finished', async () => {
    const requestId = rid();
    const slow = raw.request('http/request', { requestId, method: 'GET', url: `${upstream.url}/slow?ms=1000` });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const duplicate = await raw.request('http/request', { requestId, method: 'GET', url: `${upstream.url}/echo` });
    expect(duplicate.error?.code).toBe(ErrorCode.InvalidParams);
    expect(duplicate.error?.message).toMatch(/duplicate active requestId/);
    expect((await slow).result.status).toBe(200);
    const again = await raw.request('http/request', { requestId, method: 'GET', url: `${upstream.url}/echo` });
    expect(again.result.status).toBe(200);
  });

  it('cancels an active streamed request with http/request/cancel: the upstream connection closes', async () => {
    const requestId = rid();
    const id = `cancel-${requestId}`;
    // A small window and no acks: the agent stops after the window, upstream keeps its socket open.
    const reply = await raw.request('http/request', { requestId, method: 'GET', url: `${upstream.url}/endless?id=${id}`, streamResponse: true, responseWindowBytes: 65536 });
    expect(reply.result.status).toBe(200);
    await raw.waitFor((m) => m.method === 'http/request/bodyDelta' && m.params?.requestId === requestId);
    const cancelled = await raw.request('http/request/cancel', { requestId });
    expect(cancelled.result).toEqual({ cancelled: true });
    await state.closed(id);
    const { last } = await streamedBody(requestId);
    expect(last.params.error).toMatch(/cancelled by the client/);
    // Only about the window was sent although the server would write forever.
    const received = deltas(requestId).reduce((n, m) => n + Buffer.from(m.params.deltaBase64, 'base64').length, 0);
    expect(received).toBeLessThanOrEqual(65536);
    expect((await raw.request('http/request/cancel', { requestId })).result).toEqual({ cancelled: false });
  });
});

describe('http/request limits', () => {
  it('bounds concurrent requests per session (-32600 past it)', async () => {
    const limited = await startHttpAgent({ maxConcurrentRequestsPerSession: 2 });
    const client = await RawRpcClient.connect(limited.url);
    try {
      await client.initialize();
      const slow = [1, 2].map((n) => client.request('http/request', { requestId: `s${n}`, method: 'GET', url: `${upstream.url}/slow?ms=1000` }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const third = await client.request('http/request', { requestId: 's3', method: 'GET', url: `${upstream.url}/echo` });
      expect(third.error?.code).toBe(ErrorCode.InvalidRequest);
      expect(third.error?.message).toMatch(/too many concurrent http requests in this session \(limit 2\)/);
      for (const reply of await Promise.all(slow)) expect(reply.result.status).toBe(200);
    } finally {
      client.close();
      await limited.stop();
    }
  });

  it('bounds headers (count) and a buffered body (it must fit one JSON-RPC message: use streamResponse)', async () => {
    const tooMany = Array.from({ length: 257 }, (_, i) => ({ name: `x-h${i}`, value: 'v' }));
    const headers = await raw.request('http/request', { requestId: rid(), method: 'GET', url: `${upstream.url}/echo`, headers: tooMany });
    expect(headers.error?.code).toBe(ErrorCode.InvalidParams);
    expect(headers.error?.message).toMatch(/more than 256 headers/);

    const small = await startHttpAgent({}, { maxMessageBytes: 1024 * 1024 });
    const client = await RawRpcClient.connect(small.url);
    try {
      await client.initialize();
      const big = await client.request('http/request', { requestId: 'b1', method: 'GET', url: `${upstream.url}/bytes?n=${2 * 1024 * 1024}` });
      expect(big.error?.code).toBe(ErrorCode.Internal);
      expect(big.error?.message).toMatch(/^http\/request failed: response body exceeds \d+ bytes; use streamResponse/);
      const streamed = await client.request('http/request', { requestId: 'b2', method: 'GET', url: `${upstream.url}/bytes?n=${2 * 1024 * 1024}`, streamResponse: true });
      expect(streamed.result.status).toBe(200);
      const last = await client.waitFor((m) => m.method === 'http/request/bodyDelta' && m.params?.requestId === 'b2' && m.params.done === true);
      expect(last.params.error).toBeNull();
    } finally {
      client.close();
      await small.stop();
    }
  });

  it('refuses destinations outside --http-allow, for the first URL and for every redirect hop', async () => {
    const limited = await startHttpAgent({ allow: parseHttpAllow([`127.0.0.1:${upstream.port}`]) });
    const client = await RawRpcClient.connect(limited.url);
    try {
      await client.initialize();
      const allowed = await client.request('http/request', { requestId: 'a1', method: 'GET', url: `${upstream.url}/echo` });
      expect(allowed.result.status).toBe(200);
      const otherServed = other.served.length;
      const refused = await client.request('http/request', { requestId: 'a2', method: 'GET', url: `${other.url}/echo` });
      expect(refused.error?.code).toBe(ErrorCode.InvalidRequest);
      expect(refused.error?.message).toBe(`http/request refused: destination 127.0.0.1:${other.port} is not allowed by this agent (--http-allow)`);
      const viaRedirect = await client.request('http/request', {
        requestId: 'a3',
        method: 'GET',
        url: `${upstream.url}/redirect?status=302&to=${encodeURIComponent(`${other.url}/echo`)}`,
      });
      expect(viaRedirect.error?.code).toBe(ErrorCode.InvalidRequest);
      expect(viaRedirect.error?.message).toMatch(new RegExp(`destination 127\\.0\\.0\\.1:${other.port} is not allowed .*\\(redirect from 127\\.0\\.0\\.1:${upstream.port}\\)`));
      expect(other.served.length).toBe(otherServed); // nothing was sent there
      expect(limited.requests.map((r) => r.url)).toEqual([`${upstream.url}/echo`, `${upstream.url}/redirect?status=302&to=${encodeURIComponent(`${other.url}/echo`)}`]);
    } finally {
      client.close();
      await limited.stop();
    }
  });
});

describe('parseHttpAllow', () => {
  it('parses HOST, HOST:PORT, *.DOMAIN, IPv6 and comma lists; rejects URLs and bad ports', () => {
    expect(parseHttpAllow(['Example.COM', 'api.example.com:8443', '*.corp.example:443,[::1]:8080', '::1'])).toEqual([
      { host: 'example.com', port: null, subdomains: false },
      { host: 'api.example.com', port: 8443, subdomains: false },
      { host: 'corp.example', port: 443, subdomains: true },
      { host: '[::1]', port: 8080, subdomains: false },
      { host: '[::1]', port: null, subdomains: false },
    ]);
    expect(() => parseHttpAllow(['http://example.com'])).toThrow(/invalid --http-allow entry "http:\/\/example.com"/);
    expect(() => parseHttpAllow(['example.com:0'])).toThrow(/port must be 1-65535/);
    expect(() => parseHttpAllow(['ex*ample.com'])).toThrow(/wildcard/);
  });
});
