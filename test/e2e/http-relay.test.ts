/**
 * HTTP through the executor across a real relay (end-to-end encrypted channel): buffered,
 * streamed (50 MiB, checksummed), redirecting, slow (timeout), failing and refused requests, and
 * an abort that stops the server-side transfer. The upstream server answers only the agent's
 * source address and the client process's global fetch throws; every request the server saw is
 * one the agent counted.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../../src/client/exec-client.js';
import { ErrorCode, RpcError } from '../../src/protocol/error-codes.js';
import { parseHttpAllow } from '../../executor-agent/http-destination-policy.js';
import { relayTarget, startRelay, type RelayFixture } from '../support/relay-harness.js';
import {
  forbidDirectFetch,
  patternBytes,
  startGuardedServer,
  startRelayedHttpAgent,
  upstreamApp,
  type GuardedServer,
  type RelayedHttpAgent,
  type UpstreamState,
} from '../support/mcp-executor-harness.js';

let relay: RelayFixture;
let upstream: GuardedServer;
let state: UpstreamState;
let remote: RelayedHttpAgent;
let client: ExecClient;

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  forbidDirectFetch();
  const app = upstreamApp();
  state = app.state;
  upstream = await startGuardedServer(app.handler);
  relay = await startRelay();
  remote = await startRelayedHttpAgent(relay.url, 'http-env');
  client = await ExecClient.connect(relayTarget(relay.url, remote));
});

afterAll(async () => {
  client?.close();
  remote?.stop();
  await relay?.stop();
  await upstream?.close();
});

describe('fetch through the relay', () => {
  it('does a buffered request', async () => {
    const response = await client.fetch(`${upstream.url}/echo`, { method: 'PUT', body: 'through the relay' });
    const echoed = (await response.json()) as { method: string; body: string };
    expect(echoed.method).toBe('PUT');
    expect(Buffer.from(echoed.body, 'base64').toString()).toBe('through the relay');
  });

  it('streams a 50 MiB body, checksummed', async () => {
    const size = 50 * 1024 * 1024;
    const response = await client.fetch(`${upstream.url}/bytes?n=${size}&seed=11`);
    const reader = response.body!.getReader();
    const hash = createHash('sha256');
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      hash.update(value);
    }
    expect(total).toBe(size);
    expect(hash.digest('hex')).toBe(sha256(patternBytes(size, 11)));
  });

  it('follows and stops redirects', async () => {
    const to = encodeURIComponent('/echo?hop=1');
    const followed = await client.fetch(`${upstream.url}/redirect?status=308&to=${to}`, { method: 'POST', body: 'kept' });
    const echoed = (await followed.json()) as { method: string; body: string; url: string };
    expect(echoed).toMatchObject({ method: 'POST', url: '/echo?hop=1' });
    expect(Buffer.from(echoed.body, 'base64').toString()).toBe('kept'); // 308 keeps method and body
    const manual = await client.fetch(`${upstream.url}/redirect?status=302&to=${to}`, { redirect: 'manual' });
    expect(manual.status).toBe(302);
    expect(manual.headers.get('location')).toBe('/echo?hop=1');
    await manual.body?.cancel();
  });

  it('times out a slow response', async () => {
    const impatient = client.http.fetchWith({ timeoutMs: 200 });
    const failure = await impatient(`${upstream.url}/slow?ms=5000`).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TypeError);
    expect((failure as Error).message).toMatch(/http\/request failed: timed out after 200 ms/);
  });

  it('fails a body the server breaks off', async () => {
    const response = await client.fetch(`${upstream.url}/fail`);
    await expect(response.arrayBuffer()).rejects.toThrow(/response body failed/);
  });

  it('aborting a streamed response stops the server-side transfer', async () => {
    const controller = new AbortController();
    const response = await client.fetch(`${upstream.url}/bytes?n=${512 * 1024 * 1024}&id=relay-abort`, { signal: controller.signal });
    const reader = response.body!.getReader();
    let received = 0;
    while (received < 2 * 1024 * 1024) received += (await reader.read()).value!.byteLength;
    controller.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
    await state.closed('relay-abort');
    const writtenAtClose = state.written.get('relay-abort') ?? 0;
    expect(state.completed.has('relay-abort')).toBe(false);
    expect(writtenAtClose).toBeLessThan(64 * 1024 * 1024);
  });

  it('every upstream request came from the agent, and the agent counted each one', () => {
    expect(upstream.violations).toEqual([]);
    expect(upstream.served.length).toBeGreaterThan(0);
    expect(remote.requests.map((r) => new URL(r.url).pathname + new URL(r.url).search)).toEqual(upstream.served.map((s) => s.path));
  });

  it('a destination outside --http-allow is refused, not requested', async () => {
    const limited = await startRelayedHttpAgent(relay.url, 'http-env-limited', { allow: parseHttpAllow(['127.0.0.1:1']) });
    const limitedClient = await ExecClient.connect(relayTarget(relay.url, limited));
    try {
      const served = upstream.served.length;
      const failure = await limitedClient.fetch(`${upstream.url}/echo`).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(TypeError);
      const cause = (failure as TypeError).cause as RpcError;
      expect(cause).toBeInstanceOf(RpcError);
      expect(cause.code).toBe(ErrorCode.InvalidRequest);
      expect(cause.message).toBe(`http/request refused: destination 127.0.0.1:${upstream.port} is not allowed by this agent (--http-allow)`);
      expect(upstream.served.length).toBe(served);
      expect(limited.requests).toEqual([]);
    } finally {
      limitedClient.close();
      limited.stop();
    }
  });
});
